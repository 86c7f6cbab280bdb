"""Configuration of the emulator: where it listens, which region it plays, which keys it accepts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from xpi_tools.emulator.catalogue import SUPPORTED_REGIONS
from xpi_tools.emulator.custom import CustomModel


@dataclass(frozen=True)
class AccessKey:
    """An IAM access key the emulator accepts for SigV4. Secrets never appear in repr or logs."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    # Epoch seconds after which the key answers ExpiredTokenException (temporary credentials).
    expires_at: float | None = None
    # The commercial IAM user the key belongs to (its IAM API manages that user's keys), its status
    # (an Inactive key is refused like an unknown one) and when it was created (epoch seconds).
    user: str = "xpi-bedrock"
    status: str = "Active"
    created_at: float = 0.0


@dataclass(frozen=True)
class ApiKey:
    """A Bedrock API key (``Authorization: Bearer <key>``). ``name`` labels it in counters and logs."""

    key: str = field(repr=False)
    name: str = ""
    expires_at: float | None = None
    # Set for a long-term key minted as an IAM service-specific credential (its owner and status).
    user: str | None = None
    status: str = "Active"
    created_at: float = 0.0

    @property
    def label(self) -> str:
        return self.name or api_key_fingerprint(self.key)


def api_key_fingerprint(key: str) -> str:
    """A stable, non-reversible label for an unnamed API key."""
    return "apikey-" + hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RolesAnywhere:
    """The commercial account's IAM Roles Anywhere set-up the emulator answers CreateSession for: one
    trust anchor (its CA certificate, PEM), one profile, and the one role the profile hands out."""

    trust_anchor_arn: str
    trust_anchor_pem: bytes = field(repr=False)
    profile_arn: str
    role_arn: str
    max_duration_s: int = 3600


@dataclass
class Latency:
    """Simulated model latency: time to first token, then a cost per output token."""

    time_to_first_token_ms: float = 0.0
    per_output_token_ms: float = 0.0

    def total_ms(self, output_tokens: int) -> float:
        return self.time_to_first_token_ms + self.per_output_token_ms * output_tokens


@dataclass
class Quota:
    """Per-model quotas; None means unlimited. Buckets hold one minute's worth and refill continuously."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


class AccountPrincipals(Protocol):
    """The IAM of the account whose own Bedrock the emulator plays (GovCloud's, in-partition): its
    principals' keys, and what their policies allow. The local stack answers from moto's IAM and STS and
    its IAM evaluation (xpi_tools.local.govcloud_bedrock)."""

    def access_key(self, access_key_id: str) -> AccessKey | None: ...

    def allowed(self, access_key_id: str, action: str, resources: list[str]) -> str | None:
        """None when the key's principal may call `action` on every one of `resources`; else the
        principal's ARN, for the AccessDenied message."""
        ...


@dataclass
class BatchSettings:
    """Batch inference jobs (CreateModelInvocationJob): where the commercial account's S3 is, which
    credentials each service role implies there, the per-job quotas, and how fast jobs progress.

    The quotas default to Bedrock's documented default values of the adjustable quotas "Minimum number
    of records per batch inference job", "Records per batch inference job", "Records per input file per
    batch inference job", "Batch inference input file size" and "Batch inference job size"."""

    # The commercial S3 endpoint the jobs read and write (a moto server in the ``aws`` partition on the
    # local stack). None: no S3 is reachable and every job fails its validation, never real AWS.
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # The credentials the emulator signs S3 requests with while it acts as a job's service role (role
    # ARN -> key). A role with no entry cannot read the input: the job fails its validation.
    role_credentials: dict[str, AccessKey] = field(default_factory=dict)
    min_records_per_job: int = 100
    max_records_per_job: int = 50_000
    max_records_per_file: int = 50_000
    max_file_bytes: int = 1024**3
    max_job_bytes: int = 5 * 1024**3
    # Seconds a job spends in Submitted, Validating, Scheduled and InProgress (plus records_per_second
    # pacing while InProgress, if set), on the emulator's clock.
    phase_seconds: float = 1.0
    records_per_second: float | None = None


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port; read it back from BedrockEmulator.url
    region: str = "us-east-1"
    access_keys: list[AccessKey] = field(default_factory=list)
    api_keys: list[ApiKey | str] = field(default_factory=list)
    seed: int = 0
    default_latency: Latency = field(default_factory=Latency)
    default_quota: Quota = field(default_factory=Quota)
    # The account that owns the inference-profile ARNs the emulator lists.
    account_id: str = "123456789012"
    max_clock_skew_seconds: int = 300
    # One INFO line per request (method, path, status, key id, duration). Never secrets or bodies.
    access_log: bool = False
    # IAM Roles Anywhere CreateSession (POST /sessions); None: not offered.
    roles_anywhere: RolesAnywhere | None = None
    # Key managers: an IAM user (key) allowed to manage another user's (value) Bedrock service-specific
    # credentials, and nothing else of it (what the rotation of a long-term Bedrock API key uses).
    key_managers: dict[str, str] = field(default_factory=dict)
    # Batch inference jobs over the commercial account's S3.
    batch: BatchSettings = field(default_factory=BatchSettings)
    # Imported models, provisioned throughput and application inference profiles the runtime answers
    # (each with its base model's behaviour); more can be added through the control endpoint.
    custom_models: list[CustomModel] = field(default_factory=list)
    # Playing an account's own Bedrock (GovCloud, called in-partition): its IAM principals sign, each
    # runtime call is authorized by their policies (bedrock:InvokeModel... on the model's ARN). None:
    # only the configured keys, every model allowed (the commercial account's Bedrock user).
    account_principals: AccountPrincipals | None = None

    def __post_init__(self) -> None:
        if self.region not in SUPPORTED_REGIONS:
            raise ValueError(
                f"unsupported region {self.region!r}; choose one of {', '.join(SUPPORTED_REGIONS)}"
            )
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            raise ValueError("account_id must be 12 digits")

    def resolved_api_keys(self) -> list[ApiKey]:
        return [k if isinstance(k, ApiKey) else ApiKey(key=k) for k in self.api_keys]
