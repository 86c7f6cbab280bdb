"""A pool of real Lambda runtime processes, without containers.

Each process is the AWS Lambda Runtime Interface Emulator (the RIE, shipped in the aws-sam-cli wheel)
running ``python -m awslambdaric <handler>`` in the function's built code folder, with a clean
environment made of the template environment and the Lambda-reserved variables. The pool behaves like
Lambda's execution environments: one invocation per process at a time, a bounded number of processes
per function started lazily, the timeout enforced (by the RIE), the memory size enforced (by a
watchdog that kills the runtime when its resident memory exceeds it), a crashed process replaced.

Linux only: memory accounting and clean-up read ``/proc``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import importlib.util
import json
import logging
import os
import platform
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FunctionSpec",
    "InvokeResult",
    "LambdaRuntimeError",
    "LambdaRuntimePool",
    "RequestEntityTooLargeError",
    "UnknownFunctionError",
    "default_rie_dir",
    "host_architecture",
]

_LOG = logging.getLogger(__name__)

_INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_ARCHITECTURES = frozenset({"x86_64", "arm64"})
# How long a fresh RIE may take to listen on its port. It listens within milliseconds; the runtime
# itself is initialised by the RIE on the first invoke (Lambda's on-demand INIT phase).
_READY_TIMEOUT_S = 10.0
# Lambda gives the INIT phase its own 10 s, outside the function timeout; the first invoke of a
# process includes it. The client-side socket timeout only guards against an RIE that never answers.
_INIT_ALLOWANCE_S = 10.0
_ANSWER_MARGIN_S = 5.0
_START_ATTEMPTS = 3  # a free port can be taken between picking it and the RIE binding it
_SAMPLE_INTERVAL_S = 0.05
_IDLE_SAMPLE_EVERY = 20  # idle processes are sampled once a second, busy ones every tick
_KILL_WAIT_S = 5.0
_TIMEOUT_PREFIX = b"Task timed out after"
# Lambda's synchronous request payload limit; the RIE would silently cut a longer body.
MAX_REQUEST_BYTES = 6 * 1024 * 1024


class LambdaRuntimeError(RuntimeError):
    """A runtime process could not be started, or the pool is closed."""


class UnknownFunctionError(LookupError):
    """No function of that name is registered with the pool."""


class RequestEntityTooLargeError(ValueError):
    """The payload is over Lambda's 6 MB synchronous limit (Lambda's RequestEntityTooLargeException)."""


@dataclass(frozen=True)
class FunctionSpec:
    """One deployed function, as the pool runs it."""

    name: str  # the deployed function name (what moto knows it as)
    handler: str  # e.g. "xpi.handlers.consume.handler"
    code_dir: Path  # the built code folder (Lambda's /var/task), e.g. .aws-sam/build/ConsumeFunction
    environment: Mapping[str, str]  # the template environment, already resolved
    memory_mb: int
    timeout_s: int
    architecture: str = "x86_64"

    def __post_init__(self) -> None:
        if self.architecture not in _ARCHITECTURES:
            raise ValueError(f"{self.name}: architecture must be one of {sorted(_ARCHITECTURES)}")
        if self.memory_mb <= 0 or self.timeout_s <= 0:
            raise ValueError(f"{self.name}: memory_mb and timeout_s must be positive")


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke API would answer: the payload and X-Amz-Function-Error."""

    payload: bytes
    function_error: str | None  # "Unhandled" when the handler raised, timed out, or its runtime died
    duration_ms: float
    max_memory_mb: float | None  # peak resident memory of the runtime process tree, when measurable


def default_rie_dir() -> Path:
    """The folder of the RIE binaries inside the installed aws-sam-cli (without importing samcli)."""
    spec = importlib.util.find_spec("samcli")
    if spec is None or not spec.submodule_search_locations:
        raise LambdaRuntimeError("aws-sam-cli is not installed; it ships the Lambda RIE binaries")
    return Path(next(iter(spec.submodule_search_locations))) / "local" / "rapid"


def host_architecture() -> str:
    """The Lambda architecture name of this machine."""
    machine = platform.machine().lower()
    return "arm64" if machine in {"aarch64", "arm64"} else "x86_64"


# --------------------------------------------------------------------------------------------------
# /proc helpers


