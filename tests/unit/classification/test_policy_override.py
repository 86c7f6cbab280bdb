"""The classification policy in force: an SSM parameter when it exists, else the shipped default, read
through the one loader of SSM overrides (xpi.adapters.config_store.ConfigOverride), against moto's SSM."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from xpi import dependencies
from xpi.adapters.config_store import ConfigOverride, OptionalParameter, PolicyLoadError
from xpi.domain.policy import Action, Policy, load_default_policy
from xpi.settings import SettingMissingError

from tests.helpers.aws import create_config_signing_secret, signed_config

NAME = "/xpi/test/classification-policy"


@pytest.fixture
def ssm() -> Iterator[Any]:
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools keeps providers (and their cached values) per process
    with mock_aws():
        yield boto3.client("ssm", region_name="us-gov-west-1")
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def policy_json(**overrides: Any) -> str:
    document = load_default_policy().model_dump(mode="json")
    document.update(overrides)
    return json.dumps(document)


def policy_override(name: str = NAME, max_age_s: int = 60) -> ConfigOverride[Policy]:
    return ConfigOverride(
        OptionalParameter(name, max_age_s), Policy, load_default_policy, failure=(PolicyLoadError, "policy")
    )


def test_without_a_parameter_name_the_shipped_default_is_served() -> None:
    assert policy_override("").get() is load_default_policy()


def test_a_missing_parameter_means_the_shipped_default(ssm: Any) -> None:
    assert policy_override().get() is load_default_policy()


def test_policy_is_read_from_ssm(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=policy_json(description="from ssm"), Type="String")

    assert policy_override().get().description == "from ssm"


def test_value_is_cached_for_max_age(ssm: Any) -> None:
    # GIVEN a loader with a long max_age that has read the policy once
    ssm.put_parameter(Name=NAME, Value=policy_json(description="v1"), Type="String")
    policy = policy_override(max_age_s=300)
    first = policy.get()
    # WHEN the parameter changes within max_age
    ssm.put_parameter(Name=NAME, Value=policy_json(description="v2"), Type="String", Overwrite=True)
    # THEN the cached policy object is served, not re-read or re-validated
    assert policy.get() is first


def test_change_takes_effect_after_max_age_without_a_deploy(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=policy_json(description="v1"), Type="String")
    policy = policy_override(max_age_s=0)  # expire at once: the next get() reads SSM again
    assert policy.get().description == "v1"
    ssm.put_parameter(
        Name=NAME, Value=policy_json(description="v2", default_action="redact"), Type="String", Overwrite=True
    )

    changed = policy.get()

    assert (changed.description, changed.default_action) == ("v2", Action.REDACT)


def test_unchanged_value_is_not_validated_again(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=policy_json(), Type="String")
    policy = policy_override(max_age_s=0)

    assert policy.get() is policy.get()


def test_invalid_policy_fails_closed(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value='{"default_action": "maybe"}', Type="String")

    with pytest.raises(PolicyLoadError, match=f"policy parameter {NAME} is not a valid policy"):
        policy_override().get()


def test_not_json_fails_closed(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value="block everything please", Type="String")

    with pytest.raises(PolicyLoadError, match="not a valid policy"):
        policy_override().get()


def test_a_parameter_that_cannot_be_read_fails_closed(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SSM refuses the read (here: access denied), which is not "no such parameter"
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import ClientError

    def denied(*_: object, **__: object) -> str:
        try:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")
        except ClientError as error:
            raise GetParameterError(str(error)) from error

    monkeypatch.setattr("xpi.adapters.config_store.get_parameter", denied)

    # THEN the classifier fails closed, never falling back to the shipped default silently
    with pytest.raises(PolicyLoadError, match=f"cannot read policy parameter {NAME}: .*AccessDenied"):
        policy_override().get()


def test_the_policy_in_force_is_the_deployments_parameter(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the functions' environment naming the parameter and the signing secret, as template.yaml does
    monkeypatch.setenv("POLICY_PARAMETER_NAME", NAME)
    monkeypatch.setenv("CONFIG_SIGNING_SECRET_ID", create_config_signing_secret())
    document = json.loads(policy_json(description="deployed"))
    ssm.put_parameter(Name=NAME, Value=signed_config("policy", document), Type="String")

    # WHEN / THEN
    assert dependencies.classification_policy().description == "deployed"


def test_a_policy_parameter_without_a_signing_secret_is_refused(
    ssm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment naming the policy parameter but no signing secret, and an unsigned policy in it
    monkeypatch.setenv("POLICY_PARAMETER_NAME", NAME)
    monkeypatch.delenv("CONFIG_SIGNING_SECRET_ID", raising=False)
    ssm.put_parameter(Name=NAME, Value=policy_json(description="unsigned"), Type="String")

    # WHEN / THEN the unsigned value is never applied: the function refuses to run without the secret
    with pytest.raises(SettingMissingError, match="CONFIG_SIGNING_SECRET_ID"):
        dependencies.classification_policy()
