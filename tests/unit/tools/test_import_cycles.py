"""No import cycles between the modules of xpi (functions/xpi) and xpi_tools (tools/xpi_tools).

The graph is read from every import statement with `ast`, not by running the imports: an import
inside a function or under `if TYPE_CHECKING:` is an edge too. Such imports hide a cycle at run time
until someone moves them to the top of the file, and then the cycle breaks the import.
"""

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_FOLDERS = (ROOT / "functions" / "xpi", ROOT / "tools" / "xpi_tools")


def module_files(package_folders: Iterable[Path]) -> dict[str, Path]:
    """Module name -> file, for every .py file under each package folder (a package is its __init__)."""
    modules = {}
    for package_folder in package_folders:
        for path in sorted(package_folder.rglob("*.py")):
            parts = path.relative_to(package_folder.parent).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, importer: str, importer_is_package: bool) -> str:
    """The module an ImportFrom names, with a relative import resolved against the importer."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".")
    if not importer_is_package:
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that `module` imports anywhere in its file."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                # `from package import submodule` imports the submodule; `from module import name`
                # imports the module.
                submodule = f"{base}.{alias.name}"
                imported.add(submodule if submodule in known else base)
    return (imported & known) - {module}


def import_graph(package_folders: Iterable[Path]) -> dict[str, set[str]]:
    files = module_files(package_folders)
    known = set(files)
    return {module: imported_modules(module, path, known) for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    on_path: list[str] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        visiting.add(module)
        on_path.append(module)
        for target in sorted(graph.get(module, ())):
            if target in visiting:
                return [*on_path[on_path.index(target) :], target]
            if target not in done and (cycle := visit(target)) is not None:
                return cycle
        on_path.pop()
        visiting.discard(module)
        done.add(module)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_covers_both_packages_and_their_imports() -> None:
    graph = import_graph(PACKAGE_FOLDERS)

    assert "xpi.handlers" in graph
    assert "xpi_tools.emulator.service" in graph
    # A submodule named in `from package import submodule` is an edge to the submodule.
    assert "xpi_tools.emulator.eventstream" in graph["xpi_tools.emulator.service"]
    assert "xpi_tools.emulator.server" in graph["xpi_tools.emulator"]


def test_finds_a_cycle_through_a_function_level_and_a_type_checking_import(tmp_path: Path) -> None:
    # GIVEN a package whose cycle is hidden in a function body and under TYPE_CHECKING
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import Thing\n"
    )
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from pkg.a import f\n")

    # WHEN / THEN
    assert find_cycle(import_graph([package])) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph(PACKAGE_FOLDERS))

    if cycle is not None:
        pytest.fail("import cycle: " + " -> ".join(cycle))
