"""Objects in the artifacts bucket, always SSE-KMS with the stack key: large outputs (`outputs/`) and
the request bodies the workflow refers to (`payloads/`), so Step Functions' execution history holds
references, not content. Every object is written with an S3 Bucket Key (as the bucket's default says,
stated on each write so it holds whatever the bucket's default becomes): S3 then calls KMS about once
per bucket key's lifetime instead of once per object read or written (bench/bench_cost.py)."""

from xpi.adapters import aws
from xpi.models.workflow import PayloadRef

PAYLOAD_PREFIX = "payloads/"


class S3ObjectStore:
    def __init__(self, bucket: str, kms_key_id: str = "") -> None:
        self._bucket = bucket
        self._kms_key_id = kms_key_id

    def put(self, key: str, body: bytes, content_type: str) -> str:
        if self._kms_key_id:  # the bucket's default is the stack key too; naming it pins every object
            aws.s3().put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self._kms_key_id,
                BucketKeyEnabled=True,
            )
        else:
            aws.s3().put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="aws:kms",
                BucketKeyEnabled=True,
            )
        return f"s3://{self._bucket}/{key}"


class S3PayloadStore:
    """Request bodies under payloads/ (expired by the bucket's lifecycle rule)."""

    def __init__(self, bucket: str, kms_key_id: str = "") -> None:
        self._bucket = bucket
        self._objects = S3ObjectStore(bucket, kms_key_id)

    def put(self, key: str, body: bytes, hmac: str | None = None) -> PayloadRef:
        full_key = PAYLOAD_PREFIX + key
        self._objects.put(full_key, body, "application/json")
        return PayloadRef(bucket=self._bucket, key=full_key, bytes=len(body), hmac=hmac)

    def get(self, ref: PayloadRef) -> bytes:
        if ref.bucket != self._bucket or not ref.key.startswith(PAYLOAD_PREFIX):
            raise ValueError("the payload reference points outside this stack's payloads")
        body: bytes = aws.s3().get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
        return body
