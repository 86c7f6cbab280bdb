"""The commercial IAM API, as much of it as credential rotation needs: a user's access keys and its
Bedrock service-specific credentials (long-term Bedrock API keys).

AWS's query protocol (form-encoded POST to `/`, XML answers), SigV4 with the `iam` service scoped to
`us-east-1`, as the global endpoint `iam.amazonaws.com` expects. A caller manages its own user's
keys only (what a self-management policy on `user/${aws:username}` grants), except that a configured
key manager may manage its one managed user's Bedrock service-specific credentials; like IAM, a user holds at
most two access keys and two Bedrock credentials. Keys made here authenticate Bedrock calls at once
and stop at once when deleted or made Inactive. Nothing secret is logged.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from xpi_tools.emulator.config import AccessKey, ApiKey
from xpi_tools.emulator.errors import BedrockError
from xpi_tools.emulator.httpserver import Request, Response
from xpi_tools.emulator.sigv4 import SigV4Verifier
from xpi_tools.emulator.state import KeyStore

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
BEDROCK_SERVICE = "bedrock.amazonaws.com"
MAX_ACCESS_KEYS = 2
MAX_SERVICE_CREDENTIALS = 2
# The front end's JSON codes (what the shared verifier raises) as IAM's query protocol names them.
IAM_AUTH_CODES = {
    "UnrecognizedClientException": "InvalidClientTokenId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "ExpiredTokenException": "ExpiredToken",
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
}
SERVICE_CREDENTIAL_ACTIONS = frozenset(
    {
        "CreateServiceSpecificCredential",
        "ResetServiceSpecificCredential",
        "ListServiceSpecificCredentials",
        "UpdateServiceSpecificCredential",
        "DeleteServiceSpecificCredential",
    }
)
STATUS = {"LimitExceeded": 409, "NoSuchEntity": 404, "AccessDenied": 403, "ValidationError": 400}


class IamError(Exception):
    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS.get(code, 400)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _members(name: str, items: list[str]) -> str:
    return f"<{name}>" + "".join(f"<member>{item}</member>" for item in items) + f"</{name}>"


def is_iam_request(request: Request) -> bool:
    """IAM's query protocol: a form POST to `/` (Bedrock's routes all have a path)."""
    return request.method == "POST" and request.path == "/"


class IamService:
    def __init__(
        self,
        keys: KeyStore,
        account_id: str,
        now: Callable[[], float],
        max_skew_seconds: int,
        *,
        key_managers: Mapping[str, str] | None = None,
    ) -> None:
        self.keys = keys
        self.key_managers = dict(key_managers or {})
        self.account_id = account_id
        self.now = now
        self.verifier = SigV4Verifier("us-east-1", "iam", max_skew_seconds)

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[Response, str | None]:
        params = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        try:
            caller = self._authenticate(request)
        except BedrockError as error:
            code = IAM_AUTH_CODES.get(error.code, error.code)
            return self._error(IamError(code, error.message, 403)), None
        handler = self._actions().get(action)
        try:
            if handler is None:
                raise IamError("InvalidAction", f"Could not find operation {action} for version 2010-05-08")
            user = params.get("UserName") or caller.user
            if not self._allowed(caller, user, action):
                raise IamError(
                    "AccessDenied",
                    f"User: {self._arn(caller.user)} is not authorized to perform: iam:{action} on resource: "
                    f"user {user} because no identity-based policy allows the iam:{action} action",
                )
            result = handler(user, params)
        except IamError as error:
            return self._error(error), caller.access_key_id
        body = (
            f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>"
        )
        return Response(200, body.encode(), [("Content-Type", "text/xml")]), caller.access_key_id

    def _allowed(self, caller: AccessKey, user: str, action: str) -> bool:
        if caller.session_token is not None:  # a role session is no IAM user
            return False
        if user == caller.user:
            return True
        return self.key_managers.get(caller.user) == user and action in SERVICE_CREDENTIAL_ACTIONS

    def _authenticate(self, request: Request) -> AccessKey:
        return self.verifier.verify(
            request, request.header("authorization"), self.keys.access_keys, self.now()
        )

    def _actions(self) -> Mapping[str, Callable[[str, dict[str, str]], str]]:
        return {
            "CreateAccessKey": self.create_access_key,
            "ListAccessKeys": self.list_access_keys,
            "UpdateAccessKey": self.update_access_key,
            "DeleteAccessKey": self.delete_access_key,
            "CreateServiceSpecificCredential": self.create_service_credential,
            "ResetServiceSpecificCredential": self.reset_service_credential,
            "ListServiceSpecificCredentials": self.list_service_credentials,
            "UpdateServiceSpecificCredential": self.update_service_credential,
            "DeleteServiceSpecificCredential": self.delete_service_credential,
        }

    def _arn(self, user: str) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{user}"

    @staticmethod
    def _error(error: IamError) -> Response:
        kind = "Receiver" if error.status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>{_element("Code", error.code)}'
            f"{_element('Message', error.message)}</Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return Response(error.status, body.encode(), [("Content-Type", "text/xml")])

    @staticmethod
    def _status(params: dict[str, str]) -> str:
        status = params.get("Status", "")
        if status not in ("Active", "Inactive"):
            raise IamError("ValidationError", "Status must be Active or Inactive")
        return status

    # -- access keys ---------------------------------------------------------------------------

    def _user_keys(self, user: str) -> list[AccessKey]:
        return [k for k in self.keys.access_keys.values() if k.user == user and k.session_token is None]

    def _own_key(self, user: str, params: dict[str, str]) -> AccessKey:
        key = self.keys.access_keys.get(params.get("AccessKeyId", ""))
        if key is None or key.user != user or key.session_token is not None:
            raise IamError(
                "NoSuchEntity", f"The Access Key with id {params.get('AccessKeyId')} cannot be found."
            )
        return key

    def create_access_key(self, user: str, params: dict[str, str]) -> str:
        if len(self._user_keys(user)) >= MAX_ACCESS_KEYS:
            raise IamError("LimitExceeded", f"Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}")
        key = AccessKey(
            access_key_id="AKIA" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            user=user,
            created_at=self.now(),
        )
        self.keys.add_access_key(key)
        return (
            f"<AccessKey>{_element('UserName', user)}{_element('AccessKeyId', key.access_key_id)}"
            f"<Status>Active</Status>{_element('SecretAccessKey', key.secret_access_key)}"
            f"{_element('CreateDate', _iso(key.created_at))}</AccessKey>"
        )

    def list_access_keys(self, user: str, params: dict[str, str]) -> str:
        members = [
            f"{_element('UserName', user)}{_element('AccessKeyId', k.access_key_id)}"
            f"{_element('Status', k.status)}{_element('CreateDate', _iso(k.created_at))}"
            for k in self._user_keys(user)
        ]
        return _members("AccessKeyMetadata", members) + "<IsTruncated>false</IsTruncated>"

    def update_access_key(self, user: str, params: dict[str, str]) -> str:
        key = self._own_key(user, params)
        self.keys.add_access_key(dataclasses.replace(key, status=self._status(params)))
        return ""

    def delete_access_key(self, user: str, params: dict[str, str]) -> str:
        self.keys.revoke_access_key(self._own_key(user, params).access_key_id)
        return ""

    # -- service-specific credentials (long-term Bedrock API keys) --------------------------------

    def _user_credentials(self, user: str) -> list[ApiKey]:
        return [k for k in self.keys.api_keys.values() if k.user == user]

    def _own_credential(self, user: str, params: dict[str, str]) -> ApiKey:
        wanted = params.get("ServiceSpecificCredentialId", "")
        for key in self._user_credentials(user):
            if key.name == wanted:
                return key
        raise IamError("NoSuchEntity", f"No such credential {wanted} exists")

    def _new_secret(self, alias: str) -> str:
        return "ABSK" + base64.b64encode(f"{alias}:{secrets.token_urlsafe(40)}".encode()).decode()

    def _alias(self, user: str) -> str:
        return f"{user}-at-{self.account_id}"

    def _credential_xml(self, key: ApiKey, *, with_secret: bool) -> str:
        expiry = _element("ExpirationDate", _iso(key.expires_at)) if key.expires_at is not None else ""
        secret = _element("ServiceCredentialSecret", key.key) if with_secret else ""
        return (
            f"{_element('CreateDate', _iso(key.created_at))}{expiry}"
            f"{_element('ServiceName', BEDROCK_SERVICE)}"
            f"{_element('ServiceCredentialAlias', self._alias(key.user or ''))}{secret}"
            f"{_element('ServiceSpecificCredentialId', key.name)}{_element('UserName', key.user or '')}"
            f"{_element('Status', key.status)}"
        )

    def _one_credential(self, key: ApiKey) -> str:
        body = self._credential_xml(key, with_secret=True)
        return f"<ServiceSpecificCredential>{body}</ServiceSpecificCredential>"

    def create_service_credential(self, user: str, params: dict[str, str]) -> str:
        if params.get("ServiceName") != BEDROCK_SERVICE:
            raise IamError("NotSupportedService", f"Service {params.get('ServiceName')} is not supported")
        if len(self._user_credentials(user)) >= MAX_SERVICE_CREDENTIALS:
            raise IamError(
                "LimitExceeded",
                "Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: "
                f"{MAX_SERVICE_CREDENTIALS}",
            )
        now = self.now()
        days = params.get("CredentialAgeDays")
        key = ApiKey(
            key=self._new_secret(self._alias(user)),
            name="ACCA" + secrets.token_hex(8).upper(),
            expires_at=now + int(days) * 86400 if days else None,
            user=user,
            created_at=now,
        )
        self.keys.add_api_key(key)
        return self._one_credential(key)

    def reset_service_credential(self, user: str, params: dict[str, str]) -> str:
        old = self._own_credential(user, params)
        self.keys.revoke_api_key(old.name)
        key = dataclasses.replace(old, key=self._new_secret(self._alias(user)))
        self.keys.add_api_key(key)
        return self._one_credential(key)

    def list_service_credentials(self, user: str, params: dict[str, str]) -> str:
        members = [self._credential_xml(k, with_secret=False) for k in self._user_credentials(user)]
        return _members("ServiceSpecificCredentials", members) + "<IsTruncated>false</IsTruncated>"

    def update_service_credential(self, user: str, params: dict[str, str]) -> str:
        old = self._own_credential(user, params)
        status = self._status(params)
        self.keys.revoke_api_key(old.name)
        self.keys.add_api_key(dataclasses.replace(old, status=status))
        return ""

    def delete_service_credential(self, user: str, params: dict[str, str]) -> str:
        self.keys.revoke_api_key(self._own_credential(user, params).name)
        return ""
