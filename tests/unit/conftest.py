"""Unit-test isolation: Powertools' environment before any handler is imported, fake AWS credentials,
fresh caches and metrics for every test, and no network beyond loopback.

An accidental call to a real AWS endpoint fails with NetworkBlockedError instead of leaving the
machine; moto's mocks answer inside the process and never open a socket.
"""

import os
import sys
from collections.abc import Iterator

import pytest

from tests.helpers.network import block_network

# Powertools' environment (read when observability.py is imported) is set by tests/conftest.py, which
# runs before any suite's module imports xpi.

# boto3 reads these when a client is created, which xpi does lazily; they are set per test (and
# restored after it) so that nothing leaks into other suites collected in the same session.
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-gov-west-1",
    "AWS_REGION": "us-gov-west-1",
}
# Anything that could point boto3 at a real account or endpoint.
UNSET_AWS_ENVIRONMENT = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name, value in FAKE_AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_AWS_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))


def _clear_caches() -> None:
    """Every functools.cache that holds settings, adapters, boto3 clients or parsed configuration."""
    import xpi.adapters.aws
    import xpi.dependencies
    import xpi.settings
    from aws_lambda_powertools.utilities import parameters

    xpi.settings.get_settings.cache_clear()
    for module in (xpi.dependencies, xpi.adapters.aws):
        for value in vars(module).values():
            if (
                callable(getattr(value, "cache_clear", None))
                and getattr(value, "__module__", "") == module.__name__
            ):
                value.cache_clear()
    invoke = sys.modules.get("xpi.handlers.invoke")
    if invoke is not None:
        invoke._invoke_once.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def _reset_metrics() -> None:
    from aws_lambda_powertools.metrics.provider import cold_start
    from xpi.observability import metrics

    metrics.clear_metrics()
    cold_start.reset_cold_start_flag()  # type: ignore[no-untyped-call]


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a cold Lambda: no cached settings or adapters, no pending metrics, and none of
    xpi's own environment variables unless the test sets them."""
    from xpi.settings import Settings

    for field in Settings.model_fields.values():
        # Powertools' own variables stay: they are set once, above, before observability.py is imported.
        if field.alias and not field.alias.startswith("POWERTOOLS_"):
            monkeypatch.delenv(field.alias, raising=False)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    _clear_caches()
    _reset_metrics()
    yield
    _clear_caches()
    _reset_metrics()
