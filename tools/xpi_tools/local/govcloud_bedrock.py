"""GovCloud's own Bedrock on the local stack: a second Bedrock emulator playing us-gov-west-1 (its own,
smaller catalogue), whose callers are the stack account's IAM principals.

A function calls it in-partition with its execution role's session credentials (the ones moto's STS
issued, as Lambda hands them over): the emulator verifies their SigV4 against moto's STS, and each
runtime call is authorized by the role's identity policies, evaluated by the local stack's own IAM
evaluation (`bedrock:InvokeModel`, `bedrock:InvokeModelWithResponseStream` on the model's
foundation-model ARN), and written to the stack's IAM call log like every other decision, so
`xpi iam usage` and the least-privilege test see the grant used. No commercial key is involved.
"""

from collections.abc import Callable

from xpi_tools.emulator.config import AccessKey
from xpi_tools.local.iam_authorization import Authorization, is_allowed
from xpi_tools.local.principals import role_documents


class MotoAccountPrincipals:
    """The stack account's assumed-role sessions, as the GovCloud emulator's `account_principals`."""

    def __init__(self, account_id: str, region: str, record: Callable[[str, Authorization], None]) -> None:
        self._account, self._region, self._record = account_id, region, record

    def _session(self, access_key_id: str) -> object | None:
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        backend = sts_backends[self._account][get_partition(self._region)]
        return backend.get_assumed_role_from_access_key(access_key_id)

    def access_key(self, access_key_id: str) -> AccessKey | None:
        session = self._session(access_key_id)
        if session is None:
            return None
        return AccessKey(
            access_key_id=access_key_id,
            secret_access_key=session.secret_access_key,  # type: ignore[attr-defined]
            session_token=session.session_token,  # type: ignore[attr-defined]
            user=session.arn,  # type: ignore[attr-defined]
        )

    def allowed(self, access_key_id: str, action: str, resources: list[str]) -> str | None:
        session = self._session(access_key_id)
        if session is None:
            return access_key_id
        caller: str = session.arn  # type: ignore[attr-defined]
        documents = role_documents(self._account, self._region, session.role_arn)  # type: ignore[attr-defined]
        for resource in resources:
            allowed = is_allowed(documents, action, resource)
            self._record(caller, Authorization(action, resource, allowed))
            if not allowed:
                return caller
        return None
