"""The Lambda SQS event source mapping, for the local stack.

Long-polls each mapped queue, builds the event exactly as Lambda does, invokes the function, and then
deletes what Lambda would delete: nothing after a function error (the messages come back after the
visibility timeout, and the queue's redrive policy moves them to the DLQ after maxReceiveCount), all but
the reported ``batchItemFailures`` after a partial batch response, everything after a success.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xpi_tools.local.lambda_runtime import InvokeResult

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

__all__ = ["MappingSpec", "SqsPoller", "build_sqs_event", "failed_message_ids"]

_LOG = logging.getLogger(__name__)

_MAX_MESSAGES_PER_RECEIVE = 10  # the SQS limit for ReceiveMessage and DeleteMessageBatch
_BACKOFF_S = 1.0
_STOP_TIMEOUT_S = 2.0
# The system attributes Lambda copies into a record, in Lambda's order; the rest are SQS-only.
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


@dataclass(frozen=True)
class MappingSpec:
    """One AWS::Lambda::EventSourceMapping (or SAM ``SQS`` event) of a queue to a function."""

    queue_url: str
    queue_arn: str
    function_name: str
    batch_size: int = 10
    max_batching_window_s: float = 0.0
    report_batch_item_failures: bool = True  # FunctionResponseTypes: [ReportBatchItemFailures]
    region: str = "us-gov-west-1"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"{self.function_name}: batch_size must be at least 1")
        if self.max_batching_window_s < 0:
            raise ValueError(f"{self.function_name}: max_batching_window_s cannot be negative")


def _record_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    attribute["dataType"] = value["DataType"]
    return attribute


def build_sqs_event(mapping: MappingSpec, messages: Sequence[MessageTypeDef]) -> dict[str, Any]:
    """The event Lambda hands the function for a batch of received messages."""
    records = []
    for message in messages:
        system_attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message.get("Body", ""),
                "attributes": {
                    name: system_attributes[name] for name in _RECORD_ATTRIBUTES if name in system_attributes
                },
                "messageAttributes": {
                    name: _record_attribute(value)
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": mapping.region,
            }
        )
    return {"Records": records}


def failed_message_ids(payload: bytes, batch_ids: set[str]) -> set[str] | None:
    """The message ids a partial batch response reports as failed; None for a whole-batch failure.

    As Lambda: no response, ``null``, an object without ``batchItemFailures``, or an empty or null list
    is complete success. Invalid JSON, a response that is not an object, a list that is not a list of
    objects, an empty, null or missing ``itemIdentifier``, or an id not in the batch is complete
    failure.
    """
    try:
        response: Any = json.loads(payload) if payload.strip() else None
        failures = response.get("batchItemFailures") if isinstance(response, dict) else response
        if failures is None:
            return set()
        if isinstance(response, dict) and isinstance(failures, list):
            identifiers = [item["itemIdentifier"] for item in failures]
            if all(isinstance(i, str) and i in batch_ids for i in identifiers):
                return set(identifiers)
    except (ValueError, TypeError, KeyError):  # invalid JSON, an item not an object, no identifier
        pass
    return None


class SqsPoller:
    """Polls the mapped queues on background threads and invokes their functions, like Lambda."""

    def __init__(
        self,
        sqs_client: SQSClient | Callable[[MappingSpec], SQSClient],
        invoke: Callable[[str, bytes], InvokeResult],
        mappings: Sequence[MappingSpec],
        concurrency_per_mapping: int = 1,
        wait_time_s: int = 1,
    ) -> None:
        if concurrency_per_mapping < 1:
            raise ValueError("concurrency_per_mapping must be at least 1")
        if not 0 <= wait_time_s <= 20:
            raise ValueError("wait_time_s must be between 0 and 20 (the SQS long-poll limit)")
        # One client for every mapping, or one per mapping: Lambda's pollers use the function's role.
        self._clients = {
            mapping: sqs_client(mapping) if callable(sqs_client) else sqs_client for mapping in mappings
        }
        self._invoke = invoke
        self._mappings = tuple(mappings)
        self._concurrency = concurrency_per_mapping
        # Short long-polls keep stop() quick; Lambda's own pollers wait up to 20 s.
        self._wait_time_s = wait_time_s
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the SQS poller is already started")
        self._stopping.clear()
        for mapping in self._mappings:
            for worker in range(self._concurrency):
                thread = threading.Thread(
                    target=self._poll,
                    args=(mapping,),
                    name=f"sqs-poller-{mapping.function_name}-{worker}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def stop(self) -> None:
        """Stop polling; returns within about 2 s (an invoke still running finishes on its own)."""
        self._stopping.set()
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                _LOG.warning("%s is still finishing a batch after stop()", thread.name)
        self._threads = []

    def __enter__(self) -> SqsPoller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------

    def _poll(self, mapping: MappingSpec) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._receive_batch(mapping)
                if messages:
                    self._process(mapping, messages)
            except Exception:  # a poller thread never dies; like Lambda, it retries
                _LOG.exception("SQS poller for %s failed; retrying shortly", mapping.function_name)
                self._stopping.wait(_BACKOFF_S)

    def _receive_batch(self, mapping: MappingSpec) -> list[MessageTypeDef]:
        """Up to batch_size messages; with a batching window, keeps receiving until the window ends."""
        batch: list[MessageTypeDef] = []
        window_ends: float | None = None
        while len(batch) < mapping.batch_size and not self._stopping.is_set():
            wait_s = self._wait_time_s
            if window_ends is not None:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                wait_s = max(0, min(wait_s, int(remaining)))
            response = self._clients[mapping].receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=min(_MAX_MESSAGES_PER_RECEIVE, mapping.batch_size - len(batch)),
                WaitTimeSeconds=wait_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            for message in received:
                # Received again within a long window: only the newest receipt handle deletes it.
                batch = [kept for kept in batch if kept["MessageId"] != message["MessageId"]]
                batch.append(message)
            if mapping.max_batching_window_s <= 0:
                break
            if batch and window_ends is None:
                window_ends = time.monotonic() + mapping.max_batching_window_s
            if not received and wait_s == 0 and window_ends is not None:
                self._stopping.wait(min(0.05, max(0.0, window_ends - time.monotonic())))
        return batch

    def _process(self, mapping: MappingSpec, messages: list[MessageTypeDef]) -> None:
        payload = json.dumps(build_sqs_event(mapping, messages)).encode()
        result = self._invoke(mapping.function_name, payload)
        if result.function_error is not None:
            _LOG.warning(
                "%s failed on a batch of %d (%s): %s; the messages return after the visibility timeout",
                mapping.function_name,
                len(messages),
                result.function_error,
                result.payload[:500].decode("utf-8", "replace"),
            )
            return
        failed: set[str] | None = set()
        if mapping.report_batch_item_failures:
            failed = failed_message_ids(result.payload, {message["MessageId"] for message in messages})
        if failed is None:
            _LOG.warning(
                "%s returned an invalid batchItemFailures response; the whole batch failed: %s",
                mapping.function_name,
                result.payload[:500].decode("utf-8", "replace"),
            )
            return
        self._delete(mapping, [message for message in messages if message["MessageId"] not in failed])

    def _delete(self, mapping: MappingSpec, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), _MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + _MAX_MESSAGES_PER_RECEIVE]
            response = self._clients[mapping].delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                _LOG.warning(
                    "could not delete a message of %s from %s: %s",
                    mapping.function_name,
                    mapping.queue_url,
                    failure.get("Message", failure.get("Code")),
                )
