"""Sleeps for event["seconds"], past the function timeout when asked to."""

import time
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}
