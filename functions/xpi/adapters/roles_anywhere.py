"""Commercial credentials with no long-lived key: IAM Roles Anywhere.

The invoke step presents an X.509 certificate (certificate and private key in a GovCloud Secrets
Manager secret under its own KMS key) to the commercial account's Roles Anywhere `CreateSession`, and
gets temporary credentials of a role scoped to Bedrock, cached until shortly before they expire.

The request is signed with `iam_rolesanywhere_session.IAMRolesAnywhereSigner` (AWS's X.509 SigV4
variant). Its session class is not used: it calls `https://<endpoint>/sessions` only, so it cannot
reach the local stack's loopback emulator, and its refresh is botocore's; the POST and the cache are
here. Only the certificate secret's version and the session's expiry leave (as the credential version).
"""

import json
import time
from datetime import datetime
from typing import Any

from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session
from iam_rolesanywhere_session import IAMRolesAnywhereSigner
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from xpi.adapters import aws
from xpi.domain.errors import CredentialsRejected, CredentialsUnavailable
from xpi.models.credentials import CommercialCredentials, IamKeys
from xpi.settings import check_endpoint


class CertificateSecret(BaseModel):
    """The Roles Anywhere secret: {"certificate": PEM, "private_key": PEM, "certificate_chain": PEM?}."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    certificate: str
    private_key: SecretStr
    certificate_chain: str | None = None


class RolesAnywhereCredentials:
    def __init__(
        self,
        *,
        certificate_secret_id: str,
        trust_anchor_arn: str,
        profile_arn: str,
        role_arn: str,
        region: str,
        endpoint: str,
        duration_s: int = 3600,
        refresh_before_expiry_s: int = 300,
    ) -> None:
        self._secret_id = certificate_secret_id
        self._body = json.dumps(
            {
                "durationSeconds": duration_s,
                "profileArn": profile_arn,
                "roleArn": role_arn,
                "trustAnchorArn": trust_anchor_arn,
            }
        )
        self._region = region
        self._url = (check_endpoint(endpoint) or f"https://rolesanywhere.{region}.amazonaws.com").rstrip("/")
        self._refresh_before_expiry_s = refresh_before_expiry_s
        self._http = URLLib3Session()
        self._cached: tuple[CommercialCredentials, float] | None = None

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        if self._cached is not None and not refresh:
            credentials, expires_at = self._cached
            if time.time() < expires_at - self._refresh_before_expiry_s:
                return credentials
        self._cached = self._create_session()
        return self._cached[0]

    def _certificate(self) -> tuple[str, CertificateSecret]:
        try:
            response = aws.secretsmanager().get_secret_value(SecretId=self._secret_id)
            return response["VersionId"], CertificateSecret.model_validate_json(response["SecretString"])
        except ValidationError:
            raise CredentialsUnavailable(
                "the Roles Anywhere certificate secret has an unknown shape"
            ) from None
        except Exception as exc:
            raise CredentialsUnavailable(
                f"cannot read the certificate secret: {type(exc).__name__}"
            ) from None

    def _create_session(self) -> tuple[CommercialCredentials, float]:
        version, certificate = self._certificate()
        signer = IAMRolesAnywhereSigner(
            certificate=certificate.certificate.encode(),
            private_key=certificate.private_key.get_secret_value().encode(),
            certificate_chain=certificate.certificate_chain.encode()
            if certificate.certificate_chain
            else None,
            region=self._region,
        )
        request = AWSRequest(method="POST", url=f"{self._url}/sessions", data=self._body)
        signer.add_auth(request)
        try:
            response = self._http.send(request.prepare())
        except BotoCoreError as exc:
            raise CredentialsUnavailable(f"{type(exc).__name__} reaching Roles Anywhere") from None
        if response.status_code in (401, 403):
            # The certificate is not (or no longer) trusted, or the profile refuses it: fail closed.
            raise CredentialsRejected("Roles Anywhere refused the certificate", detail=None)
        if response.status_code >= 300:
            raise CredentialsUnavailable(f"Roles Anywhere answered HTTP {response.status_code}")
        try:
            issued: dict[str, Any] = json.loads(response.text)["credentialSet"][0]["credentials"]
            expires_at = datetime.fromisoformat(issued["expiration"].replace("Z", "+00:00")).timestamp()
            keys = IamKeys(
                aws_access_key_id=issued["accessKeyId"],
                aws_secret_access_key=SecretStr(issued["secretAccessKey"]),
                aws_session_token=SecretStr(issued["sessionToken"]),
            )
        except (ValueError, KeyError, IndexError, TypeError):
            raise CredentialsUnavailable("Roles Anywhere answered without credentials") from None
        version_id = f"rolesanywhere:{version}:{issued['expiration']}"
        return CommercialCredentials(version_id=version_id, secret=keys, source="roles-anywhere"), expires_at
