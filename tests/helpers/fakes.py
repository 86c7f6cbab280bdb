"""In-memory fakes of xpi's adapter Protocols, with the semantics the real adapters guarantee."""

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from xpi.adapters.bedrock import ModelAnswer
from xpi.adapters.credentials import ApiKey, CommercialCredentials, IamKeys
from xpi.adapters.lineage_store import ACCEPTED
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route, Usage, WorkflowInput


@dataclass
class FinalizeCall:
    request_id: str
    attributes: dict[str, Any]
    first_seen: dict[str, Any]
    only_if_new: bool


class FakeLineageStore:
    """DynamoLineageStore's conditions: a new item or an ACCEPTED claim may become final, once."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[FinalizeCall] = []

    def claim(self, request_id: str, **attributes: Any) -> None:
        """What the workflow's Claim step writes."""
        self.items[request_id] = {"request_id": request_id, "status": ACCEPTED, **attributes}

    def finalize(
        self,
        request_id: str,
        attributes: dict[str, Any],
        first_seen: dict[str, Any],
        *,
        only_if_new: bool = False,
    ) -> bool:
        self.calls.append(FinalizeCall(request_id, dict(attributes), dict(first_seen), only_if_new))
        current = self.items.get(request_id)
        if current is not None and (only_if_new or current.get("status") != ACCEPTED):
            return False
        item = {"request_id": request_id, **(current or {}), **attributes}
        for name, value in first_seen.items():
            item.setdefault(name, value)
        self.items[request_id] = item
        return True

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = self.items.get(request_id)
        return dict(item) if item else None


class FakeEventPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: BaseModel) -> None:
        self.published.append((detail_type, detail.model_dump(mode="json", exclude_none=True)))


class FakeWorkflowStarter:
    """Step Functions' rule: one execution per name."""

    def __init__(self) -> None:
        self.started: dict[str, WorkflowInput] = {}

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        if request_id in self.started:
            return False
        self.started[request_id] = workflow_input
        return True


class FakeObjectStore:
    def __init__(self, bucket: str = "xpi-prod-artifacts") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.objects[key] = (body, content_type)
        return f"s3://{self.bucket}/{key}"


@dataclass
class FakeBedrockGateway:
    """Answers every call with `answer`, or raises `error`; remembers what it was asked."""

    answer_text: str | None = "A short answer."
    answer_body: dict[str, Any] | None = None
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=120, output_tokens=40))
    stop_reason: str | None = "end_turn"
    credential_version: str = "7d4e1b2a-9c3f-4e5d-8a6b-0f1e2d3c4b5a"
    error: Exception | None = None
    calls: list[tuple[Route, InferenceRequest]] = field(default_factory=list)

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        self.calls.append((route, request))
        if self.error is not None:
            raise self.error
        return ModelAnswer(
            text=self.answer_text if self.answer_body is None else None,
            body=self.answer_body,
            stop_reason=self.stop_reason,
            usage=self.usage,
            latency_ms=830,
            credential_version=self.credential_version,
        )


IAM_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class FakeCredentials:
    """A CredentialSource whose secret is rotated from version to version on each refresh."""

    def __init__(self, versions: list[str] | None = None, kind: str = "iam") -> None:
        self.versions = versions or ["v-1111", "v-2222"]
        self.kind = kind
        self.reads: list[bool] = []
        self._current = 0

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        self.reads.append(refresh)
        if refresh and self._current + 1 < len(self.versions):
            self._current += 1
        version = self.versions[self._current]
        secret: IamKeys | ApiKey
        if self.kind == "iam":
            secret = IamKeys.model_validate(
                {
                    "aws_access_key_id": f"AKIAEXAMPLE{self._current:09d}",
                    "aws_secret_access_key": f"{IAM_SECRET_ACCESS_KEY}-{version}",
                }
            )
        else:
            secret = ApiKey.model_validate({"type": "api_key", "api_key": f"bedrock-api-key-{version}"})
        return CommercialCredentials(version_id=version, secret=secret)
