"""Commercial-partition credentials, read from a GovCloud Secrets Manager secret (its shapes are in
xpi.models.credentials).

Values are cached for a short TTL by Powertools Parameters and re-read on demand when Bedrock rejects
them (rotation). Only the secret's version id ever leaves this module in logs, lineage or events.
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import BaseProvider
from pydantic import ValidationError

from xpi.adapters import aws
from xpi.domain.errors import CredentialsUnavailable
from xpi.models.credentials import COMMERCIAL_SECRET, CommercialCredentials


class _VersionedSecretsProvider(BaseProvider):
    """Powertools' caching around GetSecretValue, keeping the version id that SecretsProvider drops."""

    def _get(self, name: str, **sdk_options: Any) -> str:
        response = aws.secretsmanager().get_secret_value(SecretId=name, **sdk_options)
        return json.dumps({"version_id": response["VersionId"], "secret": response.get("SecretString", "")})

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError("commercial credentials are one secret")


class SecretsManagerCredentials:
    def __init__(self, secret_id: str, max_age_s: int) -> None:
        self._secret_id = secret_id
        self._max_age_s = max_age_s
        self._provider = _VersionedSecretsProvider()  # type: ignore[no-untyped-call]

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        try:
            raw = self._provider.get(self._secret_id, max_age=self._max_age_s, force_fetch=refresh)
        except Exception as exc:  # Powertools wraps SDK errors in GetParameterError
            raise CredentialsUnavailable(
                f"cannot read the commercial credentials secret: {type(exc).__name__}"
            ) from None
        envelope = json.loads(str(raw))
        try:
            secret = COMMERCIAL_SECRET.validate_json(envelope["secret"])
        except ValidationError:
            raise CredentialsUnavailable(
                f"the commercial credentials secret (version {envelope['version_id']}) has an unknown shape"
            ) from None
        return CommercialCredentials(version_id=envelope["version_id"], secret=secret)
