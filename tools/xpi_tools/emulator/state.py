"""Mutable emulator state: keys, quotas (token buckets), latency, injected faults and counters.

All of it is touched only from the emulator's event-loop thread (the control endpoint is served
by the same loop), so it needs no locks.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from xpi_tools.emulator.catalogue import Catalogue
from xpi_tools.emulator.config import AccessKey, ApiKey, EmulatorConfig, Latency, Quota
from xpi_tools.emulator.errors import INJECTABLE_MESSAGES

ANY_MODEL = "*"
RUNTIME_OPERATIONS = frozenset(
    {"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream", "CountTokens"}
    # the records of a batch inference job (a fault fails the record, shown in the job's output)
    | {"ModelInvocationJob"}
)
Stage = Literal["request", "stream", "stall"]
STAGES: tuple[str, ...] = ("request", "stream", "stall")
# The error a `stall` rule carries: not one of Bedrock's, the connection just goes silent.
STREAM_STALL = "StreamStall"


# -- keys -------------------------------------------------------------------------------------------


class KeyStore:
    def __init__(self, access_keys: list[AccessKey], api_keys: list[ApiKey]) -> None:
        self.access_keys: dict[str, AccessKey] = {k.access_key_id: k for k in access_keys}
        self.api_keys: dict[str, ApiKey] = {k.key: k for k in api_keys}

    def add_access_key(self, key: AccessKey) -> None:
        self.access_keys[key.access_key_id] = key

    def revoke_access_key(self, access_key_id: str) -> bool:
        return self.access_keys.pop(access_key_id, None) is not None

    def add_api_key(self, key: ApiKey) -> str:
        self.api_keys[key.key] = key
        return key.label

    def revoke_api_key(self, label: str) -> bool:
        for secret, key in list(self.api_keys.items()):
            if key.label == label:
                del self.api_keys[secret]
                return True
        return False

    def describe(self) -> dict[str, Any]:
        """Key ids and API-key labels, in the order they were added: never a secret or a token."""
        return {
            "access_keys": {
                k.access_key_id: {
                    "has_session_token": k.session_token is not None,
                    "expires_at": k.expires_at,
                }
                for k in self.access_keys.values()
            },
            "api_keys": {k.label: {"expires_at": k.expires_at} for k in self.api_keys.values()},
        }


# -- quotas -----------------------------------------------------------------------------------------


class TokenBucket:
    """Holds up to one minute's quota and refills continuously; it may go negative when output
    tokens are charged after the fact, which then delays the next admissions (as Bedrock's TPM does)."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.last = now

    def refill(self, now: float) -> float:
        elapsed = now - self.last
        if elapsed > 0:
            self.level = min(self.capacity, self.level + elapsed * self.rate)
            self.last = now
        return self.level


class Quotas:
    def __init__(self, default: Quota) -> None:
        self._initial_default = Quota(default.requests_per_minute, default.tokens_per_minute)
        self.default = self._initial_default
        self.overrides: dict[str, Quota] = {}
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}

    def set(self, model: str, quota: Quota) -> None:
        if model == ANY_MODEL:
            self.default = quota
            self._buckets.clear()
        else:
            self.overrides[model] = quota
            self._buckets.pop(model, None)

    def reset(self) -> None:
        self.default = self._initial_default
        self.overrides.clear()
        self._buckets.clear()

    def quota_for(self, model: str) -> Quota:
        return self.overrides.get(model, self.default)

    def _buckets_for(self, model: str, now: float) -> tuple[TokenBucket | None, TokenBucket | None]:
        buckets = self._buckets.get(model)
        if buckets is None:
            quota = self.quota_for(model)
            buckets = (
                TokenBucket(quota.requests_per_minute, now)
                if quota.requests_per_minute is not None
                else None,
                TokenBucket(quota.tokens_per_minute, now) if quota.tokens_per_minute is not None else None,
            )
            self._buckets[model] = buckets
        return buckets

    def admit(self, model: str, input_tokens: int, now: float) -> bool:
        """Take one request and the input tokens, or nothing if either bucket is short."""
        requests, tokens = self._buckets_for(model, now)
        if requests is None and tokens is None:
            return True
        if requests is not None and requests.refill(now) < 1:
            return False
        if tokens is not None and tokens.refill(now) < input_tokens:
            return False
        if requests is not None:
            requests.level -= 1
        if tokens is not None:
            tokens.level -= input_tokens
        return True

    def charge_output(self, model: str, output_tokens: int, now: float) -> None:
        tokens = self._buckets_for(model, now)[1]
        if tokens is not None:
            tokens.refill(now)
            tokens.level -= output_tokens

    def describe(self) -> dict[str, Any]:
        return {"default": asdict(self.default), "models": {m: asdict(q) for m, q in self.overrides.items()}}


