"""The ports: every Protocol the services (and the adapters themselves) are written against, in one
place. The other modules of adapters/ hold the AWS implementations; dependencies.py picks them, and
unit tests pass the in-memory fakes of tests/helpers/fakes.py instead.

This module imports no boto3, so a service that depends on ports alone can be read, and tested,
without AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

    from xpi.domain.access import Charge
    from xpi.domain.circuit import BreakerSettings, CircuitState
    from xpi.domain.egress import PathState
    from xpi.domain.pacing import BucketState
    from xpi.models.answer import CachedAnswer, StoredAnswer
    from xpi.models.bedrock import ModelAnswer
    from xpi.models.credentials import (
        AccessKeyMetadata,
        ApiKey,
        CommercialCredentials,
        IamKeys,
        ServiceCredentialMetadata,
    )
    from xpi.models.hold import HeldMessage
    from xpi.models.intake import OriginalSender
    from xpi.models.lineage import LineageFeedback, LineageItem
    from xpi.models.queue import QueuedInput
    from xpi.models.reaping import ExecutionState
    from xpi.models.request import InferenceRequest
    from xpi.models.workflow import Claim, PayloadRef, Route, WorkflowInput

# The compliance, API and batch functions' models: not loaded at every other function's cold start.
if TYPE_CHECKING:
    from xpi.models.api import RedriveStarted, StoredConfig
    from xpi.models.batch import BatchObject, LineResult
    from xpi.models.batch_jobs import BatchJob
    from xpi.models.compliance import AdminAction, CheckRun, ConfigChange, StackConfiguration


# ---------------------------------------------------------------------------------------------- requests
class LineageStore(Protocol):
    """The lineage table: one item per request, final states guarded by conditions."""

    def finalize(self, item: LineageItem, *, only_if_new: bool = False) -> bool:
        """Write the item's final state, keeping a claim's first-seen fields; False when the item is
        already final (a late duplicate), or exists at all when only_if_new."""
        ...

    def finalize_or_read(self, item: LineageItem) -> tuple[bool, LineageItem | None]:
        """finalize, and when the item was final already, the item as found: (written, found)."""
        ...

    def get(self, request_id: str) -> LineageItem | None: ...

    def by_day(self, day: date, since_iso: str, limit: int) -> list[LineageItem]:
        """Items of one day created at or after since_iso, newest first."""
        ...

    def by_experiment(self, experiment: str, limit: int) -> list[LineageItem]:
        """Items of the requests an A/B experiment assigned a variant (the by-experiment index)."""
        ...

    def record_feedback(self, request_id: str, feedback: LineageFeedback) -> bool:
        """Set the item's feedback (replacing any before) if it is COMPLETED; False otherwise."""
        ...


class SyncLedger(Protocol):
    """What the sync path (POST /v1/invoke in one function) records: the lineage claim before any work,
    and on the way out, in one write, lineage made final with the answer kept for a repeated call."""

    def claim(self, claim: Claim) -> LineageItem | None:
        """Write the lineage claim (status ACCEPTED) unless an item of this request id exists: None when
        written, else the item found (returned by the failed write itself)."""
        ...

    def finish(
        self, item: LineageItem, answer: StoredAnswer, answer_expires_at: int, settle: Sequence[Charge] = ()
    ) -> bool:
        """In one transaction, make the claim made at item.created_at final, keep the answer and add the
        budgets' settlement; False (nothing written) when the item is no longer that claim."""
        ...

    def lineage(self, request_id: str) -> LineageItem | None: ...

    def answer(self, request_id: str) -> StoredAnswer | None:
        """The answer kept for this request id; None when none is (not answered through the sync path,
        or expired)."""
        ...


class IntakeRecords(Protocol):
    """The original sender of each queued message the consumer could not accept, by message body key."""

    def remember(self, key: str, sender: OriginalSender, expires_at: int) -> None: ...

    def recall(self, key: str) -> OriginalSender | None: ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: BaseModel) -> None: ...


