"""What template.yaml promises about who reaches whose work: the auditor is a role the stack creates and
names exactly, the example subscriber (every caller's output) is off unless asked for, only xpi's roles
publish xpi's event sources, and batch uploads are scoped to their uploader."""

from pathlib import Path
from typing import Any

import pytest
from xpi_tools.local.deploy import load_template
from xpi_tools.local.stack import LOCAL_PARAMETERS

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_the_example_subscriber_is_off_by_default_and_on_locally(template: dict[str, Any]) -> None:
    assert template["Parameters"]["CreateExampleSubscriber"]["Default"] == "false"
    for name in ("SubscriberQueue", "SubscriberDLQ", "SubscriberQueuesPolicy", "ResultsToSubscriberRule"):
        assert template["Resources"][name]["Condition"] == "CreateSubscriber"
    assert LOCAL_PARAMETERS["CreateExampleSubscriber"] == "true"


def test_the_api_names_exactly_the_auditor_role_the_stack_creates(template: dict[str, Any]) -> None:
    variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    # the auditor role; with the dashboard sign-in, also its auditor role, by the name it is given
    condition, with_sign_in, without = variables["API_AUDITOR_PRINCIPALS"]["Fn::If"]
    assert condition == "DashboardSignInOn"
    assert without == {"Fn::GetAtt": ["AuditorRole", "Arn"]}
    assert with_sign_in == {
        "Fn::Sub": "${AuditorRole.Arn},"
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-dashboard-auditor"
    }
    dashboard_auditor = template["Resources"]["DashboardAuditorRole"]["Properties"]
    assert dashboard_auditor["RoleName"] == {"Fn::Sub": "${AWS::StackName}-dashboard-auditor"}
    assert "Path" not in dashboard_auditor
    role = template["Resources"]["AuditorRole"]["Properties"]
    assert "Path" not in role  # a session ARN carries no path: the role's ARN must not have one either
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def test_the_auditor_role_may_call_the_read_routes_only(template: dict[str, Any]) -> None:
    policy = template["Resources"]["AuditorReadPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "AuditorRole"}]
    statements = policy["PolicyDocument"]["Statement"]
    (statement,) = [s for s in statements if s["Action"] == "execute-api:Invoke"]
    # the rest is xpi audit verify's reads (tests/unit/tools/test_lineage_seal_template.py)
    assert all(s["Sid"].startswith("VerifyLineage") for s in statements if s is not statement)
    routes = [resource["Fn::Sub"].split("/api/", 1)[1] for resource in statement["Resource"]]
    assert routes == ["GET/v1/requests/*", "GET/v1/batches/*", "GET/v1/compliance/report", "GET/v1/usage"]


def test_only_xpis_publishing_roles_may_put_xpi_events(template: dict[str, Any]) -> None:
    policy = template["Resources"]["XpiBusPolicy"]["Properties"]
    statement = policy["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Deny",
        "*",
        "events:PutEvents",
    )
    assert statement["Condition"]["StringLike"] == {"events:source": "xpi.*"}
    allowed = {ref["Fn::GetAtt"][0] for ref in statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
    # every role the template lets publish on the bus is named, and nothing else
    publishers = set()
    for logical_id, resource in template["Resources"].items():
        text = str(resource.get("Properties", {}).get("Policies", ""))
        if "events:PutEvents" in text or "EventBridgePutEventsPolicy" in text:
            is_role = resource["Type"] == "AWS::IAM::Role"  # else SAM names the function's role <id>Role
            publishers.add(logical_id if is_role else f"{logical_id}Role")
    assert allowed == publishers


def test_batch_uploads_and_reads_are_scoped_to_the_uploaders_prefix(template: dict[str, Any]) -> None:
    statements = {
        s.get("Sid"): s
        for s in template["Resources"]["BatchInputBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    }
    put = statements["UploadsOnlyUnderTheUploadersPrefix"]
    assert (put["Effect"], put["Action"]) == ("Deny", "s3:PutObject")
    assert put["NotResource"] == {"Fn::Sub": "${BatchInputBucket.Arn}/incoming/${!aws:userid}/*"}
    get = statements["ReadsOnlyUnderTheUploadersPrefix"]
    assert get["NotResource"] == [
        {"Fn::Sub": "${BatchInputBucket.Arn}/incoming/${!aws:userid}/*"},
        {"Fn::Sub": "${BatchInputBucket.Arn}/results/${!aws:userid}/*"},
    ]
