"""In-memory fakes of the rotation's ports: a secret with Secrets Manager's versions and staging labels,
the commercial IAM user's access keys (at most two, as IAM), and a Bedrock probe that accepts exactly
the keys IAM holds; a user's Bedrock API keys (service-specific credentials, at most two), managed only
with its key manager's access key."""

import itertools
from collections.abc import Mapping, Sequence

from pydantic import SecretStr
from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import AccessKeyMetadata, ApiKey, IamKeys, ServiceCredentialMetadata


class FakeRotatingSecret:
    def __init__(self, current: str, version: str = "v0") -> None:
        self.values: dict[str, str] = {version: current}
        self.labels: dict[str, list[str]] = {version: ["AWSCURRENT"]}
        self.others: dict[str, str] = {}  # other secrets' current values, by id (the key manager's)

    def begin(self, token: str) -> None:
        """What RotateSecret does before the first step: a version with AWSPENDING and no value."""
        for labels in self.labels.values():
            if "AWSPENDING" in labels:
                labels.remove("AWSPENDING")
        self.labels[token] = ["AWSPENDING"]

    def stages(self, secret_id: str) -> Mapping[str, Sequence[str]]:
        return {v: list(labels) for v, labels in self.labels.items()}

    def value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> str | None:
        if secret_id in self.others:
            return self.others[secret_id] if stage == "AWSCURRENT" and version_id is None else None
        for version, labels in self.labels.items():
            if (version_id is None or version == version_id) and (stage is None or stage in labels):
                return self.values.get(version)
        return None

    def current(self) -> str:
        value = self.value("", stage="AWSCURRENT")
        assert value is not None
        return value

    def put_pending(self, secret_id: str, token: str, value: str) -> None:
        if token in self.values and self.values[token] != value:
            raise AssertionError("a version's value never changes")
        self.values[token] = value
        labels = self.labels.setdefault(token, [])
        if "AWSPENDING" not in labels:
            labels.append("AWSPENDING")

    def promote(self, secret_id: str, token: str, current_version_id: str | None) -> None:
        for labels in self.labels.values():
            if "AWSPREVIOUS" in labels:
                labels.remove("AWSPREVIOUS")
        if current_version_id:
            self.labels[current_version_id].remove("AWSCURRENT")
            self.labels[current_version_id].append("AWSPREVIOUS")
        self.labels[token].append("AWSCURRENT")


class FakeCommercialIam:
    def __init__(self, *keys: IamKeys) -> None:
        self.keys: dict[str, IamKeys] = {k.aws_access_key_id: k for k in keys}
        self._ids = itertools.count(1)
        self.calls: list[str] = []

    def _signed(self, signer: IamKeys) -> None:
        known = self.keys.get(signer.aws_access_key_id)
        if known is None or known.aws_secret_access_key != signer.aws_secret_access_key:
            raise CredentialRotationFailed("commercial IAM answered InvalidClientTokenId")

    def list_access_keys(self, signer: IamKeys) -> list[AccessKeyMetadata]:
        self._signed(signer)
        self.calls.append("list")
        return [AccessKeyMetadata(access_key_id=k, status="Active") for k in self.keys]

    def create_access_key(self, signer: IamKeys) -> IamKeys:
        self._signed(signer)
        if len(self.keys) >= 2:
            raise CredentialRotationFailed("commercial IAM answered LimitExceeded")
        number = next(self._ids)
        key = IamKeys(aws_access_key_id=f"AKIANEW{number:09d}", aws_secret_access_key=f"secret-{number}")
        self.keys[key.aws_access_key_id] = key
        self.calls.append(f"create {key.aws_access_key_id}")
        return key

    def delete_access_key(self, signer: IamKeys, access_key_id: str) -> None:
        self._signed(signer)
        self.calls.append(f"delete {access_key_id}")
        self.keys.pop(access_key_id, None)


class FakeBedrockApiKeys:
    """One user's Bedrock API keys: id -> secret value; calls must be signed with the manager's key."""

    def __init__(self, manager: IamKeys, user_name: str, credentials: dict[str, str]) -> None:
        self.manager = manager
        self.user_name = user_name
        self.credentials = dict(credentials)
        self._ids = itertools.count(1)
        self.calls: list[str] = []

    def _signed(self, signer: IamKeys, user_name: str) -> None:
        if signer != self.manager:
            raise CredentialRotationFailed("commercial IAM answered InvalidClientTokenId")
        if user_name != self.user_name:
            raise CredentialRotationFailed("commercial IAM answered AccessDenied")

    def list_credentials(self, signer: IamKeys, user_name: str) -> list[ServiceCredentialMetadata]:
        self._signed(signer, user_name)
        self.calls.append("list")
        return [ServiceCredentialMetadata(credential_id=c, status="Active") for c in self.credentials]

    def create_credential(self, signer: IamKeys, user_name: str) -> ApiKey:
        self._signed(signer, user_name)
        if len(self.credentials) >= 2:
            raise CredentialRotationFailed("commercial IAM answered LimitExceeded")
        number = next(self._ids)
        credential_id, value = f"ACCANEW{number:09d}", f"ABSK-new-{number}"
        self.credentials[credential_id] = value
        self.calls.append(f"create {credential_id}")
        return ApiKey(
            type="api_key", api_key=SecretStr(value), user_name=user_name, credential_id=credential_id
        )

    def delete_credential(self, signer: IamKeys, user_name: str, credential_id: str) -> None:
        self._signed(signer, user_name)
        self.calls.append(f"delete {credential_id}")
        self.credentials.pop(credential_id, None)


class FakeProbe:
    def __init__(
        self, iam: FakeCommercialIam, refusals: int = 0, api_keys: FakeBedrockApiKeys | None = None
    ) -> None:
        self.iam = iam
        self.api_keys = api_keys
        self.refusals = refusals
        self.checked: list[str] = []

    def check(self, keys: IamKeys | ApiKey) -> None:
        if isinstance(keys, ApiKey):
            self.checked.append(keys.credential_id or "")
            valid = set(self.api_keys.credentials.values()) if self.api_keys else set()
            if self.refusals > 0 or keys.api_key.get_secret_value() not in valid:
                self.refusals = max(0, self.refusals - 1)
                raise CredentialsRejected("refused", bedrock_code="AccessDeniedException")
            return
        self.checked.append(keys.aws_access_key_id)
        if self.refusals > 0:
            self.refusals -= 1
            raise CredentialsRejected("refused", bedrock_code="UnrecognizedClientException")
        known = self.iam.keys.get(keys.aws_access_key_id)
        if known is None or known.aws_secret_access_key != keys.aws_secret_access_key:
            raise CredentialsRejected("refused", bedrock_code="UnrecognizedClientException")
