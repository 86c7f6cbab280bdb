"""Step Functions: starting the inference and batch workflows, reading a request's execution, resuming a
waiting batch.

Executions are named by request id (inference) or batch id (batch), so a second start of the same
request or batch is refused by Step Functions itself (Standard workflows keep names for 90 days).
"""

import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from xpi.adapters import aws
from xpi.adapters.ports import PayloadStore
from xpi.models.batch import BatchObject
from xpi.models.queue import QueuedInput, QueuedRequest, UnprocessedAnswer, UnprocessedRecord
from xpi.models.reaping import ExecutionState
from xpi.models.workflow import ExecutionInput, WorkflowInput


def _start_once(state_machine_arn: str, name: str, execution_input: str) -> bool:
    client = aws.stepfunctions()
    try:
        client.start_execution(stateMachineArn=state_machine_arn, name=name, input=execution_input)
    except client.exceptions.ExecutionAlreadyExists:
        return False
    return True


class StepFunctionsStarter:
    """Stores the request body (payloads/, SSE-KMS with the stack key) and starts the execution with a
    reference to it: Step Functions' execution history never holds the request's text. Each start
    writes its own object, so a duplicate start never replaces the body a running execution reads."""

    def __init__(self, state_machine_arn: str, payloads: PayloadStore) -> None:
        self._arn = state_machine_arn
        self._payloads = payloads

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        body = json.dumps(workflow_input.request, ensure_ascii=False).encode("utf-8")
        payload = self._payloads.put(f"{request_id}/{uuid.uuid4().hex}.json", body)
        execution_input = ExecutionInput(payload=payload, source=workflow_input.source)
        return _start_once(self._arn, request_id, execution_input.model_dump_json(exclude_none=True))


# A request body up to this size travels inline in the queue workflow's input; a larger one is stored
# under payloads/ and travels as a reference. Ten inline bodies and their sources stay far below the
# input limit, so an ordinary batch of ten is one execution.
INLINE_REQUEST_MAX_BYTES = 20 * 1024
# Step Functions refuses an execution input over 256 KiB: each execution's input stays under this.
QUEUE_INPUT_MAX_BYTES = 240 * 1024


class StepFunctionsQueueStarter:
    """Starts the queue workflow (Express) once per SQS batch: its requests travel inline in the input
    (an Express execution keeps no history, and its logs here hold no execution data), a large one as a
    reference to its stored body. A batch too large for one input is split over several executions.
    Executions are named afresh (Express names are not unique): a duplicate start of a request is
    stopped by its lineage claim, not by the name."""

    def __init__(self, state_machine_arn: str, payloads: PayloadStore) -> None:
        self._arn = state_machine_arn
        self._payloads = payloads

    def start(self, batch: Sequence[tuple[str, QueuedInput]]) -> list[str]:
        not_started: list[str] = []
        queued: list[tuple[str, QueuedRequest]] = []
        for key, workflow_input in batch:
            try:
                queued.append((key, self._queued(workflow_input)))
            except Exception:
                not_started.append(key)
        for chunk in self._chunks(queued):
            name = f"batch-{uuid.uuid4().hex}"
            items = [
                _recorded_by(item.model_dump(mode="json", exclude_none=True), f"{name}#{index}")
                for index, (_, item) in enumerate(chunk)
            ]
            try:
                aws.stepfunctions().start_execution(
                    stateMachineArn=self._arn,
                    name=name,
                    input=json.dumps({"requests": items}, ensure_ascii=False, separators=(",", ":")),
                )
            except Exception:
                not_started.extend(key for key, _ in chunk)
        return not_started

    def _queued(self, workflow_input: QueuedInput) -> QueuedRequest:
        unprocessed = _unprocessed_record(workflow_input.unprocessed)
        body = json.dumps(workflow_input.request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) <= INLINE_REQUEST_MAX_BYTES:
            return QueuedRequest(
                request=workflow_input.request, source=workflow_input.source, unprocessed=unprocessed
            )
        request_id = str(workflow_input.request.get("request_id", "request"))
        payload = self._payloads.put(f"{request_id}/{uuid.uuid4().hex}.json", body)
        return QueuedRequest(payload=payload, source=workflow_input.source, unprocessed=unprocessed)

    @staticmethod
    def _chunks(items: list[tuple[str, QueuedRequest]]) -> list[list[tuple[str, QueuedRequest]]]:
        chunks: list[list[tuple[str, QueuedRequest]]] = [[]]
        size = 0
        for key, item in items:
            item_size = len(item.model_dump_json(exclude_none=True).encode("utf-8")) + 1 + _TOKEN_ROOM_BYTES
            if chunks[-1] and size + item_size > QUEUE_INPUT_MAX_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append((key, item))
            size += item_size
        return [chunk for chunk in chunks if chunk]


