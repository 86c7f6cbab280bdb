"""Write statemachines/<name>.asl.json from their source, statemachines/workflows.yaml.

python -m xpi_tools.statemachines          # rewrite statemachines/*.asl.json
python -m xpi_tools.statemachines --check  # exit 1 when a generated definition is out of date

The source writes each shared Retry and Catch block once (YAML anchors); the generated JSON is what
template.yaml deploys, so it is committed, and `--check` (a unit test) keeps it in step with the source.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

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
    parser = argparse.ArgumentParser(prog="python -m xpi_tools.statemachines", description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, definition in definitions().items():
        path, text = STATEMACHINES / f"{name}.asl.json", render(definition)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m xpi_tools.statemachines`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
