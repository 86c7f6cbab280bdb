"""The policy store adapter (functions/xpi/adapters/policy_store.py) against moto's SSM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from xpi.adapters.policy_store import PolicyLoadError, PolicyStore
from xpi.domain.policy import Action, load_default_policy

NAME = "/xpi/test/classification-policy"


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-gov-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools keeps providers (and their cached values) per process
    with mock_aws():
        yield boto3.client("ssm", region_name="us-gov-west-1")
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def policy_json(**overrides: Any) -> str:
    document = load_default_policy().model_dump(mode="json")
    document.update(overrides)
    return json.dumps(document)


def test_without_a_parameter_name_the_shipped_default_is_served() -> None:
    assert PolicyStore(None).get() is load_default_policy()
    assert PolicyStore("").get() is load_default_policy()


def test_policy_is_read_from_ssm(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=policy_json(description="from ssm"), Type="String")
    policy = PolicyStore(NAME).get()
    assert policy.description == "from ssm"


def test_value_is_cached_for_max_age(ssm: Any) -> None:
    # GIVEN a store with a long max_age that has read the policy once
    ssm.put_parameter(Name=NAME, Value=policy_json(description="v1"), Type="String")
    store = PolicyStore(NAME, max_age_seconds=300)
    first = store.get()
    # WHEN the parameter changes within max_age
    ssm.put_parameter(Name=NAME, Value=policy_json(description="v2"), Type="String", Overwrite=True)
    # THEN the cached policy object is served, not re-read or re-validated
    assert store.get() is first


def test_change_takes_effect_after_max_age_without_a_deploy(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=policy_json(description="v1"), Type="String")
    store = PolicyStore(NAME, max_age_seconds=0)  # expire at once: the next get() reads SSM again
    assert store.get().description == "v1"
    ssm.put_parameter(
        Name=NAME, Value=policy_json(description="v2", default_action="allow"), Type="String", Overwrite=True
    )
    policy = store.get()
    assert (policy.description, policy.default_action) == ("v2", Action.ALLOW)


def test_unchanged_value_is_not_validated_again(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=policy_json(), Type="String")
    store = PolicyStore(NAME, max_age_seconds=0)
    assert store.get() is store.get()


def test_missing_parameter_fails_closed(ssm: Any) -> None:
    with pytest.raises(PolicyLoadError, match="cannot read policy parameter"):
        PolicyStore(NAME).get()


def test_invalid_policy_fails_closed(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value='{"default_action": "maybe"}', Type="String")
    with pytest.raises(PolicyLoadError, match="not a valid policy"):
        PolicyStore(NAME).get()


def test_not_json_fails_closed(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value="block everything please", Type="String")
    with pytest.raises(PolicyLoadError, match="not a valid policy"):
        PolicyStore(NAME).get()


def test_fetch_is_injectable_and_receives_max_age() -> None:
    calls: list[tuple[str, int]] = []

    def fetch(name: str, max_age: int) -> object:
        calls.append((name, max_age))
        return policy_json(description="injected").encode()

    assert PolicyStore("/p", max_age_seconds=42, fetch=fetch).get().description == "injected"
    assert calls == [("/p", 42)]
