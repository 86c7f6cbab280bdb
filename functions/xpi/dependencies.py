"""The composition root: the production adapters, built from settings on first use and reused across
warm invocations. Nothing else in xpi builds an adapter.

Handlers ask for what they need here and pass it to their service; unit tests replace a factory's
result with a fake of the same port (or point the real adapter at moto).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from types import CodeType
from typing import TYPE_CHECKING

from xpi.observability import logger
from xpi.settings import BATCH_FALLBACK_CONCURRENCY, get_settings

# Each factory imports the adapter (and service) it builds where it builds it: a handler's cold start
# imports what that handler's factories build, not every adapter, model and service of the package
# (tests/unit/xpi/test_cold_start_imports.py; bench/bench_cold_start.py measures it).
if TYPE_CHECKING:
    from xpi.adapters.config_store import ConfigOverride, SigningSecret
    from xpi.adapters.ports import (
        AdminActions,
        BatchObjects,
        BatchStarter,
        BatchStatusReader,
        BatchTable,
        BatchWorkflow,
        BedrockGateway,
        BudgetLedger,
        CheckRunStore,
        DayLineage,
        EventBatchPublisher,
        ExecutionReader,
        HashKey,
        IntakeRecords,
        LineageStore,
        ObjectStore,
        PathStates,
        PayloadStore,
        QueueStarter,
        ResponseCache,
        StackConfigurationReader,
        WorkflowStarter,
    )
    from xpi.domain.batch import BatchLimits
    from xpi.domain.classification import Detector
    from xpi.domain.config_signing import ConfigVersion
    from xpi.domain.egress import EgressPath, EgressPaths
    from xpi.domain.policy import ComprehendSettings, Policy
    from xpi.domain.routing import RoutingConfig
    from xpi.models.events import ConfigAlert
    from xpi.services.batch import LineStarter
    from xpi.services.batch_job_path import JobPorts
    from xpi.services.compliance import ReportPorts
    from xpi.services.egress import PathProbe
    from xpi.services.fallback import Breaker
    from xpi.services.pacing import QuotaPacer
    from xpi.services.queue_hold import QueueHold
    from xpi.services.queue_processing import QueuePorts
    from xpi.services.reaping import Reaper
    from xpi.services.reconciliation import BatchReconciler
    from xpi.services.rotation import Rotator
    from xpi.services.sealing import Sealer
    from xpi.services.submission import Submitter
    from xpi.services.sync_invoke import Judgement, SyncPorts


# Imported only where the deployment uses them (a credential source, a policy switch), never at init.
IMPORTED_WHEN_USED = frozenset({"xpi.adapters.roles_anywhere", "xpi.adapters.comprehend"})


def preload(*factories: Callable[..., object]) -> None:
    """Import now, at a handler's init, every module these factories build from (read from their code:
    what they import, and what the factories they call import), so that the handler's first invocation
    imports none of them and no handler imports another's adapters. Nothing is built."""
    modules: set[str] = set()
    followed: set[str] = set()
    codes: list[CodeType] = [getattr(factory, "__wrapped__", factory).__code__ for factory in factories]
    while codes:
        code = codes.pop()
        for name in code.co_names:
            if name.startswith("xpi."):
                modules.add(name)
                continue
            called = globals().get(name)
            if name not in followed and callable(called) and getattr(called, "__module__", "") == __name__:
                followed.add(name)
                codes.append(getattr(called, "__wrapped__", called).__code__)
        codes.extend(constant for constant in code.co_consts if isinstance(constant, CodeType))
    for module in sorted(modules - IMPORTED_WHEN_USED):
        importlib.import_module(module)


# ---------------------------------------------------------------------------------------------- requests
@cache
def lineage_store() -> LineageStore:
    from xpi.adapters.lineage_store import DynamoLineageStore

    return DynamoLineageStore(get_settings().require("lineage_table"))


@cache
def intake_records() -> IntakeRecords:
    from xpi.adapters.intake_store import DynamoIntakeRecords

    return DynamoIntakeRecords(get_settings().require("idempotency_table"))


