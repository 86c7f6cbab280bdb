"""The local stack's fault hooks (faults.py): a runtime killed at a chosen point, the AWS API gone."""

import io
import json
from collections.abc import Iterable
from typing import Any

import pytest
from xpi_tools.local.faults import ControlClient, LocalControl, LocalFaults

FUNCTION_KEY, OPERATOR_KEY = "ASIAFUNCTIONKEY", "AKIAOPERATOR"
SCOPE = "us-gov-west-1/dynamodb/aws4_request"


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


def test_the_control_endpoint_arms_reports_and_clears(faults: tuple[LocalFaults, list[Any]]) -> None:
    hooks, _ = faults
    control = LocalControl(hooks)
    client = ControlClient(control.start())
    try:
        client.kill_runtime("RecordOutcomeFunction", 2, after="return")
        client.aws_outage(5)
        armed = client.faults()
        assert armed["kills"][0]["function"] == "xpi-record"
        assert armed["outage_left_s"] > 0
        assert client.clear() == {"kills": [], "outage_left_s": 0.0, "outage_answered": {}}
        assert client.memory()["rss_bytes"] > 0
    finally:
        control.stop()
