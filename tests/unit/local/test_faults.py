"""The local stack's fault hooks (faults.py): a runtime killed at a chosen point, the AWS API gone."""

import io
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
from xpi_tools.local.faults import ControlClient, LocalControl, LocalFaults, _deep_size

FUNCTION_KEY, OPERATOR_KEY = "ASIAFUNCTIONKEY", "AKIAOPERATOR"
SCOPE = "us-gov-west-1/dynamodb/aws4_request"
LAMBDA_SCOPE = "us-gov-west-1/lambda/aws4_request"
FUNCTION_ARN = "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:"


class Moto:
    """A stand-in for moto's WSGI application: records what it carried out."""

    def __init__(self, status: str = "200 OK") -> None:
        self.status = status
        self.carried_out: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.carried_out.append(environ["wsgi.input"].read())
        start_response(self.status, [("Content-Type", "application/x-amz-json-1.0")])
        return [b"{}"]


def request(
    key: str, operation: str = "UpdateItem", body: bytes = b'{"TableName": "lineage"}'
) -> dict[str, Any]:
    return {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={key}/20260101/{SCOPE}",
        "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{operation}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "REMOTE_PORT": 40123,
        "REQUEST_METHOD": "POST",
    }


def call(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    answered: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.append(status)))
    return answered[0], body


@pytest.fixture
def faults() -> tuple[LocalFaults, list[tuple[str, int]]]:
    killed: list[tuple[str, int]] = []
    hooks = LocalFaults()
    hooks.attach(
        lambda function, port: killed.append((function, port)) or True,
        function_keys={FUNCTION_KEY: "xpi-record"},
        function_names={"RecordOutcomeFunction": "xpi-record"},
    )
    return hooks, killed


def test_nothing_armed_passes_every_request_through(faults: tuple[LocalFaults, list[Any]]) -> None:
    hooks, killed = faults
    moto = Moto()
    assert call(hooks.wrap(moto), request(FUNCTION_KEY))[0] == "200 OK"
    assert len(moto.carried_out) == 1
    assert killed == []


def test_an_outage_answers_the_functions_503_and_not_the_operator(
    faults: tuple[LocalFaults, list[Any]],
) -> None:
    # GIVEN the AWS API gone for a while
    hooks, _ = faults
    moto = Moto()
    front = hooks.wrap(moto)
    hooks.start_outage(60)

    # WHEN a function and the operator call it
    status, body = call(front, request(FUNCTION_KEY))
    operator_status, _ = call(front, request(OPERATOR_KEY))

    # THEN the function gets AWS's 503 (nothing carried out), the operator is served; clear ends it
    assert status.startswith("503")
    assert json.loads(body)["__type"] == "ServiceUnavailable"
    assert operator_status == "200 OK"
    assert len(moto.carried_out) == 1
    assert hooks.describe()["outage_answered"] == {"xpi-record": 1}
    hooks.clear()
    assert call(front, request(FUNCTION_KEY))[0] == "200 OK"


def test_a_whole_region_outage_answers_every_caller_503_but_the_stacks_own_api(
    faults: tuple[LocalFaults, list[Any]],
) -> None:
    # GIVEN the region's AWS API gone for every caller (the two-region failover test's outage)
    hooks, _ = faults
    moto = Moto()
    front = hooks.wrap(moto)
    hooks.start_outage(60, whole_region=True)

    # WHEN a function, the operator (a producer) and the stack's own moto API call it
    function_status, _ = call(front, request(FUNCTION_KEY))
    operator_status, _ = call(front, request(OPERATOR_KEY))
    own_status, _ = call(front, {**request(OPERATOR_KEY), "PATH_INFO": "/moto-api/config"})

    # THEN the function and the producer get 503 with nothing carried out; moto's own API is served
    assert (function_status[:3], operator_status[:3], own_status) == ("503", "503", "200 OK")
    assert len(moto.carried_out) == 1
    assert hooks.describe()["outage_answered"] == {"xpi-record": 1, "(any other caller)": 1}
    hooks.clear()
    assert call(front, request(OPERATOR_KEY))[0] == "200 OK"


def test_a_kill_after_a_call_carries_it_out_then_kills_the_caller_count_times(
    faults: tuple[LocalFaults, list[Any]],
) -> None:
    # GIVEN one kill of the record function after its UpdateItem on the lineage table
    hooks, killed = faults
    moto = Moto()
    front = hooks.wrap(moto)
    hooks.arm_kill("RecordOutcomeFunction", 1, after="UpdateItem", body_contains="lineage")

    # WHEN it calls GetItem, UpdateItem elsewhere, then UpdateItem on lineage twice
    call(front, request(FUNCTION_KEY, "GetItem"))
    call(front, request(FUNCTION_KEY, body=b'{"TableName": "other"}'))
    status, _ = call(front, request(FUNCTION_KEY))
    call(front, request(FUNCTION_KEY))

    # THEN every request was carried out, and only the first matching one's caller killed
    assert status == "200 OK"
    assert len(moto.carried_out) == 4
    assert moto.carried_out[2] == b'{"TableName": "lineage"}'  # moto read the body the front read
    assert killed == [("xpi-record", 40123)]
    assert hooks.describe()["kills"][0]["fired"] == 1