@cache
def event_publisher() -> EventBatchPublisher:
    from xpi.adapters.event_bus import EventBridgePublisher

    settings = get_settings()
    return EventBridgePublisher(settings.require("event_bus_name"), settings.event_source)


@cache
def object_store() -> ObjectStore:
    from xpi.adapters.object_store import S3ObjectStore

    settings = get_settings()
    return S3ObjectStore(settings.require("artifacts_bucket"), settings.kms_key_arn)


@cache
def payload_store() -> PayloadStore:
    from xpi.adapters.object_store import S3PayloadStore

    settings = get_settings()
    return S3PayloadStore(settings.require("artifacts_bucket"), settings.kms_key_arn)


@cache
def hash_key() -> HashKey:
    from xpi.adapters.hash_key import SecretsManagerHashKey

    settings = get_settings()
    return SecretsManagerHashKey(settings.require("hash_key_secret_id"), settings.hash_key_max_age_s)


@cache
def workflow_starter() -> WorkflowStarter:
    from xpi.adapters.workflow import StepFunctionsStarter

    return StepFunctionsStarter(get_settings().require("state_machine_arn"), payload_store())


@cache
def queue_starter() -> QueueStarter:
    from xpi.adapters.workflow import StepFunctionsQueueStarter

    return StepFunctionsQueueStarter(get_settings().require("queue_state_machine_arn"), payload_store())


@cache
def queue_hold() -> QueueHold | None:
    """The consumer's hold of the backlog while the quota is spent; None where the consumer has no
    pacing table or no queue to send held messages back to."""
    from xpi.adapters.pacing_table import DynamoPacingTable
    from xpi.adapters.queue_holder import SqsQueueHolder
    from xpi.domain.pacing import Quota
    from xpi.services.pacing import QuotaPacer
    from xpi.services.queue_hold import QueueHold

    settings = get_settings()
    if not (settings.pacing_table and settings.requests_queue_url):
        return None
    table = DynamoPacingTable(settings.pacing_table)
    default = Quota(settings.bedrock_requests_per_minute or None, settings.bedrock_tokens_per_minute or None)
    return QueueHold(
        table=table,
        holder=SqsQueueHolder(settings.requests_queue_url),
        routing=routing_config,
        quota_for=QuotaPacer(table, default, max_wait_s=0).quota_for,
        region=settings.commercial_region,
        horizon_s=settings.queue_hold_horizon_s,
        max_holds=settings.queue_max_holds,
    )


@cache
def queue_ports() -> QueuePorts:
    """The queue workflow's process step: the lineage claim, a large request's stored body, the bus, the
    hash key, commercial Bedrock, large outputs, the shared quota buckets."""
    from xpi.adapters.lineage_claims import DynamoLineageClaims
    from xpi.services.queue_processing import QueuePorts

    settings = get_settings()
    return QueuePorts(
        claims=DynamoLineageClaims(settings.require("lineage_table")),
        lineage=lineage_store(),
        payloads=payload_store(),
        events=event_publisher(),
        hash_key=hash_key(),
        gateway=bedrock_gateway(),
        objects=object_store(),
        retention_days=settings.lineage_retention_days,
        inline_max_bytes=settings.inline_output_max_bytes,
        region=settings.commercial_region,
        endpoint=settings.bedrock_endpoint,
        credential_max_age_s=settings.credential_max_age_s,
        pacer=quota_pacer(),
        budgets=budget_ledger(),
        cache=response_cache(),
        govcloud_region=settings.govcloud_region,
        govcloud_endpoint=settings.govcloud_bedrock_url,
        breaker=circuit_breaker(),
    )


@cache
def executions() -> ExecutionReader:
    from xpi.adapters.workflow import StepFunctionsExecutions

    return StepFunctionsExecutions(get_settings().require("state_machine_arn"))


