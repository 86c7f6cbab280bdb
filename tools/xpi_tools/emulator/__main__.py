"""``python -m xpi_tools.emulator``; ``main`` is also importable from here (``xpi emulator`` does)."""

from xpi_tools.emulator.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
