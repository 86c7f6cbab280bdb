"""Sleeps for event["seconds"], past the function timeout when asked to; touches event["started_file"]
first, if given, so a test can wait for the invoke to be under way."""

import time
from pathlib import Path
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    if "started_file" in event:
        Path(event["started_file"]).touch()
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}
