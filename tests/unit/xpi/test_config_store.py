"""Policy and routing live in optional SSM parameters: absent means the shipped default, and a change
(or a new parameter) applies within max_age without a deploy."""

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from types import SimpleNamespace

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import base as powertools_parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from moto import mock_aws
from pydantic import ValidationError
from xpi import dependencies
from xpi.adapters import config_store
from xpi.adapters.config_store import ConfigOverride, OptionalParameter
from xpi.domain.routing import RoutingConfig, load_default_routing

from tests.helpers.aws import create_config_signing_secret, signed_config

MoveClock = Callable[[float], None]

NAME = "/xpi/test-stack/routing"


@pytest.fixture(autouse=True)
def _fresh_powertools_cache() -> None:
    DEFAULT_PROVIDERS.clear()  # Powertools keeps one provider (and its cache) per process


@pytest.fixture
def move_clock(monkeypatch: pytest.MonkeyPatch) -> MoveClock:
    """Moves both clocks the caches read, instead of waiting for max_age: the absence cache's
    time.monotonic and Powertools' datetime.now (a value's expiry)."""
    moved = timedelta()

    class MovedDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return datetime.now(tz) + moved

    def move(seconds: float) -> None:
        nonlocal moved
        moved += timedelta(seconds=seconds)

    monkeypatch.setattr(
        config_store, "time", SimpleNamespace(monotonic=lambda: time.monotonic() + moved.total_seconds())
    )
    monkeypatch.setattr(powertools_parameters, "datetime", MovedDatetime)
    return move


@mock_aws
def test_absent_parameter_means_default_and_is_remembered() -> None:
    # GIVEN no parameter
    parameter = OptionalParameter(NAME, max_age_s=60)

    # WHEN it is read twice
    first = parameter.get()
    boto3.client("ssm").put_parameter(Name=NAME, Value='{"v": 1}', Type="String")
    second = parameter.get()

    # THEN both say "absent": the absence is cached for max_age like a value would be
    assert first is None
    assert second is None


@mock_aws
def test_a_change_applies_after_max_age_without_a_deploy(move_clock: MoveClock) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value='{"v": 1}', Type="String")
    parameter = OptionalParameter(NAME, max_age_s=60)
    assert parameter.get() == '{"v": 1}'

    ssm.put_parameter(Name=NAME, Value='{"v": 2}', Type="String", Overwrite=True)
    assert parameter.get() == '{"v": 1}'  # still cached
    move_clock(60.5)

    assert parameter.get() == '{"v": 2}'


@mock_aws
def test_a_new_parameter_is_picked_up_after_max_age(move_clock: MoveClock) -> None:
    parameter = OptionalParameter(NAME, max_age_s=60)
    assert parameter.get() is None
    boto3.client("ssm").put_parameter(Name=NAME, Value='{"v": 3}', Type="String")
    assert parameter.get() is None  # the absence is still cached
    move_clock(60.5)

    assert parameter.get() == '{"v": 3}'


def test_other_read_errors_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SSM answers with something other than "not found" (here: access denied)
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import ClientError

    def denied(*_: object, **__: object) -> str:
        try:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")
        except ClientError as error:
            raise GetParameterError(str(error)) from error

    monkeypatch.setattr("xpi.adapters.config_store.get_parameter", denied)

    # THEN the error propagates: a policy that cannot be read must not silently become the default
    with pytest.raises(GetParameterError):
        OptionalParameter(NAME, max_age_s=60).get()


@pytest.mark.parametrize(
    ("code", "status", "passing"),
    [
        ("ServiceUnavailable", 503, True),
        ("ThrottlingException", 400, True),
        ("AccessDeniedException", 400, False),
    ],
)
def test_a_policy_read_failing_for_a_passing_aws_fault_is_retried_and_only_then(
    monkeypatch: pytest.MonkeyPatch, code: str, status: int, passing: bool
) -> None:
    # GIVEN SSM answering `code`, wrapped as Powertools wraps it (inside its handler, not `from` it)
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import ClientError
    from xpi.adapters.aws import is_transient
    from xpi.adapters.config_store import PolicyLoadError

    def failing(*_: object, **__: object) -> str:
        try:
            raise ClientError(
                {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "GetParameter",
            )
        except ClientError as error:
            raise GetParameterError(str(error))  # noqa: B904 - as Powertools raises it

    monkeypatch.setattr("xpi.adapters.config_store.get_parameter", failing)
    policy = ConfigOverride(
        OptionalParameter(NAME, 60), RoutingConfig, load_default_routing, failure=(PolicyLoadError, "policy")
    )

    # WHEN the policy is read THEN it fails as the policy's error, never the default
    with pytest.raises(PolicyLoadError) as failed:
        policy.get()
    # AND the step tries again only when AWS's fault was a passing one (an outage is ridden through;
    # a grant missing is not)
    assert is_transient(failed.value) is passing


def test_no_name_means_default_without_a_call() -> None:
    assert OptionalParameter("", max_age_s=60).get() is None


# ---------------------------------------------------------------------------------------------- routing
ROUTING = '{"models": {"us.amazon.nova-lite-v1:0": {}}, "callers": [{"principal": "*", "allow": ["*"]}]}'


def routing_override(max_age_s: int = 60) -> ConfigOverride[RoutingConfig]:
    return ConfigOverride(OptionalParameter(NAME, max_age_s), RoutingConfig, load_default_routing)


@mock_aws
def test_routing_is_the_parameter_when_it_exists_else_the_default() -> None:
    assert routing_override().get() is load_default_routing()

    boto3.client("ssm").put_parameter(Name=NAME, Value=ROUTING, Type="String")

    assert routing_override().get().models_for("anyone") == ["us.amazon.nova-lite-v1:0"]


@mock_aws
def test_the_shipped_default_is_built_and_hashed_once_per_process() -> None:
    # GIVEN no parameter, and a default that counts how often it is built
    built: list[RoutingConfig] = []

    def default() -> RoutingConfig:
        built.append(RoutingConfig.model_validate(load_default_routing().model_dump(mode="json")))
        return built[-1]

    override = ConfigOverride(OptionalParameter(NAME, 60), RoutingConfig, default)

    # WHEN every request of a warm function asks for the document in force
    answers = [override.current() for _ in range(3)]

    # THEN the default was built (and its canonical hash taken) once, and every answer names it
    assert len(built) == 1
    assert all(document is built[0] for document, _ in answers)
    assert {version.sha256 for _, version in answers} == {answers[0][1].sha256}
    assert answers[0][1].source == "default" and answers[0][1].revision == 0


@mock_aws
def test_invalid_routing_fails_with_its_validation_error() -> None:
    boto3.client("ssm").put_parameter(Name=NAME, Value='{"models": "none"}', Type="String")

    with pytest.raises(ValidationError, match="RoutingConfig"):
        routing_override().get()


@mock_aws
def test_the_routing_in_force_is_the_deployments_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING_PARAMETER_NAME", NAME)
    monkeypatch.setenv("CONFIG_SIGNING_SECRET_ID", create_config_signing_secret())
    boto3.client("ssm").put_parameter(
        Name=NAME, Value=signed_config("routing", json.loads(ROUTING)), Type="String"
    )

    assert list(dependencies.routing_config().models) == ["us.amazon.nova-lite-v1:0"]
