"""Commercial Amazon Bedrock Runtime, reached from GovCloud with commercial credentials.

Translates Bedrock's answers and errors into the workflow's vocabulary: throttling and transient
faults become retryable errors, rejected credentials trigger one fresh read of the secret.
"""

import contextlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from aws_bedrock_token_generator import BedrockTokenGenerator  # type: ignore[import-untyped]
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, ConnectionError, ReadTimeoutError
from botocore.tokens import FrozenAuthToken

from xpi.adapters.ports import CredentialSource
from xpi.domain.errors import (
    BedrockAnswerLost,
    BedrockRejected,
    BedrockThrottled,
    BedrockUnavailable,
    CredentialsRejected,
    bedrock_code,
)
from xpi.domain.payload import converse_arguments, native_body
from xpi.models.bedrock import ModelAnswer
from xpi.models.credentials import ApiKey, CommercialCredentials
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route, Usage
from xpi.settings import check_endpoint

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

THROTTLING = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
TRANSIENT = {
    "ModelTimeoutException",
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelNotReadyException",
    "ModelErrorException",
}
CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "AccessDeniedException",
}

# How Bedrock words an AccessDenied for a refused API key (bearer token), as opposed to a model the
# credentials may not use: the key itself is bad, so it is a credentials problem after the re-read too.
API_KEY_REFUSED = ("Authentication failed", "Invalid API Key")

CONNECT_TIMEOUT_S = 3
SHORT_TERM_KEY_REUSE_S = 6 * 3600

T = TypeVar("T")


class _StaticToken:
    """A botocore token provider holding one Bedrock API key (sent as `Authorization: Bearer`)."""

    def __init__(self, token: str) -> None:
        self._token = FrozenAuthToken(token)

    def load_token(self, **_: Any) -> FrozenAuthToken:
        return self._token


