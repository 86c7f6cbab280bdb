"""Policy and routing values are applied only as the admin path wrote them: signed with the stack's
signing secret, not older than the newest revision it recorded. A value put with ssm:PutParameter by hand,
an edited or replayed envelope, or a deleted parameter is refused: the shipped default applies (the floor on
top) and a Security Alert is raised. Against moto's SSM and Secrets Manager."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from xpi.adapters.admin import AwsAdminActions
from xpi.adapters.config_store import ConfigOverride, OptionalParameter, PolicyLoadError, SigningSecret
from xpi.domain.config_signing import sign
from xpi.domain.policy import Policy, load_default_policy
from xpi.domain.routing import RoutingConfig, load_default_routing
from xpi.models.events import ConfigAlert

REGION = "us-gov-west-1"
PARAMETERS: dict[Any, str] = {"policy": "/xpi/test/policy", "routing": "/xpi/test/routing"}


@pytest.fixture
def stack() -> Iterator[dict[str, Any]]:
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools keeps values per process
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secret_id = secrets.create_secret(Name="signing", SecretString=json.dumps({"key": "s" * 48}))["ARN"]
        yield {
            "ssm": boto3.client("ssm", region_name=REGION),
            "secret_id": secret_id,
            "admin": AwsAdminActions(PARAMETERS, "unused", secret_id),
        }
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def loader(stack: dict[str, Any], alerts: list[ConfigAlert]) -> ConfigOverride[Policy]:
    return ConfigOverride(
        OptionalParameter(PARAMETERS["policy"], 0),
        Policy,
        load_default_policy,
        failure=(PolicyLoadError, "policy"),
        kind="policy",
        signing=SigningSecret(stack["secret_id"], 0),
        on_alert=alerts.append,
    )


def stricter_policy() -> dict[str, Any]:
    document = load_default_policy().model_dump(mode="json")
    document["description"] = "the agency's own"
    document["categories"]["pii.email"] = "block"
    return document


def store(stack: dict[str, Any], document: dict[str, Any], kind: Any = "policy") -> None:
    stack["admin"].store_config(kind, document, changed_by="arn:aws:iam::1:user/admin", changed_at="now")


def test_a_version_the_admin_path_signed_applies_with_its_revision(stack: dict[str, Any]) -> None:
    alerts: list[ConfigAlert] = []
    store(stack, stricter_policy())
    store(stack, stricter_policy() | {"description": "second"})

    policy, version = loader(stack, alerts).current()

    assert policy.description == "second"
    assert (version.revision, version.source) == (2, "signed")
    assert not alerts


def test_a_value_put_by_hand_is_refused_and_raises_an_alert(stack: dict[str, Any]) -> None:
    # GIVEN someone with ssm:PutParameter writes a looser policy straight into the parameter
    looser = load_default_policy().model_dump(mode="json")
    looser["categories"]["pii.ssn"] = "allow"
    stack["ssm"].put_parameter(Name=PARAMETERS["policy"], Value=json.dumps(looser), Type="String")
    alerts: list[ConfigAlert] = []
    policy_loader = loader(stack, alerts)

    # WHEN the classifier reads the policy (twice)
    policy, version = policy_loader.current()
    policy_loader.current()

    # THEN the shipped default applies, and one Security Alert says why
    assert policy == load_default_policy()
    assert (version.revision, version.source) == (0, "fallback")
    assert [(a.document, a.change) for a in alerts] == [("policy", "unsigned")]


def test_an_edited_envelope_is_refused(stack: dict[str, Any]) -> None:
    # GIVEN a signed version whose document is then edited in place (its MAC kept)
    store(stack, stricter_policy())
    stored = json.loads(stack["ssm"].get_parameter(Name=PARAMETERS["policy"])["Parameter"]["Value"])
    stored["document"]["categories"]["pii.email"] = "allow"
    stack["ssm"].put_parameter(
        Name=PARAMETERS["policy"], Value=json.dumps(stored), Type="String", Overwrite=True
    )
    alerts: list[ConfigAlert] = []

    # WHEN / THEN
    policy, version = loader(stack, alerts).current()
    assert policy == load_default_policy() and version.source == "fallback"
    assert [a.change for a in alerts] == ["tampered"]


def test_an_envelope_signed_with_another_key_is_refused(stack: dict[str, Any]) -> None:
    forged = sign(
        stricter_policy(), kind="policy", revision=9, changed_by="me", changed_at="now", key=b"x" * 48
    )
    stack["ssm"].put_parameter(Name=PARAMETERS["policy"], Value=forged.model_dump_json(), Type="String")
    alerts: list[ConfigAlert] = []

    assert loader(stack, alerts).current()[1].source == "fallback"
    assert [a.change for a in alerts] == ["tampered"]


def test_deleting_the_parameter_after_a_signed_version_is_detected(stack: dict[str, Any]) -> None:
    # GIVEN a signed stricter policy in force
    store(stack, stricter_policy())
    alerts: list[ConfigAlert] = []
    policy_loader = loader(stack, alerts)
    assert policy_loader.get().description == "the agency's own"

    # WHEN someone deletes the parameter
    stack["ssm"].delete_parameter(Name=PARAMETERS["policy"])

    # THEN the shipped default applies (never silently): a Security Alert names the deletion
    policy, version = policy_loader.current()
    assert policy == load_default_policy() and version.source == "fallback"
    assert [(a.change, a.revision) for a in alerts] == [("missing", None)]


def test_putting_back_an_older_signed_version_is_detected(stack: dict[str, Any]) -> None:
    # GIVEN revision 1 (looser) replaced by revision 2 (stricter)
    store(stack, load_default_policy().model_dump(mode="json") | {"description": "first"})
    old = stack["ssm"].get_parameter(Name=PARAMETERS["policy"])["Parameter"]["Value"]
    store(stack, stricter_policy())

    # WHEN someone puts revision 1 back
    stack["ssm"].put_parameter(Name=PARAMETERS["policy"], Value=old, Type="String", Overwrite=True)
    alerts: list[ConfigAlert] = []

    # THEN it is refused as a rollback
    policy, version = loader(stack, alerts).current()
    assert policy == load_default_policy() and version.source == "fallback"
    assert [(a.change, a.revision) for a in alerts] == [("rolled_back", 1)]


def test_a_policy_envelope_copied_to_the_routing_parameter_is_refused(stack: dict[str, Any]) -> None:
    store(stack, stricter_policy())
    value = stack["ssm"].get_parameter(Name=PARAMETERS["policy"])["Parameter"]["Value"]
    stack["ssm"].put_parameter(Name=PARAMETERS["routing"], Value=value, Type="String")
    alerts: list[ConfigAlert] = []
    routing = ConfigOverride(
        OptionalParameter(PARAMETERS["routing"], 0),
        RoutingConfig,
        load_default_routing,
        kind="routing",
        signing=SigningSecret(stack["secret_id"], 0),
        on_alert=alerts.append,
    )

    assert routing.current() == (load_default_routing(), routing.current()[1])
    assert routing.current()[1].source == "fallback"
    assert [(a.document, a.change) for a in alerts] == [("routing", "tampered")]


def test_with_no_value_and_none_ever_signed_the_default_applies_quietly(stack: dict[str, Any]) -> None:
    alerts: list[ConfigAlert] = []
    policy, version = loader(stack, alerts).current()
    assert policy == load_default_policy()
    assert (version.revision, version.source) == (0, "default")
    assert not alerts
