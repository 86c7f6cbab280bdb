"""The owner of a request or batch is the role (for any of its sessions) or the IAM user."""

import pytest
from xpi.domain.ownership import is_auditor, owner_of, same_owner


@pytest.mark.parametrize(
    ("principal", "owner"),
    [
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/producer/alice",
            "arn:aws-us-gov:iam::123456789012:role/producer",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/producer/i-0abc/with/slashes",
            "arn:aws:iam::123456789012:role/producer",
        ),
        (
            "arn:aws-us-gov:iam::123456789012:user/team/alice",
            "arn:aws-us-gov:iam::123456789012:user/team/alice",
        ),
        ("AROAEXAMPLEROLEID:alice", "AROAEXAMPLEROLEID"),  # SQS SenderId / aws:userid of a role session
        ("AIDAEXAMPLEUSERID", "AIDAEXAMPLEUSERID"),  # an IAM user's unique id
    ],
)
def test_owner_of(principal: str, owner: str) -> None:
    assert owner_of(principal) == owner


def test_sessions_of_one_role_share_an_owner_and_other_roles_do_not() -> None:
    assert same_owner("AROAONE:alice", "AROAONE:bob")
    assert not same_owner("AROAONE:alice", "AROATWO:alice")
    assert not same_owner("", "")


def test_auditors_are_named_exactly() -> None:
    auditors = ("arn:aws-us-gov:iam::123456789012:role/xpi-auditor",)
    assert is_auditor("arn:aws-us-gov:sts::123456789012:assumed-role/xpi-auditor/jane", auditors)
    assert not is_auditor("arn:aws-us-gov:sts::123456789012:assumed-role/xpi-auditor2/jane", auditors)
