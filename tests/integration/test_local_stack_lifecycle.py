"""The local stack stops cleanly: no process and no listening port left, after Ctrl-C and after the
process that started it dies (as when a test run crashes)."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.stack import start_local_stack
from tests.helpers.waiting import poll_until, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, timeout_s: float = 60) -> dict[str, object]:
    wait_until(path.exists, timeout_s, interval_s=0.1, what=f"the state file {path}")
    state: dict[str, object] = json.loads(path.read_text())
    return state


def _ports(state: dict[str, object]) -> list[int]:
    """The GovCloud moto server's, the emulator's and the commercial moto server's (its own process)."""
    commercial = state["commercial_batch"]
    assert isinstance(commercial, dict)
    urls = [state["aws"], state["bedrock"], commercial["url"]]
    return [int(str(url).rsplit(":", 1)[1]) for url in urls]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _runtimes_of(stack_pid: int) -> set[int]:
    """The RIE processes this stack started (their parent is the stack's process)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"aws-lambda-rie" not in (entry / "cmdline").read_bytes():
                continue
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == stack_pid:
            pids.add(int(entry.name))
    return pids


def _exercise(state: dict[str, object]) -> None:
    """Invoke a function once so runtime processes exist."""
    import boto3

    session = boto3.Session(
        region_name=str(state["region"]), aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    client = session.client("lambda", endpoint_url=str(state["aws"]))
    resources = state["resources"]
    assert isinstance(resources, dict)
    response = client.invoke(FunctionName=resources["ValidateFunction"], Payload=b"{}")
    assert response.get("FunctionError") == "Unhandled"  # an empty event is not a workflow input


def _gone(pids: set[int], ports: list[int], timeout_s: float = 20) -> bool:
    def nothing_left() -> bool:
        alive = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
        return not alive and not any(_listening(port) for port in ports)

    return poll_until(nothing_left, timeout_s, interval_s=0.2)


def _exit_code(process: subprocess.Popen[bytes], output: Path, timeout_s: float) -> int:
    """The stack's exit code; a stack still running after timeout_s fails the test with every thread's
    stack (`xpi local up` prints them on SIGUSR1) and its output."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        poll_until(lambda: "Thread 0x" in output.read_text(errors="replace"), 5, interval_s=0.2)
        process.kill()
        process.wait()
        pytest.fail(f"the stack did not exit {timeout_s:.0f} s after Ctrl-C:\n{output.read_text()[-20000:]}")


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["from-a-terminal", "as-a-background-job"])
def test_ctrl_c_leaves_no_process_or_port(tmp_path: Path, sigint_ignored: bool) -> None:
    # GIVEN a running stack whose functions have started runtime processes (started as a background job
    # of a non-interactive shell, it inherits SIGINT ignored, and must still stop on it)
    output = tmp_path / "stack.log"
    with output.open("wb") as sink:
        process = start_local_stack(tmp_path / "stack.json", output=sink, sigint_ignored=sigint_ignored)
    state = _wait_for(tmp_path / "stack.json")
    _exercise(state)
    started = _runtimes_of(int(str(state["pid"])))
    assert started, "the invoke should have started at least one runtime process"

    # WHEN it gets Ctrl-C
    process.send_signal(signal.SIGINT)
    assert _exit_code(process, output, timeout_s=30) == 0

    # THEN every runtime process and every port are gone, and the state file removed
    assert _gone(started, _ports(state))
    assert not (tmp_path / "stack.json").exists()


def test_a_dead_parent_takes_the_stack_with_it(tmp_path: Path) -> None:
    # GIVEN a stack started with --exit-with-parent by a parent process that then dies abruptly
    state_file = tmp_path / "stack.json"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time;"
            "subprocess.Popen([sys.executable, '-m', 'xpi_tools.cli', 'local', 'up', '--no-build',"
            f" '--exit-with-parent', '--state-file', {str(state_file)!r}],"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
            "time.sleep(600)",
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    state = _wait_for(state_file)
    _exercise(state)
    started = _runtimes_of(int(str(state["pid"])))
    assert started

    # WHEN the parent is killed (as a crashed test run would be)
    os.kill(parent.pid, signal.SIGKILL)  # the parent only: the stack must notice by itself
    parent.wait()

    # THEN the stack notices, stops (removing its state file), and leaves nothing behind
    assert _gone(started, _ports(state), timeout_s=30)
    wait_until(lambda: not state_file.exists(), timeout_s=30, what="the state file to be removed")


def test_a_parent_that_dies_while_the_stack_starts_takes_it_along(tmp_path: Path) -> None:
    # GIVEN a stack started with --exit-with-parent by a parent that dies while the stack deploys
    state_file = tmp_path / "stack.json"
    parent = subprocess.run(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time;"
            "stack = subprocess.Popen([sys.executable, '-m', 'xpi_tools.cli', 'local', 'up', '--no-build',"
            f" '--exit-with-parent', '--state-file', {str(state_file)!r}],"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True);"
            "print(stack.pid, flush=True); time.sleep(3)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    stack_pid = int(parent.stdout.strip())

    # WHEN the stack finishes starting without its parent
    # THEN it notices, stops by itself and removes its state file
    wait_until(
        lambda: not Path(f"/proc/{stack_pid}").exists() or _zombie(stack_pid), 90, what="the stack to stop"
    )
    assert not state_file.exists()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
