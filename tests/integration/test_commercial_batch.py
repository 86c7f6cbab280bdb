"""The local stack's commercial side for batch inference: a second moto server in the `aws` partition
plays the commercial account's S3 and KMS, and the stack's Bedrock emulator runs its batch jobs there."""

import json
import secrets
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from xpi_tools.emulator import EmulatorControl

from tests.helpers.stack import LocalStackClient
from tests.helpers.waiting import wait_until

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _record(record_id: str, text: str) -> dict[str, Any]:
    return {
        "recordId": record_id,
        "modelInput": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        },
    }


def test_a_batch_job_reads_and_writes_the_commercial_accounts_s3_under_its_key(
    local_stack: LocalStackClient,
) -> None:
    # GIVEN the commercial side the stack started, and a key of the emulator's own to call Bedrock with
    commercial = local_stack.state["commercial_batch"]
    assert commercial["url"] != local_stack.state["aws"]
    control = EmulatorControl(local_stack.state["emulator_control"])
    key_id, secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    control.add_access_key(key_id, secret)
    control.set_batch(phase_seconds=0, min_records_per_job=2)
    commercial_s3 = boto3.client(
        "s3",
        endpoint_url=commercial["url"],
        region_name=commercial["region"],
        aws_access_key_id="commercial",
        aws_secret_access_key="commercial",
    )
    bedrock = boto3.client(
        "bedrock",
        endpoint_url=local_stack.state["bedrock"],
        region_name=local_stack.state["bedrock_region"],
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    bucket, run = commercial["bucket"], secrets.token_hex(4)
    records = [_record(f"r{n:03d}", f"line {n}") for n in range(3)]
    commercial_s3.put_object(
        Bucket=bucket,
        Key=f"input/{run}/records.jsonl",
        Body="".join(json.dumps(r) + "\n" for r in records).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=commercial["kms_key_arn"],
    )
    try:
        # WHEN a job runs over it as the batch service role
        job = bedrock.create_model_invocation_job(
            jobName=f"local-{run}",
            roleArn=commercial["role_arn"],
            modelId=HAIKU,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/input/{run}/"}},
            outputDataConfig={
                "s3OutputDataConfig": {
                    "s3Uri": f"s3://{bucket}/output/{run}/",
                    "s3EncryptionKeyId": commercial["kms_key_arn"],
                }
            },
            clientRequestToken=run,
        )
        job_id = job["jobArn"].rsplit("/", 1)[-1]
        wait_until(
            lambda: bedrock.get_model_invocation_job(jobIdentifier=job["jobArn"])["status"] == "Completed",
            30,
            what="the batch job completed",
        )

        # THEN its output is in the commercial bucket, in input order, encrypted under the account's key
        output = commercial_s3.get_object(Bucket=bucket, Key=f"output/{run}/{job_id}/records.jsonl.out")
        assert output["ServerSideEncryption"] == "aws:kms"
        assert output["SSEKMSKeyId"] == commercial["kms_key_arn"]
        lines = [json.loads(line) for line in output["Body"].read().decode().splitlines()]
        assert [line["recordId"] for line in lines] == ["r000", "r001", "r002"]
        assert all("modelOutput" in line for line in lines)
        # AND the GovCloud side never saw that bucket: the two partitions are two servers
        with pytest.raises(ClientError):
            local_stack.client("s3").head_bucket(Bucket=bucket)
    finally:
        control.reset_batch()
        control.revoke_access_key(key_id)
