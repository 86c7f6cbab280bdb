"""Touches event["megabytes"] of memory and holds it for a while."""

import time
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    hog = b"\x01" * (int(event["megabytes"]) * 1024 * 1024)  # written, so resident
    time.sleep(float(event.get("hold_s", 0)))
    return {"held_megabytes": len(hog) // (1024 * 1024)}
