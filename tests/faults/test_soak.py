"""The soak: 10,000 requests (XPI_SOAK_N) with mixed faults, run by `make soak` only (XPI_FAULTS_SOAK=1).

Throttling and 5xx on the model, and among the requests duplicates, oversized and not-JSON messages;
every request must be accounted for as in the fault suite. The requests go in ten slices; once each has
settled, the local stack's memory is sampled: the `xpi local up` process (moto, the emulator, the poller,
the API gateway), the AWS state moto retains within it (what AWS keeps too: items, objects, messages,
executions, metric data; measured by the stack's control endpoint), and the function runtimes it started;
each sample also prints the stack's own parts (the IAM call log, the monitoring glue, the runtime pool,
the emulators' counters, ...), and the end each part's growth. After the
warm-up (the first slice), the growth per 1,000 requests of everything but the retained state must stay
under FLAT_MIB_PER_1000.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from xpi_tools.emulator import EmulatorControl
from xpi_tools.local.faults import ControlClient

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


MIB = 2**20
# After warm-up, what the local stack holds beyond the AWS state moto retains may grow by at most this
# much per 1,000 requests (the stack process, and the function runtimes apart).
FLAT_MIB_PER_1000 = 8.0


@dataclass
class MemorySample:
    """The local stack's memory once a slice of requests has settled."""

    requests: int
    stack_mib: float  # the `xpi local up` process: moto, the emulator, the poller, the API gateway
    untrimmed_mib: float  # the same before the allocator handed its free pages back
    retained_mib: float  # of which the AWS state moto retains (items, objects, messages, executions)
    runtimes_mib: float  # every process it started: the function runtimes (RIE + awslambdaric)
    threads: int  # Python's
    objects: int
    retained_by_service: dict[str, float]
    malloc_in_use_mib: float = 0.0  # glibc's heap: handed out and in use
    malloc_free_mib: float = 0.0  # glibc's heap: free but kept
    rss_by_mapping: dict[str, float] | None = None  # heap, thread stacks, anonymous, files
    pymalloc_in_use_mib: float = 0.0  # pymalloc's blocks in use (Python's small objects)
    pymalloc_arenas_mib: float = 0.0  # pymalloc's arenas (in use, free blocks, free pools)
    step_functions: dict[str, float] | None = None  # executions' history, and the rest of their environment
    os_threads: int = 0  # the process's threads, Python's or not
    stack_mappings: int = 0  # thread stacks mapped (live threads' and glibc's cached ones)
    glue: dict[str, float] | None = None  # the stack's own parts (IAM call log, monitoring, emulator, ...)

    @property
    def other_mib(self) -> float:
        return self.stack_mib - self.retained_mib

    @property
    def live_mib(self) -> float:
        """What the allocators have handed out and not got back: every live object (pymalloc's small
        ones, glibc's larger ones and everything C allocates)."""
        return self.pymalloc_in_use_mib + self.malloc_in_use_mib

    @property
    def live_besides_retained_mib(self) -> float:
        return self.live_mib - self.retained_mib

    @property
    def slack_mib(self) -> float:
        """Resident but held by no object: the allocators' free memory they keep, and thread stacks
        (the stack process less its files and its live memory)."""
        return self.stack_mib - (self.rss_by_mapping or {}).get("files", 0.0) - self.live_mib


def sample(stack: LocalStackClient, control: ControlClient, requests: int) -> MemorySample:
    report = control.memory()
    _, tree = stack_rss_mib(stack)
    stack_mib = report["rss_bytes"] / MIB
    return MemorySample(
        requests,
        stack_mib,
        report["rss_before_release_bytes"] / MIB,
        sum(report["retained_state_bytes"].values()) / MIB,
        tree - stack_mib,
        report["threads"],
        report["gc_objects"],
        {name: size / MIB for name, size in report["retained_state_bytes"].items()},
        report.get("malloc_bytes", {}).get("in_use", 0) / MIB,
        report.get("malloc_bytes", {}).get("free", 0) / MIB,
        {name: size / MIB for name, size in report.get("rss_by_mapping_bytes", {}).items()},
        report.get("pymalloc_bytes", {}).get("in_use", 0) / MIB,
        report.get("pymalloc_bytes", {}).get("arenas", 0) / MIB,
        {name: size / MIB for name, size in report.get("step_functions_bytes", {}).items()},
        report.get("os_threads", 0),
        report.get("thread_stack_mappings", 0),
        {name: size / MIB for name, size in report.get("glue_bytes", {}).items()},
    )


def row(s: MemorySample) -> str:
    services = ", ".join(f"{name} {mib:.1f}" for name, mib in s.retained_by_service.items())
    return (
        f"| {s.requests} | {s.untrimmed_mib:.0f} | {s.stack_mib:.0f} | {s.retained_mib:.1f} ({services}) "
        f"| {s.other_mib:.0f} "
        f"| {s.runtimes_mib:.0f} | {s.threads} / {s.os_threads} / {s.stack_mappings} | {s.objects} "
        f"| {s.malloc_in_use_mib:.0f} / {s.malloc_free_mib:.0f} "
        f"| {', '.join(f'{k} {v:.0f}' for k, v in (s.rss_by_mapping or {}).items())} "
        f"| {s.pymalloc_in_use_mib:.0f} / {s.pymalloc_arenas_mib:.0f} "
        f"| {', '.join(f'{k} {v:.1f}' for k, v in (s.step_functions or {}).items())} |"
    )


