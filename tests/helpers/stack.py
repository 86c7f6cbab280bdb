"""Driving a local stack from tests, only through AWS APIs (boto3 against its endpoints).

The stack runs as its own process (`xpi local up`), exactly as a developer starts it; it stops when the
session ends, and by itself if pytest dies (--exit-with-parent).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from tests.helpers.waiting import poll_until, wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = float(os.environ.get("XPI_STACK_STARTUP_TIMEOUT_S") or 90)  # more on a busy machine
# What the session's `xpi local up` prints (its endpoints and the export lines users paste).
SESSION_STACK_LOG = ROOT / ".xpi" / "local" / "integration-stack.log"
# Where every local stack of this test session writes its IAM call log (tests/test_least_privilege.py);
# one folder per session, so sessions running side by side never mix or remove each other's logs.
SESSION_CALL_LOGS = ROOT / ".xpi" / "iam-calls" / "sessions" / str(os.getpid())


def queue_is_drained(sqs: Any, queue_url: str) -> bool:
    """Nothing waiting, delayed or in flight: every message sent to the queue has been handled."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return all(int(count) == 0 for count in attributes.values())


class ResultCollector:
    """Drains the example subscriber queue in the background, keeping events by request id, so tests
    running one after another never take each other's events."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs, self._queue_url = sqs, queue_url
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except Exception:  # the stack is going away at the end of the session
                self._stop.wait(0.2)  # back off, but stop at once when asked
                continue
            for message in response.get("Messages", []):
                event = json.loads(message["Body"])
                key = event.get("detail", {}).get("request_id", "?")
                with self._lock:
                    self._events.setdefault(key, []).append(event)
                    self._lock.notify_all()
                with contextlib.suppress(Exception):  # filed already; the stack may be gone (kill_stack)
                    self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(
        self, request_id: str, timeout_s: float = 60, detail_type: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                matching = [
                    e
                    for e in self._events.get(request_id, [])
                    if detail_type is None or e["detail-type"] == detail_type
                ]
                if matching:
                    return matching[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no result event for {request_id} within {timeout_s} s")
                self._lock.wait(remaining)

    def caught_up(self) -> bool:
        """Every event delivered to the subscriber queue so far is filed here (a message is deleted only
        after it is filed)."""
        return queue_is_drained(self._sqs, self._queue_url)

    def events_for(self, request_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events.get(request_id, []))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class LocalStackClient:
    def __init__(self, state: dict[str, Any], process: subprocess.Popen[bytes] | None = None) -> None:
        self.state = state
        self.process = process  # `xpi local up`, for a stack of a test module's own (own_stack)
        self.outputs: dict[str, str] = state["outputs"]
        self.session = boto3.Session(
            region_name=state["region"], aws_access_key_id="testing", aws_secret_access_key="testing"
        )

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.state["aws"])

    def lineage(self, request_id: str) -> dict[str, Any] | None:
        table = self.session.resource("dynamodb", endpoint_url=self.state["aws"]).Table(
            self.outputs["LineageTableName"]
        )
        item = table.get_item(Key={"request_id": request_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def executions(self, state_machine_arn: str) -> dict[str, str]:
        """Every execution of the state machine: ARN -> status."""
        pages = (
            self.client("stepfunctions")
            .get_paginator("list_executions")
            .paginate(stateMachineArn=state_machine_arn)
        )
        return {e["executionArn"]: e["status"] for page in pages for e in page["executions"]}

    def workflows_started_by(
        self, deliver: Callable[[], object], queue_url: str, state_machine_arn: str, timeout_s: float = 60
    ) -> dict[str, str]:
        """For a test proving that a duplicate started nothing: runs deliver (sends or uploads that feed
        queue_url), waits until the queue has handled all of it, so a second workflow would have started
        by then, and returns the executions started since (ARN -> status)."""
        before = self.executions(state_machine_arn)
        deliver()
        sqs = self.client("sqs")
        wait_until(lambda: queue_is_drained(sqs, queue_url), timeout_s, what=f"{queue_url} handled")
        after = self.executions(state_machine_arn)
        return {arn: status for arn, status in after.items() if arn not in before}

    def wait_until_nothing_more_can_come(
        self, results: ResultCollector, state_machine_arn: str, name: str, timeout_s: float = 60
    ) -> None:
        """For a test proving that no further event came: waits until the workflow run `name` has ended
        and the collector has filed every event on the subscriber queue, so whatever that run emitted
        is in `results` by now."""
        execution_arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
        stepfunctions = self.client("stepfunctions")

        def over() -> bool:
            if state_machine_arn == self.outputs.get("QueueStateMachineArn"):
                # the queue workflow's executions are per SQS batch: `name` is a request id in one
                return not self.queue_runs_of(name, running_only=True) and results.caught_up()
            status = stepfunctions.describe_execution(executionArn=execution_arn)["status"]
            return status != "RUNNING" and results.caught_up()

        wait_until(over, timeout_s, what=f"{name}'s workflow over and its events collected")

    def queue_runs_of(self, request_id: str, *, running_only: bool = False) -> dict[str, str]:
        """The queue workflow's executions (one per SQS batch) whose input holds the request: ARN ->
        status. moto keeps an Express execution's input readable, as AWS does not."""
        stepfunctions = self.client("stepfunctions")
        pages = stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=self.outputs["QueueStateMachineArn"],
            **({"statusFilter": "RUNNING"} if running_only else {}),
        )
        found = {}
        for page in pages:
            for execution in page["executions"]:
                described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
                requests = json.loads(described.get("input") or "{}").get("requests", [])
                if any(_queued_id(item) == request_id for item in requests):
                    found[execution["executionArn"]] = execution["status"]
        return found

    def send(self, body: dict[str, Any] | str, **attributes: Any) -> str:
        """Put a request on the requests queue as a producer would; returns its request id."""
        if isinstance(body, dict):
            body = {"request_id": f"it-{uuid.uuid4().hex[:12]}", **body}
            request_id = body["request_id"]
            text = json.dumps(body)
        else:
            request_id, text = "", body
        self.client("sqs").send_message(
            QueueUrl=self.outputs["RequestsQueueUrl"], MessageBody=text, **attributes
        )
        return request_id


