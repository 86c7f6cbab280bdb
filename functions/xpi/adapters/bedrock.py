"""Commercial Amazon Bedrock Runtime, reached from GovCloud with commercial credentials; and GovCloud's
own Bedrock Runtime (a route with `partition: govcloud`), reached in-partition with the function's role.

Translates Bedrock's answers and errors into the workflow's vocabulary: throttling and transient
faults become retryable errors, rejected credentials trigger one fresh read of the secret.

Converse calls go as ConverseStream, the answer assembled here (callers get the whole answer): a live
call keeps sending chunks, so the read timeout is a short gap between chunks (a stalled connection is
noticed in seconds) while the whole call may take up to its own timeout.
"""

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from aws_bedrock_token_generator import BedrockTokenGenerator  # type: ignore[import-untyped]
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, ConnectionError, ReadTimeoutError
from botocore.tokens import FrozenAuthToken
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from xpi.adapters.ports import CredentialSource
from xpi.domain.errors import (
    BedrockAnswerLost,
    BedrockRejected,
    BedrockThrottled,
    BedrockUnavailable,
    BedrockUnreachable,
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
# The longest gap between two chunks of a streamed answer (and before the first one) that is still a
# live call; the answer as a whole may take the gateway's timeout_s.
STREAM_IDLE_TIMEOUT_S = 15
SHORT_TERM_KEY_REUSE_S = 6 * 3600
# What lineage records as the credential of a call to GovCloud's own Bedrock: the function's role.
IN_PARTITION = "function-role"

T = TypeVar("T")


class _StaticToken:
    """A botocore token provider holding one Bedrock API key (sent as `Authorization: Bearer`)."""

    def __init__(self, token: str) -> None:
        self._token = FrozenAuthToken(token)

    def load_token(self, **_: Any) -> FrozenAuthToken:
        return self._token


class BotoBedrockGateway:
    def __init__(
        self,
        credentials: CredentialSource,
        timeout_s: int,
        *,
        short_term_api_keys: bool = False,
        idle_timeout_s: float = STREAM_IDLE_TIMEOUT_S,
        https_proxy: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        keep_alive: bool = True,
    ) -> None:
        self._credentials = credentials
        self._timeout_s = timeout_s
        self._idle_timeout_s = min(idle_timeout_s, timeout_s)
        # IAM keys from the secret sign a short-term Bedrock API key (a presigned URL, valid 12 hours)
        # minted here on demand, and calls carry that bearer token: no long-lived bearer token is stored.
        self._short_term_api_keys = short_term_api_keys
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},  # the workflow owns retries
            # Short: a connect that fails surely sent nothing, so the workflow retries it safely.
            connect_timeout=connect_timeout_s,
            # Below the function's timeout (BEDROCK_TIMEOUT_S), so the function itself reports a lost
            # answer (BedrockAnswerLost) rather than being killed mid-call.
            read_timeout=timeout_s,
            # An egress path's proxy (xpi.domain.egress): the call tunnels through it (CONNECT).
            proxies={"https": https_proxy, "http": https_proxy} if https_proxy else None,
        )
        # A streamed answer (Converse): the gap allowed between two chunks; the whole call still ends
        # within timeout_s (_paced_by_deadline).
        self._stream_config = self._config.merge(Config(read_timeout=self._idle_timeout_s))
        # The bytes of the current call on this thread (botocore's events count them; egress path metrics)
        self._wire = threading.local()
        self._keep_alive = keep_alive
        self._clients: dict[tuple[str, str, str, int, str], BedrockRuntimeClient] = {}
        self._in_partition: dict[tuple[str, str, str, int, str], BedrockRuntimeClient] = {}
        # What lineage records of the credentials a version holds: type and age (no secret).
        self._facts: dict[str, dict[str, Any]] = {}

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        call = self._converse if route.api == "converse" else self._invoke_model
        self._wire.sent = self._wire.received = 0
        if route.partition == "govcloud":
            # In the stack's own partition, with the function's own role: no commercial credentials read.
            # final: an AccessDenied is the role's or the model's (not enabled), never a stale secret.
            client = self._in_partition_client(route)
            answer = self._translate(lambda: call(client, IN_PARTITION, route, request), final=True)
            return answer.model_copy(update={"credential_type": IN_PARTITION, **self._wire_bytes()})
        answer = self._with_credentials(route, lambda client, version: call(client, version, route, request))
        return answer.model_copy(update=self._facts.get(answer.credential_version, {}) | self._wire_bytes())

    # ------------------------------------------------------------------ bytes on the wire
    def _wire_bytes(self) -> dict[str, int]:
        return {"bytes_sent": self._wire.sent, "bytes_received": self._wire.received}

    def _count_bytes(self, client: Any) -> None:
        if not self._keep_alive:  # the answer ends the connection: each call connects anew
            client.meta.events.register("before-send.bedrock-runtime", _close_after)
        client.meta.events.register("before-send.bedrock-runtime", self._sent)
        client.meta.events.register("after-call.bedrock-runtime", self._received)

    def _sent(self, request: Any, **_: Any) -> None:
        body = request.body
        size = len(body) if isinstance(body, bytes | bytearray | str) else 0
        self._wire.sent = getattr(self._wire, "sent", 0) + size + _head_bytes(request.headers)

    def _received(self, http_response: Any, model: Any, **_: Any) -> None:
        # An event stream's body is counted as it is read (_converse); any other answer has a length (its
        # body is not read here: InvokeModel's is the caller's stream).
        body = 0 if model.has_event_stream_output else int(http_response.headers.get("content-length") or 0)
        self._wire.received = getattr(self._wire, "received", 0) + body + _head_bytes(http_response.headers)

    def _in_partition_client(self, route: Route) -> "BedrockRuntimeClient":
        key = (IN_PARTITION, route.region, route.endpoint, 0, route.api)
        client = self._in_partition.get(key)
        if client is None:
            check_endpoint(route.endpoint)
            config = self._stream_config if route.api == "converse" else self._config
            # boto3's default chain: the execution role's credentials Lambda puts in the environment.
            client = boto3.Session().client(
                "bedrock-runtime",
                region_name=route.region,
                endpoint_url=route.endpoint or None,
                config=config,
            )
            self._count_bytes(client)
            self._in_partition[key] = client
        return client

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
        key = (credentials.version_id, route.region, route.endpoint, epoch, route.api)
        client = self._clients.get(key)
        if client is None:
            # The route comes through the workflow state: check again before credentials go to it.
            check_endpoint(route.endpoint)
            session = botocore.session.Session()
            secret = credentials.secret
            options: dict[str, Any] = {}
            config = self._stream_config if route.api == "converse" else self._config
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
            self._count_bytes(client)
            # one credential version (and key epoch) at a time
            self._clients = {k: c for k, c in self._clients.items() if k[:4] == key[:4]} | {key: client}
        return client

    @staticmethod
    def _translate(call: Callable[[], T], final: bool = False) -> T:
        try:
            return call()
        except ClientError as exc:
            # Only Bedrock's error code goes on: its message can name the commercial account and IAM
            # user (AccessDenied) or quote the request (ValidationException).
            code = bedrock_code(_error_code(exc.response.get("Error", {}).get("Code")))
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
            raise BedrockUnreachable(f"{type(exc).__name__} reaching commercial Bedrock") from None
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            # The request was sent and its answer lost: Bedrock may have answered (and billed) it. Not
            # retried, and counted in lineage (bedrock_calls_unanswered).
            raise BedrockAnswerLost(f"{type(exc).__name__} waiting for commercial Bedrock") from None

    def _converse(
        self, client: "BedrockRuntimeClient", version: str, route: Route, request: InferenceRequest
    ) -> ModelAnswer:
        arguments = {"modelId": route.model_id, **converse_arguments(request)}
        started = time.monotonic()
        # An error before the stream starts is an HTTP error (ClientError), translated as before.
        response = client.converse_stream(**arguments)
        stream = response["stream"]
        try:
            return _assembled(
                _paced_by_deadline(stream, started + self._timeout_s, self._idle_timeout_s), version, started
            )
        finally:
            with contextlib.suppress(Exception):  # the event stream's bytes read (urllib3's count)
                raw: Any = getattr(stream, "_raw_stream", None)
                self._wire.received = getattr(self._wire, "received", 0) + int(raw.tell())
            with contextlib.suppress(Exception):
                stream.close()

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


