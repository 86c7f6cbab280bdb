"""An SQS consumer: records whose body is "fail" are reported in batchItemFailures."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = [
        {"itemIdentifier": record["messageId"]} for record in event["Records"] if record["body"] == "fail"
    ]
    return {"batchItemFailures": failures}