class BotoBedrockGateway:
    def __init__(
        self, credentials: CredentialSource, timeout_s: int, *, short_term_api_keys: bool = False
    ) -> None:
        self._credentials = credentials
        # IAM keys from the secret sign a short-term Bedrock API key (a presigned URL, valid 12 hours)
        # minted here on demand, and calls carry that bearer token: no long-lived bearer token is stored.
        self._short_term_api_keys = short_term_api_keys
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},  # the workflow owns retries
            # Short: a connect that fails surely sent nothing, so the workflow retries it safely.
            connect_timeout=CONNECT_TIMEOUT_S,
            # Below the function's timeout (BEDROCK_TIMEOUT_S), so the function itself reports a lost
            # answer (BedrockAnswerLost) rather than being killed mid-call.
            read_timeout=timeout_s,
        )
        self._clients: dict[tuple[str, str, str, int], BedrockRuntimeClient] = {}
        # What lineage records of the credentials a version holds: type and age (no secret).
        self._facts: dict[str, dict[str, Any]] = {}

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        call = self._converse if route.api == "converse" else self._invoke_model
        answer = self._with_credentials(route, lambda client, version: call(client, version, route, request))
        return answer.model_copy(update=self._facts.get(answer.credential_version, {}))

    def _with_credentials(self, route: Route, call: "Callable[[BedrockRuntimeClient, str], T]") -> T:
        credentials = self._credentials.get()
        try:
            return self._translate(lambda: call(self._client(route, credentials), credentials.version_id))
        except CredentialsRejected:
            fresh = self._credentials.get(refresh=True)  # rotated since we cached it?
            return self._translate(lambda: call(self._client(route, fresh), fresh.version_id), final=True)

    def _describe(self, credentials: CommercialCredentials) -> dict[str, Any]:
        secret = credentials.secret
        if credentials.source == "roles-anywhere":
            kind = "roles-anywhere"
        elif isinstance(secret, ApiKey):
            kind = "bedrock-api-key"
        else:
            kind = "short-term-api-key" if self._short_term_api_keys else "iam-access-key"
        age = None
        if secret.created_at:  # an IAM key's, or an API key's (set by their rotation)
            with contextlib.suppress(ValueError):
                age = max(0, int(time.time() - datetime.fromisoformat(secret.created_at).timestamp()))
        return {"credential_type": kind, "credential_age_s": age}

    def _client(self, route: Route, credentials: CommercialCredentials) -> "BedrockRuntimeClient":
        self._facts = {credentials.version_id: self._describe(credentials)}
        # A short-term key is minted again every SHORT_TERM_KEY_REUSE_S, well within its 12 hours.
        epoch = int(time.time() // SHORT_TERM_KEY_REUSE_S) if self._short_term_api_keys else 0
        key = (credentials.version_id, route.region, route.endpoint, epoch)
        client = self._clients.get(key)
        if client is None:
            # The route comes through the workflow state: check again before credentials go to it.
            check_endpoint(route.endpoint)
            session = botocore.session.Session()
            secret = credentials.secret
            options: dict[str, Any] = {}
            config = self._config
            if isinstance(secret, ApiKey):
                session.register_component("token_provider", _StaticToken(secret.api_key.get_secret_value()))
                config = config.merge(Config(signature_version="bearer"))
            elif self._short_term_api_keys:
                signer = Credentials(
                    secret.aws_access_key_id,
                    secret.aws_secret_access_key.get_secret_value(),
                    secret.aws_session_token.get_secret_value() if secret.aws_session_token else None,
                )
                token = BedrockTokenGenerator().get_token(signer, route.region)
                session.register_component("token_provider", _StaticToken(token))
                config = config.merge(Config(signature_version="bearer"))
            else:
                options = {
                    "aws_access_key_id": secret.aws_access_key_id,
                    "aws_secret_access_key": secret.aws_secret_access_key.get_secret_value(),
                    "aws_session_token": secret.aws_session_token.get_secret_value()
                    if secret.aws_session_token
                    else None,
                }
            client = boto3.Session(botocore_session=session).client(
                "bedrock-runtime",
                region_name=route.region,
                endpoint_url=route.endpoint or None,
                config=config,
                **options,
            )
            self._clients = {key: client}  # one credential version at a time
        return client

    @staticmethod
    def _translate(call: Callable[[], T], final: bool = False) -> T:
        try:
            return call()
        except ClientError as exc:
            # Only Bedrock's error code goes on: its message can name the commercial account and IAM
            # user (AccessDenied) or quote the request (ValidationException).
            code = bedrock_code(exc.response.get("Error", {}).get("Code"))
            key_refused = str(exc.response.get("Error", {}).get("Message", "")).startswith(API_KEY_REFUSED)
            reason = "commercial Bedrock answered an error"
            if code in THROTTLING:
                raise BedrockThrottled(reason, bedrock_code=code) from None
            if code in TRANSIENT:
                raise BedrockUnavailable(reason, bedrock_code=code) from None
            if code in CREDENTIALS:
                if final and code == "AccessDeniedException" and not key_refused:
                    raise BedrockRejected(reason, bedrock_code=code) from None
                raise CredentialsRejected(reason, bedrock_code=code) from None
            raise BedrockRejected(reason, bedrock_code=code) from None
        except ConnectionError as exc:
            # Connecting failed (a connect timeout, an unreachable endpoint): the request was never sent,
            # so the workflow's retry cannot be a second paid call.
            raise BedrockUnavailable(f"{type(exc).__name__} reaching commercial Bedrock") from None
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            # The request was sent and its answer lost: Bedrock may have answered (and billed) it. Not
            # retried, and counted in lineage (bedrock_calls_unanswered).
            raise BedrockAnswerLost(f"{type(exc).__name__} waiting for commercial Bedrock") from None

    @staticmethod
    def _converse(
        client: "BedrockRuntimeClient", version: str, route: Route, request: InferenceRequest
    ) -> ModelAnswer:
        arguments = {"modelId": route.model_id, **converse_arguments(request)}
        started = time.perf_counter()
        response = client.converse(**arguments)
        content = response["output"].get("message", {}).get("content", [])
        return ModelAnswer(
            text="".join(block.get("text", "") for block in content),
            stop_reason=response.get("stopReason"),
            usage=Usage(
                input_tokens=response["usage"]["inputTokens"], output_tokens=response["usage"]["outputTokens"]
            ),
            latency_ms=int(
                response.get("metrics", {}).get("latencyMs", (time.perf_counter() - started) * 1000)
            ),
            credential_version=version,
        )

    @staticmethod
    def _invoke_model(
        client: "BedrockRuntimeClient", version: str, route: Route, request: InferenceRequest
    ) -> ModelAnswer:
        started = time.perf_counter()
        response = client.invoke_model(
            modelId=route.model_id,
            body=native_body(request),
            contentType="application/json",
            accept="application/json",
        )
        body = json.loads(response["body"].read())
        headers = response["ResponseMetadata"].get("HTTPHeaders", {})
        return ModelAnswer(
            body=body,
            stop_reason=_native_stop_reason(body),
            usage=Usage(
                input_tokens=int(headers.get("x-amzn-bedrock-input-token-count", 0)),
                output_tokens=int(headers.get("x-amzn-bedrock-output-token-count", 0)),
            ),
            latency_ms=int((time.perf_counter() - started) * 1000),
            credential_version=version,
        )


def _native_stop_reason(body: dict[str, Any]) -> str | None:
    """Stop reason across the main InvokeModel families (Anthropic, Nova, Titan, Llama)."""
    for key in ("stop_reason", "stopReason"):
        if isinstance(body.get(key), str):
            return str(body[key])
    results = body.get("results")
    if isinstance(results, list) and results and isinstance(results[0], dict):
        reason = results[0].get("completionReason")
        return str(reason) if reason else None
    return None
