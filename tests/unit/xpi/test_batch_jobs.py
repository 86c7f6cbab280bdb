"""A large batch through a Bedrock batch inference job: which batches take a job, the records, the
idempotent submission (the job item before the create), the growing waits, and the output mapped back
to lines (failed and missing lines go on-demand). Services with in-memory fakes; adapters over moto."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from xpi.adapters.batch_jobs import DynamoBatchJobRecords, S3CommercialObjects
from xpi.domain import batch_jobs as domain_jobs
from xpi.domain.batch_jobs import (
    CHECK_CAP_S,
    client_request_token,
    line_of,
    next_check_s,
    parse_output,
    record_id,
    records_body,
    supports_batch,
    use_job,
)
from xpi.domain.pricing import batch_prices, price_table
from xpi.models.batch_jobs import BatchJob, BatchJobTarget
from xpi.services.batch_jobs import check_job, collect_job, submit_job

from tests.helpers.aws import create_table

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
TARGET = BatchJobTarget(
    bucket="xpi-batch-commercial",
    kms_key_id="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    role_arn="arn:aws:iam::123456789012:role/xpi-bedrock-batch",
)
BATCH = "b-0123456789abcdef01234567"


def model_input(text: str) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": text}],
    }


# ---------------------------------------------------------------------------------------------- fakes
class FakeJobRecords:
    def __init__(self, *, crash_on_update: bool = False) -> None:
        self.items: dict[str, str] = {}
        self.crash_on_update = crash_on_update

    def begin(self, job: BatchJob) -> BatchJob:
        self.items.setdefault(job.batch_id, job.model_dump_json())
        return BatchJob.model_validate_json(self.items[job.batch_id])

    def update(self, job: BatchJob) -> None:
        if self.crash_on_update:
            raise TimeoutError("the function timed out after the create")
        self.items[job.batch_id] = job.model_dump_json()


class FakeObjects:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, body: bytes, kms_key_id: str) -> str:
        self.objects[key] = (body, kms_key_id)
        return f"s3://{TARGET.bucket}/{key}"

    def lines(self, key: str) -> Iterator[str]:
        yield from self.objects[key][0].decode().splitlines()


class FakeJobs:
    """Bedrock's idempotency: the same token answers the same job."""

    def __init__(self) -> None:
        self.by_token: dict[str, str] = {}
        self.statuses: list[str] = []

    def create(self, *, client_request_token: str, **_: Any) -> str:
        return self.by_token.setdefault(
            client_request_token,
            f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/j{len(self.by_token)}",
        )

    def status(self, job_arn: str) -> tuple[str, str | None]:
        return self.statuses.pop(0), None


RECORDS = [(line, model_input(f"line {line}")) for line in (1, 2, 4, 5)]  # line 3 was blocked by policy


# ---------------------------------------------------------------------------------------------- domain
@pytest.mark.parametrize(
    ("lines", "models", "threshold", "expected"),
    [
        (1000, [HAIKU], 500, True),
        (499, [HAIKU], 500, False),  # below the threshold: on-demand
        (1000, ["amazon.titan-text-express-v1"], 500, False),  # Titan Text G1: no batch inference
        (1000, [HAIKU, "amazon.nova-lite-v1:0"], 500, False),  # a job runs one model
        (1000, ["us.anthropic.claude-3-haiku-20240307-v1:0"], 500, True),  # a cross-region profile of one
        (1000, [HAIKU], 0, False),  # 0 switches jobs off
    ],
)
def test_a_batch_takes_a_job_above_the_threshold_for_one_batch_capable_model(
    lines: int, models: list[str], threshold: int, expected: bool
) -> None:
    assert use_job(lines, models, threshold) is expected


def test_records_are_bedrocks_jsonl_with_the_line_as_record_id() -> None:
    body = records_body(RECORDS[:2]).decode().splitlines()

    assert [json.loads(line)["recordId"] for line in body] == ["L0000000001", "L0000000002"]
    assert json.loads(body[0])["modelInput"] == model_input("line 1")
    assert len(record_id(7)) == 11 and line_of(record_id(7)) == 7
    assert supports_batch("meta.llama3-8b-instruct-v1:0") is False  # Llama 3.0


