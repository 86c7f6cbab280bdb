"""Who calls the local stack's AWS API, and with which credentials, as on AWS:

- each function runs with temporary credentials of its own execution role, as Lambda gives it (an
  AssumeRole made in moto's STS, in this process, as the Lambda service would: only when the role's
  trust policy names `lambda.amazonaws.com`);
- each state machine's tasks run as the state machine's role (trusting `states.amazonaws.com`);
- each SQS event source mapping polls with its function's role, as Lambda's pollers do;
- the operator (the stack's "testing" keys, what a developer and the tests use) is an IAM user with
  every permission, standing in for the account administrator who deploys and drives the stack.
"""

import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

OPERATOR_USER = "xpi-local-operator"
OPERATOR_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
LAMBDA_SERVICE = "lambda.amazonaws.com"
STATES_SERVICE = "states.amazonaws.com"
SESSION_SECONDS = 12 * 3600  # the longest a role session may last; a local stack is restarted sooner


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """As Lambda sets them in a function's environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class UntrustedRole(PermissionError):
    """The role's trust policy does not let the service assume it: AWS would refuse too."""


def trusts_service(trust_policy: str | dict[str, Any], service: str) -> bool:
    document = json.loads(unquote(trust_policy)) if isinstance(trust_policy, str) else trust_policy
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        principals = (statement.get("Principal") or {}).get("Service", [])
        if (
            statement.get("Effect") == "Allow"
            and "sts:AssumeRole" in (actions if isinstance(actions, list) else [actions])
            and service in (principals if isinstance(principals, list) else [principals])
        ):
            return True
    return False


class RoleSessions:
    """Temporary credentials per role, minted once in moto's STS (in this process) and reused."""

    def __init__(self, account_id: str, region: str) -> None:
        from moto.utilities.utils import get_partition

        self._account, self._region = account_id, region
        self._partition = get_partition(region)
        self._sessions: dict[str, RoleCredentials] = {}
        self._lock = threading.Lock()

    def credentials(self, role_arn: str, service: str, session_name: str) -> RoleCredentials:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        with self._lock:
            if role_arn not in self._sessions:
                role = iam_backends[self._account][self._partition].get_role_by_arn(role_arn)
                if not trusts_service(role.assume_role_policy_document, service):
                    raise UntrustedRole(f"{role_arn} does not trust {service}")
                assumed = sts_backends[self._account][self._partition].assume_role(
                    region_name=self._region,
                    role_session_name=session_name[:64],
                    role_arn=role_arn,
                    policy="",
                    duration=SESSION_SECONDS,
                    external_id="",
                )
                self._sessions[role_arn] = RoleCredentials(
                    assumed.access_key_id, assumed.secret_access_key, assumed.session_token
                )
            return self._sessions[role_arn]


def role_documents(account_id: str, region: str, role_arn: str) -> list[dict[str, Any]]:
    """The identity policy documents of a role as moto holds them (inline and attached)."""
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    iam = iam_backends[account_id][get_partition(region)]
    role = iam.get_role_by_arn(role_arn)
    documents = [_parsed(document) for document in role.policies.values()]
    for policy in role.managed_policies.values():
        version = next(v for v in policy.versions if v.is_default)
        documents.append(_parsed(version.document))
    return documents


def _parsed(document: str | dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(unquote(document)) if isinstance(document, str) else document
    return parsed


def create_operator(account_id: str, region: str) -> None:
    """The operator user, holding the stack's well-known "testing" keys and every permission (local only:
    it stands in for the administrator of the account, never for a role of the template)."""
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    iam = iam_backends[account_id][get_partition(region)]
    iam.create_user(region_name=region, user_name=OPERATOR_USER, path="/", tags=[])
    iam.put_user_policy(
        OPERATOR_USER,
        "LocalAdministrator",
        json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(OPERATOR_USER)
    key.access_key_id = OPERATOR_KEYS["AWS_ACCESS_KEY_ID"]
    key.secret_access_key = OPERATOR_KEYS["AWS_SECRET_ACCESS_KEY"]
