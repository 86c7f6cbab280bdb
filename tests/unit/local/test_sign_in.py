"""The local dashboard sign-in's Cognito parts (xpi_tools.local.sign_in), the deploy's setting aside of
the Cognito resources moto lacks, and the local API Gateway's answer to the dashboard admin role."""

import copy
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from xpi_tools.local.apigateway import Principal, decide
from xpi_tools.local.deploy import COGNITO_METADATA, load_template, without_cognito
from xpi_tools.local.sign_in import (
    LocalCognito,
    RoleRule,
    SignInRefused,
    matching_role,
    role_rules,
    s256,
    trusts_identity_pool,
)

from tests.unit.local.test_apigateway import (
    ACCOUNT,
    INVOKE_EVERYTHING,
    PARTITION,
    REGION,
    ROOT,
    document_routes,
    method_arn,
    template_resource_policy,
    user,
)

SIGN_IN = {
    "DashboardSignIn": "oidc",
    "DashboardIdpIssuer": "https://idp.example.gov",
    "DashboardIdpClientId": "client",
    "DashboardIdpClientSecretArn": f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:idp-AbCdEf",
    "DashboardSignInDomain": "xpi-test",
}
STACK = "xpi-local"
COGNITO = "cognito-identity.amazonaws.com"  # resolve_template_policy's AWS::StackName


def _translated() -> dict[str, Any]:
    """The template's plain CloudFormation resources (samtranslator leaves them as they are; the SAM
    functions need a build to translate) and outputs."""
    template = load_template(ROOT / "template.yaml")
    return {
        "Resources": {
            k: v for k, v in template["Resources"].items() if not v["Type"].startswith("AWS::Serverless::")
        },
        "Outputs": template["Outputs"],
    }


def _role_session(role: str) -> Principal:
    return Principal(
        "", "AROAX:CognitoIdentityCredentials",
        f"arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/{role}/CognitoIdentityCredentials", "ASIA", "s",
        role_name=role,
    )  # fmt: skip


def test_the_identity_pools_rules_give_each_claim_its_role_and_nothing_else() -> None:
    # GIVEN the identity pool's rules as the template declares them
    rules = role_rules(_translated(), lambda value: value["Fn::GetAtt"][0])
    # THEN each value of the trigger's claim has its own role, and any other claim has none
    assert matching_role(rules, {"xpi_role": "admin"}) == "DashboardAdminRole"
    assert matching_role(rules, {"xpi_role": "operator"}) == "DashboardOperatorRole"
    assert matching_role(rules, {"xpi_role": "auditor"}) == "DashboardAuditorRole"
    assert matching_role(rules, {"xpi_role": "root"}) is None
    assert matching_role(rules, {"custom:groups": '["xpi-admins"]'}) is None