@cache
def bedrock_gateway(timeout_s: int | None = None) -> BedrockGateway:
    from xpi.adapters.bedrock import CONNECT_TIMEOUT_S, BotoBedrockGateway
    from xpi.adapters.credentials import SecretsManagerCredentials
    from xpi.adapters.ports import CredentialSource

    settings = get_settings()
    credentials: CredentialSource
    if settings.commercial_credential_source == "roles-anywhere":
        # Imported here: its X.509 and signing stack (about 100 ms of a cold start) serves only this source.
        from xpi.adapters.roles_anywhere import RolesAnywhereCredentials

        credentials = RolesAnywhereCredentials(
            certificate_secret_id=settings.require("roles_anywhere_certificate_secret_id"),
            trust_anchor_arn=settings.require("roles_anywhere_trust_anchor_arn"),
            profile_arn=settings.require("roles_anywhere_profile_arn"),
            role_arn=settings.require("roles_anywhere_role_arn"),
            region=settings.commercial_region,
            endpoint=settings.roles_anywhere_endpoint,
        )
    else:
        credentials = SecretsManagerCredentials(
            settings.require("credentials_secret_id"), settings.credentials_max_age_s
        )

    def gateway(
        https_proxy: str | None = None, connect_timeout_s: float = CONNECT_TIMEOUT_S, keep_alive: bool = True
    ) -> BotoBedrockGateway:
        return BotoBedrockGateway(
            credentials,
            timeout_s=timeout_s or settings.bedrock_timeout_s,
            short_term_api_keys=settings.commercial_auth == "short-term-api-key",
            idle_timeout_s=settings.bedrock_stream_idle_timeout_s,
            https_proxy=https_proxy,
            connect_timeout_s=connect_timeout_s,
            keep_alive=keep_alive,
        )

    direct = gateway()
    if not (settings.egress_paths_parameter_name and settings.pacing_table):
        return direct
    # Egress paths configured: each path its own gateway (its proxy), the breakers in the pacing table.
    from xpi.adapters.path_states import DynamoPathStates
    from xpi.services.egress import PathFailoverGateway

    per_path: dict[tuple[str, str, str | None, float, bool], BotoBedrockGateway] = {}

    def gateway_for(path: EgressPath) -> BedrockGateway:
        key = (path.name, path.endpoint, path.https_proxy, path.connect_timeout_s, path.keep_alive)
        if key not in per_path:
            # its own clients: switching paths evicts none
            per_path[key] = gateway(path.https_proxy, path.connect_timeout_s, path.keep_alive)
        return per_path[key]

    return PathFailoverGateway(egress_paths, DynamoPathStates(settings.pacing_table), gateway_for, direct)


@cache
def path_health_check() -> tuple[PathProbe, PathStates]:
    """The egress paths' health function: its probe and the paths' shared states."""
    from xpi.adapters.path_probe import HttpPathProbe
    from xpi.adapters.path_states import DynamoPathStates

    return HttpPathProbe(), DynamoPathStates(get_settings().require("pacing_table"))


@cache
def _egress_for_health() -> ConfigOverride[EgressPaths]:
    """The egress paths as the health function reads them: the same verification, no Security Alert
    (the functions calling Bedrock raise it for a refused value; this one may not publish)."""
    from xpi.adapters.config_store import ConfigOverride, OptionalParameter
    from xpi.domain.egress import EgressPaths

    settings = get_settings()
    parameter = OptionalParameter(settings.egress_paths_parameter_name, settings.config_max_age_s)
    return ConfigOverride(parameter, EgressPaths, EgressPaths, kind="egress", signing=_signing_secret())


def egress_paths_to_probe() -> EgressPaths:
    return _egress_for_health().get()


