"""Batch files (issue 6): what flows through the batch workflow, and the status item's shape.

A batch is one version of one uploaded JSONL object. Its id is derived from bucket, key and ETag, so
the same object noticed twice (a redelivered notification, the same bytes uploaded again) is one
batch, and changed content under the same key is a new batch.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    principal: str = Field(description="the uploader, from the S3 event's userIdentity")
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