class Latencies:
    def __init__(self, default: Latency) -> None:
        self._initial_default = Latency(default.time_to_first_token_ms, default.per_output_token_ms)
        self.default = self._initial_default
        self.overrides: dict[str, Latency] = {}

    def set(self, model: str, latency: Latency) -> None:
        if model == ANY_MODEL:
            self.default = latency
        else:
            self.overrides[model] = latency

    def for_model(self, model: str) -> Latency:
        return self.overrides.get(model, self.default)

    def reset(self) -> None:
        self.default = self._initial_default
        self.overrides.clear()

    def describe(self) -> dict[str, Any]:
        return {"default": asdict(self.default), "models": {m: asdict(v) for m, v in self.overrides.items()}}


# -- faults -----------------------------------------------------------------------------------------


@dataclass
class FaultRule:
    fault_id: str
    model: str
    error: str
    message: str
    remaining: int | None
    rate: float | None
    operations: frozenset[str] | None
    stage: Stage
    stall_seconds: float = 0.0
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "model": self.model,
            "error": self.error,
            "message": self.message,
            "remaining": self.remaining,
            "rate": self.rate,
            "operations": sorted(self.operations) if self.operations is not None else None,
            "stage": self.stage,
            "stall_seconds": self.stall_seconds,
            "fired": self.fired,
        }


class Faults:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        # Seeded so that a fraction-of-calls fault fails the same calls on every run (not for secrets).
        self._rng = random.Random(seed)  # noqa: S311
        self._ids = itertools.count(1)
        self.rules: list[FaultRule] = []

    def add(
        self,
        *,
        model: str,
        error: str,
        count: int | None,
        rate: float | None,
        message: str | None,
        operations: list[str] | None,
        stage: Stage,
        stall_seconds: float = 0.0,
    ) -> FaultRule:
        if stage == "stall":
            error = STREAM_STALL
            if not 0 < stall_seconds <= 3600:
                raise ValueError("stall_seconds must be in (0, 3600]")
        elif error not in INJECTABLE_MESSAGES:
            raise ValueError(f"error must be one of {sorted(INJECTABLE_MESSAGES)}")
        if count is None and rate is None:
            raise ValueError("give count (next N calls), rate (fraction of calls) or both")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if rate is not None and not 0.0 < rate <= 1.0:
            raise ValueError("rate must be in (0, 1]")
        if operations is not None and not set(operations) <= RUNTIME_OPERATIONS:
            raise ValueError(f"operations must be among {sorted(RUNTIME_OPERATIONS)}")
        if stage not in STAGES:
            raise ValueError("stage must be 'request', 'stream' or 'stall'")
        rule = FaultRule(
            fault_id=f"fault-{next(self._ids)}",
            model=model,
            error=error,
            message=message or INJECTABLE_MESSAGES.get(error, "the stream stalls half-way"),
            remaining=count,
            rate=rate,
            operations=frozenset(operations) if operations is not None else None,
            stage=stage,
            stall_seconds=stall_seconds if stage == "stall" else 0.0,
        )
        self.rules.append(rule)
        return rule

    def remove(self, fault_id: str) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.fault_id != fault_id]
        return len(self.rules) != before

    def reset(self) -> None:
        self.rules.clear()
        self._rng = random.Random(self._seed)  # noqa: S311

    def take(self, models: tuple[str, ...], operation: str, stage: Stage) -> FaultRule | None:
        """The first rule that fires for this call, consuming one of its remaining uses."""
        for rule in self.rules:
            if rule.stage != stage or (rule.model != ANY_MODEL and rule.model not in models):
                continue
            if rule.operations is not None and operation not in rule.operations:
                continue
            if rule.rate is not None and self._rng.random() >= rule.rate:
                continue
            rule.fired += 1
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.rules.remove(rule)
            return rule
        return None


# -- counters ---------------------------------------------------------------------------------------