@cache
def credential_rotator() -> Rotator:
    from xpi.adapters.rotation import BedrockProbe, BotoCommercialIam, SecretsManagerRotatingSecret
    from xpi.services.rotation import Rotator

    settings = get_settings()
    commercial_iam = BotoCommercialIam(settings.commercial_iam_endpoint)
    return Rotator(
        secret=SecretsManagerRotatingSecret(),
        iam=commercial_iam,
        probe=BedrockProbe(
            settings.commercial_region, settings.commercial_bedrock_endpoint, settings.rotation_probe_model_id
        ),
        grace_s=settings.previous_key_grace_s,
        wait=time.sleep,
        events=event_publisher(),
        api_keys=commercial_iam,
        api_key_manager_secret_id=settings.api_key_manager_secret_id,
    )


@cache
def quota_pacer() -> QuotaPacer | None:
    """The shared pacing of Bedrock calls to the quota, for every caller of bedrock_gateway(); None where
    the function has no pacing table (`sam local invoke` of a lone function, unit tests)."""
    from xpi.adapters.pacing_table import DynamoPacingTable
    from xpi.domain.pacing import Quota
    from xpi.services.pacing import QuotaPacer

    settings = get_settings()
    if not settings.pacing_table:
        return None
    return QuotaPacer(
        DynamoPacingTable(settings.pacing_table),
        Quota(settings.bedrock_requests_per_minute or None, settings.bedrock_tokens_per_minute or None),
        max_wait_s=settings.pacing_max_wait_s,
    )


def response_cache() -> ResponseCache | None:
    """The exact-match response cache; None where the function has no cache table."""
    table = get_settings().response_cache_table
    if not table:
        return None
    from xpi.adapters.response_cache import DynamoResponseCache

    return DynamoResponseCache(table)


@cache
def circuit_breaker() -> Breaker | None:
    """The circuit breaker shared by every function calling Bedrock (items in the pacing table); None
    where the function has no pacing table."""
    table = get_settings().pacing_table
    if not table:
        return None
    from xpi.adapters.circuit_table import DynamoCircuitTable
    from xpi.services.fallback import Breaker

    return Breaker(DynamoCircuitTable(table))


def budget_ledger() -> BudgetLedger | None:
    """The day's usage per caller and project; None where the function has no budget table."""
    from xpi.adapters.budget_table import DynamoBudgetLedger

    table = get_settings().budget_table
    return DynamoBudgetLedger(table) if table else None


def submitter() -> Submitter:
    """Where a submit goes: the inference workflow, and the lineage and bus that answer a rejection."""
    from xpi.services.submission import Submitter

    return Submitter(
        starter=workflow_starter(),
        lineage=lineage_store(),
        events=event_publisher(),
        retention_days=get_settings().lineage_retention_days,
        region=get_settings().govcloud_region,
    )


@cache
def sync_ports() -> SyncPorts:
    """The sync path's (POST /v1/invoke in one function): the lineage claim and the kept answers, the
    bus, the hash key, commercial Bedrock, large outputs."""
    from xpi.adapters.sync_ledger import DynamoSyncLedger
    from xpi.services.sync_invoke import SyncPorts

    settings = get_settings()
    return SyncPorts(
        ledger=DynamoSyncLedger(
            settings.require("lineage_table"), settings.require("idempotency_table"), settings.budget_table
        ),
        lineage=lineage_store(),
        events=event_publisher(),
        hash_key=hash_key(),
        gateway=bedrock_gateway(settings.sync_bedrock_timeout_s),
        objects=object_store(),
        retention_days=settings.lineage_retention_days,
        inline_max_bytes=settings.inline_output_max_bytes,
        region=settings.commercial_region,
        endpoint=settings.bedrock_endpoint,
        credential_max_age_s=settings.credential_max_age_s,
        pacer=quota_pacer(),
        budgets=budget_ledger(),
        cache=response_cache(),
        govcloud_region=settings.govcloud_region,
        govcloud_endpoint=settings.govcloud_bedrock_url,
        breaker=circuit_breaker(),
    )


def judgement() -> Judgement:
    """The policy and routing in force (each cached for CONFIG_MAX_AGE_S), as the classify step reads them."""
    from xpi.services.sync_invoke import Judgement

    policy, policy_version = policy_in_force()
    routing, routing_version = routing_in_force()
    return Judgement(
        policy=policy,
        routing=routing,
        detectors=extra_detectors(policy),
        versions=(policy_version, routing_version),
    )