def test_only_a_role_trusting_this_identity_pool_is_given() -> None:
    translated = _translated()
    for role in ("DashboardOperatorRole", "DashboardAuditorRole", "DashboardAdminRole"):
        trust = translated["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
        resolved = json.loads(json.dumps(trust).replace('{"Ref": "DashboardIdentityPool"}', '"pool-1"'))
        assert trusts_identity_pool(resolved, "pool-1"), role
        assert not trusts_identity_pool(resolved, "pool-2"), role
    # the auditor role assumed with MFA by the account is not an identity pool's
    auditor = translated["Resources"]["AuditorRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert not trusts_identity_pool(auditor, "pool-1")


def test_the_deploy_sets_the_cognito_resources_aside_and_names_their_local_ids() -> None:
    # GIVEN the template translated with the sign-in on
    translated = _translated()
    cognito = {k for k, v in translated["Resources"].items() if v["Type"].startswith("AWS::Cognito::")}
    assert cognito == {
        "DashboardUserPool", "DashboardIdentityProvider", "DashboardUserPoolDomain",
        "DashboardUserPoolClient", "DashboardIdentityPool", "DashboardIdentityPoolRoles",
    }  # fmt: skip
    # WHEN it is prepared for moto
    cfn = without_cognito(copy.deepcopy(translated), {"DashboardIdentityPool": "local-pool"})
    # THEN no Cognito resource, nor anything naming one, is left; they are kept for the local sign-in
    assert set(cfn["Metadata"][COGNITO_METADATA]) == cognito
    assert not any(v["Type"].startswith("AWS::Cognito::") for v in cfn["Resources"].values())
    assert "DashboardSignInPermission" not in cfn["Resources"]
    left = json.dumps(cfn["Resources"]) + json.dumps(cfn["Outputs"])
    assert all(f'"{name}"' not in left and f"${{{name}" not in left for name in cognito)
    # AND the roles' trust names the local identity pool
    trust = cfn["Resources"]["DashboardOperatorRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trusts_identity_pool(trust, "local-pool")
    assert "DashboardOperatorRoleArn" in cfn["Outputs"]


def test_the_dashboard_page_is_deployed_with_the_sign_in_on_or_off() -> None:
    # GIVEN the template with its dashboard page function (deployed either way; its environment names the
    # Cognito resources, in `!If [DashboardSignInOn, ...]` branches), as the local deploy sees it
    template = load_template(ROOT / "template.yaml")
    translated = _translated()
    translated["Resources"]["DashboardPageFunction"] = copy.deepcopy(
        template["Resources"]["DashboardPageFunction"]
    )

    def variables(cfn: dict[str, Any]) -> dict[str, Any]:
        return dict(cfn["Resources"]["DashboardPageFunction"]["Properties"]["Environment"]["Variables"])

    # WHEN it is prepared for moto with the sign-in on (local ids) and off (none)
    on = without_cognito(copy.deepcopy(translated), {"DashboardUserPoolClient": "client-1"})
    off = without_cognito(copy.deepcopy(translated), {})

    # THEN the function is kept both times: the app client is the local one, or nothing
    assert variables(on)["DASHBOARD_CLIENT_ID"] == {"Fn::If": ["DashboardSignInOn", "client-1", ""]}
    assert variables(off)["DASHBOARD_CLIENT_ID"] == {"Fn::If": ["DashboardSignInOn", "", ""]}
    assert variables(off)["DASHBOARD_IDENTITY_POOL_ID"] == {"Fn::If": ["DashboardSignInOn", "", ""]}


def test_without_the_sign_in_the_deploy_is_unchanged() -> None:
    translated = _translated()
    for logical_id in [
        k for k, v in translated["Resources"].items() if v.get("Condition") == "DashboardSignInOn"
    ]:
        del translated["Resources"][logical_id]  # what CloudFormation leaves out with DashboardSignIn=none
    assert without_cognito(copy.deepcopy(translated), {}) == translated


def test_the_dashboard_admin_role_reaches_the_admin_routes_without_the_mfa_keys_it_cannot_carry() -> None:
    # GIVEN the API's resource policy with the sign-in on, and sessions allowed execute-api:* everywhere
    statements = template_resource_policy(**SIGN_IN, **{"AWS::StackName": STACK})
    admin, operator = _role_session(f"{STACK}-dashboard-admin"), _role_session(f"{STACK}-dashboard-operator")
    for method, path in document_routes():
        if not path.startswith("/v1/admin/"):
            continue
        arn = method_arn(method, path)
        # THEN the dashboard admin role's web-identity session is let through (its policy then decides)
        assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, admin) == "ALLOW", path
        # AND every other principal without MFA is still denied, even another role's session
        assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, operator) == "EXPLICIT_DENY"
        assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, user("u")) == "EXPLICIT_DENY"


def test_without_the_sign_in_no_role_is_exempt_from_the_admin_mfa_denies() -> None:
    statements = template_resource_policy()
    admin = _role_session(f"{STACK}-dashboard-admin")
    arn = method_arn("PUT", "/v1/admin/policy")
    assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, admin) == "EXPLICIT_DENY"


