"""A small typed client for the emulator's control endpoint (stdlib only, thread-safe: one
short-lived connection per call)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

ErrorCode = Literal[
    "ThrottlingException",
    "ServiceUnavailableException",
    "ModelTimeoutException",
    "ModelNotReadyException",
    "InternalServerException",
    "ModelErrorException",
    "ModelStreamErrorException",
    "AccessDeniedException",
    "ValidationException",
    "ServiceQuotaExceededException",
    "StreamStall",  # with stage="stall" (the stage sets it anyway)
]
Operation = Literal[
    "Converse",
    "ConverseStream",
    "InvokeModel",
    "InvokeModelWithResponseStream",
    "CountTokens",
    "ModelInvocationJob",  # the records of batch inference jobs
]


_PROFILE_PREFIXES = ("us.", "us-gov.", "eu.", "apac.", "global.")


def foundation_model_id(identifier: str) -> str:
    """The foundation-model id in a model id, inference-profile id or ARN (counters are per model)."""
    if identifier.startswith("arn:"):
        identifier = identifier.rsplit("/", 1)[-1]
    for prefix in _PROFILE_PREFIXES:
        if identifier.startswith(prefix):
            return identifier.removeprefix(prefix)
    return identifier


class EmulatorControlError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class UsageCounters:
    calls: int = 0
    successes: int = 0
    errors: int = 0
    throttles: int = 0
    auth_failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)
    cache_read_input_tokens: int = 0  # Bedrock prompt caching: prefixes read from / written to the cache
    cache_write_input_tokens: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageCounters:
        return cls(
            calls=int(data["calls"]),
            successes=int(data["successes"]),
            errors=int(data["errors"]),
            throttles=int(data["throttles"]),
            auth_failures=int(data["auth_failures"]),
            input_tokens=int(data["input_tokens"]),
            output_tokens=int(data["output_tokens"]),
            error_codes={str(k): int(v) for k, v in data["error_codes"].items()},
            cache_read_input_tokens=int(data.get("cache_read_input_tokens", 0)),
            cache_write_input_tokens=int(data.get("cache_write_input_tokens", 0)),
        )


@dataclass(frozen=True)
class Counters:
    totals: UsageCounters
    models: dict[str, UsageCounters]
    keys: dict[str, UsageCounters]
    operations: dict[str, int]
    tags: dict[str, UsageCounters] = field(default_factory=dict)

    def model(self, model_id: str) -> UsageCounters:
        """Counters of a foundation model; an inference-profile id or ARN names its model."""
        return self.models.get(foundation_model_id(model_id), UsageCounters())

    def key(self, key_id: str) -> UsageCounters:
        return self.keys.get(key_id, UsageCounters())

    def tag(self, name: str) -> UsageCounters:
        """Counters of the calls whose last user message carried ``[[emulator:tag=NAME]]``."""
        return self.tags.get(name, UsageCounters())


@dataclass(frozen=True)
class Fault:
    id: str
    model: str
    error: str
    message: str
    remaining: int | None
    rate: float | None
    operations: list[str] | None
    stage: str
    fired: int
    stall_seconds: float = 0.0


class EmulatorControl:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, f"/_emulator{path}", body=payload, headers=headers)
            response = connection.getresponse()
            data = json.loads(response.read() or b"{}")
        finally:
            connection.close()
        if response.status >= 300:
            raise EmulatorControlError(response.status, str(data.get("error", data)))
        return data

    # -- reading -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def counters(self) -> Counters:
        data = self._call("GET", "/counters")
        return Counters(
            totals=UsageCounters.from_json(data["totals"]),
            models={k: UsageCounters.from_json(v) for k, v in data["models"].items()},
            keys={k: UsageCounters.from_json(v) for k, v in data["keys"].items()},
            operations={str(k): int(v) for k, v in data["operations"].items()},
            tags={k: UsageCounters.from_json(v) for k, v in data.get("tags", {}).items()},
        )

    def reset(
        self,
        *,
        counters: bool = True,
        faults: bool = True,
        quotas: bool = True,
        latency: bool = True,
        clock: bool = True,
    ) -> None:
        self._call(
            "POST",
            "/reset",
            {"counters": counters, "faults": faults, "quotas": quotas, "latency": latency, "clock": clock},
        )

    # -- faults ----------------------------------------------------------------------------------

    def inject_fault(
        self,
        error: ErrorCode,
        *,
        model: str = "*",
        count: int | None = None,
        rate: float | None = None,
        message: str | None = None,
        operations: list[Operation] | None = None,
        stage: Literal["request", "stream", "stall"] = "request",
        stall_seconds: float = 0.0,
    ) -> Fault:
        """Fail the next ``count`` matching calls, or a ``rate`` fraction of them (or both).

        ``stage="stream"`` lets a streaming call start, then ends it with an exception event.
        ``stage="stall"`` (``error`` is ignored) answers a streaming call, sends half its stream, then
        nothing for ``stall_seconds``, then drops the connection: the call counts as answered (billed)."""
        data = self._call(
            "POST",
            "/faults",
            {
                "error": error,
                "model": model,
                "count": count,
                "rate": rate,
                "message": message,
                "operations": operations,
                "stage": stage,
                "stall_seconds": stall_seconds,
            },
        )
        return Fault(**data)

    def faults(self) -> list[Fault]:
        return [Fault(**item) for item in self._call("GET", "/faults")["faults"]]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{quote(fault_id, safe='')}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # -- quotas and latency ----------------------------------------------------------------------

    def set_quota(
        self,
        model: str = "*",
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        """Token-bucket quotas for a model (id, profile id or ARN) or ``*`` (every model).

        None is unlimited."""
        self._call(
            "PUT",
            "/quotas",
            {
                "model": model,
                "requests_per_minute": requests_per_minute,
                "tokens_per_minute": tokens_per_minute,
            },
        )

    def clear_quotas(self) -> None:
        self._call("DELETE", "/quotas")

    def set_latency(
        self, model: str = "*", *, time_to_first_token_ms: float = 0.0, per_output_token_ms: float = 0.0
    ) -> None:
        self._call(
            "PUT",
            "/latency",
            {
                "model": model,
                "time_to_first_token_ms": time_to_first_token_ms,
                "per_output_token_ms": per_output_token_ms,
            },
        )

    # -- keys and clock --------------------------------------------------------------------------

    def keys(self) -> dict[str, Any]:
        """``{"access_keys": {key_id: {"has_session_token", "expires_at"}}, "api_keys": {name: {...}}}``."""
        result: dict[str, Any] = self._call("GET", "/keys")
        return result

    def access_key_ids(self) -> list[str]:
        return list(self.keys()["access_keys"])

    def add_access_key(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expires_at: float | None = None,
    ) -> None:
        self._call(
            "POST",
            "/keys",
            {
                "access_key_id": access_key_id,
                "secret_access_key": secret_access_key,
                "session_token": session_token,
                "expires_at": expires_at,
            },
        )

    def revoke_access_key(self, access_key_id: str) -> None:
        self._call("DELETE", f"/keys/{quote(access_key_id, safe='')}")

    def add_api_key(self, key: str, name: str = "", expires_at: float | None = None) -> str:
        """Accept ``key`` as a Bedrock API key; returns the label it is counted under."""
        return str(
            self._call("POST", "/api-keys", {"key": key, "name": name, "expires_at": expires_at})["name"]
        )

    def revoke_api_key(self, name: str) -> None:
        self._call("DELETE", f"/api-keys/{quote(name, safe='')}")

    def set_prompt_cache(
        self, *, ttl_s: float | None = None, min_tokens: int | None = None
    ) -> dict[str, Any]:
        """Prompt caching's TTL (default 300 s) and minimum cached prefix (default 1,024 tokens)."""
        body = {k: v for k, v in (("ttl_s", ttl_s), ("min_tokens", min_tokens)) if v is not None}
        result: dict[str, Any] = self._call("PUT", "/prompt-cache", body)
        return result

    def set_clock_offset(self, seconds: float) -> None:
        """Skew the emulator's clock (SigV4 time checks, key expiry) by ``seconds``."""
        self._call("PUT", "/clock", {"offset_seconds": seconds})

    # -- batch inference jobs ----------------------------------------------------------------------

    def batch(self) -> dict[str, Any]:
        """Batch settings (timing, quotas, S3 endpoint, known roles) and ``jobs``: job id -> status."""
        result: dict[str, Any] = self._call("GET", "/batch")
        return result

    def set_batch(
        self,
        *,
        phase_seconds: float | None = None,
        records_per_second: float | None = None,
        unpaced: bool = False,
        advance_seconds: float | None = None,
        **quotas: int,
    ) -> dict[str, Any]:
        """How long each job phase lasts on the emulator's clock (0: jobs finish as soon as their S3
        reads and writes do), an optional InProgress pacing in records per second (``unpaced`` clears
        it), ``advance_seconds`` to move the jobs' clock ahead (not the clock SigV4 checks), and the
        per-job quotas (``min_records_per_job=...``, ``max_records_per_job=...``,
        ``max_records_per_file=...``, ``max_file_bytes=...``, ``max_job_bytes=...``)."""
        body: dict[str, Any] = dict(quotas)
        if phase_seconds is not None:
            body["phase_seconds"] = phase_seconds
        if records_per_second is not None or unpaced:
            body["records_per_second"] = records_per_second
        if advance_seconds is not None:
            body["advance_seconds"] = advance_seconds
        result: dict[str, Any] = self._call("PUT", "/batch", body)
        return result

    # -- imported models, provisioned throughput, application inference profiles -------------------

    def add_custom_model(
        self,
        kind: Literal["imported-model", "provisioned-model", "application-inference-profile"],
        base_model: str,
        *,
        resource_id: str = "",
        name: str = "",
    ) -> str:
        """Register an ARN of that kind the runtime answers as ``base_model`` (a foundation-model or
        system inference-profile id) would; returns the ARN."""
        body = {"kind": kind, "base_model": base_model, "id": resource_id, "name": name}
        return str(self._call("POST", "/custom-models", body)["arn"])

    def custom_models(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/custom-models")["custom_models"]
        return result

    def clear_custom_models(self) -> None:
        """Back to the ones the emulator was configured with."""
        self._call("DELETE", "/custom-models")

    def reset_batch(self) -> None:
        """Forget every batch job and restore the configured batch settings."""
        self._call("POST", "/batch/reset")
