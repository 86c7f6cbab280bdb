"""In-memory fakes of xpi's ports (xpi.adapters.ports), with the semantics the real adapters guarantee."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel
from xpi.domain.access import Charge, fits
from xpi.domain.hashing import canonical_sha256
from xpi.models.answer import CachedAnswer, StoredAnswer
from xpi.models.api import RedriveStarted, StoredConfig
from xpi.models.batch import BatchObject
from xpi.models.bedrock import ModelAnswer
from xpi.models.credentials import ApiKey, CommercialCredentials, IamKeys
from xpi.models.lineage import ACCEPTED, FIRST_SEEN_FIELDS, LineageFeedback, LineageItem
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Claim, PayloadRef, Route, Usage, WorkflowInput


@dataclass
class FinalizeCall:
    item: LineageItem
    only_if_new: bool


class FakeLineageStore:
    """DynamoLineageStore's conditions: a new item or an ACCEPTED claim may become final, once, keeping
    the claim's first-seen fields; reads by id and by day (newest first)."""

    def __init__(self) -> None:
        self.items: dict[str, LineageItem] = {}
        self.calls: list[FinalizeCall] = []

    def claim(self, claim: Claim) -> None:
        """What the workflow's Claim step writes."""
        self.items[claim.request_id] = LineageItem.claimed(claim)

    def finalize(self, item: LineageItem, *, only_if_new: bool = False) -> bool:
        self.calls.append(FinalizeCall(item, only_if_new))
        current = self.items.get(item.request_id)
        if current is not None and (only_if_new or current.status != ACCEPTED):
            return False
        merged = item.model_dump(exclude_none=True)
        if current is not None:
            kept = {name: getattr(current, name) for name in FIRST_SEEN_FIELDS}
            # a claim's provisional count of a late answer goes unless the final item carries one
            earlier = current.model_dump(exclude_none=True, exclude={"bedrock_calls_unanswered"})
            merged = {**earlier, **merged, **kept}
        self.items[item.request_id] = LineageItem.model_validate(merged)
        return True

    def finalize_or_read(self, item: LineageItem) -> tuple[bool, LineageItem | None]:
        if self.finalize(item):
            return True, None
        return False, self.items.get(item.request_id)

    def get(self, request_id: str) -> LineageItem | None:
        return self.items.get(request_id)

    def by_day(self, day: date, since_iso: str, limit: int) -> list[LineageItem]:
        found = [i for i in self.items.values() if i.day == day.isoformat() and i.created_at >= since_iso]
        return sorted(found, key=lambda i: i.created_at, reverse=True)[:limit]

    def by_experiment(self, experiment: str, limit: int) -> list[LineageItem]:
        return [i for i in self.items.values() if i.experiment == experiment][:limit]

    def record_feedback(self, request_id: str, feedback: LineageFeedback) -> bool:
        item = self.items.get(request_id)
        if item is None or item.status != "COMPLETED":
            return False
        self.items[request_id] = item.model_copy(update={"feedback": feedback})
        return True


class FakeSyncLedger:
    """DynamoSyncLedger over a FakeLineageStore's items: the claim only for a new request id (else the
    item found), and the final state and kept answer together, only over the claim made at the same time."""

    def __init__(
        self, lineage: FakeLineageStore | None = None, budgets: "FakeBudgetLedger | None" = None
    ) -> None:
        self.lineage_store = lineage or FakeLineageStore()
        self.budgets = budgets  # where the settlement riding the final write goes
        self.answers: dict[str, StoredAnswer] = {}
        self.claims = 0
        self.finishes = 0

    def claim(self, claim: Claim) -> LineageItem | None:
        self.claims += 1
        found = self.lineage_store.items.get(claim.request_id)
        if found is not None:
            return found
        self.lineage_store.claim(claim)
        return None

    def count_answer(self, request_id: str, claimed_by: str) -> bool:
        """DynamoLineageClaims.count_answer: only on this execution's claim, still ACCEPTED."""
        current = self.lineage_store.items.get(request_id)
        if current is None or current.status != ACCEPTED or current.claimed_by != claimed_by:
            return False
        self.lineage_store.items[request_id] = current.model_copy(update={"bedrock_calls_unanswered": 1})
        return True

    def finish(
        self, item: LineageItem, answer: StoredAnswer, answer_expires_at: int, settle: Sequence[Charge] = ()
    ) -> bool:
        self.finishes += 1
        current = self.lineage_store.items.get(item.request_id)
        if current is None or current.status != ACCEPTED or current.created_at != item.created_at:
            return False
        assert self.lineage_store.finalize(item)
        self.answers[item.request_id] = answer
        if settle:
            assert self.budgets is not None, "a settlement without a budget ledger"
            self.budgets.add(settle)
        return True

    def lineage(self, request_id: str) -> LineageItem | None:
        return self.lineage_store.items.get(request_id)

    def answer(self, request_id: str) -> StoredAnswer | None:
        return self.answers.get(request_id)


