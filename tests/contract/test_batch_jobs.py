"""Bedrock batch inference jobs (CreateModelInvocationJob, Get, List, Stop) driven by a stock
``boto3.client("bedrock")``, reading and writing a second moto server that plays the commercial
account's S3 (the ``aws`` partition)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from xpi_tools.emulator import AccessKey, BatchSettings, BedrockEmulator, EmulatorConfig, EmulatorControl

from tests.helpers.waiting import wait_until

from .support import HAIKU, KEY_ID, REGION, SECRET, TITAN_TEXT, error_of

if TYPE_CHECKING:
    from mypy_boto3_bedrock import BedrockClient
    from mypy_boto3_s3 import S3Client

    from .conftest import ClientFactory

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/xpi-bedrock-batch"
UNKNOWN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/not-mapped"
COMMERCIAL_KEY = AccessKey("AKIACOMMERCIALS30001", "commercial-s3-secret")
BUCKET = "xpi-batch-commercial"
KMS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
HOUR = 3600.0
TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def commercial_s3_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def batch_emulator(commercial_s3_url: str) -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(
        region=REGION,
        access_keys=[AccessKey(KEY_ID, SECRET)],
        account_id=ACCOUNT,
        batch=BatchSettings(
            s3_endpoint_url=commercial_s3_url,
            role_credentials={ROLE: COMMERCIAL_KEY},
            min_records_per_job=5,
            max_records_per_job=20,
            phase_seconds=0.0,
        ),
    )
    with BedrockEmulator(config) as emu:
        yield emu


@pytest.fixture
def batch_control(batch_emulator: BedrockEmulator) -> Iterator[EmulatorControl]:
    control = batch_emulator.control
    control.reset()
    control.reset_batch()
    yield control
    control.reset()
    control.reset_batch()


@pytest.fixture(scope="module")
def s3(commercial_s3_url: str) -> S3Client:
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=commercial_s3_url,
        region_name="us-east-1",
        aws_access_key_id=COMMERCIAL_KEY.access_key_id,
        aws_secret_access_key=COMMERCIAL_KEY.secret_access_key,
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def bedrock(batch_emulator: BedrockEmulator, make_client: ClientFactory) -> BedrockClient:
    client: BedrockClient = make_client("bedrock", batch_emulator.url)
    return client


def _record(record_id: str, text: str, max_tokens: int = 64) -> dict[str, Any]:
    return {
        "recordId": record_id,
        "modelInput": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        },
    }


def _upload(s3: S3Client, key: str, records: list[dict[str, Any]]) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())
    return f"s3://{BUCKET}/{key}"


def _create(
    bedrock: BedrockClient,
    input_uri: str,
    output_uri: str,
    *,
    name: str = "xpi-batch-job",
    model: str = HAIKU,
    role: str = ROLE,
    **extra: Any,
) -> str:
    return bedrock.create_model_invocation_job(
        jobName=name,
        roleArn=role,
        modelId=model,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}},
        **extra,
    )["jobArn"]


def _ended(bedrock: BedrockClient, arn: str) -> dict[str, Any]:
    job: dict[str, Any] = {}

    def ended() -> bool:
        job.update(bedrock.get_model_invocation_job(jobIdentifier=arn))
        return job["status"] in {"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"}

    wait_until(ended, TIMEOUT_S, what="the batch job's end")
    return job


def _wait_for_status(bedrock: BedrockClient, arn: str, expected: str) -> None:
    def reached() -> bool:
        return bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == expected

    wait_until(reached, TIMEOUT_S, what=f"status {expected}")


def _output(s3: S3Client, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def test_a_job_goes_through_every_status_and_writes_one_output_line_per_record(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    # GIVEN six records in the commercial bucket, and job phases of an hour on the emulator's clock
    records = [_record(f"REC{i:08d}", f"Summarise item {i}.") for i in range(6)]
    input_uri = _upload(s3, "progress/in/lines.jsonl", records)
    batch_control.set_batch(phase_seconds=HOUR)

    # WHEN the job is created and the emulator's clock moves an hour at a time
    arn = _create(bedrock, input_uri, f"s3://{BUCKET}/progress/out/")
    job_id = arn.rsplit("/", 1)[-1]
    seen: list[str] = [bedrock.get_model_invocation_job(jobIdentifier=arn)["status"]]
    for expected in ["Validating", "Scheduled", "InProgress", "Completed"]:
        batch_control.set_batch(advance_seconds=HOUR)
        # (a phase that reads or writes S3 ends once that I/O has, too)
        _wait_for_status(bedrock, arn, expected)
        seen.append(expected)

    # THEN it went Submitted -> Validating -> Scheduled -> InProgress -> Completed
    assert seen == ["Submitted", "Validating", "Scheduled", "InProgress", "Completed"]
    job = bedrock.get_model_invocation_job(jobIdentifier=job_id)
    assert job["jobArn"] == arn
    assert arn.startswith(f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/")
    assert job["modelId"] == HAIKU
    assert job["roleArn"] == ROLE
    assert job["submitTime"] < job["endTime"]
    assert (job["totalRecordCount"], job["processedRecordCount"]) == (6, 6)
    assert (job["successRecordCount"], job["errorRecordCount"]) == (6, 0)
    # AND Bedrock's layout: <output prefix>/<job id>/<input file>.out, one line per record, in order
    lines = _output(s3, f"progress/out/{job_id}/lines.jsonl.out")
    assert [line["recordId"] for line in lines] == [r["recordId"] for r in records]
    assert [line["modelInput"] for line in lines] == [r["modelInput"] for r in records]
    assert all(line["modelOutput"]["type"] == "message" for line in lines)
    assert all(line["modelOutput"]["content"][0]["text"] for line in lines)
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"progress/out/{job_id}/manifest.json.out")["Body"].read()
    )
    assert manifest["totalRecordCount"] == manifest["processedRecordCount"] == 6
    assert (manifest["successRecordCount"], manifest["errorRecordCount"]) == (6, 0)
    assert manifest["inputTokenCount"] > 0
    assert manifest["outputTokenCount"] == sum(
        line["modelOutput"]["usage"]["output_tokens"] for line in lines
    )


def test_a_record_the_model_fails_carries_its_error_in_the_output(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    # GIVEN five records, one asking for more tokens than the model allows, and one injected model fault
    records = [_record(f"OK{i:09d}", f"Classify line {i}.") for i in range(4)]
    records.insert(2, _record("TOOMANYTOKS", "Too long an answer.", max_tokens=1_000_000))
    input_uri = _upload(s3, "errors/in/lines.jsonl", records)
    batch_control.inject_fault("ModelErrorException", model=HAIKU, count=1, operations=["ModelInvocationJob"])

    # WHEN the job runs
    arn = _create(bedrock, input_uri, f"s3://{BUCKET}/errors/out")
    job = _ended(bedrock, arn)

    # THEN it completes, counting the failed records, and each failed line carries Bedrock's error object
    assert job["status"] == "Completed"
    assert (job["successRecordCount"], job["errorRecordCount"]) == (3, 2)
    lines = _output(s3, f"errors/out/{arn.rsplit('/', 1)[-1]}/lines.jsonl.out")
    assert [line["recordId"] for line in lines] == [r["recordId"] for r in records]
    failed = {line["recordId"]: line for line in lines if "error" in line}
    assert set(failed) == {"OK000000000", "TOOMANYTOKS"}
    assert failed["OK000000000"]["error"]["errorCode"] == 424
    assert failed["TOOMANYTOKS"]["error"]["errorCode"] == 400
    assert "max_tokens: 1000000 > 4096" in failed["TOOMANYTOKS"]["error"]["errorMessage"]
    assert all("modelOutput" not in line for line in failed.values())


def test_a_retried_create_with_the_same_client_request_token_returns_the_same_job(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    input_uri = _upload(s3, "retry/in/lines.jsonl", [_record(f"R{i:010d}", "Hi.") for i in range(5)])
    batch_control.set_batch(phase_seconds=HOUR)

    first = _create(bedrock, input_uri, f"s3://{BUCKET}/retry/out", clientRequestToken="batch-0001-attempt")
    second = _create(bedrock, input_uri, f"s3://{BUCKET}/retry/out", clientRequestToken="batch-0001-attempt")
    other = _create(bedrock, input_uri, f"s3://{BUCKET}/retry/out", clientRequestToken="batch-0002-attempt")

    assert first == second
    assert other != first
    jobs = bedrock.list_model_invocation_jobs()["invocationJobSummaries"]
    assert sorted(j["jobArn"] for j in jobs) == sorted({first, other})
    assert bedrock.get_model_invocation_job(jobIdentifier=first)["clientRequestToken"] == "batch-0001-attempt"
    # the same token for a different request is a conflict, not a second job
    with pytest.raises(ClientError) as excinfo:
        _create(bedrock, input_uri, f"s3://{BUCKET}/retry/elsewhere", clientRequestToken="batch-0001-attempt")
    assert error_of(excinfo)[0] == "ConflictException"


@pytest.mark.parametrize(
    ("count", "expected"), [(4, "fewer than the minimum of 5"), (21, "more than the maximum of 20")]
)
def test_too_few_or_too_many_records_fail_the_jobs_validation(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client, count: int, expected: str
) -> None:
    input_uri = _upload(
        s3, f"counts/{count}/lines.jsonl", [_record(f"C{i:010d}", "Hi.") for i in range(count)]
    )

    arn = _create(bedrock, input_uri, f"s3://{BUCKET}/counts/{count}/out")
    job = _ended(bedrock, arn)

    # Bedrock checks record counts while Validating: the job fails with a message and writes nothing
    assert job["status"] == "Failed"
    assert expected in job["message"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"counts/{count}/out/")
    assert listed.get("KeyCount", 0) == 0


def test_a_model_without_batch_support_is_refused_at_create(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    input_uri = _upload(s3, "unsupported/lines.jsonl", [_record(f"U{i:010d}", "Hi.") for i in range(5)])

    with pytest.raises(ClientError) as excinfo:
        _create(bedrock, input_uri, f"s3://{BUCKET}/unsupported/out", model=TITAN_TEXT)

    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert "batch inference" in message
    assert bedrock.list_model_invocation_jobs()["invocationJobSummaries"] == []


def test_a_provisioned_model_is_refused_at_create(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    # the user guide: batch inference isn't supported for provisioned models
    provisioned = batch_control.add_custom_model("provisioned-model", HAIKU)
    try:
        with pytest.raises(ClientError) as excinfo:
            _create(bedrock, f"s3://{BUCKET}/any.jsonl", f"s3://{BUCKET}/out", model=provisioned)
    finally:
        batch_control.clear_custom_models()

    assert error_of(excinfo)[0] == "ValidationException"


def test_malformed_requests_are_refused_with_the_front_ends_validation(
    bedrock: BedrockClient, batch_control: EmulatorControl
) -> None:
    cases: list[dict[str, Any]] = [
        {"roleArn": "not-a-role"},
        {"roleArn": "arn:aws:iam::999999999999:role/other-account"},
        {"jobName": "-starts-with-a-dash"},
    ]
    for case in cases:
        with pytest.raises(ClientError) as excinfo:
            bedrock.create_model_invocation_job(
                **{
                    "jobName": "bad-request",
                    "roleArn": ROLE,
                    "modelId": HAIKU,
                    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/x.jsonl"}},
                    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out"}},
                    **case,
                }
            )
        assert error_of(excinfo)[0] == "ValidationException", case
    with pytest.raises(ClientError) as excinfo:
        _create(bedrock, "s3://Not_A_Bucket/in.jsonl", f"s3://{BUCKET}/out")
    assert error_of(excinfo)[0] == "ValidationException"


def test_a_role_without_commercial_credentials_fails_validation(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    input_uri = _upload(s3, "norole/lines.jsonl", [_record(f"N{i:010d}", "Hi.") for i in range(5)])

    job = _ended(bedrock, _create(bedrock, input_uri, f"s3://{BUCKET}/norole/out", role=UNKNOWN_ROLE))

    assert job["status"] == "Failed"
    assert UNKNOWN_ROLE in job["message"]


def test_stop_ends_a_job_that_has_not_finished_and_refuses_one_that_has(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    input_uri = _upload(s3, "stop/lines.jsonl", [_record(f"S{i:010d}", "Hi.") for i in range(5)])
    batch_control.set_batch(phase_seconds=HOUR)
    arn = _create(bedrock, input_uri, f"s3://{BUCKET}/stop/out")

    bedrock.stop_model_invocation_job(jobIdentifier=arn)

    job = _ended(bedrock, arn)
    assert job["status"] == "Stopped"
    assert "endTime" in job
    with pytest.raises(ClientError) as excinfo:
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert error_of(excinfo)[0] == "ConflictException"
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="stop/out/").get("KeyCount", 0) == 0


def test_an_unknown_job_is_not_found(bedrock: BedrockClient, batch_control: EmulatorControl) -> None:
    with pytest.raises(ClientError) as excinfo:
        bedrock.get_model_invocation_job(jobIdentifier="abcdefabcdef")
    assert error_of(excinfo)[:1] == ("ResourceNotFoundException",)
    assert error_of(excinfo)[2] == 404


def test_list_filters_by_status_and_name_and_pages(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    # GIVEN a finished job, a failed one and two still waiting in Submitted
    good = _upload(s3, "list/good.jsonl", [_record(f"L{i:010d}", "Hi.") for i in range(5)])
    small = _upload(s3, "list/small.jsonl", [_record("L0000000000", "Hi.")])
    done = _create(bedrock, good, f"s3://{BUCKET}/list/out", name="list-done")
    failed = _create(bedrock, small, f"s3://{BUCKET}/list/out", name="list-failed")
    assert _ended(bedrock, done)["status"] == "Completed"
    assert _ended(bedrock, failed)["status"] == "Failed"
    batch_control.set_batch(phase_seconds=HOUR)
    waiting = [_create(bedrock, good, f"s3://{BUCKET}/list/out", name=f"list-waiting-{i}") for i in range(2)]

    def arns(**query: Any) -> list[str]:
        return [j["jobArn"] for j in bedrock.list_model_invocation_jobs(**query)["invocationJobSummaries"]]

    assert arns(statusEquals="Completed") == [done]
    assert arns(statusEquals="Failed") == [failed]
    assert arns(statusEquals="Submitted") == waiting[::-1]  # newest first by default
    assert arns(statusEquals="Submitted", sortOrder="Ascending") == waiting
    assert arns(nameContains="waiting", sortOrder="Ascending") == waiting
    paginator = bedrock.get_paginator("list_model_invocation_jobs")
    pages = list(paginator.paginate(sortOrder="Ascending", PaginationConfig={"PageSize": 3}))
    assert [len(p["invocationJobSummaries"]) for p in pages] == [3, 1]
    assert [j["jobArn"] for p in pages for j in p["invocationJobSummaries"]] == [done, failed, *waiting]
    with pytest.raises(ClientError) as excinfo:
        bedrock.list_model_invocation_jobs(statusEquals="Finished")  # type: ignore[arg-type]
    assert error_of(excinfo)[0] == "ValidationException"


def test_a_job_scheduled_past_its_timeout_expires(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    input_uri = _upload(s3, "expire/lines.jsonl", [_record(f"E{i:010d}", "Hi.") for i in range(5)])
    batch_control.set_batch(phase_seconds=HOUR)
    arn = _create(bedrock, input_uri, f"s3://{BUCKET}/expire/out", timeoutDurationInHours=24)
    for expected in ("Validating", "Scheduled"):
        batch_control.set_batch(advance_seconds=HOUR)
        _wait_for_status(bedrock, arn, expected)
    # WHEN it is still Scheduled once its timeout has passed (it would start an hour after Scheduled)
    batch_control.set_batch(phase_seconds=48 * HOUR)

    batch_control.set_batch(advance_seconds=23 * HOUR)

    job = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "Expired"
    assert job["endTime"] >= job["jobExpirationTime"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="expire/out/").get("KeyCount", 0) == 0


def test_a_job_still_in_progress_at_its_timeout_partially_completes(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    # GIVEN six records processed so slowly that InProgress would last 30 hours, 21 of them before the
    # job's 24-hour timeout
    records = [_record(f"P{i:010d}", f"Item {i}.") for i in range(6)]
    input_uri = _upload(s3, "partial/lines.jsonl", records)
    batch_control.set_batch(phase_seconds=HOUR, records_per_second=6 / (29 * HOUR))
    arn = _create(bedrock, input_uri, f"s3://{BUCKET}/partial/out", timeoutDurationInHours=24)
    for expected in ("Validating", "Scheduled", "InProgress"):
        batch_control.set_batch(advance_seconds=HOUR)
        _wait_for_status(bedrock, arn, expected)

    # WHEN the clock passes the timeout
    batch_control.set_batch(advance_seconds=22 * HOUR)

    # THEN the records processed by then (21/30 of six) are written, and the job is PartiallyCompleted
    job = _ended(bedrock, arn)
    assert job["status"] == "PartiallyCompleted"
    assert (job["totalRecordCount"], job["processedRecordCount"]) == (6, 4)
    job_id = arn.rsplit("/", 1)[-1]
    assert [line["recordId"] for line in _output(s3, f"partial/out/{job_id}/lines.jsonl.out")] == [
        r["recordId"] for r in records[:4]
    ]
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"partial/out/{job_id}/manifest.json.out")["Body"].read()
    )
    assert (
        manifest["totalRecordCount"],
        manifest["processedRecordCount"],
        manifest["successRecordCount"],
    ) == (6, 4, 4)


def test_converse_jobs_answer_in_the_converse_shape_and_kms_keys_reach_s3(
    bedrock: BedrockClient, batch_control: EmulatorControl, s3: S3Client
) -> None:
    records = [
        {"modelInput": {"messages": [{"role": "user", "content": [{"text": f"Question {i}?"}]}]}}
        for i in range(5)
    ]
    input_uri = _upload(s3, "converse/in/q.jsonl", records)
    arn = bedrock.create_model_invocation_job(
        jobName="converse-job",
        roleArn=ROLE,
        modelId=HAIKU,
        modelInvocationType="Converse",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/converse/in/"}},
        outputDataConfig={
            "s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/converse/out", "s3EncryptionKeyId": KMS_KEY}
        },
    )["jobArn"]
    assert input_uri.endswith("q.jsonl")

    job = _ended(bedrock, arn)

    assert job["status"] == "Completed"
    assert job["modelInvocationType"] == "Converse"
    key = f"converse/out/{arn.rsplit('/', 1)[-1]}/q.jsonl.out"
    lines = _output(s3, key)
    assert all(line["modelOutput"]["output"]["message"]["role"] == "assistant" for line in lines)
    # Bedrock adds an 11-character alphanumeric recordId where a record has none
    assert all(len(line["recordId"]) == 11 and line["recordId"].isalnum() for line in lines)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == KMS_KEY