def _queued_id(item: dict[str, Any]) -> str | None:
    """The request id of an item of the queue workflow's input: inline, or in its payload's key."""
    if item.get("request"):
        return str(item["request"].get("request_id"))
    key = str((item.get("payload") or {}).get("key", ""))
    return key.split("/")[1] if key.count("/") >= 2 else None


def start_local_stack(
    state_file: Path, *options: str, output: Any = subprocess.DEVNULL, sigint_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """`xpi local up` as a developer starts it, in its own session, deploying the existing sam build;
    `sigint_ignored`: with SIGINT ignored, as a non-interactive shell starts a job (`xpi local up &`)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xpi_tools.cli",
            "local",
            "up",
            "--no-build",
            "--state-file",
            str(state_file),
            *options,
        ],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,  # noqa: PLW1509
    )


@contextlib.contextmanager
def own_stack(
    state_dir: Path, log_name: str, *options: str, startup_timeout_s: float = STARTUP_TIMEOUT_S
) -> Iterator[LocalStackClient]:
    """A local stack of a test module's own (started with `options`, e.g. another commercial credential
    mode), logging to .xpi/local/<log_name>; stopped when the block ends, killed if it does not stop."""
    state_file = state_dir / "stack.json"
    log_path = SESSION_STACK_LOG.with_name(log_name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = start_local_stack(state_file, "--exit-with-parent", *options, output=log)
    try:
        poll_until(lambda: state_file.exists() or process.poll() is not None, startup_timeout_s, 0.2)
        if not state_file.exists():
            raise RuntimeError(f"the stack did not start; see {log_path}:\n{log_path.read_text()[-4000:]}")
        yield LocalStackClient(json.loads(state_file.read_text()), process)
    finally:
        if process.poll() is None:  # (not killed by the test: kill_stack)
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _process_table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, state letter), from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state ppid ...; comm may hold spaces
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _tree(root: int) -> list[int]:
    """root and every process below it (its runtimes lead sessions of their own, but stay its children)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in _process_table().items():
        children.setdefault(parent, []).append(pid)
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def kill_stack(stack: LocalStackClient, timeout_s: float = 30) -> list[int]:
    """A region lost outright: SIGKILL a stack of the module's own (own_stack) and every process it
    started, at once, so nothing of it cleans up or answers again; moto's state (in the stack's
    process) is gone with it. Returns the pids killed, once none of them runs any more."""
    if stack.process is None:
        raise ValueError("only a stack started by own_stack can be killed")
    pids = _tree(stack.process.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stack.process.wait(timeout=timeout_s)

    def gone() -> bool:
        table = _process_table()
        return all(pid not in table or table[pid][1] in ("Z", "X") for pid in pids)

    wait_until(gone, timeout_s, interval_s=0.1, what="the killed stack's processes gone")
    return pids
