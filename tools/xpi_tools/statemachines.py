"""Write statemachines/<name>.asl.json from their source, statemachines/workflows.yaml.

python -m xpi_tools.statemachines          # rewrite statemachines/*.asl.json
python -m xpi_tools.statemachines --check  # exit 1 when a generated definition is out of date

The source writes each shared Retry and Catch block once (YAML anchors); the generated JSON is what
template.yaml deploys, so it is committed, and `--check` (a unit test) keeps it in step with the source.
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from xpi_tools.generated import write_or_check

STATEMACHINES = Path(__file__).resolve().parents[2] / "statemachines"
SOURCE = STATEMACHINES / "workflows.yaml"


def definitions(source: Path = SOURCE) -> dict[str, dict[str, Any]]:
    """{name: ASL definition} of every state machine of the source, anchors resolved."""
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    machines: dict[str, dict[str, Any]] = document["state_machines"]
    return machines


def render(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(
        "xpi_tools.statemachines",
        __doc__,
        {
            STATEMACHINES / f"{name}.asl.json": render(definition)
            for name, definition in definitions().items()
        },
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