def _children(pid: int) -> list[int]:
    """Direct children of a process (the RIE is a Go program: any of its threads may have forked)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.extend(int(child) for child in text.split())
    return found


def _descendants(pid: int) -> list[int]:
    result: list[int] = []
    pending = _children(pid)
    while pending:
        child = pending.pop()
        if child not in result:
            result.append(child)
            pending.extend(_children(child))
    return result


def _status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _session_members(session_id: int) -> list[int]:
    """Every process of a session: the RIE and whatever it started, even after the RIE has died.

    The RIE puts its runtime in a process group of its own, so killing the RIE's group is not enough;
    the session (made by start_new_session) holds them all, and Linux does not reuse a process id
    while it still names a live session.
    """
    members: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[3] == str(session_id):
            members.append(int(entry))
    return members


def _socket_inode(local_port: int) -> int | None:
    """The inode of this machine's IPv4 TCP socket bound to 127.0.0.1:`local_port`, from /proc/net/tcp."""
    wanted = f"0100007F:{local_port:04X}"
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            next(table)
            for line in table:
                fields = line.split()
                if len(fields) > 9 and fields[1] == wanted:
                    return int(fields[9]) or None
    except (OSError, ValueError, StopIteration):
        pass
    return None


def _holds_socket(pid: int, inode: int) -> bool:
    target = f"socket:[{inode}]"
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") == target:
                return True
    return False


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no memory and no port)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _absolute_command(command: Path) -> Path:
    if command.is_absolute():
        return command
    if len(command.parts) == 1 and (found := shutil.which(str(command))):
        return Path(found)
    return command.absolute()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------------
# Spawning


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGKILL the RIE if this process dies without clean-up.

    It covers what atexit cannot (SIGKILL of the parent, a crashed interpreter). Linux sends the
    signal when the *thread* that forked the child ends, which is why every spawn happens on the
    pool's one long-lived spawner thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigkill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)

    return hook


class _Spawner:
    """Runs every Popen on one daemon thread that lives as long as the pool (see _parent_death_hook)."""

    _STOP = None

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]] | None
        ] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="lambda-runtime-spawner", daemon=True)
        self._thread.start()

    def spawn(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        future: Future[subprocess.Popen[bytes]] = Future()
        with self._lock:
            if self._stopped:
                raise LambdaRuntimeError("the Lambda runtime pool is closed")
            self._requests.put((start, future))
        return future.result()

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._requests.put(self._STOP)
        self._thread.join(timeout=2.0)

    def _serve(self) -> None:
        while (request := self._requests.get()) is not self._STOP:
            assert request is not None
            start, future = request
            try:
                future.set_result(start())
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)


# --------------------------------------------------------------------------------------------------
# Processes