def test_the_idempotency_token_is_the_batch_ids_own() -> None:
    assert client_request_token(BATCH) == client_request_token(BATCH) == f"xpi-{BATCH}"


def test_the_wait_between_looks_grows_and_is_capped() -> None:
    waits = [next_check_s(n) for n in range(10)]

    assert waits == sorted(waits) and waits[0] == 60 and waits[-1] == CHECK_CAP_S
    assert sum(next_check_s(n) for n in range(31)) >= 24 * 3600  # a day's job: 31 looks


def test_the_output_is_mapped_to_lines_and_failed_or_missing_lines_go_on_demand() -> None:
    output = [
        json.dumps({"recordId": "L0000000002", "modelInput": {}, "modelOutput": {"content": "b"}}),
        json.dumps({"recordId": "L0000000001", "modelInput": {}, "modelOutput": {"content": "a"}}),
        json.dumps(
            {"recordId": "L0000000004", "modelInput": {}, "error": {"errorCode": 400, "errorMessage": "x"}}
        ),
        json.dumps({"recordId": "L0000000099", "modelOutput": {}}),  # not submitted: ignored
        "not json",
    ]

    results = parse_output(output, [1, 2, 4, 5])

    assert sorted(results.answered) == [1, 2]
    assert results.failed[4].code == 400
    assert results.missing == [5]
    assert results.on_demand() == [4, 5]


# ---------------------------------------------------------------------------------------------- service
def test_a_job_is_recorded_before_it_is_submitted_and_its_records_are_sse_kms() -> None:
    records, objects, jobs = FakeJobRecords(), FakeObjects(), FakeJobs()
    recorded_at_create: list[bool] = []
    create = jobs.create

    def watched_create(**arguments: Any) -> str:
        recorded_at_create.append(BATCH in records.items)
        return create(**arguments)

    jobs.create = watched_create  # type: ignore[method-assign]

    job = submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)

    assert recorded_at_create == [True]
    assert job.job_arn is not None and job.status == "Submitted"
    assert BatchJob.model_validate_json(records.items[BATCH]).job_arn == job.job_arn
    body, key = objects.objects[f"xpi/{BATCH}/input/records.jsonl"]
    assert key == TARGET.kms_key_id and len(body.splitlines()) == 4


def test_a_submission_retried_after_a_crash_makes_one_job() -> None:
    # GIVEN a submission that created the job and crashed before recording its ARN
    records, objects, jobs = FakeJobRecords(crash_on_update=True), FakeObjects(), FakeJobs()
    with pytest.raises(TimeoutError):
        submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)
    # WHEN it is retried (twice)
    records.crash_on_update = False
    first = submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)
    again = submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)

    # THEN one job: the token recorded before the first create made the retries find it
    assert len(jobs.by_token) == 1
    assert first.job_arn == again.job_arn == next(iter(jobs.by_token.values()))


def test_checks_wait_longer_each_time_until_the_job_ends() -> None:
    records, objects, jobs = FakeJobRecords(), FakeObjects(), FakeJobs()
    job = submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)
    jobs.statuses = ["Validating", "InProgress", "InProgress", "Completed"]

    checks = [check_job(job, job_records=records, jobs=jobs) for _ in range(4)]

    assert [c.wait_s for c in checks] == [60, 120, 240, 0]
    assert [c.finished for c in checks] == [False, False, False, True]


def test_a_job_that_ended_without_output_sends_every_line_on_demand() -> None:
    records, objects, jobs = FakeJobRecords(), FakeObjects(), FakeJobs()
    job = submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)
    job.status = "Failed"

    assert collect_job(job, objects=objects).on_demand() == [1, 2, 4, 5]


def test_a_completed_jobs_output_comes_back_by_line() -> None:
    records, objects, jobs = FakeJobRecords(), FakeObjects(), FakeJobs()
    job = submit_job(BATCH, HAIKU, RECORDS, TARGET, job_records=records, objects=objects, jobs=jobs)
    job.status = "Completed"
    assert job.job_arn is not None
    job_id = job.job_arn.rsplit("/", 1)[-1]
    output = [{"recordId": record_id(line), "modelOutput": {"n": line}} for line in (5, 1, 2)]
    objects.put(
        f"xpi/{BATCH}/output/{job_id}/records.jsonl.out",
        "".join(json.dumps(o) + "\n" for o in output).encode(),
        TARGET.kms_key_id,
    )

    results = collect_job(job, objects=objects)

    assert {line: answer["n"] for line, answer in results.answered.items()} == {1: 1, 2: 2, 5: 5}
    assert results.on_demand() == [4]


