"""The soak: 10,000 requests (XPI_SOAK_N) with mixed faults, run by `make soak` only (XPI_FAULTS_SOAK=1).

Throttling and 5xx on the model, and among the requests duplicates, oversized and not-JSON messages;
every request must be accounted for as in the fault suite. The local stack's memory (the `xpi local up`
process, and it with every process it started) is printed at the start and the end.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from xpi_tools.emulator import EmulatorControl

from tests.faults.harness import HEADER, RULE, Harness, Sent, new_id, request_body, stack_rss_mib
from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("XPI_FAULTS_SOAK") != "1", reason="the soak runs with `make soak`"),
]

MODEL = "us.amazon.nova-lite-v1:0"


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.clear_faults()


def soak_messages(n: int) -> list[Sent]:
    """n requests: about 2 % sent twice, 1 % oversized, 1 % not JSON; the rest plain."""
    chooser, messages = random.Random(0), []
    for i in range(n):
        request_id, roll = new_id("soak"), chooser.random()
        if roll < 0.01:
            messages.append(Sent(request_id, request_body(request_id, MODEL, "x" * 205_000), expect_dlq=True))
        elif roll < 0.02:
            messages.append(Sent("", f"soak {i} {request_id}: not JSON", expect_dlq=True))
        else:
            body = request_body(request_id, MODEL, f"Soak request {i}")
            messages.append(Sent(request_id, body))
            if roll < 0.04:
                messages.append(Sent(request_id, body))
    return messages


def test_soak_every_request_is_accounted_for_and_memory_stays_flat(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    n = int(os.environ.get("XPI_SOAK_N", "10000"))
    harness = Harness(local_stack, results, emulator)
    messages = soak_messages(n)
    start = stack_rss_mib(local_stack)
    emulator.inject_fault("ThrottlingException", model=MODEL, rate=0.1)
    emulator.inject_fault("ServiceUnavailableException", model=MODEL, rate=0.05)
    try:
        harness.send(messages)
        harness.settle(messages, timeout_s=max(600, n * 0.5), interval_s=5)
    finally:
        emulator.clear_faults()
    end = stack_rss_mib(local_stack)
    tally = harness.tally(f"soak, mixed faults ({n})", messages)
    print(f"\n{HEADER}\n{RULE}\n{tally.row()}")
    print(
        f"local stack memory (MiB): `xpi local up` {start[0]:.0f} -> {end[0]:.0f}; "
        f"with every process it started {start[1]:.0f} -> {end[1]:.0f}"
    )
    assert tally.problems() == []