class _FunctionState:
    """The processes of one registered spec; replaced as a whole when the spec is registered again."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.processes: list[_Process] = []  # live processes of this spec, busy or idle
        self.idle: list[_Process] = []
        self.starting = 0


class _Process:
    """One RIE process and its runtime, used by one caller at a time."""

    def __init__(
        self,
        state: _FunctionState,
        popen: subprocess.Popen[bytes],
        port: int,
        log_path: Path | None,
    ) -> None:
        self.state = state
        self.popen = popen
        self.port = port
        self.log_path = log_path
        self.connection = http.client.HTTPConnection("127.0.0.1", port)
        # Written by the invoking thread and the watchdog; single assignments, read-mostly.
        self.busy = False
        self.broken = False
        self.peak_rss_kb = 0
        self.killed_for_memory = False
        self._terminated = False
        self._terminate_lock = threading.Lock()

    @property
    def spec(self) -> FunctionSpec:
        return self.state.spec

    def alive(self) -> bool:
        return self.popen.poll() is None

    def where_to_look(self) -> str:
        return f"see {self.log_path}" if self.log_path else "set log_dir to keep the runtime's output"

    def runtime_rss_kb(self) -> int:
        return sum(_status_kb(pid, "VmRSS:") for pid in _descendants(self.popen.pid))

    def runtime_hwm_kb(self) -> int:
        return sum(_status_kb(pid, "VmHWM:") for pid in _descendants(self.popen.pid))

    def kill_runtime(self) -> None:
        """Kill the runtime (not the RIE): the RIE answers "Runtime exited ... signal: killed" and
        starts a fresh runtime on the next invoke, as Lambda does after an out-of-memory kill."""
        for pid in _descendants(self.popen.pid):
            _kill(pid)

    def terminate(self) -> None:
        """Kill the RIE, its runtime and anything they started; idempotent."""
        with self._terminate_lock:
            if self._terminated:
                return
            self._terminated = True
        session = self.popen.pid  # start_new_session: the RIE leads its own session
        doomed = _descendants(session)  # before the RIE dies and its children are re-parented
        _kill(session)
        doomed += [pid for pid in _session_members(session) if pid not in doomed]
        for pid in doomed:
            _kill(pid)
        try:
            self.popen.wait(timeout=_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            _LOG.warning("Lambda runtime %s (pid %s) did not exit after SIGKILL", self.spec.name, session)
        # SIGKILL is delivered asynchronously; the runtime is not our child, so wait by looking.
        deadline = time.monotonic() + _KILL_WAIT_S
        while (left := [pid for pid in doomed if _running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.005)
        if left:
            _LOG.warning("Lambda runtime %s: processes %s survived SIGKILL", self.spec.name, left)
        # Closed last: a caller blocked on this connection wakes up when the RIE dies.
        self.connection.close()


# Pools not yet closed, closed at exit (also after Ctrl-C or a failed test session). Strong
# references: a pool dropped without close() must still not leave processes behind.
_LIVE_POOLS: set[LambdaRuntimePool] = set()
_LIVE_POOLS_LOCK = threading.Lock()


@atexit.register
def _close_live_pools() -> None:
    with _LIVE_POOLS_LOCK:
        pools = list(_LIVE_POOLS)
    for pool in pools:
        with contextlib.suppress(Exception):
            pool.close()


class LambdaRuntimePool:
    """Real Lambda runtime processes for registered functions; ``invoke`` is thread-safe."""

    def __init__(
        self,
        python: Path,
        rie_dir: Path,
        aws_env: Mapping[str, str],
        max_per_function: int = 2,
        log_dir: Path | None = None,
        *,
        kill_after_return: Callable[[str], bool] | None = None,
    ) -> None:
        if max_per_function < 1:
            raise ValueError("max_per_function must be at least 1")
        # Absolute, not resolved: a venv's python is a symlink that must stay one. Every process
        # runs in its own code folder, so a relative path would point elsewhere there.
        self._python = _absolute_command(Path(python))
        self._rie_dir = Path(rie_dir).absolute()
        self._aws_env = dict(aws_env)
        self._max_per_function = max_per_function
        self._log_dir = log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._functions: dict[str, _FunctionState] = {}
        self._processes: set[_Process] = set()  # every live process, of current and retired specs
        self._started_per_function: dict[str, int] = {}  # numbers the log files, never reused
        self._closed = False
        self._stop = threading.Event()
        self._spawner: _Spawner | None = None
        self._watchdog: threading.Thread | None = None
        self._preexec = _parent_death_hook()
        # The local stack's fault hook (faults.py): asked after each answer whether to kill that runtime
        # before the answer is delivered, i.e. once the handler has done all its work.
        self.kill_after_return = kill_after_return
        with _LIVE_POOLS_LOCK:
            _LIVE_POOLS.add(self)

    def __enter__(self) -> LambdaRuntimePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------
    # Public API

    def register(self, spec: FunctionSpec) -> None:
        """Register a function, or replace an older spec of the same name.

        Processes of the old spec are retired: idle ones now, busy ones when their invoke returns.
        Always, even for an equal spec: the code folder may have been rebuilt in place.
        """
        with self._cond:
            if self._closed:
                raise LambdaRuntimeError("the Lambda runtime pool is closed")
            old = self._functions.get(spec.name)
            self._functions[spec.name] = _FunctionState(spec)
            retired = list(old.idle) if old else []
            for process in retired:
                self._processes.discard(process)
            self._cond.notify_all()  # callers waiting on the old spec may start a new process now
        for process in retired:
            process.terminate()

    def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        """Invoke synchronously (RequestResponse); blocks until a process of the function is free."""
        if len(payload) > MAX_REQUEST_BYTES:
            raise RequestEntityTooLargeError(
                f"{function_name}: request payload of {len(payload)} bytes is over {MAX_REQUEST_BYTES}"
            )
        process = self._acquire(function_name)
        try:
            result = self._invoke_on(process, payload)
            if self.kill_after_return is not None and self.kill_after_return(function_name):
                return self._killed_after_return(process, result)
            return result
        finally:
            self._release(process)

    def kill_caller(self, function_name: str, client_port: int, wait_s: float = 2.0) -> bool:
        """Kill the runtime of the busy process of `function_name` that holds the loopback TCP connection
        from `client_port` (the runtime's end of a request it is making), as a crash mid-run would; the
        RIE then answers its invoke with Runtime.ExitError. False when no such process is found within
        `wait_s` (/proc is read again until then: under load a socket or a child can show up late)."""
        deadline = time.monotonic() + wait_s
        while True:
            if self._kill_holder(function_name, client_port):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _kill_holder(self, function_name: str, client_port: int) -> bool:
        inode = _socket_inode(client_port)
        if inode is None:
            return False
        with self._cond:
            state = self._functions.get(function_name)
            candidates = [p for p in self._processes if p.busy and p.spec.name == function_name]
            if state is not None:
                candidates += [p for p in state.processes if p.busy and p not in candidates]
        for process in candidates:
            pids = [process.popen.pid, *_descendants(process.popen.pid)]
            if any(_holds_socket(pid, inode) for pid in pids):
                process.broken = True  # replaced on release, like any runtime that died
                process.kill_runtime()
                return True
        return False

    @staticmethod
    def _killed_after_return(process: _Process, result: InvokeResult) -> InvokeResult:
        """The runtime is killed once its handler has returned and before the answer is delivered: every
        side effect of the invocation happened, and the caller gets what Lambda answers for a runtime
        that died mid-invoke."""
        process.broken = True
        process.kill_runtime()
        return InvokeResult(
            payload=_error_payload(
                "Runtime.ExitError",
                f"RequestId: {uuid.uuid4()} Error: Runtime exited with error: signal: killed",
            ),
            function_error="Unhandled",
            duration_ms=result.duration_ms,
            max_memory_mb=result.max_memory_mb,
        )

    def close(self) -> None:
        """Kill every process and its children and free every port; idempotent."""
        with self._cond:
            already_closed = self._closed
            self._closed = True
            processes = list(self._processes)
            self._processes.clear()
            self._functions.clear()
            self._cond.notify_all()
        self._stop.set()
        for process in processes:
            process.terminate()
        if already_closed:
            return
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2.0)
        if self._spawner is not None:
            self._spawner.stop()
        with _LIVE_POOLS_LOCK:
            _LIVE_POOLS.discard(self)

    # ---------------------------------------------------------------------------------------------
    # Checking processes out and in

    def _acquire(self, function_name: str) -> _Process:
        dead: list[_Process] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise LambdaRuntimeError("the Lambda runtime pool is closed")
                    state = self._functions.get(function_name)
                    if state is None:
                        raise UnknownFunctionError(function_name)
                    while state.idle:
                        process = state.idle.pop()
                        if process.alive():
                            process.busy = True
                            return process
                        _LOG.warning(
                            "Lambda runtime %s (pid %s) died while idle (exit %s); replacing it; %s",
                            function_name,
                            process.popen.pid,
                            process.popen.returncode,
                            process.where_to_look(),
                        )
                        state.processes.remove(process)
                        self._processes.discard(process)
                        dead.append(process)
                    if len(state.processes) + state.starting < self._max_per_function:
                        state.starting += 1
                        number = self._started_per_function.get(function_name, 0) + 1
                        self._started_per_function[function_name] = number
                        break
                    self._cond.wait()
        finally:
            for process in dead:
                process.terminate()

        try:
            process = self._start(state, number)
        except BaseException:
            with self._cond:
                state.starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            state.starting -= 1
            closed = self._closed
            if not closed:
                process.busy = True
                state.processes.append(process)
                self._processes.add(process)
        if closed:
            process.terminate()
            raise LambdaRuntimeError("the Lambda runtime pool is closed")
        return process

    def _release(self, process: _Process) -> None:
        with self._cond:
            process.busy = False
            state = process.state
            keep = (
                not self._closed
                and not process.broken
                and process.alive()
                and self._functions.get(process.spec.name) is state
            )
            if keep:
                state.idle.append(process)
            else:
                if process in state.processes:
                    state.processes.remove(process)
                self._processes.discard(process)
            self._cond.notify_all()
        if not keep:
            process.terminate()

    # ---------------------------------------------------------------------------------------------
    # Starting a process

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        """A clean environment, as Lambda builds it: never the parent's."""
        code_dir = str(spec.code_dir.absolute())
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        env.update(spec.environment)
        env.update(self._aws_env)
        region = self._aws_env.get("AWS_REGION") or self._aws_env.get("AWS_DEFAULT_REGION")
        if region:
            env["AWS_REGION"] = region
            env["AWS_DEFAULT_REGION"] = region
        # Reserved by Lambda: the template cannot override these.
        env.update(
            {
                "PYTHONPATH": code_dir,  # /var/task comes first on Lambda
                "LAMBDA_TASK_ROOT": code_dir,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "TZ": ":UTC",
                "_HANDLER": spec.handler,
                # /var/task is read-only on Lambda: a module the package does not ship precompiled is
                # compiled at every cold start, never cached beside the code as it would be here.
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        return env

    def _start(self, state: _FunctionState, number: int) -> _Process:
        spec = state.spec
        rie = self._rie_dir / f"aws-lambda-rie-{spec.architecture}"
        if not rie.is_file():
            raise LambdaRuntimeError(f"{spec.name}: no Lambda RIE binary at {rie}")
        if not spec.code_dir.is_dir():
            raise LambdaRuntimeError(f"{spec.name}: code folder {spec.code_dir} does not exist")
        log_path = self._log_dir / f"{spec.name}-{number}.log" if self._log_dir else None
        env = self._environment(spec)
        if self._spawner is None:
            with self._cond:
                if self._spawner is None:
                    self._spawner = _Spawner()
        spawner = self._spawner
        last_problem = ""
        for _attempt in range(_START_ATTEMPTS):
            port, runtime_api_port = _free_port(), _free_port()
            command = [
                str(rie),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{port}",
                "--runtime-api-address",
                f"127.0.0.1:{runtime_api_port}",
                str(self._python),
                "-m",
                "awslambdaric",
                spec.handler,
            ]

            def start(command: list[str] = command) -> subprocess.Popen[bytes]:
                output: IO[bytes] | int = subprocess.DEVNULL
                if log_path is not None:
                    output = open(log_path, "ab")  # noqa: SIM115 - the child keeps its own copy
                try:
                    return subprocess.Popen(
                        command,
                        cwd=spec.code_dir.absolute(),
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=self._preexec,  # noqa: PLW1509 - one prctl call, see _Spawner
                    )
                finally:
                    if not isinstance(output, int):
                        output.close()

            try:
                popen = spawner.spawn(start)
            except OSError as exc:
                raise LambdaRuntimeError(
                    f"{spec.name}: cannot start the Lambda RIE {rie} ({exc}); is the architecture "
                    f"{spec.architecture} runnable on this {host_architecture()} machine?"
                ) from exc
            process = _Process(state, popen, port, log_path)
            problem = self._wait_until_ready(process)
            if problem is None:
                self._ensure_watchdog()
                _LOG.debug("Lambda runtime %s-%s listening on 127.0.0.1:%s", spec.name, number, port)
                return process
            process.terminate()
            last_problem = problem
        raise LambdaRuntimeError(
            f"Lambda runtime for function {spec.name} did not become ready: {last_problem}; "
            + (f"see {log_path}" if log_path else "set log_dir to keep the runtime's output")
        )

    def _wait_until_ready(self, process: _Process) -> str | None:
        """Connect the process's keep-alive connection; None when it accepts, else the problem."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not process.alive():
                return f"the RIE exited with code {process.popen.returncode} before listening"
            try:
                process.connection.connect()
            except OSError:
                process.connection.close()
                time.sleep(0.01)
            else:
                return None
        return f"port {process.port} did not accept connections within {_READY_TIMEOUT_S:.0f} s"

    # ---------------------------------------------------------------------------------------------
    # Invoking

    def _invoke_on(self, process: _Process, payload: bytes) -> InvokeResult:
        spec = process.spec
        connection = process.connection
        connection.timeout = spec.timeout_s + _INIT_ALLOWANCE_S + _ANSWER_MARGIN_S
        if connection.sock is not None:
            connection.sock.settimeout(connection.timeout)
            # The RIE may have closed an idle keep-alive connection: reconnect instead of failing.
            if select.select([connection.sock], [], [], 0)[0]:
                connection.close()
        process.killed_for_memory = False
        process.peak_rss_kb = 0
        started = time.perf_counter()
        try:
            connection.request(
                "POST", _INVOKE_PATH, body=payload, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            duration_ms = (time.perf_counter() - started) * 1000
            process.broken = True  # replaced on release
            return InvokeResult(
                payload=self._lost_process_payload(process, exc),
                function_error="Unhandled",
                duration_ms=duration_ms,
                max_memory_mb=_megabytes(process.peak_rss_kb),
            )
        except BaseException:
            process.broken = True  # e.g. Ctrl-C mid-request: the RIE may still be busy with it
            raise
        duration_ms = (time.perf_counter() - started) * 1000
        peak_kb = max(process.peak_rss_kb, process.runtime_hwm_kb())
        body, function_error = _classify(status, body, process.killed_for_memory)
        return InvokeResult(
            payload=body,
            function_error=function_error,
            duration_ms=duration_ms,
            max_memory_mb=_megabytes(peak_kb),
        )

    @staticmethod
    def _lost_process_payload(process: _Process, exc: BaseException) -> bytes:
        request_id = uuid.uuid4()
        if isinstance(exc, TimeoutError):
            return _error_payload(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {process.spec.timeout_s:.2f} "
                f"seconds (the RIE did not answer; {process.where_to_look()})",
            )
        if process.alive():
            _kill(process.popen.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=1.0)
        return _error_payload(
            "Runtime.ExitError",
            f"RequestId: {request_id} Error: Runtime exited with error: the runtime interface "
            f"emulator process ended (exit {process.popen.returncode}, {exc!r}); "
            f"{process.where_to_look()}",
        )

    # ---------------------------------------------------------------------------------------------
    # Memory watchdog

    def _ensure_watchdog(self) -> None:
        with self._cond:
            if self._watchdog is None and not self._closed:
                self._watchdog = threading.Thread(
                    target=self._watch_memory, name="lambda-runtime-memory", daemon=True
                )
                self._watchdog.start()

    def _watch_memory(self) -> None:
        tick = 0
        while not self._stop.wait(_SAMPLE_INTERVAL_S):
            tick += 1
            with self._cond:
                processes = list(self._processes)
            for process in processes:
                if process.busy or tick % _IDLE_SAMPLE_EVERY == 0:
                    try:
                        self._sample(process)
                    except Exception:  # the watchdog must outlive any one odd process
                        _LOG.exception("memory sample of %s failed", process.spec.name)

    @staticmethod
    def _sample(process: _Process) -> None:
        rss_kb = process.runtime_rss_kb()
        if process.busy:
            process.peak_rss_kb = max(process.peak_rss_kb, rss_kb)
        limit_kb = process.spec.memory_mb * 1024
        if rss_kb > limit_kb:
            _LOG.warning(
                "Lambda runtime %s uses %.0f MB of its %s MB: killing it (Runtime.OutOfMemory)",
                process.spec.name,
                rss_kb / 1024,
                process.spec.memory_mb,
            )
            process.killed_for_memory = process.busy
            process.kill_runtime()


# --------------------------------------------------------------------------------------------------
# Answers


def _megabytes(kb: int) -> float | None:
    return round(kb / 1024, 1) if kb > 0 else None


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _classify(status: int, body: bytes, killed_for_memory: bool) -> tuple[bytes, str | None]:
    """Turn the RIE's answer into Lambda's: (payload, X-Amz-Function-Error)."""
    if status == 200 and body.startswith(_TIMEOUT_PREFIX):
        message = body.decode("utf-8", "replace").strip()
        return _error_payload("Sandbox.Timedout", f"RequestId: {uuid.uuid4()} Error: {message}"), "Unhandled"
    try:
        parsed: Any = json.loads(body) if body.strip() else None
    except ValueError:
        parsed = None
    is_error = isinstance(parsed, dict) and "errorType" in parsed and "errorMessage" in parsed
    if status == 200:
        # A handler that raised: HTTP 200, no error header, errorType/errorMessage in the body.
        return body, ("Unhandled" if is_error else None)
    # 502 and the like: the runtime itself failed (exited, was killed, could not initialise).
    if is_error:
        if killed_for_memory:
            parsed["errorType"] = "Runtime.OutOfMemory"
            return json.dumps(parsed).encode(), "Unhandled"
        return body, "Unhandled"
    text = body.decode("utf-8", "replace").strip()
    return _error_payload(
        "Runtime.Unknown", f"RequestId: {uuid.uuid4()} Error: the RIE answered HTTP {status}: {text}"
    ), "Unhandled"