@dataclass
class UsageCounter:
    calls: int = 0
    successes: int = 0
    errors: int = 0
    throttles: int = 0
    auth_failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)

    def error(self, code: str) -> None:
        self.errors += 1
        self.error_codes[code] = self.error_codes.get(code, 0) + 1
        if code == "ThrottlingException":
            self.throttles += 1


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.totals = UsageCounter()
        self.models: dict[str, UsageCounter] = {}
        self.keys: dict[str, UsageCounter] = {}
        self.operations: dict[str, int] = {}
        self.tags: dict[str, UsageCounter] = {}

    def _targets(self, model: str | None, key: str | None, tag: str | None = None) -> list[UsageCounter]:
        targets = [self.totals]
        if tag is not None:
            counter = self.tags.get(tag)
            if counter is None:
                counter = self.tags[tag] = UsageCounter()
            targets.append(counter)
        if model is not None:
            counter = self.models.get(model)
            if counter is None:
                counter = self.models[model] = UsageCounter()
            targets.append(counter)
        if key is not None:
            counter = self.keys.get(key)
            if counter is None:
                counter = self.keys[key] = UsageCounter()
            targets.append(counter)
        return targets

    def call(self, operation: str) -> None:
        self.operations[operation] = self.operations.get(operation, 0) + 1

    def success(
        self,
        model: str | None,
        key: str | None,
        input_tokens: int,
        output_tokens: int,
        tag: str | None = None,
        *,
        cache_read: int = 0,
        cache_write: int = 0,
    ) -> None:
        for counter in self._targets(model, key, tag):
            counter.calls += 1
            counter.successes += 1
            counter.input_tokens += input_tokens
            counter.output_tokens += output_tokens
            counter.cache_read_input_tokens += cache_read
            counter.cache_write_input_tokens += cache_write

    def failure(self, model: str | None, key: str | None, code: str, tag: str | None = None) -> None:
        for counter in self._targets(model, key, tag):
            counter.calls += 1
            counter.error(code)

    def auth_failure(self, key: str | None, code: str) -> None:
        for counter in self._targets(None, key):
            counter.auth_failures += 1
            counter.error_codes[code] = counter.error_codes.get(code, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "totals": asdict(self.totals),
            "models": {k: asdict(v) for k, v in self.models.items()},
            "keys": {k: asdict(v) for k, v in self.keys.items()},
            "operations": dict(self.operations),
            "tags": {k: asdict(v) for k, v in self.tags.items()},
        }


# -- prompt caching ---------------------------------------------------------------------------------

# Bedrock's prompt cache: a prefix lives 5 minutes after its last use; a checkpoint below the model's
# minimum prefix is ignored (1,024 tokens for Claude 3.7 Sonnet and the Nova models).
PROMPT_CACHE_TTL_S = 300.0
PROMPT_CACHE_MIN_TOKENS = 1024


class PromptCache:
    """The prefixes at Converse cache points, remembered per key (the caller's access key or API key)
    and model for PROMPT_CACHE_TTL_S after their last use."""

    def __init__(self, ttl_s: float = PROMPT_CACHE_TTL_S, min_tokens: int = PROMPT_CACHE_MIN_TOKENS) -> None:
        self.ttl_s = ttl_s
        self.min_tokens = min_tokens
        self.reset()

    def reset(self) -> None:
        self._expires: dict[tuple[str, str, str], float] = {}

    def apply(self, key: str, model: str, points: list[tuple[str, int]], now: float) -> tuple[int, int]:
        """(tokens read, tokens written) for a request with these cache points: the longest remembered
        prefix is read, the rest up to the last point written; every point used is remembered again."""
        eligible = [(fp, tokens) for fp, tokens in points if tokens >= self.min_tokens]
        if not eligible:
            return 0, 0
        self._expires = {k: t for k, t in self._expires.items() if t > now}
        read = max((tokens for fp, tokens in eligible if (key, model, fp) in self._expires), default=0)
        longest = max(tokens for _, tokens in eligible)
        for fp, _ in eligible:
            self._expires[(key, model, fp)] = now + self.ttl_s
        return read, longest - read

    def describe(self) -> dict[str, Any]:
        return {"ttl_s": self.ttl_s, "min_tokens": self.min_tokens, "prefixes": len(self._expires)}


# -- all of it --------------------------------------------------------------------------------------


class EmulatorState:
    """What the service reads and the control endpoint changes, held by both: the control endpoint
    needs nothing else of the service."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.catalogue = Catalogue(config.region, config.account_id)
        self.keys = KeyStore(list(config.access_keys), config.resolved_api_keys())
        self.quotas = Quotas(config.default_quota)
        self.latencies = Latencies(config.default_latency)
        self.faults = Faults(config.seed)
        self.counters = Counters()
        self.prompt_cache = PromptCache()
        self.clock_offset = 0.0  # seconds added to the wall clock: expired signatures and keys on demand

    def now(self) -> float:
        """Wall-clock time, for signatures and key expiry."""
        return time.time() + self.clock_offset

    def monotonic(self) -> float:
        """The quota buckets' clock: moving the offset forward lets them refill without waiting."""
        return time.monotonic() + self.clock_offset
