"""DEVELOPERS.md's layer rule, checked on every module of functions/xpi: handlers -> dependencies ->
services -> domain / adapters -> models -> (observability, settings). Nothing imports upward, domain
never imports adapters, and only settings.py reads the environment."""

import ast
from pathlib import Path

import pytest

from tests.helpers.events import REPO

PACKAGE = REPO / "functions" / "xpi"
# Higher imports lower (or its own layer); domain and adapters share a floor, adapters above domain.
RANK = {
    "handlers": 6,
    "dependencies": 5,
    "services": 4,
    "adapters": 3,
    "domain": 2.5,
    "models": 2,
    "observability": 1,
    "settings": 1,
    "config": 0,  # data files (routing.json)
    "compliance": 0,  # data files (controls.json: the NIST SP 800-53 mapping)
}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(dotted: str) -> str:
    """xpi.services.api -> services; xpi.settings -> settings."""
    return dotted.split(".")[1] if dotted.count(".") else ""


def xpi_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xpi"):
            found.extend(
                f"{node.module}.{alias.name}" if node.module == "xpi" else node.module for alias in node.names
            )
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("xpi."))
    return found


def test_every_module_is_in_a_layer() -> None:
    for path in modules():
        relative = path.relative_to(PACKAGE)
        layer = relative.parts[0].removesuffix(".py")
        assert layer in RANK or layer == "__init__", relative


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_imports_upward(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if layer == "__init__":
        return
    for imported in xpi_imports(path):
        target = layer_of(imported)
        assert RANK[target] <= RANK[layer], f"{layer} imports {imported}, a layer above it"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_settings_reads_the_environment(path: Path) -> None:
    if path == PACKAGE / "settings.py":
        return
    source = path.read_text(encoding="utf-8")
    assert "os.environ" not in source and "getenv" not in source, path.relative_to(PACKAGE)


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if p.relative_to(PACKAGE).parts[0] in ("domain", "models")]
    + [PACKAGE / "adapters" / "ports.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_domain_models_and_ports_import_no_aws_sdk(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        )
    }  # fmt: skip
    assert not imported & {"boto3", "botocore"}, path.relative_to(PACKAGE)
