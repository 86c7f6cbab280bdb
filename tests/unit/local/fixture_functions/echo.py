"""Answers with what it was given and what it can see of its Lambda environment."""

import os
import time
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.time()
    print(f"echo invoked with {event!r}")
    time.sleep(float(event.get("sleep_s", 0)) if isinstance(event, dict) else 0)
    return {
        "event": event,
        "pid": os.getpid(),
        "started": started,
        "ended": time.time(),
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
