"""Ends its own runtime process mid-invoke, as a segfault or os._exit would."""

import os
from typing import Any


def handler(event: Any, context: Any) -> None:
    os._exit(3)
