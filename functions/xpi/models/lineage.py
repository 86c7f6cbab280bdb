"""The lineage item: one per request in the lineage table, the audit record of what crossed the
partition (hashes, categories, counts; never a payload). It is written in three shapes, all this model:

claim    the workflow's Claim state, a conditional PutItem in statemachines/inference.asl.json:
         the request's identity, status ACCEPTED
final    the RecordOutcome step: the claim's attributes and the outcome (classification, route,
         response hashes, usage, error), status COMPLETED, FAILED or BLOCKED
failure  a request rejected before it had a workflow of its own (queue, API, the Validate step):
         status FAILED and the error, no request hash

Attribute names and DynamoDB types are the table's contract, so items written before still read.
DynamoDB takes no floats: every number is an int, and the estimated cost is kept as its decimal string.
"""

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from xpi.models.workflow import Claim, Decision, SourceKind

LineageStatus = Literal["ACCEPTED", "COMPLETED", "FAILED", "BLOCKED"]
ACCEPTED: Final = "ACCEPTED"
# Offered with if_not_exists when an item becomes final: the claim's own values are kept.
FIRST_SEEN_FIELDS: Final = ("created_at", "day", "expires_at")


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineageClassification(_Item):
    decision: Decision
    categories: dict[str, int] = {}
    findings: int
    classifier: str


class LineageUsage(_Item):
    input_tokens: int = 0
    output_tokens: int = 0
    # Bedrock prompt caching: input tokens read from / written to its cache (absent: none)
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None


class LineageCache(_Item):
    """What the exact-match response cache did: `hit` (answered from it, no Bedrock call; `saved_usd` is
    what the call would have cost, as a decimal string), `miss` (Bedrock answered, the answer stored) or
    `bypass` (the caller's rule asked for it and it did not apply: `reason`)."""

    status: Literal["hit", "miss", "bypass"]
    ttl_s: int | None = None
    saved_usd: str | None = None
    reason: str | None = None


class LineageError(_Item):
    code: str
    message: str


class LineageHop(_Item):
    """One hop of a routed request: where it was tried and what happened (answered, circuit_open, or the
    error code that moved the request on)."""

    model_id: str
    region: str
    partition: str
    outcome: str


class LineageFeedback(_Item):
    """The caller's rating of the answer (POST /v1/requests/{id}/feedback): its score (1-5), the size of
    its comment (the comment itself is kept under payloads/feedback/, never here) and when it was given.
    Written after the item is final, so not sealed (xpi.domain.lineage_chain.UNSEALED_FIELDS)."""

    score: int
    comment_bytes: int = 0
    at: str  # ISO 8601 to the millisecond


class LineageItem(_Item):
    request_id: str
    status: LineageStatus
    created_at: str  # ISO 8601 to the millisecond; the range key of the by-day index
    day: str  # YYYY-MM-DD (UTC); the hash key of the by-day index
    expires_at: int  # epoch seconds; the table's TTL attribute
    caller_principal: str
    source: SourceKind
    model_requested: str
    # Keyed hashes (HMAC-SHA256 with the stack's hash key), never plain SHA-256 of content.
    request_hmac: str | None = None  # absent from a failure: the request never validated
    source_reference: str | None = None
    batch_id: str | None = None
    project: str | None = None
    cost_centre: str | None = None
    steps: dict[str, str] | None = None  # step name -> ISO 8601 moment
    completed_at: str | None = None
    classification: LineageClassification | None = None
    model_id: str | None = None
    commercial_region: str | None = None
    commercial_endpoint: str | None = None
    # govcloud: answered in the stack's own partition (no crossing); set for routes with a strategy too.
    partition: str | None = None
    route_strategy: str | None = None  # the routing rule that chose the hops
    route_hops: list[LineageHop] | None = None  # each hop tried, in order, the last the one that answered
    # The A/B experiment whose variant the request was assigned (the by-experiment index's key).
    experiment: str | None = None
    variant: str | None = None
    feedback: LineageFeedback | None = None
    response_hmac: str | None = None
    response_bytes: int | None = None
    output_s3_uri: str | None = None
    stop_reason: str | None = None
    credential_version: str | None = None
    credential_type: str | None = None  # iam-access-key, bedrock-api-key, short-term-api-key, roles-anywhere
    credential_age_s: int | None = None  # the access key's age at the call (set by its rotation)
    egress_path: str | None = None  # internet, vpn or direct-connect, when egress paths are configured
    usage: LineageUsage | None = None
    estimated_cost_usd: str | None = None
    latency_ms: int | None = None
    error: LineageError | None = None
    # The configuration the request was judged under: each document's signed revision (0: the shipped
    # default) and canonical hash, and whether a refused stored value made the default apply.
    policy_revision: int | None = None
    policy_sha256: str | None = None
    routing_revision: int | None = None
    routing_sha256: str | None = None
    config_fallback: bool | None = None
    # The execution whose RecordOutcome made the item final (its name and start time): a retried
    # RecordOutcome that finds the item final with its own token emits the event the crash lost.
    recorded_by: str | None = None
    # The execution that claimed the item in its process step (the queue workflow): its retry, meeting
    # this claim still ACCEPTED, ends the request rather than call Bedrock a second time.
    claimed_by: str | None = None
    # Calls sent to Bedrock whose answer never came back (a read timeout): Bedrock may have billed them.
    bedrock_calls_unanswered: int | None = None
    # Why the fine-grained permissions refused the request before Bedrock (xpi.domain.access.Refusal:
    # project_not_allowed, model_not_allowed, clearance, budget); absent when they did not.
    access_refusal: str | None = None
    cache: LineageCache | None = None

    @classmethod
    def claimed(cls, claim: Claim) -> "LineageItem":
        """The item the workflow's Claim state writes for this claim."""
        return cls(
            request_id=claim.request_id,
            status=ACCEPTED,
            created_at=claim.created_at,
            day=claim.day,
            expires_at=int(claim.expires_at),
            caller_principal=claim.caller_principal,
            source=claim.source,
            request_hmac=claim.request_hmac,
            model_requested=claim.model_requested,
            claimed_by=claim.claimed_by,
        )
