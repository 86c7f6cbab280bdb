"""The state that flows through the inference workflow, one optional section per step.

Each Lambda task receives the whole state and returns it with its own section filled in, so the ASL
stays a readable list of steps and every handler parses exactly one model.

The state carries references, not content: the request body lives in the artifacts bucket under the
stack key (`payloads/`) and the state holds its `PayloadRef` plus the request's header (id, model, api,
caller metadata, reply hints), because Step Functions keeps every state in the execution history.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xpi.models.request import CallerMetadata, InferenceRequest

SourceKind = Literal["sqs", "s3_batch", "api"]
Decision = Literal["allow", "redact", "block"]
FinalStatus = Literal["COMPLETED", "FAILED", "BLOCKED"]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_State):
    kind: SourceKind
    principal: str = Field(
        description="the caller's IAM principal (SQS SenderId, API caller ARN, S3 uploader)"
    )
    reference: str | None = Field(
        None, description="SQS message id, S3 object URI with line, or API request id"
    )
    received_at: datetime
    batch_id: str | None = None


class WorkflowInput(_State):
    """What a producer-facing function asks to start: the request as received and who sent it. The
    starter stores the request and starts the execution with an `ExecutionInput` pointing at it."""

    request: dict[str, Any]
    source: Source


class PayloadRef(_State):
    """Where a request body is: an object under `payloads/` in the artifacts bucket (SSE-KMS with the
    stack key). States carry this reference, never the body."""

    bucket: str
    key: str
    bytes: int = Field(ge=0, description="the object's size; a reader refuses an object of another size")
    hmac: str | None = Field(
        None,
        description="keyed hash (HMAC-SHA256, the stack's hash key) of the object, set by the steps "
        "that hold the key; a reader holding the key refuses an object that does not match",
    )


class ExecutionInput(_State):
    """The inference workflow's input: a reference to the request body and who sent it."""

    payload: PayloadRef
    source: Source
    execution: str | None = Field(None, description="the execution name, injected by the ASL")
    started_at: str | None = Field(None, description="the execution's start time, injected by the ASL")

    def token(self) -> str | None:
        """This execution, uniquely (a name is reused after 90 days, a name and start time never): what
        its final lineage write carries, so a retried RecordOutcome recognises the write as its own."""
        if self.execution is None or self.started_at is None:
            return None
        return f"{self.execution}@{self.started_at}"


class RequestHeader(_State):
    """What later steps need of the request without its content: the body stays behind `payload`."""

    request_id: str
    model: str
    api: Literal["converse", "invoke_model"] = "converse"
    caller: CallerMetadata = CallerMetadata()
    reply: dict[str, str] = {}
    max_tokens: int | None = Field(
        None, description="the most the model may generate: what a budget reserves for the output"
    )

    @classmethod
    def of(cls, request: InferenceRequest) -> "RequestHeader":
        return cls(
            request_id=request.request_id,
            model=request.model,
            api=request.api,
            caller=request.caller,
            reply=request.reply,
            max_tokens=request.inference.max_tokens,
        )


class Claim(_State):
    """The lineage item's first version, written by the workflow's conditional PutItem (strings only)."""

    request_id: str
    created_at: str
    day: str
    caller_principal: str
    source: SourceKind
    request_hmac: str = Field(description="keyed hash (HMAC-SHA256, the stack's hash key) of the request")
    model_requested: str
    expires_at: str
    claimed_by: str | None = Field(
        None,
        description="the token of the execution that claims (the queue workflow's process step): a retry "
        "of that step that meets its own claim knows a Bedrock call may have been made",
    )


class Classification(_State):
    decision: Decision
    categories: dict[str, int] = {}
    findings: int = 0
    security_alert: bool = False
    reasons: list[str] = []
    actions: dict[str, Decision] = Field(
        {}, description="per category found, what the policy did with it (the clearance checks this)"
    )
    classifier: str = Field(description="what inspected the request, e.g. 'xpi-rules/1 + comprehend'")
    models: list[str] | None = Field(
        None,
        description="a routing strategy's models the policy lets this content go to as it is handled "
        "(the route step keeps only these); None: the one model it was judged for",
    )
    payload_hmac: str | None = Field(
        None,
        description="keyed hash (HMAC-SHA256, the stack's hash key) of what the invoke step will send "
        "(after redaction, the route excepted: xpi.domain.payload); the invoke step sends only when its "
        "own payload hashes the same",
    )


class ConfigSnapshot(_State):
    """The configuration the classify step read, once, for the whole execution: route and invoke use
    this, never a newer parameter value, so every step of one request judges by the same documents."""

    policy_sha256: str = Field(description="canonical SHA-256 of the policy the classify step applied")
    routing_sha256: str = Field(description="canonical SHA-256 of `routing`")
    routing: dict[str, Any] = Field(description="the routing document in force (about 1.5 KB)")
    policy_revision: int = Field(0, description="the policy's signed revision (0: the shipped default)")
    routing_revision: int = Field(0, description="the routing's signed revision (0: the shipped default)")
    config_fallback: bool = Field(
        False, description="a stored value was refused and the shipped default applied instead"
    )