def _error_code(code: object) -> object:
    """A stream's exception event names its error in camel case (`throttlingException`), the HTTP
    error in Pascal case (`ThrottlingException`): one vocabulary."""
    return code[0].upper() + code[1:] if isinstance(code, str) and code else code


def _paced_by_deadline(stream: Any, deadline: float, idle_s: float) -> Iterable[Mapping[str, Any]]:
    """The stream's events while the call is within its deadline: before each read, the socket's
    timeout is the idle gap, or what is left of the deadline if less, so the whole call ends in time."""
    events = iter(stream)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BedrockAnswerLost("commercial Bedrock's stream outlasted the call's timeout")
        _set_read_timeout(stream, min(idle_s, remaining))
        try:
            event = next(events)
        except StopIteration:
            return
        yield event


def _close_after(request: Any, **_: Any) -> None:
    request.headers["Connection"] = "close"  # not a signed header: set after signing


def _head_bytes(headers: Mapping[str, str]) -> int:
    """A request's or an answer's header lines, as sent (name, ": ", value, CRLF), and the first line's
    approximate size."""
    return 32 + sum(len(name) + len(value) + 4 for name, value in headers.items())


def _set_read_timeout(stream: Any, seconds: float) -> None:
    """Best effort: botocore sets the read timeout once per connection; a stream's reads then wait at
    most `seconds` each (urllib3's connection under botocore's EventStream)."""
    with contextlib.suppress(AttributeError, OSError):
        stream._raw_stream._connection.sock.settimeout(max(seconds, 0.05))


