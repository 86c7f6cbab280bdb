"""A batch's Bedrock batch inference job, as the batch table records it (one item per batch, written
before the job is submitted) and as the job path's steps pass it on."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class BatchJobTarget(BaseModel):
    """The commercial account's side of batch jobs: its bucket, its KMS key, the jobs' service role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    kms_key_id: str
    role_arn: str


class BatchJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str
    model_id: str
    client_request_token: str
    job_name: str
    input_uri: str
    output_uri: str
    kms_key_id: str
    records: int
    job_arn: str | None = None  # set once CreateModelInvocationJob answered
    status: str = "Submitting"
    message: str | None = None
    checks: int = 0  # looks at the job so far (the next wait grows with them)


class StartJobStep(BaseModel):
    """The batch workflow's StartJob task input."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: Literal["start"]
    batch_id: str


class CheckJobStep(BaseModel):
    """CheckJob and FinishJob: the job the previous step answered."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: Literal["check", "finish"]
    job: BatchJob
    cursor: Annotated[int, Field(ge=0)] = 0  # FinishJob: where its page starts (the lines gone through)


class JobStepInput(RootModel[StartJobStep | CheckJobStep]):
    root: Annotated[StartJobStep | CheckJobStep, Field(discriminator="step")]


class JobState(BaseModel):
    """What the job steps answer ($.job in the batch workflow): whether the batch took a job, the job,
    whether it ended, the seconds to wait before the next look, and (FinishJob, one page at a time)
    where the next page starts, whether every page is done, and then how many lines went on-demand."""

    submitted: bool
    job: BatchJob | None = None
    finished: bool = False
    wait_s: int = 0
    cursor: int = 0
    collected: bool = False
    on_demand: int | None = None
