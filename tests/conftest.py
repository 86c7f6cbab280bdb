"""Session fixtures shared by every suite that drives the local stack (integration, browser): one
stack per test session, started on first use."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers.stack import (
    ROOT,
    STARTUP_TIMEOUT_S,
    LocalStackClient,
    ResultCollector,
    start_local_stack,
)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackClient]:
    state_file = tmp_path_factory.mktemp("stack") / "stack.json"
    log_path = ROOT / ".xpi" / "local" / "integration-stack.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = start_local_stack(state_file, "--exit-with-parent", output=log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not state_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the local stack did not start; see {log_path}:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        yield LocalStackClient(json.loads(state_file.read_text()))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def results(local_stack: LocalStackClient) -> Iterator[ResultCollector]:
    collector = ResultCollector(local_stack.client("sqs"), local_stack.outputs["SubscriberQueueUrl"])
    yield collector
    collector.stop()
