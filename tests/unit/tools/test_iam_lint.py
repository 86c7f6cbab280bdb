"""The IAM policy lint: template.yaml's policies resolved offline, linted with parliament, checked
against security/iam-lint-accepted.yaml. Needs parliament's venv (make .xpi/tools/parliament/.installed)."""

from pathlib import Path
from typing import Any

import pytest
from xpi_tools.iam import lint
from xpi_tools.iam.lint import AcceptedFinding, Finding, apply_accepted, lint_policies, lint_template
from xpi_tools.iam.template_policies import (
    NamedPolicy,
    Resolver,
    UnresolvedIntrinsicError,
    granted_actions,
    role_policies,
)

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
ACCEPTED = ROOT / "security/iam-lint-accepted.yaml"
BATCH_STATE_MACHINE_ARN = "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:xpi-local-batch"


def _intrinsics_left(value: Any, path: str = "") -> list[str]:
    """Where an unresolved Ref / Fn:: / ${...} is left in a resolved document."""
    if isinstance(value, dict):
        found = [f"{path}.{key}" for key in value if key == "Ref" or key.startswith("Fn::")]
        return found + [hit for key, item in value.items() for hit in _intrinsics_left(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in _intrinsics_left(item, f"{path}[{index}]")]
    return [path] if isinstance(value, str) and "${" in value else []


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def roles() -> dict[str, Any]:
    return role_policies(TEMPLATE)


@pytest.fixture(scope="module")
def template_report() -> lint.LintReport:
    return lint_template(TEMPLATE, ACCEPTED)


def identity_policy(*statements: dict[str, Any]) -> NamedPolicy:
    return NamedPolicy(
        "FixtureRole",
        "FixtureRolePolicy0",
        "identity",
        {"Version": "2012-10-17", "Statement": list(statements)},
    )


def test_every_role_resolves_with_no_intrinsic_left(roles: dict[str, Any]) -> None:
    # Every function and state machine of the template has its role, and nothing is left unresolved.
    assert {"InvokeModelFunctionRole", "BatchProgressFunctionRole", "InferenceStateMachineRole"} <= set(roles)
    for role in roles.values():
        # The auditor role is assumed by people (with MFA), not by a function or state machine.
        assert role.used_by or role.role == "AuditorRole", f"{role.role} is used by nothing"
        assert _intrinsics_left(list(role.documents)) == [], role.role
        assert all(arn.startswith("arn:aws-us-gov:") for arn in role.managed_policy_arns), role.role
    assert roles["InvokeModelFunctionRole"].used_by == ("InvokeModelFunction",)
    assert roles["BatchStateMachineRole"].used_by == ("BatchStateMachine",)


def test_references_become_plausible_arns(roles: dict[str, Any]) -> None:
    resources = {
        resource
        for document in roles["ConsumeRequestsFunctionRole"].documents
        for statement in _statements(document)
        for resource in _as_list(statement["Resource"])
    }
    assert "arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/xpi-local-LineageTable" in resources
    assert "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:xpi-local-RequestsQueue" in resources
    assert (
        "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:xpi-local-QueueStateMachine"
        in resources
    )


def test_batch_progress_can_poll_its_queue_and_resume_the_batch(roles: dict[str, Any]) -> None:
    # CloudFormation refuses an SQS event source mapping whose function's role cannot receive from the queue.
    progress = roles["BatchProgressFunctionRole"]
    poller = [
        statement
        for document in progress.documents
        for statement in _statements(document)
        if "sqs:ReceiveMessage" in _as_list(statement["Action"])
    ]
    assert [statement["Resource"] for statement in poller] == [
        "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:xpi-local-BatchProgressQueue"
    ]
    for role in ("BatchProgressFunctionRole", "BatchReleaseFunctionRole"):
        granted = granted_actions(roles[role])
        assert "states:sendtasksuccess" in granted
        assert not {"states:sendtaskfailure", "states:sendtaskheartbeat"} & granted  # the code calls neither


def test_granted_actions_include_the_aws_managed_policies(roles: dict[str, Any]) -> None:
    granted = granted_actions(roles["InvokeModelFunctionRole"])
    assert {"logs:putlogevents", "xray:puttracesegments", "secretsmanager:getsecretvalue"} <= granted
    assert "s3:putlifecycleconfiguration" not in granted  # it stores outputs, nothing more


def test_an_intrinsic_that_cannot_be_resolved_raises() -> None:
    resolver = Resolver({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    assert (
        resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]})
        == "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:xpi-local-Queue"
    )
    with pytest.raises(UnresolvedIntrinsicError):
        resolver.resolve({"Fn::ImportValue": "shared-queue-arn"})
    with pytest.raises(UnresolvedIntrinsicError):
        resolver.resolve({"Fn::GetAtt": ["Queue", "NoSuchAttribute"]})


