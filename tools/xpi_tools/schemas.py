"""Write the published JSON Schemas of xpi's contracts from their pydantic models.

python -m xpi_tools.schemas          # rewrite functions/xpi/schemas/*.json
python -m xpi_tools.schemas --check  # exit 1 when a published schema is out of date
"""

import json
import sys
from pathlib import Path

from pydantic import BaseModel
from xpi.models.events import ResultDetail, SecurityAlertDetail
from xpi.models.request import InferenceRequest

from xpi_tools.generated import write_or_check

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
    return write_or_check(
        "xpi_tools.schemas",
        __doc__,
        {SCHEMA_DIR / name: render(model) for name, model in CONTRACTS.items()},
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
