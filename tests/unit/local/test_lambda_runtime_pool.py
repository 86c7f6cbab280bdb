"""LambdaRuntimePool: real RIE + awslambdaric processes running the fixture handlers."""

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from xpi_tools.local.lambda_runtime import (
    FunctionSpec,
    InvokeResult,
    LambdaRuntimeError,
    LambdaRuntimePool,
    RequestEntityTooLargeError,
    UnknownFunctionError,
)

from tests.helpers.waiting import wait_until

MakePool = Callable[..., LambdaRuntimePool]
SpecFor = Callable[..., FunctionSpec]


def rie_processes() -> list[int]:
    """The RIE processes this test process started (they are its direct children)."""
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            children = Path(f"/proc/self/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"aws-lambda-rie" in command:
                pids.append(int(child))
    return pids


def process_tree(pid: int) -> list[int]:
    tree = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
            tree.extend(process_tree(int(child)))
    return tree


def listening_ports(pid: int) -> list[int]:
    """The loopback ports an RIE was told to listen on (from its command line)."""
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return [int(arg.rsplit(b":", 1)[1]) for arg in arguments if arg.startswith(b"127.0.0.1:")]


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no memory and no port)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def exited_for_its_parent(pid: int) -> bool:
    """Dead as its parent's waitpid sees it: gone, or a zombie whose threads have all exited (a killed
    thread-group leader shows "Z" while its other threads still exit, and waitpid waits for them)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return not is_running(pid) and len(threads) <= 1


def answer(result: InvokeResult) -> Any:
    return json.loads(result.payload)


def invoke_json(pool: LambdaRuntimePool, name: str, event: object) -> InvokeResult:
    return pool.invoke(name, json.dumps(event).encode())


def test_echo_runs_in_a_clean_lambda_environment(
    make_pool: MakePool, spec_for: SpecFor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a variable in the parent's environment that Lambda would never see
    monkeypatch.setenv("XPI_PARENT_SECRET", "leaked")
    pool = make_pool()
    spec = spec_for("echo-fn", "echo", memory_mb=192, timeout_s=7)
    pool.register(spec)

    # WHEN
    result = invoke_json(pool, "echo-fn", {"hello": "world"})

    # THEN
    assert result.function_error is None
    body = answer(result)
    assert body["event"] == {"hello": "world"}
    assert body["function_name"] == "echo-fn"
    assert body["memory_limit_in_mb"] == "192"
    assert 0 < body["remaining_ms"] <= 7000
    assert body["cwd"] == str(spec.code_dir)
    env = body["environment"]
    assert "XPI_PARENT_SECRET" not in env
    assert env["XPI_STAGE"] == "unit"  # the template environment
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"  # aws_env
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-gov-west-1"
    assert env["PYTHONPATH"] == str(spec.code_dir)
    assert env["_HANDLER"] == "echo.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo-fn"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "7"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    # /var/task is read-only on Lambda: the runtime caches no bytecode beside the code
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not list(spec.code_dir.glob("__pycache__/echo.*.pyc"))
    assert result.max_memory_mb is not None
    assert 5 < result.max_memory_mb < 192
    assert result.duration_ms > 0
    assert "echo invoked with {'hello': 'world'}" in (tmp_path / "logs" / "echo-fn-1.log").read_text()


def test_a_raising_handler_is_an_unhandled_error_and_the_process_is_kept(
    make_pool: MakePool, spec_for: SpecFor
) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("raising-fn", "raising"))

    first = invoke_json(pool, "raising-fn", {"n": 1})
    second = invoke_json(pool, "raising-fn", {"n": 2})

    assert first.function_error == second.function_error == "Unhandled"
    assert answer(first)["errorType"] == "ConsumerError"
    assert "cannot handle {'n': 1}" in answer(first)["errorMessage"]
    assert len(rie_processes()) == 1  # the same execution environment answered both


def test_a_handler_past_its_timeout_is_a_sandbox_timeout(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("sleeper-fn", "sleeper", timeout_s=1))

    timed_out = invoke_json(pool, "sleeper-fn", {"seconds": 5})
    afterwards = invoke_json(pool, "sleeper-fn", {"seconds": 0})

    assert timed_out.function_error == "Unhandled"
    assert answer(timed_out)["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in answer(timed_out)["errorMessage"]
    assert 900 < timed_out.duration_ms < 3000
    assert afterwards.function_error is None  # the RIE starts a fresh runtime, as Lambda does
    assert answer(afterwards) == {"slept": 0}


def test_a_handler_past_its_memory_size_is_killed(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("hog-fn", "memory_hog", memory_mb=128))

    killed = invoke_json(pool, "hog-fn", {"megabytes": 256, "hold_s": 5})
    modest = invoke_json(pool, "hog-fn", {"megabytes": 8})

    assert killed.function_error == "Unhandled"
    assert answer(killed)["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in answer(killed)["errorMessage"]
    assert killed.duration_ms < 3000  # killed, not waited out
    assert killed.max_memory_mb is not None
    assert killed.max_memory_mb > 128
    assert modest.function_error is None
    assert answer(modest) == {"held_megabytes": 8}


def test_peak_memory_is_reported(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("hog-fn", "memory_hog", memory_mb=512))

    result = invoke_json(pool, "hog-fn", {"megabytes": 100})

    assert result.function_error is None
    assert result.max_memory_mb is not None
    assert 100 < result.max_memory_mb < 512


def test_a_runtime_that_exits_is_reported_and_restarted(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("crashing-fn", "crashing"))

    result = invoke_json(pool, "crashing-fn", {})

    assert result.function_error == "Unhandled"
    assert answer(result)["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in answer(result)["errorMessage"]


def test_an_rie_killed_mid_invoke_gives_a_runtime_error_and_is_replaced(
    make_pool: MakePool, spec_for: SpecFor
) -> None:
    # GIVEN an invoke in progress
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("sleeper-fn", "sleeper"))
    invoke_json(pool, "sleeper-fn", {"seconds": 0})
    (first_rie,) = rie_processes()
    threading.Timer(0.3, os.kill, args=(first_rie, 9)).start()

    # WHEN its RIE dies under it
    result = invoke_json(pool, "sleeper-fn", {"seconds": 5})

    # THEN the caller gets a Lambda-like runtime error quickly, and the next call a fresh process
    assert result.function_error == "Unhandled"
    assert answer(result)["errorType"] == "Runtime.ExitError"
    assert result.duration_ms < 3000
    again = invoke_json(pool, "sleeper-fn", {"seconds": 0})
    assert again.function_error is None
    assert rie_processes() != [first_rie]
    assert len(rie_processes()) == 1


def test_an_rie_that_died_while_idle_is_replaced(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("echo-fn", "echo"))
    invoke_json(pool, "echo-fn", {})
    (first_rie,) = rie_processes()
    os.kill(first_rie, 9)
    wait_until(lambda: exited_for_its_parent(first_rie), timeout_s=5, what="the killed RIE to exit")

    result = invoke_json(pool, "echo-fn", {})

    assert result.function_error is None
    assert first_rie not in rie_processes()


def test_concurrent_invokes_never_share_a_process(make_pool: MakePool, spec_for: SpecFor) -> None:
    # GIVEN two processes at most, and six callers at once
    pool = make_pool(max_per_function=2)
    pool.register(spec_for("echo-fn", "echo"))

    with ThreadPoolExecutor(max_workers=6) as callers:
        results = list(
            callers.map(lambda n: invoke_json(pool, "echo-fn", {"n": n, "sleep_s": 0.3}), range(6))
        )

    # THEN every call succeeded, on at most two runtimes, and no runtime ran two calls at once
    assert [r.function_error for r in results] == [None] * 6
    answers = [answer(r) for r in results]
    assert sorted(a["event"]["n"] for a in answers) == list(range(6))
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for a in answers:
        by_pid.setdefault(a["pid"], []).append((a["started"], a["ended"]))
    assert len(by_pid) <= 2
    for spans in by_pid.values():
        spans.sort()
        for (_, ended), (next_started, _) in itertools.pairwise(spans):
            assert ended <= next_started
    assert len(rie_processes()) <= 2


def test_register_again_retires_the_old_processes(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool()
    pool.register(spec_for("echo-fn", "echo", environment={"XPI_STAGE": "one"}))
    assert answer(invoke_json(pool, "echo-fn", {}))["environment"]["XPI_STAGE"] == "one"
    (old_rie,) = rie_processes()

    pool.register(spec_for("echo-fn", "echo", environment={"XPI_STAGE": "two"}))

    assert not is_running(old_rie)
    assert answer(invoke_json(pool, "echo-fn", {}))["environment"]["XPI_STAGE"] == "two"


def test_close_leaves_no_process_and_no_port(make_pool: MakePool, spec_for: SpecFor, tmp_path: Path) -> None:
    # GIVEN warm processes of two functions, one of them mid-invoke
    pool = make_pool()
    pool.register(spec_for("echo-fn", "echo"))
    pool.register(spec_for("sleeper-fn", "sleeper"))
    invoke_json(pool, "echo-fn", {})
    invoke_json(pool, "sleeper-fn", {"seconds": 0})
    in_flight = ThreadPoolExecutor(max_workers=1)
    started = tmp_path / "sleeper-started"
    pending = in_flight.submit(invoke_json, pool, "sleeper-fn", {"seconds": 5, "started_file": str(started)})
    wait_until(started.exists, timeout_s=5, what="the sleeper's invoke to be under way")
    rie_pids = rie_processes()
    assert len(rie_pids) == 2
    everything = [pid for rie in rie_pids for pid in process_tree(rie)]
    ports = [port for rie in rie_pids for port in listening_ports(rie)]
    assert len(everything) == 4  # each RIE with its Python runtime
    assert len(ports) == 4

    # WHEN
    started = time.monotonic()
    pool.close()
    pool.close()  # idempotent

    # THEN
    assert time.monotonic() - started < 2
    assert [pid for pid in everything if is_running(pid)] == []
    for port in ports:
        with socket.socket() as probe:
            # as any server binds (Go's listeners too): a killed peer's TIME_WAIT is no obstacle
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    assert pending.result(timeout=2).function_error == "Unhandled"
    in_flight.shutdown()
    with pytest.raises(LambdaRuntimeError, match="closed"):
        invoke_json(pool, "echo-fn", {})


def test_unknown_function(make_pool: MakePool) -> None:
    with pytest.raises(UnknownFunctionError):
        make_pool().invoke("nobody", b"{}")


def test_a_payload_over_lambdas_limit_is_refused(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool()
    pool.register(spec_for("echo-fn", "echo"))

    with pytest.raises(RequestEntityTooLargeError):
        invoke_json(pool, "echo-fn", {"x": "a" * (6 * 1024 * 1024)})
    assert rie_processes() == []  # refused before any process was started


def test_a_missing_handler_module_is_an_init_error(make_pool: MakePool, spec_for: SpecFor) -> None:
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("missing-fn", "no_such_module"))

    result = invoke_json(pool, "missing-fn", {})

    assert result.function_error == "Unhandled"
    assert answer(result)["errorType"] == "Runtime.ImportModuleError"


def test_an_rie_that_never_listens_fails_clearly(
    make_pool: MakePool, spec_for: SpecFor, tmp_path: Path
) -> None:
    fake_rie_dir = tmp_path / "rapid"
    fake_rie_dir.mkdir()
    fake = fake_rie_dir / "aws-lambda-rie-x86_64"
    fake.write_text("#!/bin/sh\necho 'no luck' >&2\nexit 1\n")
    fake.chmod(0o755)
    pool = make_pool(rie_dir=fake_rie_dir)
    pool.register(spec_for("broken-fn", "echo"))

    with pytest.raises(LambdaRuntimeError, match=r"broken-fn.*exited with code 1.*broken-fn-\d\.log"):
        pool.invoke("broken-fn", b"{}")


def test_relative_paths_are_taken_from_the_callers_directory(
    make_pool: MakePool, spec_for: SpecFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_for("echo-fn", "echo")
    monkeypatch.chdir(spec.code_dir.parent)
    pool = make_pool()
    pool.register(spec_for("echo-fn", "echo", code_dir=Path(spec.code_dir.name)))

    result = invoke_json(pool, "echo-fn", {})

    assert result.function_error is None
    assert answer(result)["environment"]["PYTHONPATH"] == str(spec.code_dir)


def test_a_runtime_killed_after_its_handler_returned_answers_runtime_exit_error(
    make_pool: MakePool, spec_for: SpecFor
) -> None:
    # GIVEN a pool whose fault hook kills the next answer of the function
    kills: list[str] = []
    pool = make_pool(
        max_per_function=1, kill_after_return=lambda name: name in kills and not kills.remove(name)
    )
    pool.register(spec_for("echo-fn", "echo"))
    invoke_json(pool, "echo-fn", {})
    (first_rie,) = rie_processes()
    kills.append("echo-fn")

    # WHEN the function is invoked
    result = invoke_json(pool, "echo-fn", {"x": 1})

    # THEN the answer is lost to a killed runtime, as Lambda reports it, and the next invoke gets a fresh one
    assert result.function_error == "Unhandled"
    assert answer(result)["errorType"] == "Runtime.ExitError"
    assert "signal: killed" in answer(result)["errorMessage"]
    again = invoke_json(pool, "echo-fn", {})
    assert again.function_error is None
    assert rie_processes() != [first_rie]


def test_kill_caller_kills_the_runtime_that_holds_the_connection(
    make_pool: MakePool, spec_for: SpecFor
) -> None:
    # GIVEN a function waiting for the answer to a request it made to a server here
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("caller-fn", "caller"))
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        port = server.getsockname()[1]
        outcome: dict[str, InvokeResult] = {}
        invoking = threading.Thread(
            target=lambda: outcome.setdefault("result", invoke_json(pool, "caller-fn", {"port": port}))
        )
        invoking.start()
        connection, (_, client_port) = server.accept()
        with connection:
            connection.recv(100)

            # WHEN the pool is asked to kill the caller on that connection (and on a port nobody holds)
            assert not pool.kill_caller("caller-fn", _free_port_number())
            killed = pool.kill_caller("caller-fn", client_port)
            invoking.join(timeout=60)

    # THEN that runtime died mid-invoke and the invoke answers Runtime.ExitError
    assert killed
    assert outcome["result"].function_error == "Unhandled"
    assert answer(outcome["result"])["errorType"] == "Runtime.ExitError"


def _free_port_number() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