def _cognito(claims: dict[str, Any]) -> LocalCognito:
    minted: list[str] = []
    cognito = LocalCognito(
        REGION,
        dashboard_url="http://127.0.0.1:1/api/dashboard/index.html",
        rules=[RoleRule("xpi_role", "operator", "arn:role/operator")],
        role_trust=lambda arn: {
            "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": COGNITO},
                "Condition": {"StringEquals": {f"{COGNITO}:aud": cognito.identity_pool_id}},
            }]
        },
        mint_session=lambda arn, name: minted.append(arn) or {  # type: ignore[func-returns-value]
            "access_key_id": "ASIA1", "secret_access_key": "s", "session_token": "t",
        },
    )  # fmt: skip
    cognito._server = type("Bound", (), {"server_address": ("127.0.0.1", 9)})()  # type: ignore[assignment]
    cognito._codes["code-1"] = {
        "claims": {"sub": "u1", **claims},
        "challenge": s256("v" * 43),
        "at": time.time(),
    }
    return cognito


def _token_form(cognito: LocalCognito, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code", "code": "code-1", "client_id": cognito.client_id,
        "redirect_uri": cognito.dashboard_url, "code_verifier": verifier,
    }  # fmt: skip


def test_the_token_endpoint_needs_the_pkce_verifier_and_gives_a_code_once() -> None:
    cognito = _cognito({"xpi_role": "operator"})
    with pytest.raises(SignInRefused):
        cognito._token(_token_form(cognito, "w" * 43))  # the wrong verifier spends the code
    with pytest.raises(SignInRefused):
        cognito._token(_token_form(cognito, "v" * 43))
    cognito = _cognito({"xpi_role": "operator"})
    id_token = cognito._token(_token_form(cognito, "v" * 43))["id_token"]
    assert jwt.decode(id_token, cognito._key).claims["xpi_role"] == "operator"
    with pytest.raises(SignInRefused):
        cognito._token(_token_form(cognito, "v" * 43))


def test_the_identity_pool_gives_the_matching_roles_credentials_and_refuses_no_match() -> None:
    # GIVEN ID tokens of the user pool: one with the operator claim, one without any role claim
    operator, nobody = _cognito({"xpi_role": "operator"}), _cognito({"custom:groups": '["payroll"]'})
    for cognito in (operator, nobody):
        cognito._token_answer = cognito._token(_token_form(cognito, "v" * 43))  # type: ignore[attr-defined]

    def logins(cognito: LocalCognito) -> dict[str, Any]:
        return {"Logins": {cognito.provider_name: cognito._token_answer["id_token"]}}  # type: ignore[attr-defined]

    # WHEN / THEN the operator gets the operator role's session
    answer = operator._credentials(logins(operator))
    assert answer["Credentials"]["AccessKeyId"] == "ASIA1"
    # AND the user in no group gets nothing; nor does a forged or missing token
    with pytest.raises(SignInRefused, match="No role matched"):
        nobody._credentials(logins(nobody))
    forged = {"Logins": {operator.provider_name: logins(nobody)["Logins"][nobody.provider_name]}}
    with pytest.raises(SignInRefused, match="Invalid login token"):
        operator._credentials(forged)  # signed by another pool's key
    with pytest.raises(SignInRefused, match="Unauthenticated"):
        operator._credentials({"Logins": {}})


def test_each_dashboard_role_holds_only_execute_api_and_is_measured_with_the_sign_in_on() -> None:
    # GIVEN the roles as tests/test_least_privilege.py measures them, with the option the local stack deploys
    from xpi_tools.iam.usage import measure

    usage = measure(ROOT / "template.yaml", [], {"DashboardSignIn": "oidc"})
    # THEN each dashboard role holds execute-api:Invoke only (ApiOperatorPolicy through its conditional
    # Roles list, the auditor's and admin's own policies), and none without the option
    for role in ("DashboardOperatorRole", "DashboardAuditorRole", "DashboardAdminRole"):
        assert usage[role].granted == {"execute-api:invoke"}, role
    assert "DashboardOperatorRole" not in measure(ROOT / "template.yaml", [])