class FakeBudgetLedger:
    """DynamoBudgetLedger in memory: a reservation adds every charge or none, only when each item stays
    within its limits (xpi.domain.access.fits, what the conditional write checks)."""

    def __init__(self) -> None:
        self.usage: dict[str, tuple[int, float]] = {}
        self.calls: list[str] = []
        self.alerted: dict[tuple[str, int], str] = {}

    def reserve(self, charges: Sequence[Charge]) -> bool:
        self.calls.append("reserve")
        if not all(fits(c, *self.usage.get(c.item, (0, 0.0))) for c in charges):
            return False
        self._add(charges)
        return True

    def settle(self, charges: Sequence[Charge]) -> None:
        self.calls.append("settle")
        self._add(charges)

    def used(self, items: Sequence[str]) -> dict[str, tuple[int, float]]:
        self.calls.append("used")
        return {item: self.usage[item] for item in items if item in self.usage}

    def mark_alerted(self, item: str, threshold: int, at: str) -> bool:
        self.calls.append("mark_alerted")
        if (item, threshold) in self.alerted:
            return False
        self.alerted[item, threshold] = at
        return True

    def add(self, charges: Sequence[Charge]) -> None:
        """Charges added as part of another write (the sync path's final transaction)."""
        self._add(charges)

    def _add(self, charges: Sequence[Charge]) -> None:
        for c in charges:
            tokens, usd = self.usage.get(c.item, (0, 0.0))
            self.usage[c.item] = (tokens + c.tokens, round(usd + c.usd, 8))


class FakeEventPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: BaseModel) -> None:
        self.published.append((detail_type, detail.model_dump(mode="json", exclude_none=True)))

    def publish_all(self, events: Sequence[tuple[str, BaseModel]]) -> None:
        for detail_type, detail in events:
            self.publish(detail_type, detail)


class FakeWorkflowStarter:
    """Step Functions' rule: one execution per name."""

    def __init__(self) -> None:
        self.started: dict[str, WorkflowInput] = {}

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        if request_id in self.started:
            return False
        self.started[request_id] = workflow_input
        return True