def test_a_call_that_failed_does_not_spend_a_kill(faults: tuple[LocalFaults, list[Any]]) -> None:
    hooks, killed = faults
    front = hooks.wrap(Moto("400 Bad Request"))  # e.g. a conditional write that did not happen
    kill = hooks.arm_kill("xpi-record", 1, after="UpdateItem")
    call(front, request(FUNCTION_KEY))
    assert killed == []
    assert kill.remaining == 1


def test_kills_after_return_are_taken_once_each(faults: tuple[LocalFaults, list[Any]]) -> None:
    hooks, _ = faults
    hooks.arm_kill("RecordOutcomeFunction", 2)
    taken = [hooks.take_return_kill("xpi-record") for _ in range(3)]
    assert taken == [True, True, False]
    assert not hooks.take_return_kill("xpi-other")


def test_an_unknown_function_or_count_is_refused(faults: tuple[LocalFaults, list[Any]]) -> None:
    hooks, _ = faults
    with pytest.raises(ValueError, match="no function"):
        hooks.arm_kill("NoSuchFunction", 1)
    with pytest.raises(ValueError, match="count"):
        hooks.arm_kill("xpi-record", 0)


def invocation(function: str, payload: bytes) -> dict[str, Any]:
    """Step Functions' (or anyone's) Invoke of `function` (its ARN, as the interpreter names it)."""
    return {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={OPERATOR_KEY}/20260101/{LAMBDA_SCOPE}",
        "PATH_INFO": f"/2015-03-31/functions/{FUNCTION_ARN}{function}/invocations",
        "CONTENT_LENGTH": str(len(payload)),
        "wsgi.input": io.BytesIO(payload),
        "REQUEST_METHOD": "POST",
    }


def test_a_refusal_answers_the_matching_invocations_as_a_throttled_function(
    faults: tuple[LocalFaults, list[Any]],
) -> None:
    # GIVEN the record function refused twice, for payloads naming one request
    hooks, _ = faults
    moto = Moto()
    front = hooks.wrap(moto)
    hooks.arm_refusal("RecordOutcomeFunction", 2, body_contains="req-refused")

    # WHEN it is invoked for another request, then three times for that one, and another function once
    other = call(front, invocation("xpi-record", b'{"request_id": "req-other"}'))
    refused = [call(front, invocation("xpi-record", b'{"request_id": "req-refused"}')) for _ in range(3)]
    elsewhere = call(front, invocation("xpi-process", b'{"request_id": "req-refused"}'))

    # THEN the first two matching invocations get Lambda's 429, and never reach moto (no runtime runs)
    assert other[0] == "200 OK" and elsewhere[0] == "200 OK"
    assert [status for status, _ in refused] == ["429 Too Many Requests", "429 Too Many Requests", "200 OK"]
    assert json.loads(refused[0][1])["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert moto.carried_out == [
        b'{"request_id": "req-other"}',
        b'{"request_id": "req-refused"}',
        b'{"request_id": "req-refused"}',
    ]
    assert hooks.describe()["refusals"][0]["fired"] == 2
    with pytest.raises(ValueError, match="no function"):
        hooks.arm_refusal("NoSuchFunction", 1)


def test_the_control_endpoint_arms_reports_and_clears(faults: tuple[LocalFaults, list[Any]]) -> None:
    hooks, _ = faults
    control = LocalControl(hooks)
    client = ControlClient(control.start())
    try:
        client.kill_runtime("RecordOutcomeFunction", 2, after="return")
        client.aws_outage(5)
        client.refuse_invoke("RecordOutcomeFunction", 3, body_contains="req-1")
        armed = client.faults()
        assert armed["kills"][0]["function"] == "xpi-record"
        assert armed["refusals"][0] == {
            "function": "xpi-record",
            "remaining": 3,
            "body_contains": "req-1",
            "fired": 0,
        }
        assert armed["outage_left_s"] > 0
        assert client.clear() == {
            "kills": [],
            "refusals": [],
            "outage_left_s": 0.0,
            "outage_whole_region": False,
            "outage_answered": {},
        }
        assert client.memory()["rss_bytes"] > 0
    finally:
        control.stop()


KEPT: list[bytes] = []