class BudgetCharge(_State):
    """What the route step reserved on one day's usage item (xpi.domain.access), settled after the call."""

    item: str = Field(description="the usage item's key: caller#<name>#<day> or project#<name>#<day>")
    tokens: int
    usd: float
    expires_at: int


class RouteHop(_State):
    """One more place the request may be answered when the ones before it could not (a fallback)."""

    model_id: str
    region: str
    endpoint: str
    partition: Literal["commercial", "govcloud"] = "commercial"


class HopRecord(_State):
    """What one hop of a request's route did: answered, or why it was passed over (what lineage keeps)."""

    model_id: str
    region: str
    partition: Literal["commercial", "govcloud"] = "commercial"
    outcome: str = Field(description="answered, circuit_open, or the error that moved the request on")


class Route(_State):
    model_id: str = Field(description="the model id or inference profile id sent to Bedrock")
    region: str
    endpoint: str
    api: Literal["converse", "invoke_model"]
    partition: Literal["commercial", "govcloud"] | None = Field(
        None,
        description="govcloud: the stack's own partition's Bedrock, called with the role; None: commercial",
    )
    strategy: str | None = Field(None, description="the routing rule that chose the hops (None: the aliases)")
    experiment: str | None = Field(None, description="the A/B experiment whose variant this route is")
    variant: str | None = Field(None, description="the experiment's variant the request was assigned")
    fallbacks: list[RouteHop] | None = Field(
        None, description="where to try next, in order, when a hop fails"
    )
    project: str | None = Field(None, description="the project the caller acts for (its access grant)")
    budget: list[BudgetCharge] | None = Field(
        None, description="the budgets reserved for this call, settled after it"
    )


class Usage(_State):
    input_tokens: int = Field(
        0,
        description="input tokens billed at the input price (not read from or "
        "written to Bedrock's prompt cache)",
    )
    output_tokens: int = 0
    # Bedrock prompt caching (absent: none): input tokens read from / written to its cache
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + (self.cache_read_input_tokens or 0)
            + (self.cache_write_input_tokens or 0)
        )


CacheStatus = Literal["hit", "miss", "bypass"]


class CacheUse(_State):
    """What the exact-match response cache did for this request (absent: no cache was asked for)."""

    status: CacheStatus = Field(
        description="hit: answered from the cache, no Bedrock call; miss: Bedrock answered and the answer "
        "was stored; bypass: a cache was asked for (by the caller's rule) and not applied (reason)"
    )
    ttl_s: int | None = None
    saved_usd: float = Field(0.0, description="on a hit, what the Bedrock call would have cost")
    reason: str | None = None


class ModelResponse(_State):
    output_text: str | None = None
    output_body: dict[str, Any] | None = Field(None, description="native InvokeModel response, when small")
    output_s3_uri: str | None = None
    output_bytes: int
    output_sha256: str = Field(description="plain SHA-256 of the output, for the result event's reader")
    output_hmac: str = Field(description="keyed hash of the output: what lineage keeps")
    stop_reason: str | None = None
    usage: Usage = Usage()
    latency_ms: int = 0
    credential_version: str
    credential_type: str | None = None
    credential_age_s: int | None = None
    estimated_cost_usd: float = 0.0
    billing: Literal["on_demand", "batch"] = Field(
        "on_demand", description="batch: a Bedrock batch inference job's answer, at the batch price"
    )
    cache: CacheUse | None = None
    # Set when the answer came from another hop than the route's first (a fallback), and each hop tried.
    answered_by: RouteHop | None = None
    hops: list[HopRecord] | None = None
    egress_path: str | None = Field(
        None, description="the network path the call took, when paths are configured"
    )


class StepError(_State):
    """What a Catch puts at $.error: the Step Functions error name and its cause."""

    Error: str
    Cause: str | None = None


class Outcome(_State):
    emit: bool = Field(description="false when another execution already finalised this request")
    detail_type: str
    detail: dict[str, Any]


class RejectedInput(ExecutionInput):
    """The workflow's input when its first step rejected it (there is no claim, no state yet); the
    RecordRejection step answers it and hands it on with its outcome."""

    error: StepError
    outcome: Outcome | None = None


class WorkflowState(_State):
    request: RequestHeader
    execution: str | None = Field(
        None, description="this execution's token (ExecutionInput.token), carried to the final lineage write"
    )
    payload: PayloadRef = Field(description="the request body (redacted, once the classify step redacts)")
    source: Source
    claim: Claim
    timings: dict[str, datetime] = {}
    classification: Classification | None = None
    config: ConfigSnapshot | None = None
    route: Route | None = None
    response: ModelResponse | None = None
    error: StepError | None = None
    outcome: Outcome | None = None