@cache
def admin_actions() -> AdminActions:
    # Imported here: only the admin function uses it, and every other function's cold start would pay it.
    from xpi.adapters.admin import AwsAdminActions

    settings = get_settings()
    return AwsAdminActions(
        {"policy": settings.policy_parameter_name, "routing": settings.routing_parameter_name},
        settings.requests_dlq_url,
        settings.require("config_signing_secret_id"),
    )


def reaper() -> Reaper:
    """The reaper's lineage (by-status index), the inference executions it stops, and the bus."""
    from xpi.adapters.lineage_store import DynamoLineageStore
    from xpi.adapters.workflow import StepFunctionsExecutionControl
    from xpi.services.reaping import Reaper

    settings = get_settings()
    return Reaper(
        lineage=DynamoLineageStore(settings.require("lineage_table")),
        executions=StepFunctionsExecutionControl(settings.require("state_machine_arn")),
        events=event_publisher(),
        abandon_after=timedelta(seconds=settings.reaper_abandon_after_s),
        max_items=settings.reaper_max_items,
        express_abandon_after=timedelta(seconds=settings.reaper_express_abandon_after_s),
        region=settings.govcloud_region,
    )


def lineage_sealer() -> Sealer:
    """The lineage (by-day index, chain fields), the digest bucket and the audit signing key."""
    # Imported here: only the seal function uses them.
    from xpi.adapters.lineage_seal import DynamoSealableLineage, KmsDigestSigner, S3DigestStore
    from xpi.services.sealing import Sealer

    settings = get_settings()
    return Sealer(
        lineage=DynamoSealableLineage(settings.require("lineage_table")),
        digests=S3DigestStore(settings.require("lineage_digest_bucket")),
        signer=KmsDigestSigner(settings.require("lineage_signing_key_id")),
        settle=timedelta(seconds=settings.lineage_seal_settle_s),
        max_days=settings.lineage_seal_max_days,
    )


# ---------------------------------------------------------------------------------------------- configuration
@cache
def _signing_secret() -> SigningSecret | None:
    """The key stored overrides must verify with. None only when no override is configured at all: a
    configured override parameter without a signing secret is a deployment error, never unsigned values."""
    from xpi.adapters.config_store import SigningSecret

    settings = get_settings()
    configured = (
        settings.policy_parameter_name,
        settings.routing_parameter_name,
        settings.egress_paths_parameter_name,
    )
    if not any(configured):
        return None
    return SigningSecret(settings.require("config_signing_secret_id"), settings.config_max_age_s)


def _config_alert(alert: ConfigAlert) -> None:
    """A refused policy or routing value: a Security Alert on the bus (and a log line)."""
    from xpi.models.events import SECURITY_ALERT, SecurityAlertDetail

    logger.error("configuration refused", extra=alert.model_dump())
    event_publisher().publish(
        SECURITY_ALERT,
        SecurityAlertDetail(
            request_id=f"config-{alert.document}",
            caller_principal="unknown",
            source="config",
            categories={},
            decision="fallback",
            config=alert,
        ),
    )


@cache
def _routing() -> ConfigOverride[RoutingConfig]:
    from xpi.adapters.config_store import ConfigOverride, OptionalParameter
    from xpi.domain.routing import RoutingConfig, load_default_routing

    settings = get_settings()
    parameter = OptionalParameter(settings.routing_parameter_name, settings.config_max_age_s)
    return ConfigOverride(
        parameter,
        RoutingConfig,
        load_default_routing,
        kind="routing",
        signing=_signing_secret(),
        on_alert=_config_alert,
    )


@cache
def _egress() -> ConfigOverride[EgressPaths]:
    from xpi.adapters.config_store import ConfigOverride, OptionalParameter
    from xpi.domain.egress import EgressPaths

    settings = get_settings()
    parameter = OptionalParameter(settings.egress_paths_parameter_name, settings.config_max_age_s)
    return ConfigOverride(
        parameter, EgressPaths, EgressPaths, kind="egress", signing=_signing_secret(), on_alert=_config_alert
    )