_SERIALIZER = TypeSerializer()
# Room kept per item for the `recorded_by` token added once its execution is named.
_TOKEN_ROOM_BYTES = 96


def _unprocessed_record(answer: UnprocessedAnswer) -> UnprocessedRecord:
    """The answer as the workflow's PutItem and PutEvents take it: DynamoDB attribute values, and the
    detail as JSON."""
    plain = answer.item.model_dump(mode="json", exclude_none=True)
    return UnprocessedRecord(
        item={name: _SERIALIZER.serialize(value) for name, value in plain.items()},
        detail=answer.detail.model_dump(mode="json", exclude_none=True),
    )


def _recorded_by(item: dict[str, Any], token: str) -> dict[str, Any]:
    """The item's unprocessed answer stamped with this item of this execution: the workflow's write is
    conditional on no item, or on its own (a retried PutItem that had succeeded)."""
    unprocessed = item.get("unprocessed")
    if unprocessed is not None:
        unprocessed["item"]["recorded_by"] = {"S": token}
    return item


class StepFunctionsBatchStarter:
    def __init__(self, state_machine_arn: str) -> None:
        self._arn = state_machine_arn

    def start(self, batch: BatchObject) -> bool:
        return _start_once(self._arn, batch.batch_id, json.dumps({"batch": batch.model_dump(mode="json")}))


class StepFunctionsExecutions:
    def __init__(self, state_machine_arn: str) -> None:
        # arn:<partition>:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<id>
        self._prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    def describe(self, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        client = aws.stepfunctions()
        try:
            execution = client.describe_execution(executionArn=self._prefix + request_id)
        except client.exceptions.ExecutionDoesNotExist:
            return None
        output = execution.get("output")
        return execution["status"], (json.loads(output) if output else None)


class StepFunctionsExecutionControl:
    """The reaper's view of a request's execution: its status and source (DescribeExecution), and
    StopExecution for one still running past the workflow's longest possible run."""

    def __init__(self, state_machine_arn: str) -> None:
        self._prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    def inspect(self, request_id: str) -> ExecutionState | None:
        client = aws.stepfunctions()
        try:
            execution = client.describe_execution(executionArn=self._prefix + request_id)
        except client.exceptions.ExecutionDoesNotExist:
            return None
        source = None
        with contextlib.suppress(ValueError):  # an input this version cannot read: the lineage's source
            source = ExecutionInput.model_validate_json(execution.get("input") or "{}").source
        return ExecutionState(status=execution["status"], source=source)

    def stop(self, request_id: str, error: str, cause: str) -> None:
        client = aws.stepfunctions()
        # Already over (or never started): nothing to stop.
        with contextlib.suppress(client.exceptions.ExecutionDoesNotExist):
            client.stop_execution(executionArn=self._prefix + request_id, error=error, cause=cause)


class StepFunctionsBatchWorkflow:
    """Tells the batch workflow that every line has finished (it waits on a task token, no polling)."""

    def lines_finished(self, task_token: str, output: dict[str, Any]) -> None:
        client = aws.stepfunctions()
        # The workflow may have stopped waiting already (timed out or was stopped): nothing to resume.
        with contextlib.suppress(client.exceptions.TaskTimedOut, client.exceptions.InvalidToken):
            client.send_task_success(taskToken=task_token, output=json.dumps(output))
