"""What tests/unit/conftest.py promises: no network beyond loopback, fake AWS credentials, and every test
starting with fresh settings, adapters and metrics. Parametrised twice where a leak from the first run
is what would make the second fail."""

import os
import socket

import boto3
import pytest
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError
from xpi import dependencies
from xpi.adapters.lineage_store import DynamoLineageStore
from xpi.observability import metrics
from xpi.settings import SettingMissingError, get_settings

from tests.helpers.network import NetworkBlockedError


def test_a_non_loopback_connection_is_refused() -> None:
    with pytest.raises(NetworkBlockedError, match=r"203\.0\.113\.10"):
        socket.create_connection(("203.0.113.10", 443), timeout=1)


def test_an_accidental_aws_call_fails_loudly_without_leaving_the_machine() -> None:
    client = boto3.client("sts", region_name="us-gov-west-1")

    with pytest.raises((NetworkBlockedError, BotoCoreError)) as caught:
        client.get_caller_identity()

    assert "unit tests may not" in str(caught.value)


def test_loopback_stays_open() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


def test_credentials_and_region_are_fake() -> None:
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["AWS_DEFAULT_REGION"] == "us-gov-west-1"
    assert "AWS_PROFILE" not in os.environ
    assert boto3.session.Session().get_credentials().access_key == "testing"  # type: ignore[union-attr]


@pytest.mark.parametrize("table", ["xpi-a-LineageTable", "xpi-b-LineageTable"])
def test_settings_and_adapters_are_rebuilt_for_every_test(
    monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    monkeypatch.setenv("LINEAGE_TABLE", table)

    store = dependencies.lineage_store()

    assert get_settings().lineage_table == table
    assert isinstance(store, DynamoLineageStore)
    assert store._table_name == table


@pytest.mark.parametrize("run", [1, 2])
def test_no_metric_is_left_over_from_another_test(run: int) -> None:
    assert metrics.provider.metric_set == {}

    metrics.add_metric(name="LeftOver", unit=MetricUnit.Count, value=run)


def test_a_missing_setting_names_its_environment_variable() -> None:
    with pytest.raises(SettingMissingError, match="environment variable STATE_MACHINE_ARN is not set"):
        dependencies.workflow_starter()