def glue_row(s: MemorySample) -> str:
    return ", ".join(f"{name} {mib:.2f}" for name, mib in (s.glue or {}).items())


def per_thousand(samples: list[MemorySample], value: Callable[[MemorySample], float]) -> float:
    """The least-squares slope of `value` over the samples, in MiB per 1,000 requests."""
    xs, ys = [s.requests for s in samples], [value(s) for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return 1000 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def print_allocation_growth(control: ControlClient, first: bool) -> None:
    """Start tracing the stack's allocations after the warm-up slice, then print what grew per slice."""
    if first:
        control.start_allocation_trace(frames=12)
        return
    growth = control.allocation_growth()
    print(
        f"soak: traced {growth['traced_bytes'] / MIB:.1f} MiB, grown {growth['grown_bytes'] / MIB:+.1f} MiB"
    )
    for site in growth["sites"][:15]:
        frames = " < ".join(reversed(site["traceback"][-6:]))
        print(f"soak:   {site['size_diff_bytes'] / 1024:+.0f} KiB ({site['count_diff']:+d}) {frames}")


def test_soak_every_request_is_accounted_for_and_memory_stays_flat(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN n requests with mixed faults, sent in ten slices, the memory sampled after each has settled
    n = int(os.environ.get("XPI_SOAK_N", "10000"))
    harness = Harness(local_stack, results, emulator)
    control = ControlClient(local_stack.state["control"])
    messages = soak_messages(n)
    slices = 10
    per_slice = -(-len(messages) // slices)
    samples = [sample(local_stack, control, 0)]
    types_before = control.memory(with_types=True)["types"]
    emulator.inject_fault("ThrottlingException", model=MODEL, rate=0.1)
    emulator.inject_fault("ServiceUnavailableException", model=MODEL, rate=0.05)
    done: set[str] = set()
    trace = os.environ.get("XPI_SOAK_TRACE") == "1"  # tracemalloc past the warm-up, for finding a leak
    try:
        # WHEN every slice is sent and settled
        for start in range(0, len(messages), per_slice):
            batch = messages[start : start + per_slice]
            harness.send(batch)
            harness.settle(batch, timeout_s=max(600, len(batch) * 0.5), interval_s=2)
            done |= {m.request_id for m in batch}
            samples.append(sample(local_stack, control, len(done)))
            print(f"soak: {row(samples[-1])}", flush=True)
            print(f"soak:   the stack's own parts MiB: {glue_row(samples[-1])}", flush=True)
            if trace:
                print_allocation_growth(control, first=len(samples) == 2)
    finally:
        emulator.clear_faults()
    types_after = control.memory(with_types=True)["types"]
    tally = harness.tally(f"soak, mixed faults ({n})", messages)

    # THEN every request is accounted for, and past the warm-up (the first slice) what the stack holds
    # beyond the AWS state it retains stays flat
    warm = samples[1:]
    slopes = {
        "stack process before free pages are released": per_thousand(warm, lambda s: s.untrimmed_mib),
        "stack process": per_thousand(warm, lambda s: s.stack_mib),
        "retained AWS state": per_thousand(warm, lambda s: s.retained_mib),
        "stack process without it": per_thousand(warm, lambda s: s.other_mib),
        "function runtimes": per_thousand(warm, lambda s: s.runtimes_mib),
        # (what the stack process without the retained state is made of)
        "live objects besides the retained state": per_thousand(warm, lambda s: s.live_besides_retained_mib),
        "allocators' slack and thread stacks": per_thousand(warm, lambda s: s.slack_mib),
    }
    grown = sorted(
        ((count - types_before.get(name, 0), name) for name, count in types_after.items()), reverse=True
    )[:12]
    print(f"\n{HEADER}\n{RULE}\n{tally.row()}")
    print(
        "\n| requests | stack process MiB (before free pages are released) | stack process MiB "
        "| retained AWS state MiB | stack without it MiB | function runtimes MiB "
        "| threads (Python / process / stacks mapped) "
        "| Python objects | C heap in use / free MiB | resident by mapping MiB "
        "| pymalloc in use / arenas MiB | Step Functions executions MiB |"
        "\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for s in samples:
        print(row(s))
    per_request = (
        (samples[-1].retained_mib - samples[1].retained_mib)
        * MIB
        / max(samples[-1].requests - samples[1].requests, 1)
    )
    print(
        "growth per 1,000 requests after warm-up (MiB): "
        + ", ".join(f"{name} {slope:+.1f}" for name, slope in slopes.items())
        + f"; retained AWS state {per_request / 1024:.1f} KiB per request"
    )
    for name in samples[-1].glue or {}:
        glue_slope = per_thousand(warm, lambda s, name=name: (s.glue or {}).get(name, 0.0))
        print(f"the stack's own part {name}: {glue_slope:+.2f} MiB per 1,000 requests after warm-up")
    print("Python objects grown most (type: count): " + ", ".join(f"{n}: {c:+d}" for c, n in grown))
    assert tally.problems() == []
    assert slopes["stack process without it"] <= FLAT_MIB_PER_1000, slopes
    assert slopes["function runtimes"] <= FLAT_MIB_PER_1000, slopes
