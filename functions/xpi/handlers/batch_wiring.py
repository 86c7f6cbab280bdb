"""What the batch functions share: their settings (read once from the environment) and adapters."""

import json
from functools import cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from xpi import dependencies
from xpi.adapters.batch_store import BatchObjects, BatchTable, BatchWorkflow
from xpi.services.batch import BatchLimits, LineStarter


class BatchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    table: str = Field("", alias="BATCH_TABLE")
    state_machine_arn: str = Field("", alias="BATCH_STATE_MACHINE_ARN")
    input_prefix: str = Field("incoming/", alias="BATCH_INPUT_PREFIX")
    max_bytes: Annotated[int, Field(ge=1)] = Field(1_073_741_824, alias="BATCH_MAX_BYTES")
    max_lines: Annotated[int, Field(ge=1)] = Field(100_000, alias="BATCH_MAX_LINES")
    chunk_lines: Annotated[int, Field(ge=1, le=1000)] = Field(100, alias="BATCH_CHUNK_LINES")
    # {"model or alias": concurrent batch lines on it, across all batches, "*": fallback}.
    model_concurrency: str = Field('{"*": 4}', alias="BATCH_MODEL_CONCURRENCY")
    retention_days: Annotated[int, Field(ge=1)] = Field(30, alias="BATCH_RETENTION_DAYS")

    def limits(self) -> BatchLimits:
        concurrency = {str(k): int(v) for k, v in json.loads(self.model_concurrency).items()}
        return BatchLimits(
            max_bytes=self.max_bytes,
            max_lines=self.max_lines,
            chunk_lines=self.chunk_lines,
            concurrency=concurrency,
            default_concurrency=concurrency.get("*", 4),
            retention_days=self.retention_days,
        )


@cache
def settings() -> BatchSettings:
    import os

    return BatchSettings.model_validate(dict(os.environ))


@cache
def table() -> BatchTable:
    return BatchTable(settings().table)


@cache
def objects() -> BatchObjects:
    return BatchObjects()


@cache
def workflow() -> BatchWorkflow:
    return BatchWorkflow()


@cache
def line_starter() -> LineStarter:
    return LineStarter(table(), objects(), dependencies.workflow_starter(), settings().limits())
