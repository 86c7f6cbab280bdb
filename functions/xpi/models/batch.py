"""Batch files: what flows through the batch workflow, and the status item's shape.

A batch is one version of one uploaded JSONL object. Its id is derived from bucket, key and ETag, so
the same object noticed twice (a redelivered notification, the same bytes uploaded again) is one
batch, and changed content under the same key is a new batch.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xpi.models.workflow import StepError

BATCH_COMPLETED = "Batch Completed"
BATCH_FAILED = "Batch Failed"

BatchState = Literal["SPLITTING", "RUNNING", "ASSEMBLING", "COMPLETED", "FAILED"]
LineStatus = Literal["COMPLETED", "FAILED", "BLOCKED"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchObject(_Model):
    """The uploaded object a batch is made of; the batch workflow's input."""

    batch_id: str
    bucket: str
    key: str
    version_id: str | None = None
    etag: str
    size: int
    principal: str = Field(description="the uploader: its aws:userid folder (xpi.domain.batch.caller_of)")
    uploaded_at: datetime


class SplitResult(_Model):
    """What the split step found: counts of the whole file and where its valid lines wait."""

    total: int
    valid: int
    invalid: int
    chunks: int
    window: int = Field(
        description="the most lines of this batch in flight at once: the smallest concurrency of its "
        "models (whose slots other batches share)"
    )


class BatchWorkflowState(_Model):
    """The workflow state of a batch (ASL paths: $.batch, $.split, $.progress, $.summary, $.error)."""

    batch: BatchObject
    split: SplitResult | None = None


class BatchStepInput(_Model):
    """What the Assemble state passes the assemble function: the batch."""

    batch: BatchObject


class BatchFailure(_Model):
    """What the RecordFailure state passes its function: the batch, and the error a Catch put at $.error."""

    batch: BatchObject
    error: StepError


class LineResult(_Model):
    """One line's outcome as the results file carries it (and as its item in the batch table holds it)."""

    line: int
    request_id: str | None = None
    status: LineStatus
    output: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    classification: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    reply: dict[str, str] = {}


class BatchSummary(_Model):
    """detail of `Batch Completed` and `Batch Failed`."""

    version: Literal["1"] = "1"
    batch_id: str
    status: Literal["COMPLETED", "FAILED"]
    source_uri: str
    results_uri: str | None = None
    total: int = 0
    completed: int = 0
    blocked: int = 0
    failed: int = 0
    invalid: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_cost_usd: float = 0.0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    reason: str | None = None


# ---------------------------------------------------------------------------------------------- uploads
class _Notification(BaseModel):
    """S3 event notifications carry more than a batch needs; the rest is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class S3Bucket(_Notification):
    name: str


class S3Object(_Notification):
    key: str = Field(description="URL-encoded, as S3 notifications send keys")
    size: int = 0
    etag: str | None = Field(None, alias="eTag")
    sequencer: str | None = None
    version_id: str | None = Field(None, alias="versionId")


class S3Entity(_Notification):
    bucket: S3Bucket
    object: S3Object


class S3UserIdentity(_Notification):
    principal_id: str = Field("unknown", alias="principalId")


class S3NotificationRecord(_Notification):
    event_name: str = Field("", alias="eventName")
    event_time: str = Field("", alias="eventTime")
    s3: S3Entity | None = None
    user_identity: S3UserIdentity = Field(default_factory=S3UserIdentity, alias="userIdentity")


class S3Notification(_Notification):
    """An S3 event notification (the body of a BatchUploadsQueue message); s3:TestEvent has no Records."""

    records: list[S3NotificationRecord] = Field([], alias="Records")
