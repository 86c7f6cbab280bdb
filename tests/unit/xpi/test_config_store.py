"""Policy and routing live in optional SSM parameters: absent means the shipped default, and a change
(or a new parameter) applies within max_age without a deploy."""

import time

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from moto import mock_aws
from xpi.adapters.config_store import OptionalParameter

NAME = "/xpi/test-stack/routing"


@pytest.fixture(autouse=True)
def _fresh_powertools_cache() -> None:
    DEFAULT_PROVIDERS.clear()  # Powertools keeps one provider (and its cache) per process


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
def test_a_change_applies_after_max_age_without_a_deploy() -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value='{"v": 1}', Type="String")
    parameter = OptionalParameter(NAME, max_age_s=1)
    assert parameter.get() == '{"v": 1}'

    ssm.put_parameter(Name=NAME, Value='{"v": 2}', Type="String", Overwrite=True)
    assert parameter.get() == '{"v": 1}'  # still cached
    time.sleep(1.1)

    assert parameter.get() == '{"v": 2}'


@mock_aws
def test_a_new_parameter_is_picked_up_after_max_age() -> None:
    parameter = OptionalParameter(NAME, max_age_s=1)
    assert parameter.get() is None
    boto3.client("ssm").put_parameter(Name=NAME, Value='{"v": 3}', Type="String")
    time.sleep(1.1)

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


def test_no_name_means_default_without_a_call() -> None:
    assert OptionalParameter("", max_age_s=60).get() is None
