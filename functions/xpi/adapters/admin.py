"""The API's admin writes: replace the classification policy (SSM) and redrive the requests DLQ (SQS)."""

from xpi.adapters import aws
from xpi.models.api import RedriveStarted

STANDARD_TIER_MAX_BYTES = 4096  # larger values need the advanced tier (up to 8 KB)


class AwsAdminActions:
    def __init__(self, policy_parameter: str, dlq_url: str) -> None:
        self._parameter, self._dlq_url = policy_parameter, dlq_url

    def put_policy(self, text: str) -> int:
        response = aws.ssm().put_parameter(
            Name=self._parameter,
            Value=text,
            Type="String",
            Overwrite=True,
            Tier="Advanced" if len(text.encode()) > STANDARD_TIER_MAX_BYTES else "Standard",
        )
        return int(response["Version"])

    def redrive(self) -> RedriveStarted:
        sqs = aws.sqs()
        attributes = sqs.get_queue_attributes(
            QueueUrl=self._dlq_url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"]
        )["Attributes"]
        # SQS's own message move task, without a DestinationArn: each message goes back to the queue it
        # was dead-lettered from, keeping its original sender and attributes (a copy made by hand would
        # be sent by the API's role, and lose them).
        task = sqs.start_message_move_task(SourceArn=attributes["QueueArn"])
        return RedriveStarted(
            task_handle=task["TaskHandle"], messages_to_move=int(attributes["ApproximateNumberOfMessages"])
        )
