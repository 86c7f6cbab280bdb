"""The sample events of events/: one or more for every function, each valid for what its function parses,
every file documented with the command that uses it, and the requests on the approved list."""

import hashlib
import json
import re
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel, SqsModel
from xpi.domain.routing import load_default_routing
from xpi.models.batch import BatchFailure, BatchObject, BatchStepInput, S3Notification
from xpi.models.batch_jobs import JobStepInput
from xpi.models.credentials import RotationEvent
from xpi.models.queue import QueueTask
from xpi.models.request import InferenceRequest
from xpi.models.sign_in import PreTokenEvent
from xpi.models.workflow import ExecutionInput, RejectedInput, WorkflowState
from xpi.services.reconciliation import Reconciled

from tests.helpers.events import EVENTS, REPO

# events/<folder>/ per handler module (xpi.handlers.<name>.handler)
FOLDER_OF_HANDLER = {
    "consume": "consume",
    "process": "process",
    "validate": "validate",
    "classify": "classify",
    "route": "route",
    "invoke": "invoke",
    "record": "record",
    "record_rejection": "record-rejection",
    "api": "api",
    "api_invoke": "api-invoke",
    "admin": "admin",
    "batch_start": "batch/start",
    "batch_split": "batch/split",
    "batch_release": "batch/release",
    "batch_progress": "batch/progress",
    "batch_assemble": "batch/assemble",
    "batch_record_failure": "batch/record-failure",
    "batch_reconcile": "batch/reconcile",
    "batch_job": "batch/job",
    "reap": "reap",
    "check_paths": "check-paths",
    "seal": "seal",
    "rotate_credentials": "rotate",
    "compliance_check": "compliance-check",
    "compliance_report": "compliance-report",
    "usage_report": "usage",
    "dashboard_sign_in": "sign-in",
    "dashboard_page": "dashboard-page",
}


def template_functions() -> dict[str, str]:
    """Logical id -> handler module name, for every AWS::Serverless::Function in template.yaml."""
    functions: dict[str, str] = {}
    resource = None
    is_function = False
    for line in (REPO / "template.yaml").read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"  (\w+):", line):
            resource, is_function = match.group(1), False
        elif line.strip() == "Type: AWS::Serverless::Function":
            is_function = True
        elif (
            is_function
            and resource
            and (match := re.fullmatch(r"\s+Handler: xpi\.handlers\.(\w+)\.handler", line))
        ):
            functions[resource] = match.group(1)
    return functions


def event_files() -> list[Path]:
    # events/batch/files/ holds sample uploads (a batch file and its manifest), not function events.
    return sorted(path for path in EVENTS.rglob("*.json") if "files" not in path.relative_to(EVENTS).parts)


def test_the_template_is_read() -> None:
    assert template_functions() == {
        "ConsumeRequestsFunction": "consume",
        "ValidateFunction": "validate",
        "ProcessRequestFunction": "process",
        "ClassifyFunction": "classify",
        "RouteFunction": "route",
        "InvokeModelFunction": "invoke",
        "RecordOutcomeFunction": "record",
        "RecordRejectionFunction": "record_rejection",
        "ApiFunction": "api",
        "SyncInvokeFunction": "api_invoke",
        "AdminFunction": "admin",
        "ReaperFunction": "reap",
        "PathHealthFunction": "check_paths",
        "LineageSealFunction": "seal",
        "ComplianceCheckFunction": "compliance_check",
        "ComplianceReportFunction": "compliance_report",
        "UsageReportFunction": "usage_report",
        "DashboardSignInFunction": "dashboard_sign_in",
        "DashboardPageFunction": "dashboard_page",
        "RotateCredentialsFunction": "rotate_credentials",
        "BatchStartFunction": "batch_start",
        "BatchSplitFunction": "batch_split",
        "BatchReleaseFunction": "batch_release",
        "BatchReconcileFunction": "batch_reconcile",
        "BatchJobFunction": "batch_job",
        "BatchProgressFunction": "batch_progress",
        "BatchAssembleFunction": "batch_assemble",
        "BatchRecordFailureFunction": "batch_record_failure",
    }


@pytest.mark.parametrize(("function", "handler"), sorted(template_functions().items()))
def test_every_function_has_a_sample_event(function: str, handler: str) -> None:
    assert list((EVENTS / FOLDER_OF_HANDLER[handler]).glob("*.json")), f"no sample event for {function}"


