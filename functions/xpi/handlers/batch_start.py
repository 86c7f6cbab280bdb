"""Uploads noticed: S3 event notifications (through SQS, with a DLQ) start one batch workflow per
object version. The execution name is the batch id, so the same object noticed twice is one batch."""

import json
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi.adapters import aws
from xpi.domain.batch import batch_id_for, is_manifest_key
from xpi.handlers.batch_wiring import settings
from xpi.models.batch import BatchObject
from xpi.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def batch_objects(notification: dict[str, Any], prefix: str) -> list[BatchObject]:
    """The uploaded objects an S3 notification names (the s3:TestEvent and manifests name none)."""
    found = []
    for record in notification.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        bucket = record["s3"]["bucket"]["name"]
        s3_object = record["s3"]["object"]
        key = unquote_plus(s3_object["key"])
        if not key.startswith(prefix) or is_manifest_key(key):
            continue
        etag = str(s3_object.get("eTag") or s3_object.get("sequencer") or "")
        found.append(
            BatchObject(
                batch_id=batch_id_for(bucket, key, etag),
                bucket=bucket,
                key=key,
                version_id=s3_object.get("versionId"),
                etag=etag,
                size=int(s3_object.get("size", 0)),
                principal=str(record.get("userIdentity", {}).get("principalId", "unknown")),
                uploaded_at=datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")),
            )
        )
    return found


def record_handler(record: SQSRecord) -> None:
    client = aws.stepfunctions()
    for batch in batch_objects(json.loads(record.body), settings().input_prefix):
        try:
            client.start_execution(
                stateMachineArn=settings().state_machine_arn,
                name=batch.batch_id,
                input=json.dumps({"batch": batch.model_dump(mode="json")}),
            )
            logger.info("batch started", extra={"batch_id": batch.batch_id, "key": batch.key})
        except client.exceptions.ExecutionAlreadyExists:
            logger.info("batch seen before; not started again", extra={"batch_id": batch.batch_id})


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
