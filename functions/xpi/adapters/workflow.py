"""Starting the inference workflow; the execution name is the request id, so a second start of the
same request is refused by Step Functions itself (Standard workflows keep names for 90 days)."""

from typing import Protocol

from xpi.adapters import aws
from xpi.models.workflow import WorkflowInput


class WorkflowStarter(Protocol):
    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        """Start it; False when an execution of this request id exists already."""
        ...


class StepFunctionsStarter:
    def __init__(self, state_machine_arn: str) -> None:
        self._arn = state_machine_arn

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        client = aws.stepfunctions()
        try:
            client.start_execution(
                stateMachineArn=self._arn,
                name=request_id,
                input=workflow_input.model_dump_json(exclude_none=True),
            )
        except client.exceptions.ExecutionAlreadyExists:
            return False
        return True