class FakeExecutions:
    """Step Functions executions by request id: (status, output)."""

    def __init__(self) -> None:
        self.executions: dict[str, tuple[str, dict[str, Any] | None]] = {}

    def describe(self, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        return self.executions.get(request_id)


class FakeBatchStarter:
    """Step Functions' rule for the batch workflow: one execution per batch id."""

    def __init__(self) -> None:
        self.started: dict[str, BatchObject] = {}

    def start(self, batch: BatchObject) -> bool:
        if batch.batch_id in self.started:
            return False
        self.started[batch.batch_id] = batch
        return True


class FakeBatchStatus:
    """The batch table's status items, as the API reads them."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def status(self, batch_id: str) -> dict[str, Any] | None:
        return self.items.get(batch_id)


class FakeAdminActions:
    def __init__(self, dead_letters: int = 3) -> None:
        self.policies: list[str] = []
        self.dead_letters = dead_letters
        self.redrives: list[RedriveStarted] = []

    def store_config(
        self,
        kind: Literal["policy", "routing"],
        document: dict[str, Any],
        *,
        changed_by: str,
        changed_at: str,
    ) -> StoredConfig:
        self.policies.append(json.dumps(document))
        return StoredConfig(
            document=kind,
            revision=len(self.policies),
            sha256=canonical_sha256(document),
            parameter=f"/xpi/test/{kind}",
            parameter_version=len(self.policies),
        )

    def redrive(self) -> RedriveStarted:
        handle = f"task-{len(self.redrives) + 1}"
        started = RedriveStarted(task_handle=handle, messages_to_move=self.dead_letters)
        self.redrives.append(started)
        self.dead_letters = 0  # SQS moves them after the answer; here at once
        return started


class FakeObjectStore:
    def __init__(self, bucket: str = "xpi-prod-artifacts") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.objects[key] = (body, content_type)
        return f"s3://{self.bucket}/{key}"


class FakePayloadStore:
    """Request bodies by reference, in memory (what S3PayloadStore keeps under payloads/)."""

    def __init__(self, bucket: str = "xpi-prod-artifacts") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, hmac: str | None = None) -> PayloadRef:
        full_key = f"payloads/{key}"
        self.objects[full_key] = body
        return PayloadRef(bucket=self.bucket, key=full_key, bytes=len(body), hmac=hmac)

    def get(self, ref: PayloadRef) -> bytes:
        return self.objects[ref.key]


# The hash key of every unit test (and of the sample states of events/, whose hashes it made).
TEST_HASH_KEY = b"xpi-unit-test-hash-key-0123456789abcdef0123456789abcdef"


class FakeHashKey:
    def __init__(self, key: bytes = TEST_HASH_KEY) -> None:
        self.key = key

    def get(self) -> bytes:
        return self.key


@dataclass
class FakeBedrockGateway:
    """Answers every call with `answer`, or raises `error`; remembers what it was asked."""

    answer_text: str | None = "A short answer."
    answer_body: dict[str, Any] | None = None
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=120, output_tokens=40))
    stop_reason: str | None = "end_turn"
    credential_version: str = "7d4e1b2a-9c3f-4e5d-8a6b-0f1e2d3c4b5a"
    credential_age_s: int | None = None
    error: Exception | None = None
    calls: list[tuple[Route, InferenceRequest]] = field(default_factory=list)

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        self.calls.append((route, request))
        if self.error is not None:
            raise self.error
        return ModelAnswer(
            text=self.answer_text if self.answer_body is None else None,
            body=self.answer_body,
            stop_reason=self.stop_reason,
            usage=self.usage,
            latency_ms=830,
            credential_version=self.credential_version,
            credential_age_s=self.credential_age_s,
        )


IAM_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class FakeCredentials:
    """A CredentialSource whose secret is rotated from version to version on each refresh."""

    def __init__(self, versions: list[str] | None = None, kind: str = "iam") -> None:
        self.versions = versions or ["v-1111", "v-2222"]
        self.kind = kind
        self.reads: list[bool] = []
        self._current = 0

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        self.reads.append(refresh)
        if refresh and self._current + 1 < len(self.versions):
            self._current += 1
        version = self.versions[self._current]
        secret: IamKeys | ApiKey
        if self.kind == "iam":
            secret = IamKeys.model_validate(
                {
                    "aws_access_key_id": f"AKIAEXAMPLE{self._current:09d}",
                    "aws_secret_access_key": f"{IAM_SECRET_ACCESS_KEY}-{version}",
                }
            )
        else:
            secret = ApiKey.model_validate({"type": "api_key", "api_key": f"bedrock-api-key-{version}"})
        return CommercialCredentials(version_id=version, secret=secret)


class FakeResponseCache:
    """The exact-match response cache in memory; `broken` makes every call fail as DynamoDB would."""

    def __init__(self, *, broken: bool = False) -> None:
        self.items: dict[str, CachedAnswer] = {}
        self.broken = broken
        self.gets = 0

    def get(self, key: str, now: int) -> CachedAnswer | None:
        self.gets += 1
        if self.broken:
            raise ConnectionError("cache table unreachable")
        answer = self.items.get(key)
        return answer if answer is not None and answer.expires_at > now else None

    def put(self, key: str, answer: CachedAnswer) -> None:
        if self.broken:
            raise ConnectionError("cache table unreachable")
        self.items[key] = answer
