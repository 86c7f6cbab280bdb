"""Batch inference jobs over AWS: the job item in the batch table (GovCloud), the commercial account's
bucket and Bedrock's job API (commercial, through clients built with the commercial credentials)."""

from collections.abc import Callable, Iterator
from typing import Any, Literal

import boto3
from botocore.config import Config

from xpi.adapters import aws
from xpi.adapters.ports import CredentialSource
from xpi.domain.errors import CredentialsUnavailable
from xpi.models.batch_jobs import BatchJob
from xpi.models.credentials import IamKeys

JOB_LINE = -1  # the job item's range key: beside the status item (0) and the line items (1..n)


class DynamoBatchJobRecords(aws.LazyTable):
    def begin(self, job: BatchJob) -> BatchJob:
        item = {"batch_id": job.batch_id, "line": JOB_LINE, "job": job.model_dump_json()}
        table = self._table()
        if aws.write_if(
            lambda: table.put_item(Item=item, ConditionExpression="attribute_not_exists(batch_id)")
        ):
            return job
        stored = table.get_item(Key={"batch_id": job.batch_id, "line": JOB_LINE}, ConsistentRead=True)["Item"]
        return BatchJob.model_validate_json(str(stored["job"]))

    def update(self, job: BatchJob) -> None:
        self._table().put_item(
            Item={"batch_id": job.batch_id, "line": JOB_LINE, "job": job.model_dump_json()}
        )


class S3CommercialObjects:
    def __init__(self, client: Callable[[], Any], bucket: str) -> None:
        self._client, self._bucket = client, bucket

    def put(self, key: str, body: bytes, kms_key_id: str) -> str:
        self._client().put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            ContentType="application/jsonl",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key_id,
        )
        return f"s3://{self._bucket}/{key}"

    def lines(self, key: str) -> Iterator[str]:
        body = self._client().get_object(Bucket=self._bucket, Key=key)["Body"]
        for raw in body.iter_lines():
            yield raw.decode("utf-8")


class BedrockBatchJobs:
    def __init__(self, client: Callable[[], Any]) -> None:
        self._client = client

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
        response = self._client().create_model_invocation_job(
            jobName=name,
            roleArn=role_arn,
            modelId=model_id,
            clientRequestToken=client_request_token,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri, "s3EncryptionKeyId": kms_key_id}},
        )
        return str(response["jobArn"])

    def status(self, job_arn: str) -> tuple[str, str | None]:
        response = self._client().get_model_invocation_job(jobIdentifier=job_arn)
        message = response.get("message")
        return str(response["status"]), None if message is None else str(message)


class CommercialClients:
    """boto3 clients of the commercial account (Bedrock's control plane, S3), signed with the commercial
    credentials the invoke step uses (an access key; a bearer API key cannot call these APIs), built
    again when the credentials' version changes (a rotation)."""

    def __init__(
        self,
        credentials: CredentialSource,
        *,
        region: str,
        bedrock_endpoint: str = "",
        s3_endpoint: str = "",
    ) -> None:
        self._credentials, self._region = credentials, region
        self._endpoints = {"bedrock": bedrock_endpoint, "s3": s3_endpoint}
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: Literal["bedrock", "s3"]) -> Any:
        credentials = self._credentials.get()
        secret = credentials.secret
        if not isinstance(secret, IamKeys):
            raise CredentialsUnavailable("batch inference jobs need a commercial access key, not an API key")
        key = (service, credentials.version_id)
        client = self._clients.get(key)
        if client is None:
            client = boto3.Session().client(
                service,
                region_name=self._region,
                endpoint_url=self._endpoints[service] or None,
                aws_access_key_id=secret.aws_access_key_id,
                aws_secret_access_key=secret.aws_secret_access_key.get_secret_value(),
                aws_session_token=secret.aws_session_token.get_secret_value()
                if secret.aws_session_token
                else None,
                config=Config(retries={"mode": "standard"}),
            )
            self._clients = {k: c for k, c in self._clients.items() if k[1] == credentials.version_id}
            self._clients[key] = client
        return client
