"""Who owns a request or a batch: the role or user behind a caller, never a session name.

The fixed session rule: a role session's name is chosen by whoever assumes the role, so it names
nothing. Every session of one role is the same owner (the role); an IAM user is the owner by its own
ARN (or, in the `aws:userid` form, by its unique id). A role's session may therefore read only what
that role sent, whatever the session is called.

Two spellings of a principal reach xpi, and each maps to its owner:
- ARNs (API Gateway's `requestContext.identity.userArn`):
  `arn:<p>:sts::<account>:assumed-role/<role>/<session>` -> `arn:<p>:iam::<account>:role/<role>`
  (a session ARN carries no role path, so the owner is the role's ARN without one); an IAM user's
  ARN is its own owner.
- `aws:userid` form (SQS `SenderId`, API Gateway's `identity.caller`, the S3 policy variable
  `${aws:userid}`): `<role unique id>:<session>` -> `<role unique id>`; a user's unique id is its own owner.
"""

import re

_ASSUMED_ROLE = re.compile(
    r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$"
)
_ROLE_SESSION_ID = re.compile(r"^(?P<role_id>AROA[A-Z0-9]+):.+$")


def owner_of(principal: str) -> str:
    """The owner behind a principal (an ARN or an `aws:userid`): the role for any of its sessions."""
    assumed = _ASSUMED_ROLE.match(principal)
    if assumed:
        return f"arn:{assumed['partition']}:iam::{assumed['account']}:role/{assumed['role']}"
    session = _ROLE_SESSION_ID.match(principal)
    if session:
        return session["role_id"]
    return principal


def same_owner(first: str, second: str) -> bool:
    return bool(first) and owner_of(first) == owner_of(second)


def is_auditor(principal: str, auditors: tuple[str, ...] | list[str]) -> bool:
    """Auditors are named exactly (role or user ARNs); any session of an auditor role is an auditor."""
    return owner_of(principal) in auditors
