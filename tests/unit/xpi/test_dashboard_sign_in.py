"""The dashboard role a signed-in user gets from the agency provider's groups and amr claims, and the
pre token generation trigger that puts it in the ID token's xpi_role claim."""

import json
from typing import Any

import pytest
from xpi.domain.dashboard_roles import claim_values, dashboard_role
from xpi.handlers import dashboard_sign_in

GROUPS = {"operator_group": "xpi-operators", "auditor_group": "xpi-auditors", "admin_group": "xpi-admins"}


@pytest.mark.parametrize(
    ("groups", "amr", "role"),
    [
        (["xpi-operators"], ["pwd"], "operator"),
        (["xpi-auditors"], ["pwd"], "auditor"),
        (["xpi-admins"], ["pwd", "otp"], "admin"),
        (["xpi-admins"], ["pwd", "mfa"], "admin"),
        (["xpi-admins"], ["pwd", "hwk"], "admin"),
        # an admin without a second factor gets the operators' read routes, never admin
        (["xpi-admins"], ["pwd"], "operator"),
        (["xpi-admins"], [], "operator"),
        (["xpi-auditors", "xpi-operators"], ["pwd"], "operator"),
        (["payroll"], ["pwd", "otp"], None),
        ([], ["pwd"], None),
    ],
)
def test_the_role_follows_the_groups_and_admin_needs_a_second_factor(
    groups: list[str], amr: list[str], role: str | None
) -> None:
    assert dashboard_role(groups, amr, **GROUPS) == role


@pytest.mark.parametrize(
    ("value", "values"),
    [
        ('["xpi-admins", "x"]', ["xpi-admins", "x"]),
        ("xpi-admins, x", ["xpi-admins", "x"]),
        ("xpi-admins x", ["xpi-admins", "x"]),
        (["a"], ["a"]),
        ("", []),
        (None, []),
        ("[not json", []),
        ('["a", 1]', ["a", "1"]),
    ],
)
def test_a_list_claim_is_read_as_cognito_maps_it(value: Any, values: list[str]) -> None:
    assert claim_values(value) == values


def _event(groups: Any, amr: Any) -> dict[str, Any]:
    return {
        "version": "1",
        "triggerSource": "TokenGeneration_HostedAuth",
        "userPoolId": "us-gov-west-1_x",
        "userName": "agency_u",
        "request": {"userAttributes": {"sub": "u", "custom:groups": groups, "custom:amr": amr}},
        "response": {"claimsOverrideDetails": None},
    }


def test_the_trigger_sets_the_role_claim(lambda_context: Any) -> None:
    answer = dashboard_sign_in.handler(_event(json.dumps(["xpi-admins"]), '["pwd","otp"]'), lambda_context)
    assert answer["response"]["claimsOverrideDetails"] == {"claimsToAddOrOverride": {"xpi_role": "admin"}}
    assert answer["userName"] == "agency_u"  # the event goes back whole, as Cognito expects


def test_the_trigger_suppresses_a_role_claim_the_provider_sent_for_a_user_in_no_group(
    lambda_context: Any,
) -> None:
    # GIVEN a provider that sends its own xpi_role claim for a user in no dashboard group
    event = _event('["payroll"]', '["pwd"]')
    event["request"]["userAttributes"]["xpi_role"] = "admin"
    # WHEN / THEN the claim is suppressed: the identity pool's rules match nothing, no credentials
    answer = dashboard_sign_in.handler(event, lambda_context)
    assert answer["response"]["claimsOverrideDetails"] == {"claimsToSuppress": ["xpi_role"]}