def _assembled(events: Iterable[Mapping[str, Any]], version: str, started: float) -> ModelAnswer:
    """One ModelAnswer from a ConverseStream's events. Bedrock has answered (and billed) once the
    stream has started: a stream that stalls or breaks before its end is a lost answer
    (BedrockAnswerLost), never a transient fault a retry would pay for again. An exception event is
    Bedrock's own error, translated as an HTTP error would be."""
    texts: list[str] = []
    stop_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    latency_ms: int | None = None
    try:
        for event in events:
            if "contentBlockDelta" in event:
                texts.append(event["contentBlockDelta"].get("delta", {}).get("text", ""))
            elif "messageStop" in event:
                stop_reason = event["messageStop"].get("stopReason")
            elif "metadata" in event:
                usage = event["metadata"].get("usage")
                latency_ms = event["metadata"].get("metrics", {}).get("latencyMs")
    except (ReadTimeoutError, ConnectionClosedError, Urllib3HTTPError) as exc:
        # urllib3's ReadTimeoutError / ProtocolError: botocore's EventStream reads the socket directly.
        raise BedrockAnswerLost(
            f"{type(exc).__name__} reading commercial Bedrock's stream after {len(texts)} chunks"
        ) from None
    if usage is None or stop_reason is None:
        raise BedrockAnswerLost("commercial Bedrock's stream ended before its last event")
    return ModelAnswer(
        text="".join(texts),
        stop_reason=stop_reason,
        usage=Usage(
            input_tokens=usage["inputTokens"],
            output_tokens=usage["outputTokens"],
            # Bedrock prompt caching (cache points in the request): the prefix read from or written to
            # its cache, billed at their own prices and not counted in inputTokens.
            cache_read_input_tokens=usage.get("cacheReadInputTokens") or None,
            cache_write_input_tokens=usage.get("cacheWriteInputTokens") or None,
        ),
        latency_ms=int(latency_ms if latency_ms is not None else (time.monotonic() - started) * 1000),
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