def egress_paths() -> EgressPaths:
    """The egress paths to commercial Bedrock: the SSM parameter when it exists (signed, when signing is
    configured), else none (every call to the route's endpoint)."""
    return _egress().get()


def routing_config() -> RoutingConfig:
    """The routing configuration: the SSM parameter when it exists (signed, when signing is configured),
    else the shipped default."""
    return _routing().get()


def routing_in_force() -> tuple[RoutingConfig, ConfigVersion]:
    """The routing configuration and the version of it in force."""
    return _routing().current()


@cache
def _policy() -> ConfigOverride[Policy]:
    from xpi.adapters.config_store import ConfigOverride, OptionalParameter, PolicyLoadError
    from xpi.domain.policy import Policy, load_default_policy

    settings = get_settings()
    parameter = OptionalParameter(settings.policy_parameter_name, settings.config_max_age_s)
    return ConfigOverride(
        parameter,
        Policy,
        load_default_policy,
        failure=(PolicyLoadError, "policy"),
        kind="policy",
        signing=_signing_secret(),
        on_alert=_config_alert,
    )


def classification_policy() -> Policy:
    """The classification policy in force (SSM parameter when it exists, else the shipped default)."""
    return _policy().get()


def policy_in_force() -> tuple[Policy, ConfigVersion]:
    """The classification policy and the version of it in force."""
    return _policy().current()


def extra_detectors(policy: Policy) -> tuple[Detector, ...]:
    """Amazon Comprehend DetectPiiEntities as an additional detector, when the policy asks for it."""
    return (_comprehend_detector(policy.comprehend),) if policy.comprehend.enabled else ()


@cache
def _comprehend_detector(settings: ComprehendSettings) -> Detector:
    # Imported here: the detector is off in the shipped policy, and the classify and sync invoke functions'
    # cold starts would pay it for nothing.
    from xpi.adapters.comprehend import ComprehendPiiDetector

    return ComprehendPiiDetector(settings)


# ---------------------------------------------------------------------------------------------- batches
@cache
def batch_table() -> BatchTable:
    from xpi.adapters.batch_store import DynamoBatchTable

    return DynamoBatchTable(get_settings().require("batch_table"))


def batch_status_reader() -> BatchStatusReader | None:
    """The batch table for the API's reads; None where the deployment has no batches."""
    return batch_table() if get_settings().batch_table else None


@cache
def batch_objects() -> BatchObjects:
    from xpi.adapters.batch_store import S3BatchObjects

    return S3BatchObjects()


@cache
def batch_starter() -> BatchStarter:
    from xpi.adapters.workflow import StepFunctionsBatchStarter

    return StepFunctionsBatchStarter(get_settings().require("batch_state_machine_arn"))


@cache
def batch_workflow() -> BatchWorkflow:
    from xpi.adapters.workflow import StepFunctionsBatchWorkflow

    return StepFunctionsBatchWorkflow()


@cache
def batch_limits() -> BatchLimits:
    from xpi.domain.batch import BatchLimits

    settings = get_settings()
    concurrency = settings.batch_concurrency
    return BatchLimits(
        max_bytes=settings.batch_max_bytes,
        max_lines=settings.batch_max_lines,
        chunk_lines=settings.batch_chunk_lines,
        concurrency=concurrency,
        default_concurrency=concurrency.get("*", BATCH_FALLBACK_CONCURRENCY),
        retention_days=settings.batch_retention_days,
    )


@cache
def line_starter() -> LineStarter:
    from xpi.services.batch import LineStarter

    return LineStarter(batch_table(), batch_objects(), workflow_starter(), batch_limits())


