"""The soak: 10,000 requests (XPI_SOAK_N) with mixed faults, run by `make soak` only (XPI_FAULTS_SOAK=1).

The fault suite's scenarios mixed into one long run, per slice of requests: throttling, 5xx and Bedrock's
own timeouts on the model, a few streams stalled mid-answer, the queue workflow's process runtime killed
after Bedrock answered, the record runtime killed after its lineage write, and the process function
refused by Lambda for a few marked requests; among the messages duplicates, oversized, not-JSON,
not-an-object and nested-id ones, and late copies of some of the previous slice's requests (SQS
redelivering after the end). Every request must be accounted for as in the fault suite, and no valid
request's message may end in the DLQ. The requests go in ten slices; once each has
settled, the local stack's memory is sampled: the `xpi local up` process (moto, the emulator, the poller,
the API gateway), the AWS state moto retains within it (what AWS keeps too: items, objects, messages,
executions, metric data; measured by the stack's control endpoint), and the function runtimes it started;
each sample also prints the stack's own parts (the IAM call log, the monitoring glue, the runtime pool,
the emulators' counters, ...), and the end each part's growth. After the
warm-up (the first slice), the growth per 1,000 requests of everything but the retained state must stay
under FLAT_MIB_PER_1000; a slice that did not settle within its bound fails the soak (its sample would
be taken with work in flight). While a slice settles, the soak runs the reaper every REAPER_EVERY_S, as
its schedule does on AWS (moto fires none), and prints how many requests it ended.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
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


REFUSED_MARK = "refused-by-lambda"  # in a prompt: the Lambda service refuses its process step
# The reaper's schedule, played by the soak (moto fires none): the template's shortest ReaperRateMinutes.
# A slice's backlog can hold a queue run past its 5-minute limit (the workflow's TimeoutSeconds): its
# requests stay ACCEPTED until the reaper ends them (RequestAbandoned), as on AWS.
REAPER_EVERY_S = 120


def soak_slices(n: int, slices: int = 10) -> list[list[Sent]]:
    """n requests in `slices` slices: about 2 % sent twice, 1 % oversized, 0.5 % not JSON, 0.5 % JSON
    but not an object, 1 % with a nested request_id in their caller tags, 0.5 % marked for the Lambda
    service to refuse, the rest plain; and each slice after the first also sends again 1 % of the
    previous slice's plain requests (they have finished by then)."""
    chooser, messages = random.Random(0), []
    for i in range(n):
        request_id, roll = new_id("soak"), chooser.random()
        if roll < 0.01:
            messages.append(Sent(request_id, request_body(request_id, MODEL, "x" * 205_000), expect_dlq=True))
        elif roll < 0.015:
            messages.append(Sent("", f"soak {i} {request_id}: not JSON", expect_dlq=True))
        elif roll < 0.02:
            messages.append(Sent("", json.dumps([request_id, i]), expect_dlq=True))
        elif roll < 0.03:
            inner = new_id("inner")
            caller = {"project": "faults", "cost_centre": "cc-faults", "tags": {"request_id": inner}}
            body = request_body(request_id, MODEL, f"Soak nested {i}", caller=caller)
            messages.append(Sent(request_id, body, must_not_answer=inner))
        elif roll < 0.035:
            messages.append(Sent(request_id, request_body(request_id, MODEL, f"Soak {i} {REFUSED_MARK}")))
        else:
            body = request_body(request_id, MODEL, f"Soak request {i}")
            messages.append(Sent(request_id, body))
            if roll < 0.055:
                messages.append(Sent(request_id, body))
    per_slice = -(-n // slices)
    # (cut by request: a duplicate's two copies stay together)
    starts = [j for j, m in enumerate(messages) if j == 0 or m.request_id != messages[j - 1].request_id]
    cuts = [starts[k] for k in range(0, len(starts), per_slice)] + [len(messages)]
    out = [messages[a:b] for a, b in itertools.pairwise(cuts)]
    for k in range(1, len(out)):
        valid = {m.request_id: m for m in out[k - 1] if not m.expect_dlq and REFUSED_MARK not in m.body}
        earlier = list(valid.values())
        late = chooser.sample(earlier, max(round(len(earlier) / 100), 1)) if earlier else []
        out[k] += [Sent(m.request_id, m.body) for m in late]
    return out


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


def arm_slice_faults(
    emulator: EmulatorControl, control: ControlClient, stack: LocalStackClient, batch: list[Sent]
) -> int:
    """The slice's faults: on the model, throttling (10 %), 5xx (5 % + 2 %) and Bedrock's own timeouts
    (2 %), and a stream stalled mid-answer per 500 messages; per 200 messages one process runtime killed
    after Bedrock answered and one record runtime killed after its lineage write; and the process step of
    every marked request refused by the Lambda service through all its retries. Returns the stalls armed."""
    emulator.inject_fault("ThrottlingException", model=MODEL, rate=0.1)
    emulator.inject_fault("ServiceUnavailableException", model=MODEL, rate=0.05)
    emulator.inject_fault("InternalServerException", model=MODEL, rate=0.02)
    emulator.inject_fault("ModelTimeoutException", model=MODEL, rate=0.02)
    stalls = max(len(batch) // 500, 1)
    emulator.inject_fault("StreamStall", model=MODEL, count=stalls, stage="stall", stall_seconds=120)
    kills = max(len(batch) // 200, 1)
    control.kill_runtime("ProcessRequestFunction", kills, after="return")
    lineage_table = stack.outputs["LineageTableName"]
    control.kill_runtime("RecordOutcomeFunction", kills, after="UpdateItem", body_contains=lineage_table)
    refused = sum(REFUSED_MARK in m.body for m in batch)
    if refused:
        # (each refused request's step is tried up to six times: armed well past that)
        control.refuse_invoke("ProcessRequestFunction", 10 * refused, body_contains=REFUSED_MARK)
    return stalls


def slice_faults_fired(emulator: EmulatorControl, control: ControlClient, stalls: int) -> dict[str, int]:
    """How often each of the slice's faults fired (a stall rule is gone once all its stalls fired)."""
    armed, rules = control.faults(), emulator.faults()
    fired = {f"Bedrock {fault.error}": fault.fired for fault in rules if fault.stage != "stall"}
    fired["Bedrock stream stalled"] = stalls - sum(f.remaining or 0 for f in rules if f.stage == "stall")
    fired["process runtime killed after return"] = sum(
        kill["fired"] for kill in armed["kills"] if kill["after"] == "return"
    )
    fired["record runtime killed after UpdateItem"] = sum(
        kill["fired"] for kill in armed["kills"] if kill["after"] == "UpdateItem"
    )
    fired["process refused"] = sum(refusal["fired"] for refusal in armed["refusals"])
    return fired


def test_soak_every_request_is_accounted_for_and_memory_stays_flat(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN n requests with mixed faults, sent in ten slices, the memory sampled after each has settled
    n = int(os.environ.get("XPI_SOAK_N", "10000"))
    harness = Harness(local_stack, results, emulator)
    control = ControlClient(local_stack.state["control"])
    slices = soak_slices(n)
    messages = [m for batch in slices for m in batch]
    samples = [sample(local_stack, control, 0)]
    types_before = control.memory(with_types=True)["types"]
    done: set[str] = set()
    fired: dict[str, int] = {}
    unsettled: list[int] = []
    trace = os.environ.get("XPI_SOAK_TRACE") == "1"  # tracemalloc past the warm-up, for finding a leak
    began = time.monotonic()
    try:
        # WHEN every slice is sent under its faults and settled
        for number, batch in enumerate(slices, 1):
            sent_at = time.monotonic()
            stalls = arm_slice_faults(emulator, control, local_stack, batch)
            harness.send(batch)
            settled = harness.settle(
                batch, timeout_s=max(900, len(batch) * 1.0), interval_s=2, reap_every_s=REAPER_EVERY_S
            )
            took = time.monotonic() - sent_at
            for name, count in slice_faults_fired(emulator, control, stalls).items():
                fired[name] = fired.get(name, 0) + count
            emulator.clear_faults()
            control.clear()
            unsettled += [] if settled else [number]
            new = {m.request_id for m in batch} - done
            done |= new
            samples.append(sample(local_stack, control, len(done)))
            print(
                f"soak: slice {number}: {len(batch)} messages, {len(new)} new requests in {took:.0f} s "
                f"({len(new) / took:.2f} requests/s), {'settled' if settled else 'NOT settled'}; "
                f"faults fired so far: {fired}",
                flush=True,
            )
            print(f"soak: {row(samples[-1])}", flush=True)
            print(f"soak:   the stack's own parts MiB: {glue_row(samples[-1])}", flush=True)
            if trace:
                print_allocation_growth(control, first=len(samples) == 2)
    finally:
        emulator.clear_faults()
        control.clear()
    wall_s = time.monotonic() - began
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
    abandoned = sum(
        e["detail"].get("error", {}).get("code") == "RequestAbandoned"
        for request_id in done
        for e in results.events_for(request_id)
    )
    print(
        f"wall time {wall_s:.0f} s for {len(done)} requests ({len(done) / wall_s:.2f} requests/s); "
        f"faults fired: {fired}; the reaper ran {harness.reaper_runs} times, "
        f"{abandoned} requests ended by it (RequestAbandoned: their queue run ended at its time limit)"
    )
    counters = emulator.counters()
    calls = [counters.tag(request_id).calls for request_id in done]
    answers = [counters.tag(request_id).successes for request_id in done]
    print(
        f"Bedrock per request: {sum(calls) / len(done):.2f} calls (max {max(calls)}), "
        f"{sum(answers) / len(done):.3f} answers (max {max(answers)})"
    )
    assert tally.problems() == []
    # (every marked request answered by the workflow itself, never reaching Bedrock)
    refused = {m.request_id for m in messages if REFUSED_MARK in m.body}
    not_refused_as_such = sorted(
        request_id
        for request_id in refused
        if [e["detail"].get("error", {}).get("code") for e in results.events_for(request_id)]
        != ["RequestNotProcessed"]
        or counters.tag(request_id).calls
    )
    assert not_refused_as_such == [], not_refused_as_such
    assert all(count >= 1 for count in fired.values()), fired  # every fault was exercised
    assert unsettled == [], f"slices not settled within their bound: {unsettled}"
    assert slopes["stack process without it"] <= FLAT_MIB_PER_1000, slopes
    assert slopes["function runtimes"] <= FLAT_MIB_PER_1000, slopes