@pytest.mark.parametrize("path", event_files(), ids=lambda p: str(p.relative_to(EVENTS)))
def test_every_event_is_valid_for_its_function(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    folder = path.parent.name
    if folder in ("consume", "start", "progress"):
        batch = SqsModel.model_validate(event)
        if folder == "start":  # each body an S3 notification, as the start function parses it
            for record in batch.Records:
                S3Notification.model_validate_json(record.body)
    elif folder == "validate":
        ExecutionInput.model_validate(event)
    elif folder == "process":
        QueueTask.model_validate(event)
    elif folder == "payloads":  # request bodies the sample states refer to (one is invalid on purpose)
        assert isinstance(event, dict) and "model" in event
    elif folder == "requests":
        InferenceRequest.model_validate(event)
    elif folder in ("api", "api-invoke", "admin", "compliance-report", "usage", "dashboard-page"):
        APIGatewayProxyEventModel.model_validate(event)
    elif folder == "split":
        BatchObject.model_validate(event["batch"])
    elif folder == "assemble":
        BatchStepInput.model_validate(event)
    elif folder == "record-failure":
        BatchFailure.model_validate(event)
    elif folder == "release":
        assert set(event) == {"batch_id", "task_token"}
    elif folder == "record-rejection":
        RejectedInput.model_validate(event)
    elif folder in (
        "reap",
        "check-paths",
        "seal",
        "compliance-check",
    ):  # the schedule's event: the function reads none of it
        assert event["detail-type"] == "Scheduled Event"
    elif folder == "rotate":
        RotationEvent.model_validate(event)
    elif folder == "sign-in":
        PreTokenEvent.model_validate(event)
    elif folder == "job":
        JobStepInput.model_validate(event)
    elif folder == "reconcile":
        assert set(event) == {"batch_id", "state"}
        Reconciled.model_validate(event["state"]["reconcile"])
    else:
        WorkflowState.model_validate(event)


def test_the_readme_lists_every_file_with_the_command_that_uses_it() -> None:
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    function_of_folder = {FOLDER_OF_HANDLER[h]: f for f, h in template_functions().items()}
    batch_readme = (EVENTS / "batch" / "README.md").read_text(encoding="utf-8")

    for path in event_files():
        relative = str(path.relative_to(EVENTS))
        folder = str(path.parent.relative_to(EVENTS))
        # events/batch/ documents its own files in events/batch/README.md
        listing = batch_readme if folder.startswith("batch/") else readme
        listed = relative.removeprefix("batch/") if folder.startswith("batch/") else relative
        assert f"`{listed}`" in listing, f"{relative} is not listed in its README"
        if folder not in ("requests", "payloads"):
            command = f"sam local invoke {function_of_folder[folder]}"
            assert re.search(rf"{command} +-e events/{re.escape(relative)}\n", listing), (
                f"no `{command} -e events/{relative}` in events/README.md"
            )


class TestSqsBatch:
    def test_three_records_from_the_govcloud_requests_queue(self) -> None:
        batch = SqsModel.model_validate_json((EVENTS / "consume/sqs-batch.json").read_text())

        assert len(batch.Records) == 3
        for record in batch.Records:
            assert record.eventSourceARN.startswith("arn:aws-us-gov:sqs:us-gov-west-1:111122223333:")
            assert "RequestsQueue" in record.eventSourceARN
            assert record.awsRegion == "us-gov-west-1"
        for raw in json.loads((EVENTS / "consume/sqs-batch.json").read_text())["Records"]:
            assert raw["md5OfBody"] == hashlib.md5(raw["body"].encode()).hexdigest()

    def test_one_valid_one_with_pii_one_malformed(self) -> None:
        records = json.loads((EVENTS / "consume/sqs-batch.json").read_text())["Records"]
        bodies: list[str] = [record["body"] for record in records]

        valid, pii, malformed = bodies
        assert InferenceRequest.model_validate_json(valid).prompt
        assert "123-45-6789" in pii and "@example.com" in pii
        InferenceRequest.model_validate_json(pii)
        with pytest.raises(ValueError, match="model"):
            InferenceRequest.model_validate_json(malformed)


class TestRequests:
    @pytest.mark.parametrize("path", sorted((EVENTS / "requests").glob("*.json")), ids=lambda p: p.name)
    def test_models_are_approved_or_aliases_except_the_unknown_one(self, path: Path) -> None:
        routing = load_default_routing()
        request = InferenceRequest.model_validate_json(path.read_text())

        approved = routing.resolve_alias(request.model) in routing.models

        assert approved is (path.name != "unknown-model.json")

    def test_the_failed_state_carries_a_lambda_error_as_a_catch_leaves_it(self) -> None:
        state = WorkflowState.model_validate_json((EVENTS / "record/state-failed.json").read_text())

        assert state.error is not None
        assert state.error.Error == "BedrockRejected"
        cause = json.loads(state.error.Cause or "")
        assert cause["errorType"] == "BedrockRejected"
        assert cause["errorMessage"].startswith("ValidationException: ")

    def test_the_samples_cover_each_request_form(self) -> None:
        samples = {
            p.stem: InferenceRequest.model_validate_json(p.read_text())
            for p in (EVENTS / "requests").glob("*.json")
        }

        assert samples["plain-prompt"].prompt and not samples["plain-prompt"].messages
        assert samples["converse-system"].system and len(samples["converse-system"].messages) == 3
        assert samples["invoke-model-anthropic"].api == "invoke_model"
        assert samples["invoke-model-anthropic"].body is not None
        assert samples["invoke-model-anthropic"].body["anthropic_version"] == "bedrock-2023-05-31"
        assert "CUI" in (samples["cui-banner"].prompt or "").splitlines()


@pytest.mark.parametrize("path", event_files(), ids=lambda p: str(p.relative_to(EVENTS)))
def test_every_payload_reference_points_at_its_sample_body(path: Path) -> None:
    # The states carry references, not content: each reference names a file of payloads/ and its size.
    event = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(event, dict) or "payload" not in event:
        return
    key = event["payload"]["key"]
    body = (
        EVENTS / "payloads" / f"{key.removeprefix('payloads/').removesuffix('/sample.json')}.json"
    ).read_bytes()
    assert event["payload"]["bytes"] == len(body)
    assert "messages" not in event.get("request", {}) and "prompt" not in event.get("request", {})


def test_the_rejection_samples_are_an_invalid_request_and_a_platform_failure() -> None:
    errors = {
        path.name: RejectedInput.model_validate_json(path.read_text()).error.Error
        for path in (EVENTS / "record-rejection").glob("*.json")
    }

    assert errors == {
        "rejected-input.json": "RequestInvalid",
        "validate-failed.json": "Lambda.ServiceException",
    }
