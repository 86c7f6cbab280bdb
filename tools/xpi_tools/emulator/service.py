"""The emulated service: routing by path, authentication, the runtime and control-plane
operations, faults, quotas, latency and counters. Runs on the emulator's event-loop thread.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from xpi_tools.emulator import eventstream
from xpi_tools.emulator.batch import BatchJobs
from xpi_tools.emulator.catalogue import (
    Family,
    ModelSpec,
    Offer,
    Resolved,
    decode_page_token,
    encode_page_token,
)
from xpi_tools.emulator.config import (
    AccessKey,
    AccountPrincipals,
    EmulatorConfig,
    Latency,
    api_key_fingerprint,
)
from xpi_tools.emulator.control import ControlApi
from xpi_tools.emulator.custom import CustomModels
from xpi_tools.emulator.errors import (
    MSG_BAD_API_KEY,
    MSG_INVALID_MODEL,
    MSG_THROTTLED,
    BedrockError,
    coral_constraint,
    validation,
)
from xpi_tools.emulator.families import (
    MSG_STREAMING_UNSUPPORTED,
    Plan,
    converse_response,
    converse_stream_events,
    count_tokens_plan,
    invoke_response,
    invoke_stream_chunks,
    parse_converse,
    parse_invoke,
    titan_embed_response,
)
from xpi_tools.emulator.httpserver import Request, Response, Result, StreamAborted, StreamResponse
from xpi_tools.emulator.iam import IamService, is_iam_request
from xpi_tools.emulator.rolesanywhere import RolesAnywhereService, is_create_session
from xpi_tools.emulator.sigv4 import BEARER_TOKEN_PREFIX, SigV4Verifier
from xpi_tools.emulator.state import EmulatorState
from xpi_tools.emulator.textgen import Generation, generate, parse_directives

# The families whose Converse calls honour cache points (Bedrock prompt caching); others ignore them.
PROMPT_CACHING: Final = frozenset({Family.ANTHROPIC, Family.NOVA})

logger = logging.getLogger("xpi_tools.emulator")

JSON = "application/json"
ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
RUNTIME_PATHS: Final = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "count-tokens": "CountTokens",
}
# The IAM action each runtime operation is authorized as (Converse is InvokeModel's, its stream
# InvokeModelWithResponseStream's).
IAM_ACTIONS: Final = {
    "Converse": "bedrock:InvokeModel",
    "InvokeModel": "bedrock:InvokeModel",
    "ConverseStream": "bedrock:InvokeModelWithResponseStream",
    "InvokeModelWithResponseStream": "bedrock:InvokeModelWithResponseStream",
    "CountTokens": "bedrock:CountTokens",
}
CONTROL_PLANE_LISTS: Final = {
    "/foundation-models": "ListFoundationModels",
    "/inference-profiles": "ListInferenceProfiles",
    "/model-invocation-jobs": "ListModelInvocationJobs",
}
CONTROL_PLANE_GETS: Final = {
    "foundation-models": "GetFoundationModel",
    "inference-profiles": "GetInferenceProfile",
    "model-invocation-job": "GetModelInvocationJob",
}
BATCH_OPERATIONS: Final = frozenset(
    {
        "CreateModelInvocationJob",
        "GetModelInvocationJob",
        "ListModelInvocationJobs",
        "StopModelInvocationJob",
    }
)
STREAM_EXCEPTIONS: Final = {
    "ConverseStream": frozenset(
        {
            "internalServerException",
            "modelStreamErrorException",
            "validationException",
            "throttlingException",
            "serviceUnavailableException",
        }
    ),
    "InvokeModelWithResponseStream": frozenset(
        {
            "internalServerException",
            "modelStreamErrorException",
            "validationException",
            "throttlingException",
            "modelTimeoutException",
            "serviceUnavailableException",
        }
    ),
}
OUTPUT_MODALITIES: Final = ("TEXT", "IMAGE", "EMBEDDING")
INFERENCE_TYPES: Final = ("ON_DEMAND", "PROVISIONED")
CUSTOMIZATIONS: Final = ("FINE_TUNING", "CONTINUED_PRE_TRAINING", "DISTILLATION")
# Frames are batched into one HTTP chunk until a pause is due or the batch reaches this size.
STREAM_BATCH_BYTES: Final = 64 * 1024


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _request_id() -> str:
    return str(uuid.uuid4())


def error_response(error: BedrockError) -> Response:
    return Response(
        error.status,
        _dumps({error.message_key: error.message}),
        [
            ("Content-Type", JSON),
            ("x-amzn-RequestId", _request_id()),
            ("x-amzn-ErrorType", f"{error.code}:{ERROR_NAMESPACE}"),
        ],
    )


def json_response(payload: Any, extra_headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(
        200, _dumps(payload), [("Content-Type", JSON), ("x-amzn-RequestId", _request_id()), *extra_headers]
    )


def _split_text(text: str) -> list[str]:
    """Delta pieces of about four tokens; larger pieces for very long outputs (at most ~2,000)."""
    if not text:
        return []
    size = max(16, -(-len(text) // 2000))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _chunk_text(chunk: dict[str, Any]) -> str:
    """The output text an InvokeModel stream chunk carries, whatever its family (for pacing)."""
    delta = chunk.get("delta") or chunk.get("contentBlockDelta", {}).get("delta") or {}
    return str(delta.get("text") or chunk.get("outputText") or chunk.get("generation") or "")


async def _delayed(response: Response, seconds: float) -> Response:
    await asyncio.sleep(seconds)
    return response


class BedrockService:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self.verifier = SigV4Verifier(config.region, "bedrock", config.max_clock_skew_seconds)
        self.control = ControlApi(self.state)
        self.batch = BatchJobs(self.state, config.batch, config.region, config.account_id, config.seed)
        self.control.extra_routes.update(
            {
                ("GET", "/batch"): lambda _: self.batch.describe(),
                ("PUT", "/batch"): self.batch.configure,
                ("POST", "/batch/reset"): lambda _: self.batch.reset(),
            }
        )
        self.custom_models = CustomModels(
            self.state.catalogue.partition, config.region, config.account_id, config.custom_models
        )
        self.control.extra_routes.update(
            {
                ("GET", "/custom-models"): lambda _: self.custom_models.describe(),
                ("POST", "/custom-models"): self.custom_models.control_add,
                ("DELETE", "/custom-models"): lambda _: self.custom_models.reset(),
            }
        )
        self.roles_anywhere = (
            RolesAnywhereService(config.roles_anywhere, self.state.keys, config.region, self.state.now)
            if config.roles_anywhere is not None
            else None
        )
        self.iam = IamService(
            self.state.keys,
            config.account_id,
            self.state.now,
            config.max_clock_skew_seconds,
            key_managers=config.key_managers,
        )

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Result | Awaitable[Result]:
        if request.path.startswith("/_emulator"):
            return self.control.handle(request)
        if not self.config.access_log:
            return self._handle(request)[0]
        started = time.perf_counter()
        result, principal = self._handle(request)
        if isinstance(result, Response | StreamResponse):
            self._log(request, result.status, principal, started)
            return result
        return self._logged(request, result, principal, started)

    async def _logged(
        self, request: Request, pending: Awaitable[Result], principal: str | None, started: float
    ) -> Result:
        result = await pending
        self._log(request, result.status, principal, started)
        return result

    def _log(self, request: Request, status: int, principal: str | None, started: float) -> None:
        # Method, path, status, key id or API-key label, duration: never a secret, token or body.
        logger.info(
            "%s %s %d key=%s %.1fms",
            request.method,
            request.path,
            status,
            principal or "-",
            (time.perf_counter() - started) * 1000,
        )

    def _handle(self, request: Request) -> tuple[Result | Awaitable[Result], str | None]:
        other = self._commercial_identity(request)
        if other is not None:
            return other
        route = self._route(request)
        if route is None:
            return (
                Response(
                    404,
                    b"<UnknownOperationException/>",
                    [("x-amzn-RequestId", _request_id()), ("x-amzn-ErrorType", "UnknownOperationException")],
                ),
                None,
            )
        operation, identifier = route
        try:
            principal = self._authenticate(request)
        except BedrockError as error:
            return error_response(error), None
        self.state.counters.call(operation)
        if operation in RUNTIME_PATHS.values():
            return self._runtime(operation, identifier or "", request, principal), principal
        try:
            return json_response(self._control_plane(operation, identifier, request)), principal
        except BedrockError as error:
            return error_response(error), principal

    def _commercial_identity(self, request: Request) -> tuple[Response, str | None] | None:
        """Commercial IAM (the rotation's key management) and Roles Anywhere CreateSession."""
        if is_iam_request(request):
            self.state.counters.call("IAM")
            return self.iam.handle(request)
        if is_create_session(request) and self.roles_anywhere is not None:
            self.state.counters.call("CreateSession")
            return self.roles_anywhere.handle(request), None
        return None

    def _route(self, request: Request) -> tuple[str, str | None] | None:
        segments = request.path.split("/")
        if request.method == "POST" and len(segments) == 4 and segments[:2] == ["", "model"] and segments[2]:
            operation = RUNTIME_PATHS.get(segments[3])
            return (operation, unquote(segments[2])) if operation else None
        if request.method == "POST" and segments[:2] == ["", "model-invocation-job"]:
            return _batch_route(segments)
        if request.method == "GET":
            if request.path in CONTROL_PLANE_LISTS:
                return CONTROL_PLANE_LISTS[request.path], None
            if len(segments) == 3 and segments[0] == "" and segments[2] and segments[1] in CONTROL_PLANE_GETS:
                return CONTROL_PLANE_GETS[segments[1]], unquote(segments[2])
        return None

    # -- authentication --------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str:
        """The principal's label (access key id or API-key label), or the real service's 403."""
        authorization = request.header("authorization")
        if authorization is not None and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            if token.startswith(BEARER_TOKEN_PREFIX):  # short-term: a presigned URL of an IAM principal
                try:
                    signer = self.verifier.verify_bearer_token(
                        token, self.state.keys.access_keys, self.state.now()
                    )
                except BedrockError:
                    self.state.counters.auth_failure(api_key_fingerprint(token), "AccessDeniedException")
                    raise BedrockError(
                        "AccessDeniedException", MSG_BAD_API_KEY, message_key="Message"
                    ) from None
                return signer.access_key_id
            key = self.state.keys.api_keys.get(token)
            if (
                key is None
                or key.status != "Active"
                or (key.expires_at is not None and self.state.now() >= key.expires_at)
            ):
                self.state.counters.auth_failure(api_key_fingerprint(token), "AccessDeniedException")
                raise BedrockError("AccessDeniedException", MSG_BAD_API_KEY, message_key="Message")
            return key.label
        key_id: list[str] = []
        keys: Mapping[str, AccessKey] = self.state.keys.access_keys
        if self.config.account_principals is not None:
            keys = _AccountKeys(keys, self.config.account_principals)
        try:
            access_key = self.verifier.verify(
                request, authorization, keys, self.state.now(), on_key_id=key_id.append
            )
        except BedrockError as error:
            self.state.counters.auth_failure(key_id[0] if key_id else None, error.code)
            raise
        return access_key.access_key_id

    # -- runtime -----------------------------------------------------------------------------------

    def _authorize(self, operation: str, resolved: Resolved, principal: str) -> None:
        """An account's own Bedrock: the caller's IAM policies must allow the operation's action on the
        model (a profile: on the profile and on its models in each of its regions), as IAM decides."""
        principals = self.config.account_principals
        if principals is None:
            return
        action = IAM_ACTIONS[operation]
        if resolved.profile is None:
            resources = [resolved.model.foundation_arn(self.config.region)]
        else:
            resources = [
                resolved.profile.arn(self.config.region, self.config.account_id),
                *(resolved.model.foundation_arn(region) for region in resolved.profile.regions),
            ]
        denied = principals.allowed(principal, action, resources)
        if denied is not None:
            raise BedrockError(
                "AccessDeniedException",
                f"User: {denied} is not authorized to perform: {action} on resource: {resources[0]} "
                f"because no identity-based policy allows the {action} action",
            )

    def _resolve_for_count(self, identifier: str) -> Resolved:
        """CountTokens invokes nothing: profile-only models may be named by their bare id."""
        try:
            return self.state.catalogue.resolve_for_invocation(identifier)
        except BedrockError:
            model = self.state.catalogue.model(identifier)
            if model is None or self.state.catalogue.offer(model) is not Offer.INFERENCE_PROFILE:
                raise
            return Resolved(model, identifier, None)

    def _runtime(
        self, operation: str, identifier: str, request: Request, principal: str
    ) -> Result | Awaitable[Result]:
        model_key = identifier
        tag: str | None = None
        try:
            custom = self.custom_models.resolve(identifier)
            if custom is not None:  # an imported or provisioned model, an application profile
                resolved = custom
            elif operation == "CountTokens":
                resolved = self._resolve_for_count(identifier)
            else:
                resolved = self.state.catalogue.resolve_for_invocation(identifier)
            model_key = resolved.model.model_id
            self._authorize(operation, resolved, principal)
            plan = self._plan(operation, resolved.model, request.body)
            tag = parse_directives(plan.prompt.last_user_text).tag
            fault = self.state.faults.take((model_key, resolved.invoked_id), operation, "request")
            if fault is not None:
                raise BedrockError(fault.error, fault.message)
            if operation == "CountTokens":
                self.state.counters.success(model_key, principal, 0, 0)
                return json_response({"inputTokens": plan.prompt.input_tokens})
            now = self.state.monotonic()
            if not self.state.quotas.admit(model_key, plan.prompt.input_tokens, now):
                raise BedrockError("ThrottlingException", MSG_THROTTLED)
            generation = self._generate(resolved.model, plan)
            if operation in ("Converse", "ConverseStream") and resolved.model.family in PROMPT_CACHING:
                read, write = self.state.prompt_cache.apply(
                    principal, model_key, plan.prompt.cache_points, now
                )
                generation = dataclasses.replace(
                    generation,
                    input_tokens=max(0, generation.input_tokens - read - write),
                    cache_read_input_tokens=read,
                    cache_write_input_tokens=write,
                )
            self.state.quotas.charge_output(model_key, generation.output_tokens, now)
        except BedrockError as error:
            self.state.counters.failure(model_key, principal, error.code, tag)
            return error_response(error)
        return self._respond(operation, resolved, plan, generation, principal, tag=tag)

    def _respond(
        self,
        operation: str,
        resolved: Resolved,
        plan: Plan,
        generation: Generation,
        principal: str,
        *,
        tag: str | None = None,
    ) -> Result | Awaitable[Result]:
        model = resolved.model
        latency = self.state.latencies.for_model(model.model_id)
        latency_ms = round(latency.total_ms(generation.output_tokens))
        if operation in STREAM_EXCEPTIONS:
            models = (model.model_id, resolved.invoked_id)
            stream_fault = self.state.faults.take(models, operation, "stream")
            # A stall answers (and bills) the call, then goes silent half-way: the answer is lost.
            stall = self.state.faults.take(models, operation, "stall") if stream_fault is None else None
            if stream_fault is not None:
                self.state.counters.failure(model.model_id, principal, stream_fault.error, tag)
            else:
                self.state.counters.success(
                    model.model_id,
                    principal,
                    generation.input_tokens,
                    generation.output_tokens,
                    tag,
                    cache_read=generation.cache_read_input_tokens,
                    cache_write=generation.cache_write_input_tokens,
                )
            failure = (stream_fault.error, stream_fault.message) if stream_fault is not None else None
            return self._stream(
                operation,
                model,
                plan,
                generation,
                latency=latency,
                latency_ms=latency_ms,
                failure=failure,
                stall_seconds=stall.stall_seconds if stall is not None else 0.0,
            )

        self.state.counters.success(
            model.model_id,
            principal,
            generation.input_tokens,
            generation.output_tokens,
            tag,
            cache_read=generation.cache_read_input_tokens,
            cache_write=generation.cache_write_input_tokens,
        )
        if operation == "Converse":
            response = json_response(converse_response(model, plan, generation, latency_ms))
        else:
            headers = [
                ("X-Amzn-Bedrock-Invocation-Latency", str(latency_ms)),
                ("X-Amzn-Bedrock-Input-Token-Count", str(generation.input_tokens)),
            ]
            if model.family is Family.TITAN_EMBED:
                response = json_response(titan_embed_response(model, plan, self.config.seed), headers)
            else:
                headers.append(("X-Amzn-Bedrock-Output-Token-Count", str(generation.output_tokens)))
                response = json_response(invoke_response(model, plan, generation), headers)
        if latency_ms <= 0:
            return response
        return _delayed(response, latency.total_ms(generation.output_tokens) / 1000)

    def _plan(self, operation: str, model: ModelSpec, body: bytes) -> Plan:
        if operation == "CountTokens":
            if not model.count_tokens_supported:
                # Emulator wording: CountTokens answers for Anthropic Claude models only, as on Bedrock.
                raise validation("The provided model doesn't support counting tokens.")
            return count_tokens_plan(model, body)
        if operation in ("Converse", "ConverseStream"):
            return parse_converse(model, body)
        if operation == "InvokeModelWithResponseStream" and not model.streaming:
            raise validation(MSG_STREAMING_UNSUPPORTED)
        return parse_invoke(model, body)

    def _generate(self, model: ModelSpec, plan: Plan) -> Generation:
        if model.family is Family.TITAN_EMBED:
            return Generation("", plan.prompt.input_tokens, 0, "end_turn")
        return generate(
            plan.prompt,
            seed=self.config.seed,
            model_id=model.model_id,
            max_tokens=plan.max_tokens,
            stop_sequences=plan.stop_sequences,
        )

    def _stream(
        self,
        operation: str,
        model: ModelSpec,
        plan: Plan,
        generation: Generation,
        *,
        latency: Latency,
        latency_ms: int,
        failure: tuple[str, str] | None,
        stall_seconds: float = 0.0,
    ) -> StreamResponse:
        """The stream's frames, paced by the latency model; ``failure`` (code, message) cuts it
        half-way with an exception event; ``stall_seconds`` sends the first half, then nothing for that
        long, then drops the connection."""
        pieces = _split_text(generation.text)
        frames: list[tuple[bytes, int]] = []  # (frame, output tokens it carries)
        if operation == "ConverseStream":
            for event_type, payload in converse_stream_events(model, plan, generation, pieces, latency_ms):
                tokens = (len(payload["delta"]["text"]) + 3) // 4 if event_type == "contentBlockDelta" else 0
                frames.append((eventstream.event(event_type, payload), tokens))
            headers = [("Content-Type", eventstream.CONTENT_TYPE), ("x-amzn-RequestId", _request_id())]
        else:
            metrics = {
                "inputTokenCount": generation.input_tokens,
                "outputTokenCount": generation.output_tokens,
                "invocationLatency": latency_ms,
                "firstByteLatency": round(latency.time_to_first_token_ms),
            }
            for chunk in invoke_stream_chunks(model, plan, generation, pieces, metrics):
                text = _chunk_text(chunk)
                encoded = base64.b64encode(_dumps(chunk)).decode()
                frames.append((eventstream.event("chunk", {"bytes": encoded}), (len(text) + 3) // 4))
            headers = [
                ("Content-Type", eventstream.CONTENT_TYPE),
                ("X-Amzn-Bedrock-Content-Type", JSON),
                ("x-amzn-RequestId", _request_id()),
            ]
        exception: bytes | None = None
        if failure is not None:
            code, message = failure
            name = code[0].lower() + code[1:]
            if name not in STREAM_EXCEPTIONS[operation]:
                name = "modelStreamErrorException"
            exception = eventstream.exception(name, message)
            frames = frames[: max(1, (len(frames) + 1) // 2)]
        elif stall_seconds > 0:
            frames = frames[: max(1, (len(frames) + 1) // 2)]
        return StreamResponse(200, self._paced(frames, latency, exception, stall_seconds), headers)

    async def _paced(
        self,
        frames: list[tuple[bytes, int]],
        latency: Latency,
        failure: bytes | None,
        stall_seconds: float = 0.0,
    ) -> AsyncIterator[bytes]:
        if latency.time_to_first_token_ms > 0:
            await asyncio.sleep(latency.time_to_first_token_ms / 1000)
        per_token = latency.per_output_token_ms / 1000
        batch: list[bytes] = []
        size = 0
        owed = 0.0
        for frame, tokens in frames:
            owed += tokens * per_token
            if owed >= 0.001 and batch:
                yield b"".join(batch)
                batch, size = [], 0
            if owed >= 0.001:
                await asyncio.sleep(owed)
                owed = 0.0
            batch.append(frame)
            size += len(frame)
            if size >= STREAM_BATCH_BYTES:
                yield b"".join(batch)
                batch, size = [], 0
        if failure is not None:
            batch.append(failure)
        if batch:
            yield b"".join(batch)
        if stall_seconds > 0:
            await asyncio.sleep(stall_seconds)
            raise StreamAborted

    # -- control plane (the `bedrock` client) -------------------------------------------------------

    def _control_plane(self, operation: str, identifier: str | None, request: Request) -> dict[str, Any]:
        if operation in BATCH_OPERATIONS:
            return self.batch.handle(operation, identifier, request.query, request.body)
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        if operation == "ListFoundationModels":
            return self._list_foundation_models(query)
        if operation == "GetFoundationModel":
            model = self.state.catalogue.foundation_model(identifier or "")
            return {"modelDetails": self.state.catalogue.model_summary(model)}
        if operation == "GetInferenceProfile":
            return self._get_inference_profile(identifier or "")
        return self._list_inference_profiles(query)

    def _list_foundation_models(self, query: dict[str, str]) -> dict[str, Any]:
        catalogue = self.state.catalogue
        models = list(catalogue.models)
        provider = query.get("byProvider")
        if provider is not None:
            models = [m for m in models if m.provider.lower() == provider.lower()]
        modality = _enum_filter(query, "byOutputModality", OUTPUT_MODALITIES)
        if modality is not None:
            models = [m for m in models if modality in m.output_modalities]
        inference = _enum_filter(query, "byInferenceType", INFERENCE_TYPES)
        if inference is not None:
            models = [m for m in models if catalogue.offer(m).value == inference]
        customization = _enum_filter(query, "byCustomizationType", CUSTOMIZATIONS)
        if customization is not None:
            models = [m for m in models if customization in m.customizations]
        return {"modelSummaries": [catalogue.model_summary(m) for m in models]}

    def _get_inference_profile(self, identifier: str) -> dict[str, Any]:
        profile = self.state.catalogue.profile(identifier)
        if profile is None:
            if identifier.startswith("arn:") and ":inference-profile/" not in identifier:
                raise validation(MSG_INVALID_MODEL)
            # Emulator wording for an unknown profile.
            raise BedrockError("ResourceNotFoundException", f"Inference profile {identifier} not found.")
        return self.state.catalogue.profile_summary(profile)

    def _list_inference_profiles(self, query: dict[str, str]) -> dict[str, Any]:
        profile_type = _enum_filter(query, "type", ("SYSTEM_DEFINED", "APPLICATION"))
        profiles = list(self.state.catalogue.profiles) if profile_type in (None, "SYSTEM_DEFINED") else []
        try:
            max_results = int(query.get("maxResults", "1000"))
        except ValueError:
            raise coral_constraint(
                query.get("maxResults"), "maxResults", "Member must be an integer"
            ) from None
        if not 1 <= max_results <= 1000:
            raise coral_constraint(
                max_results, "maxResults", "Member must have value less than or equal to 1000"
            )
        start = decode_page_token(query["nextToken"]) if "nextToken" in query else 0
        page = profiles[start : start + max_results]
        result: dict[str, Any] = {
            "inferenceProfileSummaries": [self.state.catalogue.profile_summary(p) for p in page]
        }
        if start + max_results < len(profiles):
            result["nextToken"] = encode_page_token(start + max_results)
        return result


def _batch_route(segments: list[str]) -> tuple[str, str | None] | None:
    """POST /model-invocation-job (create) and POST /model-invocation-job/{id}/stop."""
    if len(segments) == 2:
        return "CreateModelInvocationJob", None
    if len(segments) == 4 and segments[2] and segments[3] == "stop":
        return "StopModelInvocationJob", unquote(segments[2])
    return None


def _enum_filter(query: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is not None and value not in allowed:
        raise coral_constraint(value, name, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


class _AccountKeys(Mapping[str, AccessKey]):
    """The configured keys, then the account's principals' (an assumed role's session keys)."""

    def __init__(self, configured: Mapping[str, AccessKey], principals: AccountPrincipals) -> None:
        self._configured, self._principals = configured, principals

    def __getitem__(self, access_key_id: str) -> AccessKey:
        key = self._configured.get(access_key_id) or self._principals.access_key(access_key_id)
        if key is None:
            raise KeyError(access_key_id)
        return key

    def __iter__(self) -> Iterator[str]:
        return iter(self._configured)

    def __len__(self) -> int:
        return len(self._configured)
