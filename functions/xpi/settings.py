"""The functions' environment, read once into one validated model: the only reader of os.environ.

It has a field for every variable template.yaml sets for any function (Globals and each function's
own); those only some functions get are optional, and a function that needs one asks for it with
`require`, so a missing variable fails with a clear message naming it. Every default is here, once.
"""

import ipaddress
import json
import os
from functools import cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Batch lines in flight on a model that BATCH_MODEL_CONCURRENCY does not name (and has no "*" for).
BATCH_FALLBACK_CONCURRENCY = 4


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: a host only this machine reaches."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str) -> str:
    """An endpoint override that is safe to send credentials to: https, or plain http only to a loopback
    host (the local stack's emulator on http://127.0.0.1). Anything else would carry the commercial
    credentials (a Bedrock API key is a bearer token) in clear. Empty means no override."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback_host(host):
        return url
    raise ValueError("the Bedrock endpoint override must be https:// (plain http:// only to a loopback host)")


class SettingMissingError(RuntimeError):
    """A function needs an environment variable the template did not give it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # Read by Powertools itself when observability.py creates Logger, Tracer and Metrics (at import);
    # here so this model lists the whole environment the template sets.
    powertools_service_name: str = Field("", alias="POWERTOOLS_SERVICE_NAME")
    powertools_metrics_namespace: str = Field("", alias="POWERTOOLS_METRICS_NAMESPACE")
    powertools_log_level: str = Field("", alias="POWERTOOLS_LOG_LEVEL")

    # ---------------------------------------------------------------- every function (Globals)
    lineage_table: str = Field("", alias="LINEAGE_TABLE")
    event_bus_name: str = Field("", alias="EVENT_BUS_NAME")
    event_source: str = Field("xpi.inference", alias="EVENT_SOURCE")
    lineage_retention_days: Annotated[int, Field(ge=1)] = Field(365, alias="LINEAGE_RETENTION_DAYS")
    commercial_region: str = Field("us-east-1", alias="COMMERCIAL_REGION")
    # Empty means the public commercial endpoint for commercial_region (what a deployment uses).
    # https only; plain http only to a loopback host (check_endpoint).
    commercial_bedrock_endpoint: Annotated[str, AfterValidator(check_endpoint)] = Field(
        "", alias="COMMERCIAL_BEDROCK_ENDPOINT"
    )
    # GovCloud-native models (routing `partition: govcloud`) are called in the stack's own region with the
    # function's role. Empty endpoint: that region's public Bedrock Runtime endpoint (the local stack
    # points it at its GovCloud emulator).
    govcloud_region: str = Field("us-gov-west-1", alias="AWS_REGION")
    govcloud_bedrock_endpoint: Annotated[str, AfterValidator(check_endpoint)] = Field(
        "", alias="GOVCLOUD_BEDROCK_ENDPOINT"
    )
    # Optional SSM overrides of the shipped policy and routing; an absent parameter means the default.
    policy_parameter_name: str = Field("", alias="POLICY_PARAMETER_NAME")
    routing_parameter_name: str = Field("", alias="ROUTING_PARAMETER_NAME")
    config_max_age_s: Annotated[int, Field(ge=0, le=3600)] = Field(60, alias="CONFIG_MAX_AGE_S")
    # Optional SSM parameter of the egress paths to commercial Bedrock (xpi.domain.egress), signed like
    # the routing; absent: every call goes to the route's endpoint. Read by the functions calling Bedrock.
    egress_paths_parameter_name: str = Field("", alias="EGRESS_PATHS_PARAMETER_NAME")
    # The stack secret the admin path signs policy and routing versions with (and the loaders verify
    # with); required whenever a parameter name above is set: stored values are never applied unsigned.
    config_signing_secret_id: str = Field("", alias="CONFIG_SIGNING_SECRET_ID")

    # ---------------------------------------------------------------- inference workflow and its producers
    state_machine_arn: str = Field("", alias="STATE_MACHINE_ARN")
    # The queue workflow (Express, one execution per SQS batch) the requests queue's consumer starts.
    queue_state_machine_arn: str = Field("", alias="QUEUE_STATE_MACHINE_ARN")
    idempotency_table: str = Field("", alias="IDEMPOTENCY_TABLE")
    # Comma-separated role unique ids (AROA...) that redrive the requests DLQ: a message they sent is a
    # redrive, attributed to its original sender, never to them.
    redriver_role_ids: str = Field("", alias="REDRIVER_ROLE_IDS")
    # The consumer's hold of the backlog while the Bedrock quota is spent (xpi.services.queue_hold): the
    # requests queue it sends held messages back to, the role ids whose messages carry a hold mark to
    # believe (its own), how far ahead the bucket may be booked and a batch still start, and how often
    # one message is held at most.
    requests_queue_url: str = Field("", alias="REQUESTS_QUEUE_URL")
    queue_holder_role_ids: str = Field("", alias="QUEUE_HOLDER_ROLE_IDS")
    queue_hold_horizon_s: Annotated[float, Field(ge=0, le=600)] = Field(3.0, alias="QUEUE_HOLD_HORIZON_S")
    queue_max_holds: Annotated[int, Field(ge=0)] = Field(100, alias="QUEUE_MAX_HOLDS")
    artifacts_bucket: str = Field("", alias="ARTIFACTS_BUCKET")
    credentials_secret_id: str = Field("", alias="COMMERCIAL_CREDENTIALS_SECRET_ID")
    credentials_max_age_s: Annotated[int, Field(ge=0, le=3600)] = Field(300, alias="CREDENTIALS_MAX_AGE_S")
    bedrock_timeout_s: Annotated[int, Field(ge=1, le=900)] = Field(120, alias="BEDROCK_TIMEOUT_S")
    # A streamed (Converse) answer: the longest gap between two chunks, and before the first, that is
    # still a live call; longer is a stalled connection, a lost answer. Above the models' time to first
    # token for the largest prompts.
    bedrock_stream_idle_timeout_s: Annotated[float, Field(gt=0, le=900)] = Field(
        15, alias="BEDROCK_STREAM_IDLE_TIMEOUT_S"
    )
    # How IAM keys in the secret authenticate Bedrock calls: SigV4, or a short-term Bedrock API key
    # minted from them on demand (aws-bedrock-token-generator). A secret holding an API key is a bearer.
    # A commercial access key older than this (its rotation keeps failing) counts CredentialPastMaxAge.
    credential_max_age_s: Annotated[int, Field(ge=0)] = Field(90 * 86400, alias="CREDENTIAL_MAX_AGE_S")
    commercial_auth: Literal["sigv4", "short-term-api-key"] = Field("sigv4", alias="COMMERCIAL_AUTH")
    # Where the invoke step's commercial credentials come from: the credentials secret, or IAM Roles
    # Anywhere (an X.509 certificate in its own secret exchanged for temporary credentials of a role).
    commercial_credential_source: Literal["secret", "roles-anywhere"] = Field(
        "secret", alias="COMMERCIAL_CREDENTIAL_SOURCE"
    )
    roles_anywhere_certificate_secret_id: str = Field("", alias="ROLES_ANYWHERE_CERTIFICATE_SECRET_ID")
    roles_anywhere_trust_anchor_arn: str = Field("", alias="ROLES_ANYWHERE_TRUST_ANCHOR_ARN")
    roles_anywhere_profile_arn: str = Field("", alias="ROLES_ANYWHERE_PROFILE_ARN")
    roles_anywhere_role_arn: str = Field("", alias="ROLES_ANYWHERE_ROLE_ARN")
    # Empty: https://rolesanywhere.<commercial_region>.amazonaws.com; https, or http to loopback only.
    roles_anywhere_endpoint: Annotated[str, AfterValidator(check_endpoint)] = Field(
        "", alias="ROLES_ANYWHERE_ENDPOINT"
    )

    # ---------------------------------------------------------------- credential rotation (its function)
    # The commercial IAM API (empty: the public iam.amazonaws.com); https, or http to loopback only.
    commercial_iam_endpoint: Annotated[str, AfterValidator(check_endpoint)] = Field(
        "", alias="COMMERCIAL_IAM_ENDPOINT"
    )
    # testSecret's one Bedrock call (one output token) is made on this model.
    rotation_probe_model_id: str = Field(
        "anthropic.claude-3-haiku-20240307-v1:0", alias="ROTATION_PROBE_MODEL_ID"
    )
    # The secret holding the access key of the commercial key manager user, which may manage only the
    # Bedrock API keys (service-specific credentials) of the user in an API key secret; empty: an API
    # key secret is not rotated.
    api_key_manager_secret_id: str = Field("", alias="API_KEY_MANAGER_SECRET_ID")
    # How long the previous key stays valid once the new one is current (below the function's Timeout).
    previous_key_grace_s: Annotated[int, Field(ge=0, le=600)] = Field(60, alias="PREVIOUS_KEY_GRACE_S")
    # Pacing Bedrock calls to the commercial quota (xpi.domain.pacing): the default quota of every model
    # (a routing entry's requests_per_minute / tokens_per_minute overrides it; 0: not paced), the
    # shared bucket table, and how long a call may wait for the bucket before QuotaExhausted.
    bedrock_requests_per_minute: Annotated[float, Field(ge=0)] = Field(0, alias="BEDROCK_REQUESTS_PER_MINUTE")
    bedrock_tokens_per_minute: Annotated[float, Field(ge=0)] = Field(0, alias="BEDROCK_TOKENS_PER_MINUTE")
    pacing_table: str = Field("", alias="PACING_TABLE")
    pacing_max_wait_s: Annotated[float, Field(ge=0, le=60)] = Field(5.0, alias="PACING_MAX_WAIT_S")
    # The day's usage per caller and project against their budgets (xpi.domain.access); without it a
    # configured budget fails its requests closed.
    budget_table: str = Field("", alias="BUDGET_TABLE")
    # The exact-match response cache (xpi.domain.response_cache); without it a request asking for the
    # cache is answered by Bedrock and its lineage says why (`cache: bypass`).
    response_cache_table: str = Field("", alias="RESPONSE_CACHE_TABLE")
    # The state holds an inline output twice (the response and the result event's detail): at most
    # 2 x 64 KB, well inside Step Functions' 256 KiB state limit; larger outputs travel by reference.
    inline_output_max_bytes: Annotated[int, Field(ge=1024, le=64_000)] = Field(
        32_768, alias="INLINE_OUTPUT_MAX_BYTES"
    )
    # The stack key, named on every object the functions write (payloads/, outputs/).
    kms_key_arn: str = Field("", alias="KMS_KEY_ARN")
    # The stack's hash key (HMAC-SHA256 of content in lineage and the workflow): Validate, Classify and
    # InvokeModel read it, cached for this long.
    hash_key_secret_id: str = Field("", alias="HASH_KEY_SECRET_ID")
    hash_key_max_age_s: Annotated[int, Field(ge=0, le=3600)] = Field(300, alias="HASH_KEY_MAX_AGE_S")

    # ---------------------------------------------------------------- the reaper (ReaperFunction)
    # A request still ACCEPTED this long after its claim is past the inference workflow's longest
    # possible run (its TimeoutSeconds, plus a margin): the reaper ends it as FAILED.
    reaper_abandon_after_s: Annotated[int, Field(ge=60)] = Field(3900, alias="REAPER_ABANDON_AFTER_S")
    # A queue request (source sqs) runs in an Express execution, which ends by 5 minutes whatever its
    # state: left ACCEPTED past that plus a margin, its run is over.
    reaper_express_abandon_after_s: Annotated[int, Field(ge=300)] = Field(
        420, alias="REAPER_EXPRESS_ABANDON_AFTER_S"
    )
    reaper_max_items: Annotated[int, Field(ge=1, le=1000)] = Field(100, alias="REAPER_MAX_ITEMS")

    # ---------------------------------------------------------------- the lineage seal (LineageSealFunction)
    lineage_digest_bucket: str = Field("", alias="LINEAGE_DIGEST_BUCKET")
    lineage_signing_key_id: str = Field("", alias="LINEAGE_SIGNING_KEY_ID")
    # A day is sealed once it ended this long ago: longer than a record of it can stay ACCEPTED.
    lineage_seal_settle_s: Annotated[int, Field(ge=0)] = Field(7200, alias="LINEAGE_SEAL_SETTLE_S")
    lineage_seal_max_days: Annotated[int, Field(ge=1, le=366)] = Field(7, alias="LINEAGE_SEAL_MAX_DAYS")

    # ---------------------------------------------------------------- compliance (docs/compliance.md)
    # The stack's own resources the configuration checker reads
    # (JSON, xpi.models.compliance.ComplianceResources).
    compliance_resources: str = Field("", alias="COMPLIANCE_RESOURCES")
    # Where the checker's runs are kept (the artifacts bucket, under compliance/) and the report reads them.
    compliance_bucket: str = Field("", alias="COMPLIANCE_BUCKET")
    api_access_log_group: str = Field("", alias="API_ACCESS_LOG_GROUP")
    log_retention_days: Annotated[int, Field(ge=1)] = Field(365, alias="LOG_RETENTION_DAYS")
    lineage_digest_retention_days: Annotated[int, Field(ge=1)] = Field(
        2557, alias="LINEAGE_DIGEST_RETENTION_DAYS"
    )

    # ---------------------------------------------------------------- dashboard sign-in
    # The agency provider's groups (its `groups` claim) each dashboard role is given for.
    dashboard_operator_group: str = Field("xpi-operators", alias="DASHBOARD_OPERATOR_GROUP")
    dashboard_auditor_group: str = Field("xpi-auditors", alias="DASHBOARD_AUDITOR_GROUP")
    dashboard_admin_group: str = Field("xpi-admins", alias="DASHBOARD_ADMIN_GROUP")

    # ---------------------------------------------------------------- the dashboard page
    # GET /dashboard/{file}. What sign-in.json tells the page (DashboardSignIn=oidc): the hosted sign-in,
    # the app client, the identity pool and its endpoint, the user pool's provider name; "none" when off.
    dashboard_sign_in: Literal["oidc", "none"] = Field("none", alias="DASHBOARD_SIGN_IN")
    dashboard_sign_in_url: str = Field("", alias="DASHBOARD_SIGN_IN_URL")
    dashboard_client_id: str = Field("", alias="DASHBOARD_CLIENT_ID")
    dashboard_identity_pool_id: str = Field("", alias="DASHBOARD_IDENTITY_POOL_ID")
    dashboard_identity_pool_url: str = Field("", alias="DASHBOARD_IDENTITY_POOL_URL")
    dashboard_user_pool_provider: str = Field("", alias="DASHBOARD_USER_POOL_PROVIDER")
    dashboard_identity_provider: str = Field("agency", alias="DASHBOARD_IDENTITY_PROVIDER")

    # ---------------------------------------------------------------- API
    requests_dlq_url: str = Field("", alias="REQUESTS_DLQ_URL")
    # Comma-separated role or user ARNs, compared exactly (no globs), that may read any request (auditors).
    api_auditor_principals: str = Field("", alias="API_AUDITOR_PRINCIPALS")
    # The API's stage, and comma-separated globs over the principals admin routes accept (empty: any
    # principal IAM and the API's resource policy let through); an admin event claiming otherwise is refused.
    api_stage: str = Field("api", alias="API_STAGE")
    # The stack's account (the template sets it; empty: the account in the function's own ARN).
    api_account_id: str = Field("", alias="API_ACCOUNT_ID")
    api_admin_principals: str = Field("", alias="API_ADMIN_PRINCIPALS")
    # API Gateway ends an integration at 29 s: a duplicate of POST /v1/invoke waits for the call holding
    # its request id this long, then answers 504 with the id.
    api_invoke_wait_s: Annotated[float, Field(ge=0.5, le=28)] = Field(25.0, alias="API_INVOKE_WAIT_S")
    # The sync path's Bedrock read timeout: inside API Gateway's 29 s, so the function records the outcome.
    sync_bedrock_timeout_s: Annotated[int, Field(ge=1, le=27)] = Field(22, alias="SYNC_BEDROCK_TIMEOUT_S")

    # ---------------------------------------------------------------- batches
    batch_table: str = Field("", alias="BATCH_TABLE")
    batch_state_machine_arn: str = Field("", alias="BATCH_STATE_MACHINE_ARN")
    batch_input_prefix: str = Field("incoming/", alias="BATCH_INPUT_PREFIX")
    batch_max_bytes: Annotated[int, Field(ge=1)] = Field(1_073_741_824, alias="BATCH_MAX_BYTES")
    batch_max_lines: Annotated[int, Field(ge=1)] = Field(100_000, alias="BATCH_MAX_LINES")
    batch_chunk_lines: Annotated[int, Field(ge=1, le=1000)] = Field(100, alias="BATCH_CHUNK_LINES")
    # {"model or alias": concurrent batch lines on it, across all batches, "*": any other model}
    batch_model_concurrency: str = Field(
        json.dumps({"*": BATCH_FALLBACK_CONCURRENCY}), alias="BATCH_MODEL_CONCURRENCY"
    )
    batch_retention_days: Annotated[int, Field(ge=1)] = Field(30, alias="BATCH_RETENTION_DAYS")
    # The batch workflow's wait times out after this long (HeartbeatSeconds) and reconciles the batch
    # from its line workflows; it gives up after this many rounds in a row in which no line finished.
    batch_heartbeat_s: Annotated[int, Field(ge=5)] = Field(900, alias="BATCH_HEARTBEAT_S")
    batch_max_stalled_rounds: Annotated[int, Field(ge=1)] = Field(8, alias="BATCH_MAX_STALLED_ROUNDS")
    # The job path (Bedrock batch inference, half price): a batch of at least this many valid lines for
    # one batch-capable model goes through one job; 0 = never. The commercial account's side of the jobs:
    # its bucket, its KMS key, the jobs' service role, and its S3 endpoint (empty: the public one of
    # commercial_region; https, or http to loopback only). The workflow's waits between looks at a job
    # grow (xpi.domain.batch_jobs.next_check_s) up to batch_job_max_wait_s.
    batch_job_min_lines: Annotated[int, Field(ge=0)] = Field(0, alias="BATCH_JOB_MIN_LINES")
    batch_job_bucket: str = Field("", alias="BATCH_JOB_BUCKET")
    batch_job_kms_key_id: str = Field("", alias="BATCH_JOB_KMS_KEY_ID")
    batch_job_role_arn: str = Field("", alias="BATCH_JOB_ROLE_ARN")
    batch_job_max_wait_s: Annotated[int, Field(ge=1, le=3600)] = Field(3600, alias="BATCH_JOB_MAX_WAIT_S")
    # FinishJob makes a finished job's lines final by page: at most this many lines, or bytes of their
    # requests and answers, per invocation (and never past its time left); the workflow loops until done.
    batch_job_page_lines: Annotated[int, Field(ge=1)] = Field(1000, alias="BATCH_JOB_PAGE_LINES")
    batch_job_page_bytes: Annotated[int, Field(ge=1)] = Field(16 * 1024 * 1024, alias="BATCH_JOB_PAGE_BYTES")
    commercial_s3_endpoint: Annotated[str, AfterValidator(check_endpoint)] = Field(
        "", alias="COMMERCIAL_S3_ENDPOINT"
    )

    @property
    def bedrock_endpoint(self) -> str:
        """The Bedrock Runtime endpoint actually called (recorded in lineage): the override, else the
        public endpoint of the commercial region."""
        return (
            self.commercial_bedrock_endpoint
            or f"https://bedrock-runtime.{self.commercial_region}.amazonaws.com"
        )

    @property
    def govcloud_bedrock_url(self) -> str:
        """The in-partition Bedrock Runtime endpoint GovCloud-native models are called at."""
        return (
            self.govcloud_bedrock_endpoint or f"https://bedrock-runtime.{self.govcloud_region}.amazonaws.com"
        )

    @property
    def auditors(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.api_auditor_principals.split(",") if p.strip())

    @property
    def redrivers(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.redriver_role_ids.split(",") if p.strip())

    @property
    def queue_holders(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.queue_holder_role_ids.split(",") if p.strip())

    @property
    def batch_concurrency(self) -> dict[str, int]:
        """BATCH_MODEL_CONCURRENCY parsed: {model or alias or "*": lines in flight on it}."""
        return {str(k): int(v) for k, v in json.loads(self.batch_model_concurrency).items()}

    def require(self, field: str) -> str:
        value = getattr(self, field)
        if not value:
            alias = type(self).model_fields[field].alias
            raise SettingMissingError(f"environment variable {alias} is not set for this function")
        return str(value)


@cache
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