def test_send_task_success_on_a_state_machine_arn_is_reported() -> None:
    # GIVEN the grant as it was: a task-token action scoped to the state machine
    on_state_machine = identity_policy(
        {"Effect": "Allow", "Action": "states:SendTaskSuccess", "Resource": BATCH_STATE_MACHINE_ARN}
    )
    # WHEN it is linted
    _, findings = lint_policies([on_state_machine])
    # THEN it fails the lint: the action takes only "*"
    mismatch = [
        f for f in findings if f.issue == "RESOURCE_MISMATCH" and f.action == "states:SendTaskSuccess"
    ]
    assert len(mismatch) == 1
    assert mismatch[0].fails and lint.at_least(mismatch[0].severity, "MEDIUM")
    assert mismatch[0].resource == BATCH_STATE_MACHINE_ARN

    _, fixed = lint_policies(
        [identity_policy({"Effect": "Allow", "Action": "states:SendTaskSuccess", "Resource": "*"})]
    )
    assert [f for f in fixed if f.fails] == []


def test_an_action_that_does_not_exist_fails() -> None:
    misspelt = identity_policy({"Effect": "Allow", "Action": "dynamodb:PutItems", "Resource": "*"})
    _, findings = lint_policies([misspelt])
    assert [(f.issue, f.action, f.fails) for f in findings if f.issue == "UNKNOWN_ACTION"] == [
        ("UNKNOWN_ACTION", "dynamodb:PutItems", True)
    ]


def test_the_template_lints_clean_against_the_accepted_file(template_report: lint.LintReport) -> None:
    assert [f"{f.principal} {f.issue} {f.action} {f.resource}" for f in template_report.failures] == []
    assert template_report.stale == ()
    assert template_report.ok
    # Every kind of policy is linted: roles' inline policies, AWS managed ones, resource policies.
    principals = {policy.principal for policy in template_report.policies}
    assert {"InvokeModelFunctionRole", "AWS managed", "XpiKey", "RequestsQueuesPolicy"} <= principals


def test_a_stale_accepted_entry_fails(
    template_report: lint.LintReport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an accepted entry for a finding the template no longer has
    stale = AcceptedFinding(
        "BatchReleaseFunctionRole",
        "RESOURCE_MISMATCH",
        "states:SendTaskSuccess",
        BATCH_STATE_MACHINE_ARN,
        "was fixed",
    )
    findings, unmatched = apply_accepted(template_report.findings, [*lint.load_accepted(ACCEPTED), stale])
    # THEN it is reported as stale, and `xpi iam lint` fails on it
    assert unmatched == [stale]
    assert all(not f.fails for f in findings)

    accepted = tmp_path / "accepted.yaml"
    stale_entry = f"""
  - principal: BatchReleaseFunctionRole
    issue: RESOURCE_MISMATCH
    action: states:SendTaskSuccess
    resource: {BATCH_STATE_MACHINE_ARN}
    reason: was fixed
"""
    accepted.write_text(ACCEPTED.read_text(encoding="utf-8") + stale_entry, encoding="utf-8")
    assert lint.main(["lint", "--template", str(TEMPLATE), "--accepted", str(accepted)]) == 1
    assert "no longer occurs" in capsys.readouterr().out


def test_an_accepted_entry_matches_one_finding_exactly() -> None:
    finding = Finding(
        "RoleA", "RoleAPolicy0", "MEDIUM", "UNKNOWN_ACTION", "sqs:DeleteMessageBatch", "arn:q", ""
    )
    other_role = AcceptedFinding("RoleB", "UNKNOWN_ACTION", "sqs:DeleteMessageBatch", "arn:q", "reason")
    findings, unmatched = apply_accepted([finding], [other_role])
    assert findings == [finding] and finding.fails
    assert unmatched == [other_role]
