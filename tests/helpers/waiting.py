"""Waiting for conditions instead of sleeping for a fixed time: a test goes on the moment the
condition holds, and only a test that proves something did not happen waits out its full time."""

import time
from collections.abc import Callable


def poll_until(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.05) -> bool:
    """True as soon as predicate is true (it runs at least once); False once timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


def wait_until(
    predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.05, what: str = ""
) -> bool:
    """poll_until, failing the test (AssertionError) when the time passes. Returns True, so
    `assert wait_until(...)` reads as well as the bare call."""
    if not poll_until(predicate, timeout_s, interval_s):
        raise AssertionError(f"{what or 'the condition'} did not hold within {timeout_s} s")
    return True


def never_happens_within(
    happened: Callable[[], object], would_have_taken_s: float, interval_s: float = 0.05
) -> bool:
    """For a test that proves something did not happen (a duplicate's event, a second call): watch for
    it for as long as it would have taken to happen. True if it never did; False as soon as it does."""
    return not poll_until(happened, would_have_taken_s, interval_s)
