"""IAM Roles Anywhere `CreateSession` (`POST /sessions`), as the commercial side answers it.

The request is signed with an X.509 certificate's private key (SigV4 with the algorithm
`AWS4-X509-RSA-SHA256` or `AWS4-X509-ECDSA-SHA256`, the credential being the certificate's serial number,
the certificate in `X-Amz-X509` and intermediates in `X-Amz-X509-Chain`, base64 DER). Checked here, as
AWS specifies: the certificate chains to the configured trust anchor (each link's signature and validity
period), its serial is the credential's, the scope is this region and `rolesanywhere`, the signature
verifies with the certificate's public key over the SigV4 string to sign, and the body names the
configured trust anchor, profile and role. The answer is a temporary key (session token, expiry) that
Bedrock then accepts until it expires. Nothing secret is logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
import uuid
from calendar import timegm
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from xpi_tools.emulator.config import AccessKey, RolesAnywhere
from xpi_tools.emulator.errors import BedrockError
from xpi_tools.emulator.httpserver import Request, Response
from xpi_tools.emulator.sigv4 import AMZ_DATE_FORMAT, canonical_request
from xpi_tools.emulator.state import KeyStore

ALGORITHMS = {"AWS4-X509-RSA-SHA256", "AWS4-X509-ECDSA-SHA256"}
MAX_CHAIN = 5


def _denied(message: str) -> BedrockError:
    return BedrockError("AccessDeniedException", message, status=403)


def is_create_session(request: Request) -> bool:
    return request.method == "POST" and request.path == "/sessions"


def _certificate(value: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise _denied("Invalid certificate") from None


class RolesAnywhereService:
    def __init__(self, config: RolesAnywhere, keys: KeyStore, region: str, now: Callable[[], float]) -> None:
        self.config = config
        self.anchor = x509.load_pem_x509_certificate(config.trust_anchor_pem)
        self.keys = keys
        self.region = region
        self.now = now

    def handle(self, request: Request) -> Response:
        try:
            return self._create_session(request)
        except BedrockError as error:
            return Response(
                error.status,
                json.dumps({"message": error.message}).encode(),
                [("Content-Type", "application/json"), ("x-amzn-ErrorType", error.code)],
            )

    def _parse(self, request: Request) -> tuple[str, list[str], list[str], str]:
        authorization = request.header("authorization") or ""
        algorithm, _, rest = authorization.partition(" ")
        if algorithm not in ALGORITHMS:
            raise _denied("Unsupported signing algorithm")
        params = dict(part.strip().partition("=")[::2] for part in rest.split(","))
        scope = params.get("Credential", "").split("/")
        signed = params.get("SignedHeaders", "").split(";")
        if (
            len(scope) != 5
            or not params.get("Signature")
            or "host" not in signed
            or "x-amz-x509" not in signed
        ):
            raise _denied("Malformed authorization header")
        return algorithm, scope, signed, params["Signature"]

    def _check_chain(self, leaf: x509.Certificate, chain: list[x509.Certificate], now: datetime) -> None:
        current = leaf
        for _ in range(MAX_CHAIN):
            if not current.not_valid_before_utc <= now <= current.not_valid_after_utc:
                raise _denied("Certificate is not valid at this time")
            issuer = self.anchor if current.issuer == self.anchor.subject else None
            issuer = issuer or next((c for c in chain if c.subject == current.issuer), None)
            if issuer is None:
                raise _denied("Untrusted signing certificate")
            try:
                current.verify_directly_issued_by(issuer)
            except (InvalidSignature, ValueError, TypeError):
                raise _denied("Untrusted signing certificate") from None
            if issuer is self.anchor:
                if not self.anchor.not_valid_before_utc <= now <= self.anchor.not_valid_after_utc:
                    raise _denied("Trust anchor is not valid at this time")
                return
            current = issuer
        raise _denied("Certificate chain too long")

    def _create_session(self, request: Request) -> Response:
        algorithm, scope, signed, signature = self._parse(request)
        serial, date, region, service, terminator = scope
        amz_date = request.header("x-amz-date") or ""
        now = self.now()
        try:
            signed_at = timegm(time.strptime(amz_date, AMZ_DATE_FORMAT))
        except ValueError:
            raise _denied("Invalid X-Amz-Date") from None
        if abs(now - signed_at) > 300 or date != amz_date[:8]:
            raise _denied("Signature expired or not yet current")
        if (region, service, terminator) != (self.region, "rolesanywhere", "aws4_request"):
            raise _denied("Credential should be scoped to this region and rolesanywhere")
        leaf = _certificate(request.header("x-amz-x509") or "")
        chain_header = request.header("x-amz-x509-chain")
        chain = [_certificate(c) for c in chain_header.split(",")] if chain_header else []
        if str(leaf.serial_number) != serial:
            raise _denied("Credential does not name the signing certificate")
        self._check_chain(leaf, chain, datetime.fromtimestamp(now, UTC))
        string_to_sign = "\n".join(
            (
                algorithm,
                amz_date,
                "/".join((date, region, service, terminator)),
                hashlib.sha256(canonical_request(request, tuple(signed)).encode()).hexdigest(),
            )
        )
        _verify(leaf, bytes.fromhex(signature), string_to_sign.encode())
        body = json.loads(request.body or b"{}")
        wanted = (self.config.trust_anchor_arn, self.config.profile_arn, self.config.role_arn)
        if (body.get("trustAnchorArn"), body.get("profileArn"), body.get("roleArn")) != wanted:
            raise _denied("The trust anchor, profile or role is not this account's")
        duration = int(body.get("durationSeconds", 3600))
        if not 900 <= duration <= self.config.max_duration_s:
            raise BedrockError("ValidationException", "durationSeconds is out of range", status=400)
        key = AccessKey(
            access_key_id="ASIA" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(96),
            expires_at=now + duration,
            user="assumed-role/" + self.config.role_arn.rsplit("/", 1)[-1],
            created_at=now,
        )
        self.keys.add_access_key(key)
        expiration = datetime.fromtimestamp(now + duration, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        session = {
            "credentialSet": [
                {
                    "assumedRoleUser": {
                        "arn": f"{self.config.role_arn}/{serial}",
                        "assumedRoleId": str(uuid.uuid4()),
                    },
                    "credentials": {
                        "accessKeyId": key.access_key_id,
                        "secretAccessKey": key.secret_access_key,
                        "sessionToken": key.session_token,
                        "expiration": expiration,
                    },
                    "packedPolicySize": 0,
                    "roleArn": self.config.role_arn,
                    "sourceIdentity": leaf.subject.rfc4514_string(),
                }
            ],
            "subjectArn": f"{self.config.trust_anchor_arn.rsplit(':', 1)[0]}:subject/{serial}",
        }
        return Response(201, json.dumps(session).encode(), [("Content-Type", "application/json")])


def _verify(certificate: x509.Certificate, signature: bytes, data: bytes) -> None:
    public_key = certificate.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(SHA256()))
        else:
            raise _denied("Unsupported certificate key type")
    except InvalidSignature:
        raise _denied("Signature validation failed") from None
