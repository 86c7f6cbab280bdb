"""A large batch through a Bedrock batch inference job (half the on-demand price).

submit   the records policy allowed (already classified and redacted, Bedrock's JSONL record format,
         recordId = the line) go to the commercial account's bucket, SSE-KMS under its key; the job item
         is written to the batch table **before** CreateModelInvocationJob, with an idempotency token
         derived from the batch id, so a retried submission (a Lambda retry, a crash after the create)
         gets the job the first one made, never a second job
check    one look at the job; when it has not ended, how long to wait before the next look (growing,
         capped: xpi.domain.batch_jobs.next_check_s), so a job of hours costs a few dozen looks
collect  the job's output read back and mapped to lines: answered, failed (the record's error), and
         missing (a partially completed, stopped or expired job); failed and missing lines go on-demand.
         A finish reads it by page (page_answers: one page's answers kept, the rest read through) and
         last the answered lines alone (lines_answered)

Bedrock emits job state changes ("Batch Inference Job State Change") to the default event bus of the
account that owns the job, the commercial one: GovCloud's bus never sees them, so xpi looks itself.
"""

from dataclasses import dataclass
from typing import Any

from xpi.adapters.ports import BatchInferenceJobs, BatchJobRecords, CommercialObjects
from xpi.domain.batch_jobs import (
    TERMINAL,
    WITH_OUTPUT,
    JobResults,
    answered_lines,
    client_request_token,
    input_key,
    job_name,
    line_of,
    next_check_s,
    output_key,
    output_prefix,
    parse_output,
    records_body,
)
from xpi.models.batch_jobs import BatchJob, BatchJobTarget


def submit_job(
    batch_id: str,
    model_id: str,
    records: list[tuple[int, dict[str, Any]]],
    target: BatchJobTarget,
    *,
    job_records: BatchJobRecords,
    objects: CommercialObjects,
    jobs: BatchInferenceJobs,
) -> BatchJob:
    """Submit the batch's job once, however many times this runs."""
    planned = BatchJob(
        batch_id=batch_id,
        model_id=model_id,
        client_request_token=client_request_token(batch_id),
        job_name=job_name(batch_id),
        input_uri=f"s3://{target.bucket}/{input_key(batch_id)}",
        output_uri=f"s3://{target.bucket}/{output_prefix(batch_id)}",
        kms_key_id=target.kms_key_id,
        records=len(records),
    )
    job = job_records.begin(planned)  # before the create: a retry finds it and its token
    if job.job_arn is not None:
        return job
    # The same bytes under the same key on a retry: the input the first attempt's job read, if it ran.
    objects.put(input_key(batch_id), records_body(records), job.kms_key_id)
    job.job_arn = jobs.create(
        name=job.job_name,
        role_arn=target.role_arn,
        model_id=job.model_id,
        input_uri=job.input_uri,
        output_uri=job.output_uri,
        kms_key_id=job.kms_key_id,
        client_request_token=job.client_request_token,
    )
    job.status = "Submitted"
    job_records.update(job)
    return job


@dataclass(frozen=True)
class JobCheck:
    job: BatchJob
    finished: bool
    wait_s: int  # before the next look, when not finished


def check_job(job: BatchJob, *, job_records: BatchJobRecords, jobs: BatchInferenceJobs) -> JobCheck:
    if job.job_arn is None:
        raise ValueError(f"batch {job.batch_id} has no submitted job")
    job.status, job.message = jobs.status(job.job_arn)
    job.checks += 1
    job_records.update(job)
    finished = job.status in TERMINAL
    return JobCheck(job=job, finished=finished, wait_s=0 if finished else next_check_s(job.checks - 1))


def collect_job(job: BatchJob, *, objects: CommercialObjects) -> JobResults:
    """Every submitted line: answered, failed, or missing (to go on-demand). A job that ended without
    output (Failed, Stopped, Expired) leaves every line missing."""
    submitted = [line for text in objects.lines(input_key(job.batch_id)) if (line := _line(text)) is not None]
    if job.status not in WITH_OUTPUT or job.job_arn is None:
        return JobResults(missing=submitted)
    job_id = job.job_arn.rsplit("/", 1)[-1]
    return parse_output(objects.lines(output_key(job.batch_id, job_id)), submitted)


def page_answers(job: BatchJob, lines: list[int], *, objects: CommercialObjects) -> dict[int, dict[str, Any]]:
    """The job's answers for these lines only (one page of a finish): the output is read through, and
    only the page's answers are kept."""
    if job.status not in WITH_OUTPUT or job.job_arn is None or not lines:
        return {}
    return parse_output(objects.lines(_output_key(job)), lines).answered


def lines_answered(job: BatchJob, *, objects: CommercialObjects) -> set[int]:
    """Every line the job answered, without the answers (the last page releases the others)."""
    if job.status not in WITH_OUTPUT or job.job_arn is None:
        return set()
    return answered_lines(objects.lines(_output_key(job)))


def _output_key(job: BatchJob) -> str:
    assert job.job_arn is not None
    return output_key(job.batch_id, job.job_arn.rsplit("/", 1)[-1])


def _line(text: str) -> int | None:
    # The input file is xpi's own: {"recordId":"L0000000001",...}; the id is its first member.
    start = text.find('"recordId":"')
    return line_of(text[start + 12 : start + 23]) if start >= 0 else None
