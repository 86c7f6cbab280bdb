"""A batch's Bedrock batch inference job, as the batch table records it (one item per batch, written
before the job is submitted) and as the job path's steps pass it on."""

from pydantic import BaseModel, ConfigDict


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