def keep_allocating(n: int) -> None:
    KEPT.extend(bytes(1000) + str(i).encode() for i in range(n))


def test_the_memory_report_accounts_the_allocators_and_the_allocation_trace_finds_what_grew(
    faults: tuple[LocalFaults, list[Any]],
) -> None:
    hooks, _ = faults
    control = LocalControl(hooks)
    client = ControlClient(control.start())
    try:
        # GIVEN the report's accounting of the process beside the retained state
        report = client.memory()
        assert report["pymalloc_bytes"]["arenas"] >= report["pymalloc_bytes"]["in_use"] > 0
        assert report["malloc_bytes"]["in_use"] > 0
        assert set(report["rss_by_mapping_bytes"]) == {"heap", "thread_stacks", "anonymous", "files"}
        assert report["os_threads"] >= report["threads"] >= 1
        # (a thread's stack is the 8 MiB mapping above its guard page: this thread's at least)
        assert report["thread_stack_mappings"] >= 1
        assert set(report["step_functions_bytes"]) == {"history", "environment_besides_history"}

        # WHEN allocations are traced from now on, and something keeps 2 MB
        client.start_allocation_trace(frames=4)
        keep_allocating(2000)
        growth = client.allocation_growth()

        # THEN the site that kept it is the one that grew most
        top = growth["sites"][0]
        assert top["size_diff_bytes"] > 1_900_000
        assert any("keep_allocating" in frame or "test_faults.py" in frame for frame in top["traceback"])
        # AND the next call reports growth since this one
        assert client.allocation_growth()["grown_bytes"] < 1_000_000
    finally:
        KEPT.clear()
        control.stop()
        tracemalloc.stop()


class Kept:
    def __init__(self, n: int) -> None:
        self.name, self.count, self.parent, self.tags, self.extra = f"item-{n:06d}", n, None, None, None


def test_the_retained_state_walk_counts_what_instances_hold_without_growing_them() -> None:
    # GIVEN ten thousand plain instances (their attributes inline, no __dict__ yet), and what they
    # really take as the allocator sees it
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [Kept(n) for n in range(10_000)]
        allocated = tracemalloc.get_traced_memory()[0] - before

        # WHEN the walk measures them
        before_walk = tracemalloc.get_traced_memory()[0]
        size = _deep_size([kept])
        grown = tracemalloc.get_traced_memory()[0] - before_walk
    finally:
        tracemalloc.stop()

    # THEN it counts at least nine tenths of it (vars() and sys.getsizeof alone saw about half)
    assert size >= 0.9 * allocated, (size, allocated)
    # AND measuring gave none of them a __dict__ (vars() did: about 64 bytes each, kept)
    assert grown < 100_000, grown


def test_the_malloc_arenas_can_be_capped_in_this_process() -> None:
    # (glibc answers 1 when it took the setting; the stack calls it before any thread starts)
    from xpi_tools.local.faults import limit_malloc_arenas

    assert limit_malloc_arenas(8) is True


PROBE = """
import ctypes, sys
from xpi_tools.local.faults import _MallInfo2, keep_large_allocations_mapped
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.mallinfo2.restype = _MallInfo2
if sys.argv[1] == "fixed":
    keep_large_allocations_mapped()
libc.free(libc.malloc(4 * 2**20))  # a large buffer freed (the deploy's code zips)
before = libc.mallinfo2().hblks
kept = libc.malloc(200 * 1024)  # then a 200 KiB one (a request body)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.parametrize(("mode", "mapped"), [("fixed", 1), ("default", 0)])
def test_a_large_allocation_keeps_pages_of_its_own_after_a_larger_one_was_freed(
    mode: str, mapped: int
) -> None:
    # GIVEN a process that freed a 4 MiB buffer (glibc, by default, then raises its mmap threshold to it)
    # WHEN it allocates 200 KiB, with the stack's fixed threshold and without
    run = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    # THEN with it the block is mapped on its own (its pages go back to the kernel when freed), where
    # glibc's default carves it from the heap, between long-lived allocations
    assert int(run.stdout) == mapped, run.stderr


def test_the_retained_state_walk_counts_the_blocks_the_allocator_hands_out() -> None:
    # GIVEN twenty thousand distinct 50-byte strings (pymalloc hands each a 64-byte block)
    from xpi_tools.local.faults import pymalloc_bytes

    before = pymalloc_bytes()["in_use"]
    kept = [f"{n:09d}" for n in range(20_000)]
    held = pymalloc_bytes()["in_use"] - before
    assert {sys.getsizeof(text) for text in kept} == {50}

    # WHEN the walk measures them
    size = _deep_size(kept)

    # THEN it counts each one's block, as the allocator's own account does
    assert size == 20_000 * 64
    assert 0.95 * size <= held <= 1.05 * size, (size, held)
