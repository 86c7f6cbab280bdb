"""Least privilege, measured (`xpi iam usage`): used vs granted per role, and the reasons file."""

import json
from pathlib import Path

import pytest
from xpi_tools.iam.usage import RoleUsage, problems, read_calls, table, write_doc


def _log(folder: Path, name: str, roles: dict[str, str], entries: list[tuple[str, str, bool]]) -> None:
    lines = [json.dumps({"roles": roles})]
    for principal, action, allowed in entries:
        lines.append(
            json.dumps({"principal": principal, "action": action, "resource": None, "allowed": allowed})
        )
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_calls_are_read_per_role_logical_id_across_stacks(tmp_path: Path) -> None:
    # GIVEN two stacks' call logs, each naming its roles' physical names
    session = "arn:aws-us-gov:sts::123456789012:assumed-role/{}/session"
    _log(
        tmp_path,
        "a.jsonl",
        {"s-FnRole-A": "FnRole"},
        [(session.format("s-FnRole-A"), "sqs:SendMessage", True)],
    )
    _log(
        tmp_path,
        "b.jsonl",
        {"s-FnRole-B": "FnRole"},
        [
            (session.format("s-FnRole-B"), "dynamodb:PutItem", False),
            ("arn:aws-us-gov:iam::123456789012:user/xpi-local-operator", "iam:CreateUser", True),
        ],
    )
    # WHEN they are read THEN every role call is keyed by the template's logical id; users are left out
    assert sorted(read_calls(tmp_path)) == [
        ("FnRole", "dynamodb:PutItem", False),
        ("FnRole", "sqs:SendMessage", True),
    ]


def _usage() -> dict[str, RoleUsage]:
    return {
        "FnRole": RoleUsage(
            "FnRole",
            granted={"sqs:sendmessage", "dynamodb:deleteitem", "logs:putlogevents", "kms:re*"},
            used={"sqs:sendmessage", "kms:reencryptfrom"},
            denied={"dynamodb:putitem"},
        )
    }


def test_an_unused_grant_without_a_reason_fails_the_check() -> None:
    # GIVEN a role that holds two grants no test used; a reason is given for one of them
    reasons = {"*": {"logs:putlogevents": "written by the Lambda service"}}
    # THEN the other one is a problem (a wildcard grant used through a matching action is not)
    assert problems(_usage(), reasons) == [
        "FnRole: dynamodb:deleteitem is granted, no test uses it, "
        "and security/unused-grants.yaml gives no reason"
    ]
    # AND with its reason there is none
    assert problems(_usage(), {**reasons, "FnRole": {"dynamodb:deleteitem": "kept for the reaper"}}) == []


@pytest.mark.parametrize(
    ("reasons", "problem"),
    [
        ({"FnRole": {"s3:putobjectacl": "x"}}, "FnRole does not hold s3:putobjectacl"),
        ({"GoneRole": {"sqs:sendmessage": "x"}}, "names GoneRole, which is not a role of the template"),
    ],
)
def test_a_reason_for_a_grant_that_is_gone_fails_the_check(
    reasons: dict[str, dict[str, str]], problem: str
) -> None:
    assert any(problem in found for found in problems(_usage(), reasons))


def test_the_table_shows_used_unused_with_reason_and_denied(tmp_path: Path) -> None:
    generated = table(_usage(), {"*": {"logs:putlogevents": "written by the Lambda service"}})
    assert "| FnRole | `sqs:sendmessage` | yes |  |" in generated
    assert "| FnRole | `logs:putlogevents` | no | written by the Lambda service |" in generated
    assert "| FnRole | `dynamodb:putitem` | **denied** |  |" in generated
    # AND it replaces only its own block of the document, every time
    document = tmp_path / "security.md"
    document.write_text("# Security\n\n## Policy lint\nkept\n", encoding="utf-8")
    write_doc(document, generated)
    write_doc(document, generated)
    text = document.read_text(encoding="utf-8")
    assert text.count("role-action-table:start") == 1 and "## Policy lint\nkept" in text
