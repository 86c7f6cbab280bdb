"""Raises, as a handler with a bug does."""

from typing import Any


class ConsumerError(Exception):
    pass


def handler(event: Any, context: Any) -> None:
    raise ConsumerError(f"cannot handle {event!r}")