def batch_reconciler() -> BatchReconciler:
    """The batch table, the line workflows' executions and lineage, for the batch wait's reconciliation."""
    from xpi.services.reconciliation import BatchReconciler

    return BatchReconciler(
        table=batch_table(),
        executions=executions(),
        lineage=lineage_store(),
        lines=line_starter(),
        workflow=batch_workflow(),
        max_stalled_rounds=get_settings().batch_max_stalled_rounds,
    )


@cache
def batch_job_ports() -> JobPorts:
    """The job path's steps: the batch table (status, lines, the job item), the batch bucket's chunks,
    the bus, and the commercial account's bucket and Bedrock job API with the commercial credentials."""
    from xpi.adapters.batch_jobs import (
        BedrockBatchJobs,
        CommercialClients,
        DynamoBatchJobRecords,
        S3CommercialObjects,
    )
    from xpi.adapters.credentials import SecretsManagerCredentials
    from xpi.models.batch_jobs import BatchJobTarget
    from xpi.services.batch_job_path import JobPorts

    settings = get_settings()
    clients = CommercialClients(
        SecretsManagerCredentials(settings.require("credentials_secret_id"), settings.credentials_max_age_s),
        region=settings.commercial_region,
        bedrock_endpoint=settings.commercial_bedrock_endpoint,
        s3_endpoint=settings.commercial_s3_endpoint,
    )
    bucket = settings.require("batch_job_bucket")
    return JobPorts(
        table=batch_table(),
        objects=batch_objects(),
        job_records=DynamoBatchJobRecords(settings.require("batch_table")),
        commercial=S3CommercialObjects(lambda: clients.client("s3"), bucket),
        jobs=BedrockBatchJobs(lambda: clients.client("bedrock")),
        target=BatchJobTarget(
            bucket=bucket,
            kms_key_id=settings.require("batch_job_kms_key_id"),
            role_arn=settings.require("batch_job_role_arn"),
        ),
        events=event_publisher(),
    )


# ---------------------------------------------------------------------------------------------- compliance
# Imported here, not at the top: only the two compliance functions load them.
def stack_configuration() -> StackConfigurationReader:
    from xpi.adapters.compliance import LiveStackConfiguration
    from xpi.models.compliance import ComplianceResources

    resources = ComplianceResources.model_validate_json(get_settings().require("compliance_resources"))
    return LiveStackConfiguration(resources)


def check_runs() -> CheckRunStore:
    from xpi.adapters.compliance import S3CheckRuns

    return S3CheckRuns(get_settings().require("compliance_bucket"))


def report_ports() -> ReportPorts:
    from xpi.adapters.compliance import (
        AccessLogAdminActivity,
        DynamoDayLineage,
        S3CheckRuns,
        SsmConfigHistory,
        tamper_sources,
    )
    from xpi.services.compliance import ReportPorts

    settings = get_settings()
    table = settings.require("lineage_table")
    digests = settings.lineage_digest_bucket
    signing_key = settings.lineage_signing_key_id
    return ReportPorts(
        lineage=DynamoDayLineage(table),
        checks=S3CheckRuns(settings.require("compliance_bucket")),
        history=SsmConfigHistory(
            {"policy": settings.policy_parameter_name, "routing": settings.routing_parameter_name}
        ),
        admin=AccessLogAdminActivity(settings.api_access_log_group),
        tamper=tamper_sources(table, digests, signing_key) if digests and signing_key else None,
        settle=timedelta(seconds=settings.lineage_seal_settle_s),
        settings={
            "lineage_retention_days": settings.lineage_retention_days,
            "log_retention_days": settings.log_retention_days,
            "lineage_digest_retention_days": settings.lineage_digest_retention_days,
            "commercial_bedrock_endpoint": settings.commercial_bedrock_endpoint
            or "the region's https endpoint",
            "commercial_auth": settings.commercial_auth,
            "kms_key_arn": settings.kms_key_arn,
        },
    )


@cache
def day_lineage() -> DayLineage:
    """A period's lineage, day by day (the by-day index): the usage report's one source."""
    from xpi.adapters.compliance import DynamoDayLineage

    return DynamoDayLineage(get_settings().require("lineage_table"))
