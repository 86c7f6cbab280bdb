"""The NIST SP 800-53 mapping of the compliance report's items and the configuration checks, kept as
data in `xpi/compliance/controls.json` (each with its controls and why)."""

import json
from dataclasses import dataclass
from importlib import resources
from typing import Final


@dataclass(frozen=True)
class ItemControls:
    title: str
    controls: tuple[str, ...]
    justification: str


@dataclass(frozen=True)
class CheckControls:
    title: str
    config_rule: str | None
    controls: tuple[str, ...]


def _load() -> tuple[dict[str, ItemControls], dict[str, CheckControls]]:
    text = resources.files("xpi.compliance").joinpath("controls.json").read_text(encoding="utf-8")
    data = json.loads(text)
    items = {
        name: ItemControls(entry["title"], tuple(entry["controls"]), entry["justification"])
        for name, entry in data["items"].items()
    }
    checks = {
        name: CheckControls(entry["title"], entry["config_rule"], tuple(entry["controls"]))
        for name, entry in data["checks"].items()
    }
    return items, checks


_LOADED: Final = _load()
ITEMS: Final[dict[str, ItemControls]] = _LOADED[0]
CHECKS: Final[dict[str, CheckControls]] = _LOADED[1]
