"""Session fixtures shared by every suite that drives the local stack (integration, browser): one
stack per test session, started on first use."""

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.helpers.stack import (
    SESSION_CALL_LOGS,
    SESSION_STACK_LOG,
    LocalStackClient,
    ResultCollector,
    own_stack,
)

# Read when observability.py creates Logger, Tracer and Metrics, i.e. at import: set before any test
# module of any suite (unit, contract, container) imports xpi. These are the template's Globals (plus
# tracing off, as outside Lambda); the local stacks a session starts get the same from the template.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "xpi")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "XPI")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every local stack this session starts (they inherit the environment) logs its IAM decisions to one
    fresh folder, which tests/test_least_privilege.py reads at the end."""
    shutil.rmtree(SESSION_CALL_LOGS, ignore_errors=True)
    os.environ["XPI_IAM_CALL_LOG_DIR"] = str(SESSION_CALL_LOGS)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackClient]:
    with own_stack(tmp_path_factory.mktemp("stack"), SESSION_STACK_LOG.name) as stack:
        yield stack


@pytest.fixture(scope="session")
def results(local_stack: LocalStackClient) -> Iterator[ResultCollector]:
    collector = ResultCollector(local_stack.client("sqs"), local_stack.outputs["SubscriberQueueUrl"])
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def sealed_day(local_stack: LocalStackClient) -> object:
    """The last closed day of lineage, sealed once for the session: the seal test tampers with it, the
    compliance report's tamper check reads it (a second seal of the same day would find it sealed)."""
    from tests.helpers.sealing import seal_the_last_closed_day  # imports xpi: after the environment above

    return seal_the_last_closed_day(local_stack)
