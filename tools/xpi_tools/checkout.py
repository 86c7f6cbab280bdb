"""Where the xpi checkout is: the commands that build, deploy or read its files start from here."""

from pathlib import Path


def project_root() -> Path:
    """The checkout that holds template.yaml (the current folder or one of its parents)."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "template.yaml").exists() and (folder / "functions" / "xpi").is_dir():
            return folder
    raise SystemExit("xpi: run this inside the xpi checkout (no template.yaml with functions/xpi found)")
