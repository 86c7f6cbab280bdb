"""Server-side AWS Signature Version 4 verification, from the raw request.

The canonical request is rebuilt exactly as the SigV4 specification (and botocore) defines it:
method, the URI-encoded normalised path (the path as sent is encoded once more, as for every
service but S3), the sorted canonical query string, the signed headers with trimmed values, the
signed-header list and the payload hash. Failures answer the AWS front end's real error codes.
Nothing here logs or returns a secret, a signature or a session token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from calendar import timegm
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from xpi_tools.emulator.config import AccessKey
from xpi_tools.emulator.errors import (
    MSG_BAD_KEY_ID,
    MSG_BAD_SIGNATURE,
    MSG_EXPIRED_TOKEN,
    MSG_MISSING_AUTH,
    BedrockError,
)
from xpi_tools.emulator.httpserver import Request

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def _incomplete(message: str) -> BedrockError:
    return BedrockError("IncompleteSignatureException", message)


def _invalid(message: str) -> BedrockError:
    return BedrockError("InvalidSignatureException", message)


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str


@dataclass(frozen=True)
class AuthorizationHeader:
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> AuthorizationHeader:
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'.")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            params[name] = val
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if name not in params]
    if missing:
        raise _incomplete(" ".join(f"Authorization header requires '{name}' parameter." for name in missing))
    scope = params["Credential"].split("/")
    if len(scope) != 5:
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{len(scope)} elements'"
        )
    return AuthorizationHeader(
        credential=Credential(*scope),
        signed_headers=tuple(params["SignedHeaders"].split(";")),
        signature=params["Signature"],
    )


def _remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if output:
                    output.pop()
            else:
                output.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str) -> str:
    # The path as sent is already percent-encoded; SigV4 (non-S3) encodes it once more.
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(request: Request, signed_headers: tuple[str, ...]) -> str:
    values: dict[str, list[str]] = {}
    for name, value in request.headers:
        values.setdefault(name, []).append(" ".join(value.split()))
    header_lines = "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed_headers)
    payload_hash = request.header("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
    return "\n".join(
        (
            request.method,
            canonical_uri(request.path),
            canonical_query(request.query),
            header_lines,
            ";".join(signed_headers),
            payload_hash,
        )
    )


BEARER_TOKEN_PREFIX = "bedrock-api-key-"  # noqa: S105 - a format marker, not a secret
BEARER_TOKEN_HOST = "bedrock.amazonaws.com"  # noqa: S105 - the host a token presigns for
EMPTY_PAYLOAD_HASH = hashlib.sha256(b"").hexdigest()


def _fmt(epoch: float) -> str:
    return time.strftime(AMZ_DATE_FORMAT, time.gmtime(epoch))


class SigV4Verifier:
    def __init__(self, region: str, service: str = "bedrock", max_skew_seconds: int = 300) -> None:
        self.region = region
        self.service = service
        self.max_skew_seconds = max_skew_seconds
        self._signing_keys: dict[tuple[str, str, str, str], bytes] = {}

    def _check_scope(self, cred: Credential, amz_date: str) -> None:
        if cred.terminator != "aws4_request":
            raise _invalid(
                "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{cred.terminator}'. "
            )
        if cred.service != self.service:
            raise _invalid(f"Credential should be scoped to correct service: '{self.service}'. ")
        if cred.region != self.region:
            raise _invalid("Credential should be scoped to a valid region. ")
        if cred.date != amz_date[:8]:
            raise _invalid(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{cred.date}' != '{amz_date[:8]}', from '{amz_date}'."
            )

    def _check_clock(self, amz_date: str, now: float) -> None:
        try:
            signed_at = timegm(time.strptime(amz_date, AMZ_DATE_FORMAT))
        except ValueError:
            raise _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.") from None
        skew = self.max_skew_seconds
        minutes = f"{skew // 60} min."
        if signed_at < now - skew:
            raise _invalid(
                f"Signature expired: {amz_date} is now earlier than {_fmt(now - skew)} "
                f"({_fmt(now)} - {minutes})"
            )
        if signed_at > now + skew:
            raise _invalid(
                f"Signature not yet current: {amz_date} is still later than {_fmt(now + skew)} "
                f"({_fmt(now)} + {minutes})"
            )

    @staticmethod
    def _check_key(key: AccessKey | None, token: str | None, now: float) -> AccessKey:
        if key is None or key.status != "Active":  # an Inactive IAM key is refused like an unknown one
            raise BedrockError("UnrecognizedClientException", MSG_BAD_KEY_ID)
        if key.session_token is None:
            if token is not None:
                raise BedrockError("UnrecognizedClientException", MSG_BAD_KEY_ID)
        elif token is None or not hmac.compare_digest(token, key.session_token):
            raise BedrockError("UnrecognizedClientException", MSG_BAD_KEY_ID)
        if key.expires_at is not None and now >= key.expires_at:
            raise BedrockError("ExpiredTokenException", MSG_EXPIRED_TOKEN)
        return key

    def _signing_key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        key = self._signing_keys.get(cache_key)
        if key is None:
            k = hmac.digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
            k = hmac.digest(k, region.encode(), "sha256")
            k = hmac.digest(k, service.encode(), "sha256")
            key = hmac.digest(k, b"aws4_request", "sha256")
            if len(self._signing_keys) > 1024:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = key
        return key

    def verify(
        self,
        request: Request,
        authorization: str | None,
        keys: Mapping[str, AccessKey],
        now: float,
        on_key_id: Callable[[str], None] | None = None,
    ) -> AccessKey:
        """The access key that signed ``request``, or the BedrockError the real service would answer."""
        if not authorization:
            raise BedrockError("MissingAuthenticationTokenException", MSG_MISSING_AUTH)
        auth = parse_authorization(authorization)
        cred = auth.credential
        if on_key_id is not None:
            on_key_id(cred.access_key_id)
        amz_date = request.header("x-amz-date")
        if amz_date is None:
            raise _incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
            )
        if "host" not in auth.signed_headers:
            raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        self._check_scope(cred, amz_date)
        self._check_clock(amz_date, now)
        key = self._check_key(keys.get(cred.access_key_id), request.header("x-amz-security-token"), now)
        string_to_sign = "\n".join(
            (
                ALGORITHM,
                amz_date,
                f"{cred.date}/{cred.region}/{cred.service}/{cred.terminator}",
                hashlib.sha256(canonical_request(request, auth.signed_headers).encode()).hexdigest(),
            )
        )
        expected = hmac.new(
            self._signing_key(key.secret_access_key, cred.date, cred.region, cred.service),
            string_to_sign.encode(),
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, auth.signature):
            raise _invalid(MSG_BAD_SIGNATURE)
        return key

    def verify_bearer_token(self, token: str, keys: Mapping[str, AccessKey], now: float) -> AccessKey:
        """The access key behind a short-term Bedrock API key: `bedrock-api-key-` + base64 of a SigV4
        presigned URL (`POST https://bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-...`,
        host signed, the empty body hashed) + `&Version=1`, as aws-bedrock-token-generator makes it.
        Raises BedrockError (any code) when it is not valid; the caller answers the API-key 403."""
        try:
            url = base64.b64decode(token.removeprefix(BEARER_TOKEN_PREFIX), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _incomplete("malformed bearer token") from None
        host, _, rest = url.partition("/")
        raw_query = rest.removeprefix("?")
        params = {
            unquote(name): unquote(value)
            for name, _, value in (item.partition("=") for item in raw_query.split("&") if item)
        }
        if (
            host != BEARER_TOKEN_HOST
            or params.get("Action") != "CallWithBearerToken"
            or params.get("Version") != "1"
        ):
            raise _incomplete("not a Bedrock bearer token")
        if params.get("X-Amz-Algorithm") != ALGORITHM or params.get("X-Amz-SignedHeaders") != "host":
            raise _incomplete("unsupported bearer token signature")
        scope = params.get("X-Amz-Credential", "").split("/")
        if len(scope) != 5:
            raise _incomplete("malformed credential scope")
        cred = Credential(*scope)
        amz_date = params.get("X-Amz-Date", "")
        self._check_scope(cred, amz_date)
        try:
            signed_at = timegm(time.strptime(amz_date, AMZ_DATE_FORMAT))
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            raise _incomplete("malformed date or expiry") from None
        if signed_at > now + self.max_skew_seconds:
            raise _invalid("Signature not yet current")
        if now >= signed_at + expires:
            raise BedrockError("ExpiredTokenException", MSG_EXPIRED_TOKEN)
        key = self._check_key(keys.get(cred.access_key_id), params.get("X-Amz-Security-Token"), now)
        # Everything but the signature and the token's Version suffix was signed.
        signed_query = "&".join(
            item for item in raw_query.split("&") if not item.startswith(("X-Amz-Signature=", "Version="))
        )
        canonical = "\n".join(
            ("POST", "/", canonical_query(signed_query), f"host:{host}\n", "host", EMPTY_PAYLOAD_HASH)
        )
        string_to_sign = "\n".join(
            (
                ALGORITHM,
                amz_date,
                f"{cred.date}/{cred.region}/{cred.service}/{cred.terminator}",
                hashlib.sha256(canonical.encode()).hexdigest(),
            )
        )
        expected = hmac.new(
            self._signing_key(key.secret_access_key, cred.date, cred.region, cred.service),
            string_to_sign.encode(),
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            raise _invalid(MSG_BAD_SIGNATURE)
        return key
