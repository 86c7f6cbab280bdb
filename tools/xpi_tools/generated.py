"""Files generated from a source of truth and committed (JSON schemas, state machine definitions): one
command writes them, `--check` fails when a committed one is out of date (tests run it)."""

import argparse
from collections.abc import Mapping
from pathlib import Path


def write_or_check(
    command: str, description: str | None, files: Mapping[Path, str], argv: list[str] | None
) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {command}", description=description)
    parser.add_argument("--check", action="store_true", help="fail when a committed file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in files.items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m {command}`")
        return 1
    return 0
