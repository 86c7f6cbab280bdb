"""The API's OpenAPI document (api/openapi.yaml), for tests that check answers against it."""

from pathlib import Path
from typing import Any

import yaml

DOCUMENT: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "api" / "openapi.yaml").read_text(encoding="utf-8")
)


def deref(node: Any) -> Any:
    """The node with every local `$ref` replaced by what it points to."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = DOCUMENT
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return deref(target)
        return {k: deref(v) for k, v in node.items()}
    if isinstance(node, list):
        return [deref(v) for v in node]
    return node