# ---------------------------------------------------------------------------------------------- adapters
def test_the_job_item_is_written_once_and_read_back() -> None:
    with mock_aws():
        create_table("batches", "batch_id", "line")
        table = DynamoBatchJobRecords("batches")
        planned = BatchJob(
            batch_id=BATCH,
            model_id=HAIKU,
            client_request_token=client_request_token(BATCH),
            job_name=f"xpi-{BATCH}",
            input_uri="s3://b/i",
            output_uri="s3://b/o/",
            kms_key_id=TARGET.kms_key_id,
            records=4,
        )
        assert table.begin(planned) == planned
        planned.job_arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/j0"
        table.update(planned)
        other = planned.model_copy(update={"job_arn": None, "records": 9})

        assert table.begin(other).job_arn == planned.job_arn  # the stored one wins


def test_commercial_objects_are_written_under_the_accounts_key_and_read_by_line() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=TARGET.bucket)
        objects = S3CommercialObjects(lambda: s3, TARGET.bucket)

        uri = objects.put("xpi/k.jsonl", b'{"a":1}\n{"b":2}\n', TARGET.kms_key_id)

        stored = s3.head_object(Bucket=TARGET.bucket, Key="xpi/k.jsonl")
        assert uri == f"s3://{TARGET.bucket}/xpi/k.jsonl"
        assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == ("aws:kms", TARGET.kms_key_id)
        assert list(objects.lines("xpi/k.jsonl")) == ['{"a":1}', '{"b":2}']


def test_a_converse_line_becomes_the_model_familys_native_record() -> None:
    converse = {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2},
        "system": [{"text": "be brief"}],
    }
    assert domain_jobs.model_input("us.anthropic.claude-3-5-haiku-20241022-v1:0", None, converse) == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "temperature": 0.2,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
    }
    assert domain_jobs.model_input("amazon.nova-lite-v1:0", None, converse) == {
        "schemaVersion": "messages-v1",
        **converse,
    }
    assert domain_jobs.model_input("meta.llama3-1-8b-instruct-v1:0", None, converse) is None  # goes on-demand
    assert domain_jobs.model_input("meta.llama3-1-8b-instruct-v1:0", {"prompt": "x"}, converse) == {
        "prompt": "x"
    }


def test_a_job_records_output_answers_as_the_call_it_replaces() -> None:
    anthropic = {
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    nova = {
        "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2},
    }
    for output in (anthropic, nova):
        answer = domain_jobs.job_answer(output, converse=True)
        assert (answer.text, answer.body, answer.stop_reason) == ("hi", None, "end_turn")
        assert (answer.usage.input_tokens, answer.usage.output_tokens) == (3, 2)
    native = domain_jobs.job_answer(anthropic)
    assert native.body == anthropic and native.text is None and native.credential_version == "batch-job"


def test_a_batch_answer_is_priced_from_the_tables_batch_line_else_at_half_the_on_demand_price() -> None:
    line = price_table().models["anthropic.claude-3-haiku-20240307-v1:0"]
    assert batch_prices("anthropic.claude-3-haiku-20240307-v1:0", 1.0, 1.0) == (
        line.batch_input,
        line.batch_output,
    )
    assert batch_prices("example.model-without-a-line-v1:0", 0.002, 0.004) == (0.001, 0.002)


def test_every_batch_price_in_the_table_has_a_source_and_a_date_and_is_for_a_batch_capable_model() -> None:
    lines = {model: line for model, line in price_table().models.items() if line.batch_input is not None}
    assert lines  # the local stack's default model among them
    for model, line in lines.items():
        assert supports_batch(model), model
        assert line.batch_source and line.batch_as_of, model
        assert line.batch_output is not None and line.batch_input <= line.input, model