class EventBatchPublisher(EventPublisher, Protocol):
    def publish_all(self, events: Sequence[tuple[str, BaseModel]]) -> None:
        """Each event, in order, in as few requests as the bus allows; raises when any is refused."""
        ...


class WorkflowStarter(Protocol):
    """The inference workflow; an execution is named by its request id."""

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        """Start it; False when an execution of this request id exists already."""
        ...


class ExecutionReader(Protocol):
    def describe(self, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """(status, output) of the request's execution; None when there is none."""
        ...


class AbandonedLineage(Protocol):
    """The lineage table as the reaper reads it: the by-status index, and the mark that an abandoned
    request's event was published."""

    def accepted_before(
        self, before_iso: str, limit: int, keep: Callable[[str], bool] | None = None
    ) -> list[LineageItem]:
        """ACCEPTED items created before before_iso, oldest first, at most limit; with `keep`, only the
        items whose request id it keeps (counted toward limit after it)."""
        ...

    def abandon(self, item: LineageItem) -> bool:
        """Write the item's FAILED state if the stored item is still ACCEPTED; False otherwise."""
        ...

    def unreported_abandoned(
        self, created_since_iso: str, created_before_iso: str, completed_before_iso: str, code: str
    ) -> list[LineageItem]:
        """FAILED items with this error code, created in [since, before), made final before
        completed_before, whose event is not marked as published."""
        ...

    def mark_reported(self, request_id: str, at_iso: str) -> None:
        """Record that the item's event was published."""
        ...


class LineageClaims(Protocol):
    """The queue workflow's process step: the lineage claim, its one write before any work."""

    def claim(self, claim: Claim) -> LineageItem | None:
        """Write the lineage claim (status ACCEPTED) unless an item of this request id exists: None when
        written, else the item found (returned by the failed write itself)."""
        ...

    def count_answer(self, request_id: str, claimed_by: str) -> bool:
        """Count a Bedrock answer on the claim (`bedrock_calls_unanswered: 1`) while it is still this
        execution's and ACCEPTED: the answer is billed, and a run that cannot deliver it leaves the claim
        to the reaper. The record step's final write states the truth (it removes the count unless the
        final item carries one). False when the claim is no longer this execution's, or final."""
        ...


class QueueStarter(Protocol):
    """The queue workflow (Express): one execution per SQS batch, its requests the items of a Map."""

    def start(self, batch: Sequence[tuple[str, QueuedInput]]) -> list[str]:
        """Start executions for the batch's (message id, request) pairs, as few as the input limit
        allows, each request with its answer should it never be processed; the message ids whose
        execution did not start."""
        ...


class QueueHolder(Protocol):
    """The requests queue, taking back messages the consumer holds while the Bedrock quota is spent."""

    def hold(self, messages: Sequence[HeldMessage], delay_s: int) -> list[str]:
        """Send each message again, delayed `delay_s` seconds, with its mark; the message ids not sent
        (they are started now instead)."""
        ...


class ExecutionControl(Protocol):
    """A request's inference execution (named by its request id), as the reaper sees and ends it."""

    def inspect(self, request_id: str) -> ExecutionState | None:
        """Its status and source; None when there is none."""
        ...

    def stop(self, request_id: str, error: str, cause: str) -> None:
        """Stop it (nothing when it is not running any more)."""
        ...


class ObjectStore(Protocol):
    """Large outputs in the artifacts bucket."""

    def put(self, key: str, body: bytes, content_type: str) -> str:
        """Store the object and return its s3:// URI."""
        ...


class PayloadStore(Protocol):
    """Request bodies by reference (`payloads/` in the artifacts bucket, under the stack key): the
    workflow's states carry a PayloadRef, never the body."""

    def put(self, key: str, body: bytes, hmac: str | None = None) -> PayloadRef:
        """Store the body under payloads/<key> and return its reference."""
        ...

    def get(self, ref: PayloadRef) -> bytes:
        """The body the reference points at."""
        ...


class HashKey(Protocol):
    """The stack's hash key (HMAC-SHA256): keyed hashes of content in lineage and in the workflow."""

    def get(self) -> bytes: ...


class BedrockGateway(Protocol):
    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer: ...


class PacingTable(Protocol):
    """The shared pacing buckets (xpi.domain.pacing), one per model and region."""

    def read(self, bucket: str) -> BucketState | None: ...

    def replace(self, bucket: str, state: BucketState, *, expected: BucketState | None) -> bool:
        """Write `state` unless the bucket changed since `expected` was read (None: unless it exists);
        False when it had."""
        ...

    def add_tokens(self, bucket: str, tokens: float) -> None:
        """Give back (negative: charge) tokens after a call, atomically."""
        ...


class ResponseCache(Protocol):
    """The exact-match response cache (keyed on a keyed hash: xpi.domain.response_cache.cache_key)."""

    def get(self, key: str, now: int) -> CachedAnswer | None:
        """The answer stored under key, unless it expired before `now` (epoch seconds)."""
        ...

    def put(self, key: str, answer: CachedAnswer) -> None: ...


class CircuitTable(Protocol):
    """The circuit breakers' shared state (xpi.domain.circuit), one item per model and region."""

    def read(self, key: str) -> CircuitState | None: ...

    def failed(self, key: str, now: float, settings: BreakerSettings) -> None:
        """Count one more failure in a row, atomically, and open the circuit when it reaches the limit."""
        ...

    def closed(self, key: str) -> None:
        """An answer: the failures in a row start again from none and the circuit closes."""
        ...


class BudgetLedger(Protocol):
    """The day's usage per caller and per project (xpi.domain.access), one item per budget and day."""

    def reserve(self, charges: Sequence[Charge]) -> bool:
        """Add every charge, all or none, only if each item stays within its limits (one atomic write);
        False when one would not."""
        ...

    def settle(self, charges: Sequence[Charge]) -> None:
        """Add (negative: give back) each charge, without limits, after the call."""
        ...

    def used(self, items: Sequence[str]) -> dict[str, tuple[int, float]]:
        """Tokens and dollars used so far on each item that exists."""
        ...

    def mark_alerted(self, item: str, threshold: int, at: str) -> bool:
        """Note on the day's usage item that its `threshold` (percent) alert was raised; False when it
        had been already (once per threshold per day)."""
        ...


class CredentialSource(Protocol):
    def get(self, *, refresh: bool = False) -> CommercialCredentials: ...


class RotatingSecret(Protocol):
    """The commercial credentials secret's versions and staging labels, as its rotation sees them."""

    def stages(self, secret_id: str) -> Mapping[str, Sequence[str]]:
        """Each version id with its staging labels (DescribeSecret's VersionIdsToStages)."""
        ...

    def value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> str | None:
        """The version's value, or None when there is no such version (or it holds no value)."""
        ...

    def put_pending(self, secret_id: str, token: str, value: str) -> None: ...

    def promote(self, secret_id: str, token: str, current_version_id: str | None) -> None:
        """Move AWSCURRENT to the version `token` (AWSPREVIOUS follows to the old one)."""
        ...


class CommercialIam(Protocol):
    """The commercial IAM user's own access keys, managed with one of its keys (same egress as Bedrock)."""

    def list_access_keys(self, signer: IamKeys) -> list[AccessKeyMetadata]: ...

    def create_access_key(self, signer: IamKeys) -> IamKeys: ...

    def delete_access_key(self, signer: IamKeys, access_key_id: str) -> None:
        """Delete the key; a key already gone is not an error."""
        ...


class BedrockApiKeys(Protocol):
    """A commercial IAM user's Bedrock service-specific credentials (long-term Bedrock API keys),
    managed with the access key of a key manager user (same egress as Bedrock)."""

    def list_credentials(self, signer: IamKeys, user_name: str) -> list[ServiceCredentialMetadata]: ...

    def create_credential(self, signer: IamKeys, user_name: str) -> ApiKey: ...

    def delete_credential(self, signer: IamKeys, user_name: str, credential_id: str) -> None:
        """Delete the credential; one already gone is not an error."""
        ...


class CredentialProbe(Protocol):
    """One real, minimal Bedrock call with the given keys (SigV4) or API key (bearer): raises
    CredentialsRejected if refused."""

    def check(self, keys: IamKeys | ApiKey) -> None: ...


class ComprehendClient(Protocol):
    """The one Comprehend operation the PII detector needs (a boto3 `comprehend` client has it)."""

    def detect_pii_entities(self, *, Text: str, LanguageCode: Literal["en", "es"]) -> Mapping[str, Any]: ...


class AdminActions(Protocol):
    def store_config(
        self,
        kind: Literal["policy", "routing"],
        document: dict[str, Any],
        *,
        changed_by: str,
        changed_at: str,
    ) -> StoredConfig:
        """Store `document` as the next signed revision of the policy or routing document."""
        ...

    def redrive(self) -> RedriveStarted:
        """Start moving every message of the requests DLQ back to the queue it was dead-lettered from
        (asynchronously, by SQS); returns the move task's handle and how many messages it is to move."""
        ...


# ---------------------------------------------------------------------------------------------- batches
class BatchStatusReader(Protocol):
    def status(self, batch_id: str) -> dict[str, Any] | None:
        """The batch's status item; None when there is none."""
        ...


class BatchTable(BatchStatusReader, Protocol):
    """The batch table: a status item per batch, an item per finished line, a slots item per model."""

    def create_status(self, batch_id: str, attributes: dict[str, Any]) -> bool: ...
    def update_status(self, batch_id: str, attributes: dict[str, Any]) -> dict[str, Any]: ...
    def claim_transition(self, batch_id: str, from_state: str, to_state: str) -> bool: ...
    def put_invalid_lines(self, batch_id: str, results: list[LineResult]) -> None: ...
    def record_line(
        self, batch_id: str, result: LineResult, counters: dict[str, int | float], *, released: bool = False
    ) -> bool:
        """The line's item and the batch's counters at once; False when recorded before. `released`: the
        line's progress slot spent with it (claim_release then refuses it): a batch job's line held none."""
        ...

    def record_lines(
        self,
        batch_id: str,
        lines: Sequence[tuple[LineResult, dict[str, int | float]]],
        *,
        released: bool = False,
    ) -> list[bool]:
        """record_line for several lines in one request, all or (when one was recorded before) each
        alone: per line, whether it was recorded now."""
        ...

    def claim_release(self, batch_id: str, line: int) -> bool: ...
    def claim_line(self, batch_id: str, index: int) -> bool: ...
    def acquire_slots(self, slots: Mapping[str, int]) -> bool: ...
    def release_slots(self, models: Sequence[str]) -> None: ...
    def add_waiting(self, models: Sequence[str], batch_id: str) -> None: ...
    def remove_waiting(self, models: Sequence[str], batch_id: str) -> None: ...
    def waiting(self, models: Sequence[str]) -> list[str]: ...
    def lines(self, batch_id: str) -> Iterator[LineResult]: ...


class BatchObjects(Protocol):
    """The uploaded file (streamed), the split's chunk files and the results file."""

    def open(
        self, bucket: str, key: str, version_id: str | None
    ) -> tuple[IO[bytes], dict[str, str], int]: ...
    def read_text_if_exists(self, bucket: str, key: str) -> str | None: ...
    def put_json(self, bucket: str, key: str, value: Any) -> None: ...
    def get_json(self, bucket: str, key: str) -> Any: ...
    def write_stream(self, bucket: str, key: str, lines: Iterator[bytes]) -> int: ...


class BatchStarter(Protocol):
    """The batch workflow; an execution is named by its batch id."""

    def start(self, batch: BatchObject) -> bool:
        """Start it; False when this batch was started before."""
        ...


class BatchWorkflow(Protocol):
    def lines_finished(self, task_token: str, output: dict[str, Any]) -> None:
        """Resume the batch workflow waiting on this task token."""
        ...


# ------------------------------------------------------------------------------------------- lineage sealing
class SealableLineage(Protocol):
    """A day's lineage records as stored (plain values), and the chain fields written once."""

    def day_records(self, day: date) -> list[dict[str, Any]]: ...

    def seal(self, request_id: str, seq: int, prev: str, chain_hash: str) -> bool:
        """Write the chain fields on condition the record has none; False when it already had them."""
        ...


class DigestStore(Protocol):
    """Signed day digests (JSON documents), one object per day, kept under Object Lock."""

    def latest(self) -> dict[str, Any] | None: ...

    def get(self, day: date) -> dict[str, Any] | None: ...

    def put(self, day: date, document: dict[str, Any]) -> None: ...


class DigestSigner(Protocol):
    def sign(self, message: bytes) -> tuple[bytes, str, str]:
        """The signature of the message, the key's ARN and the signing algorithm."""
        ...


# ---------------------------------------------------------------------------------------------- compliance
class StackConfigurationReader(Protocol):
    """The stack's own resources' live configuration, read with Describe/Get calls only."""

    def read(self) -> StackConfiguration: ...


class CheckRunStore(Protocol):
    """Where the configuration checks' runs are kept and the compliance report reads the latest."""

    def put(self, run: CheckRun) -> None: ...

    def latest(self) -> CheckRun | None: ...


class DayLineage(Protocol):
    def day_records(self, day: date) -> list[dict[str, Any]]:
        """Every lineage item of the day (by-day index), as stored (chain fields included)."""
        ...


class ConfigHistory(Protocol):
    def changes(self, since: datetime, until: datetime) -> list[ConfigChange]:
        """Every version of the policy and routing parameters written in [since, until)."""
        ...


class AdminActivity(Protocol):
    def actions(self, since: datetime, until: datetime) -> list[AdminAction]:
        """The admin routes' calls in [since, until), allowed and refused (the API's access log)."""
        ...


class PathStates(Protocol):
    """Each egress path's circuit breaker and last health check (xpi.domain.egress), shared by every
    function: one item per path."""

    def read(self, names: Sequence[str]) -> dict[str, PathState]: ...

    def record_failure(self, name: str, *, threshold: int, open_for_s: float, now: float) -> None:
        """One failure before sending; opens the breaker (conditionally: once) at `threshold`."""

    def record_success(self, name: str) -> None:
        """Close the breaker (a conditional write: nothing when it holds no failure)."""

    def record_health(self, name: str, *, healthy: bool, latency_ms: int | None, now: float) -> None:
        """A health check's verdict; a healthy one also closes the breaker (fail back)."""


# ---------------------------------------------------------------------------------------------- batch jobs
class BatchJobRecords(Protocol):
    """A batch's job item in the batch table: written before the job is submitted, so a retried
    submission finds it (and its idempotency token) rather than making another job."""

    def begin(self, job: BatchJob) -> BatchJob:
        """Store the job item if the batch has none; return the stored one either way."""
        ...

    def update(self, job: BatchJob) -> None: ...


class CommercialObjects(Protocol):
    """The commercial account's bucket for batch jobs, written and read with the commercial credentials."""

    def put(self, key: str, body: bytes, kms_key_id: str) -> str:
        """Store the object SSE-KMS under the account's key; return its s3:// URI."""
        ...

    def lines(self, key: str) -> Iterator[str]:
        """The object's text lines, streamed."""
        ...


class BatchInferenceJobs(Protocol):
    """Bedrock's batch inference job API in the commercial account."""

    def create(
        self,
        *,
        name: str,
        role_arn: str,
        model_id: str,
        input_uri: str,
        output_uri: str,
        kms_key_id: str,
        client_request_token: str,
    ) -> str:
        """CreateModelInvocationJob; returns the job ARN (the same one for a retried token)."""
        ...

    def status(self, job_arn: str) -> tuple[str, str | None]:
        """GetModelInvocationJob: the job's status and message."""
        ...
