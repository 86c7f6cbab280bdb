"""Large outputs and result files in the artifacts bucket (encrypted by the bucket's KMS default)."""

from xpi.adapters import aws


class S3ObjectStore:
    def __init__(self, bucket: str) -> None:
        self._bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> str:
        aws.s3().put_object(
            Bucket=self._bucket, Key=key, Body=body, ContentType=content_type, ServerSideEncryption="aws:kms"
        )
        return f"s3://{self._bucket}/{key}"
