"""In-memory fakes of the rotation's ports: a secret with Secrets Manager's versions and staging labels,
the commercial IAM user's access keys (at most two, as IAM), and a Bedrock probe that accepts exactly
the keys IAM holds."""

import itertools
from collections.abc import Mapping, Sequence

from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import AccessKeyMetadata, IamKeys


class FakeRotatingSecret:
    def __init__(self, current: str, version: str = "v0") -> None:
        self.values: dict[str, str] = {version: current}
        self.labels: dict[str, list[str]] = {version: ["AWSCURRENT"]}

    def begin(self, token: str) -> None:
        """What RotateSecret does before the first step: a version with AWSPENDING and no value."""
        for labels in self.labels.values():
            if "AWSPENDING" in labels:
                labels.remove("AWSPENDING")
        self.labels[token] = ["AWSPENDING"]

    def stages(self, secret_id: str) -> Mapping[str, Sequence[str]]:
        return {v: list(labels) for v, labels in self.labels.items()}

    def value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> str | None:
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


class FakeProbe:
    def __init__(self, iam: FakeCommercialIam, refusals: int = 0) -> None:
        self.iam = iam
        self.refusals = refusals
        self.checked: list[str] = []

    def check(self, keys: IamKeys) -> None:
        self.checked.append(keys.aws_access_key_id)
        if self.refusals > 0:
            self.refusals -= 1
            raise CredentialsRejected("refused", bedrock_code="UnrecognizedClientException")
        known = self.iam.keys.get(keys.aws_access_key_id)
        if known is None or known.aws_secret_access_key != keys.aws_secret_access_key:
            raise CredentialsRejected("refused", bedrock_code="UnrecognizedClientException")
