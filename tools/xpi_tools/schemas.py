"""Write the published JSON Schemas of xpi's contracts from their pydantic models.

python -m xpi_tools.schemas          # rewrite functions/xpi/schemas/*.json
python -m xpi_tools.schemas --check  # exit 1 when a published schema is out of date
"""

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel
from xpi.models.events import ResultDetail, SecurityAlertDetail
from xpi.models.request import InferenceRequest

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "functions" / "xpi" / "schemas"
CONTRACTS: dict[str, type[BaseModel]] = {
    "request.v1.schema.json": InferenceRequest,
    "result-event-detail.v1.schema.json": ResultDetail,
    "security-alert-detail.v1.schema.json": SecurityAlertDetail,
}


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xpi_tools.schemas", description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, model in CONTRACTS.items():
        path, text = SCHEMA_DIR / name, render(model)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m xpi_tools.schemas`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
