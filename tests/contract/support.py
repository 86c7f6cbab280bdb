"""Constants and helpers shared by the emulator contract tests.

Every assertion in this suite is on what boto3 (or a raw HTTP exchange signed by botocore's own
SigV4 signer) returns, never on the emulator's internals.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REGION = "us-east-1"
KEY_ID = "AKIAEMULATORTEST0001"
SECRET = "emulator-test-secret-0001"
SESSION_KEY_ID = "ASIAEMULATORTEST0002"
SESSION_SECRET = "emulator-test-secret-0002"
SESSION_TOKEN = "emulator-test-session-token-0002"
API_KEY = "ABSKZW11bGF0b3ItdGVzdC1hcGkta2V5"
API_KEY_NAME = "contract-api-key"

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET_37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
SONNET_37_PROFILE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"
TITAN_TEXT = "amazon.titan-text-express-v1"
TITAN_EMBED_V1 = "amazon.titan-embed-text-v1"
TITAN_EMBED_V2 = "amazon.titan-embed-text-v2:0"
LLAMA3_8B = "meta.llama3-8b-instruct-v1:0"

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30)


def user(text: str) -> Any:
    """One user message, as the Converse ``messages`` parameter."""
    return [{"role": "user", "content": [{"text": text}]}]


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error_type(self) -> str:
        return self.headers.get("x-amzn-errortype", "").split(":", 1)[0]


def send_signed(
    url: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    region: str = REGION,
    service: str = "bedrock",
    headers: dict[str, str] | None = None,
    send_body: bytes | None = None,
) -> RawResponse:
    """A request signed by botocore's own SigV4 signer, for what boto3 clients cannot send
    (unknown members, malformed JSON, another service in the credential scope). ``send_body``
    replaces the signed body on the wire, to tamper with it."""
    request = AWSRequest(
        method=method, url=url + path, data=body, headers=headers or {"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        sent = body if send_body is None else send_body
        headers_sent = dict(prepared.headers.items())
        headers_sent["Content-Length"] = str(len(sent))
        connection.request(method, path, body=sent, headers=headers_sent)
        response = connection.getresponse()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
