"""The control endpoint, under the reserved prefix ``/_emulator/``: JSON in, JSON out, no
authentication, and answered only to loopback peers.

    GET    /_emulator/health                 status, region, partition, account
    GET    /_emulator/counters               calls, throttles, errors, tokens: totals, per model and key
    POST   /_emulator/reset                  {"counters","faults","quotas","latency","clock",
                                              "prompt_cache": bool}
    GET    /_emulator/faults                 active fault rules
    POST   /_emulator/faults                 {"error", "model"?, "count"?, "rate"?, "message"?,
                                              "operations"?, "stage"?, "stall_seconds"?}
    DELETE /_emulator/faults                 remove every rule
    DELETE /_emulator/faults/{id}            remove one rule
    GET    /_emulator/quotas                 default and per-model quotas
    PUT    /_emulator/quotas                 {"model"?, "requests_per_minute"?, "tokens_per_minute"?}
    DELETE /_emulator/quotas                 back to the configured default, no per-model quotas
    GET    /_emulator/latency                default and per-model latency
    PUT    /_emulator/latency                {"model"?, "time_to_first_token_ms"?, "per_output_token_ms"?}
    GET    /_emulator/keys                   key ids and API-key labels (never secrets)
    POST   /_emulator/keys                   {"access_key_id", "secret_access_key", "session_token"?,
                                              "expires_at"?}
    DELETE /_emulator/keys/{access_key_id}   revoke an access key
    POST   /_emulator/api-keys               {"key", "name"?, "expires_at"?} -> {"name": label}
    DELETE /_emulator/api-keys/{name}        revoke an API key by its label
    PUT    /_emulator/clock                  {"offset_seconds": float}: skew the emulator's clock
    GET    /_emulator/batch                  batch job settings and every job's status
    PUT    /_emulator/batch                  {"phase_seconds"?, "records_per_second"?, "advance_seconds"?,
                                              per-job quotas?}
    POST   /_emulator/batch/reset            forget every job, restore the configured settings
    GET    /_emulator/custom-models          imported/provisioned models, application profiles
    POST   /_emulator/custom-models          {"kind", "base_model", "id"?, "name"?} -> {"arn", ...}
    DELETE /_emulator/custom-models          back to the configured ones
    GET    /_emulator/prompt-cache           prompt caching's TTL, minimum prefix and prefixes held
    PUT    /_emulator/prompt-cache           {"ttl_s"?: float, "min_tokens"?: int}
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from xpi_tools.emulator.catalogue import MODELS_BY_ID, PROFILES
from xpi_tools.emulator.config import AccessKey, ApiKey, Latency, Quota
from xpi_tools.emulator.httpserver import Request, Response
from xpi_tools.emulator.state import ANY_MODEL, STAGES, STREAM_STALL, EmulatorState, PromptCache

PREFIX = "/_emulator"


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reply(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode(), [("Content-Type", "application/json")])


def _is_loopback(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return peer == ""  # Unix sockets and test transports carry no address.


def _model_key(value: Any) -> str:
    """Normalise a model id, inference-profile id or ARN to the foundation-model id quotas use."""
    if value is None or value == ANY_MODEL:
        return ANY_MODEL
    if not isinstance(value, str):
        raise ControlError(400, "model must be a string")
    identifier = value
    if identifier.startswith("arn:"):
        identifier = identifier.rsplit("/", 1)[-1]
    if identifier in PROFILES:
        return PROFILES[identifier].model.model_id
    if identifier in MODELS_BY_ID:
        return identifier
    raise ControlError(400, f"unknown model {value!r}")


def _optional_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ControlError(400, f"{name} must be a non-negative number or null")
    return float(value)


class ControlApi:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        # Routes other parts of the service add (the batch jobs' settings).
        self.extra_routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {}

    def handle(self, request: Request) -> Response:
        if not _is_loopback(request.peer):
            return _reply(403, {"error": "the control endpoint answers loopback clients only"})
        try:
            body: dict[str, Any] = {}
            if request.body:
                parsed = json.loads(request.body)
                if not isinstance(parsed, dict):
                    raise ControlError(400, "the body must be a JSON object")
                body = parsed
            return self._dispatch(request.method, request.path.removeprefix(PREFIX).rstrip("/"), body)
        except ControlError as error:
            return _reply(error.status, {"error": str(error)})
        except ValueError as error:
            return _reply(400, {"error": str(error)})

    def _dispatch(self, method: str, path: str, body: dict[str, Any]) -> Response:
        handler = self._routes.get((method, path)) or self.extra_routes.get((method, path))
        if handler is not None:
            return _reply(200, handler(body))
        for (route_method, prefix), remover in self._removals.items():
            if method == route_method and path.startswith(prefix) and len(path) > len(prefix):
                if not remover(unquote(path.removeprefix(prefix))):
                    raise ControlError(404, f"nothing to remove at {PREFIX}{path}")
                return _reply(200, {"removed": True})
        raise ControlError(404, f"no control route {method} {PREFIX}{path}")

    @property
    def _routes(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
        state = self._state
        return {
            ("GET", "/health"): self._health,
            ("GET", "/counters"): lambda _: state.counters.snapshot(),
            ("POST", "/reset"): self._reset,
            ("GET", "/faults"): lambda _: {"faults": [r.describe() for r in state.faults.rules]},
            ("POST", "/faults"): self._add_fault,
            ("DELETE", "/faults"): self._clear_faults,
            ("GET", "/quotas"): lambda _: state.quotas.describe(),
            ("PUT", "/quotas"): self._set_quota,
            ("DELETE", "/quotas"): self._clear_quotas,
            ("GET", "/latency"): lambda _: state.latencies.describe(),
            ("PUT", "/latency"): self._set_latency,
            ("GET", "/keys"): lambda _: state.keys.describe(),
            ("POST", "/keys"): self._add_access_key,
            ("POST", "/api-keys"): self._add_api_key,
            ("PUT", "/clock"): self._set_clock,
            ("GET", "/prompt-cache"): lambda _: state.prompt_cache.describe(),
            ("PUT", "/prompt-cache"): self._set_prompt_cache,
        }

    @property
    def _removals(self) -> dict[tuple[str, str], Callable[[str], bool]]:
        state = self._state
        return {
            ("DELETE", "/faults/"): state.faults.remove,
            ("DELETE", "/keys/"): state.keys.revoke_access_key,
            ("DELETE", "/api-keys/"): state.keys.revoke_api_key,
        }

    def _health(self, _: dict[str, Any]) -> dict[str, Any]:
        catalogue = self._state.catalogue
        return {
            "status": "ok",
            "region": catalogue.region,
            "partition": catalogue.partition,
            "account_id": catalogue.account_id,
            "models": len(catalogue.models),
            "inference_profiles": len(catalogue.profiles),
        }

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        state = self._state
        if body.get("counters", True):
            state.counters.reset()
        if body.get("faults", True):
            state.faults.reset()
        if body.get("quotas", True):
            state.quotas.reset()
        if body.get("latency", True):
            state.latencies.reset()
        if body.get("clock", True):
            state.clock_offset = 0.0
        if body.get("prompt_cache", True):
            state.prompt_cache = PromptCache()
        return {"reset": True}

    def _clear_faults(self, _: dict[str, Any]) -> dict[str, Any]:
        self._state.faults.rules.clear()
        return {"faults": []}

    def _set_quota(self, body: dict[str, Any]) -> dict[str, Any]:
        quota = Quota(
            requests_per_minute=_optional_number(body, "requests_per_minute"),
            tokens_per_minute=_optional_number(body, "tokens_per_minute"),
        )
        self._state.quotas.set(_model_key(body.get("model")), quota)
        return self._state.quotas.describe()

    def _clear_quotas(self, _: dict[str, Any]) -> dict[str, Any]:
        self._state.quotas.reset()
        return self._state.quotas.describe()

    def _set_latency(self, body: dict[str, Any]) -> dict[str, Any]:
        latency = Latency(
            time_to_first_token_ms=_optional_number(body, "time_to_first_token_ms") or 0.0,
            per_output_token_ms=_optional_number(body, "per_output_token_ms") or 0.0,
        )
        self._state.latencies.set(_model_key(body.get("model")), latency)
        return self._state.latencies.describe()

    def _add_access_key(self, body: dict[str, Any]) -> dict[str, Any]:
        key_id, secret, token = (
            body.get("access_key_id"),
            body.get("secret_access_key"),
            body.get("session_token"),
        )
        if not isinstance(key_id, str) or not key_id or not isinstance(secret, str) or not secret:
            raise ControlError(400, "access_key_id and secret_access_key are required strings")
        if token is not None and not isinstance(token, str):
            raise ControlError(400, "session_token must be a string")
        self._state.keys.add_access_key(
            AccessKey(key_id, secret, token, _optional_number(body, "expires_at"))
        )
        return {"access_key_id": key_id}

    def _add_api_key(self, body: dict[str, Any]) -> dict[str, Any]:
        key, name = body.get("key"), body.get("name", "")
        if not isinstance(key, str) or not key or not isinstance(name, str):
            raise ControlError(400, "key is a required string; name an optional string")
        label = self._state.keys.add_api_key(ApiKey(key, name, _optional_number(body, "expires_at")))
        return {"name": label}

    def _set_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        offset = body.get("offset_seconds")
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise ControlError(400, "offset_seconds must be a number")
        self._state.clock_offset = float(offset)
        return {"offset_seconds": self._state.clock_offset}

    def _set_prompt_cache(self, body: dict[str, Any]) -> dict[str, Any]:
        cache = self._state.prompt_cache
        ttl, minimum = body.get("ttl_s", cache.ttl_s), body.get("min_tokens", cache.min_tokens)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise ControlError(400, "ttl_s must be a positive number")
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise ControlError(400, "min_tokens must be a positive integer")
        cache.ttl_s, cache.min_tokens = float(ttl), minimum
        return cache.describe()

    def _add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        error = body.get("error", STREAM_STALL if body.get("stage") == "stall" else None)
        count = body.get("count")
        rate = body.get("rate")
        message = body.get("message")
        operations = body.get("operations")
        if not isinstance(error, str):
            raise ControlError(400, "error is required")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ControlError(400, "count must be an integer")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
            raise ControlError(400, "rate must be a number")
        if message is not None and not isinstance(message, str):
            raise ControlError(400, "message must be a string")
        if operations is not None and not (
            isinstance(operations, list) and all(isinstance(o, str) for o in operations)
        ):
            raise ControlError(400, "operations must be a list of operation names")
        stage = body.get("stage", "request")
        if stage not in STAGES:
            raise ControlError(400, "stage must be 'request', 'stream' or 'stall'")
        stall_seconds = body.get("stall_seconds", 0)
        if isinstance(stall_seconds, bool) or not isinstance(stall_seconds, int | float):
            raise ControlError(400, "stall_seconds must be a number")
        if stage == "stall":
            error = STREAM_STALL
            if not 0 < stall_seconds <= 3600:
                raise ControlError(400, "stall_seconds must be in (0, 3600]")
        rule = self._state.faults.add(
            model=_model_key(body.get("model")),
            error=error,
            count=count,
            rate=float(rate) if rate is not None else None,
            message=message,
            operations=operations,
            stage=stage,
            stall_seconds=float(stall_seconds),
        )
        return rule.describe()
