"""Production adapters, built from settings on first use and reused across warm invocations.

Handlers ask for what they need here; unit tests replace a factory's result with a fake of the same
Protocol (or point the real adapter at moto).
"""

from functools import cache

from xpi.adapters.bedrock import BedrockGateway, BotoBedrockGateway
from xpi.adapters.comprehend import ComprehendPiiDetector
from xpi.adapters.config_store import OptionalParameter
from xpi.adapters.credentials import SecretsManagerCredentials
from xpi.adapters.event_bus import EventBridgePublisher, EventPublisher
from xpi.adapters.lineage_store import DynamoLineageStore, LineageStore
from xpi.adapters.object_store import ObjectStore, S3ObjectStore
from xpi.adapters.policy_store import PolicyStore
from xpi.adapters.workflow import StepFunctionsStarter, WorkflowStarter
from xpi.domain.classification import Detector
from xpi.domain.policy import ComprehendSettings, Policy, load_default_policy
from xpi.domain.routing import RoutingConfig, load_default_routing
from xpi.settings import get_settings


@cache
def lineage_store() -> LineageStore:
    return DynamoLineageStore(get_settings().require("lineage_table"))


@cache
def event_publisher() -> EventPublisher:
    settings = get_settings()
    return EventBridgePublisher(settings.require("event_bus_name"), settings.event_source)


@cache
def object_store() -> ObjectStore:
    return S3ObjectStore(get_settings().require("artifacts_bucket"))


@cache
def workflow_starter() -> WorkflowStarter:
    return StepFunctionsStarter(get_settings().require("state_machine_arn"))


@cache
def bedrock_gateway() -> BedrockGateway:
    settings = get_settings()
    credentials = SecretsManagerCredentials(
        settings.require("credentials_secret_id"), settings.credentials_max_age_s
    )
    return BotoBedrockGateway(credentials, timeout_s=settings.bedrock_timeout_s)


@cache
def _routing_parameter() -> OptionalParameter:
    settings = get_settings()
    return OptionalParameter(settings.routing_parameter_name, settings.config_max_age_s)


def routing_config() -> RoutingConfig:
    """The routing configuration: the SSM parameter when it exists, else the shipped default."""
    raw = _routing_parameter().get()
    return load_default_routing() if raw is None else _parse_routing(raw)


@cache
def _parse_routing(raw: str) -> RoutingConfig:
    return RoutingConfig.model_validate_json(raw)


@cache
def _policy_store() -> PolicyStore:
    settings = get_settings()
    parameter = OptionalParameter(settings.policy_parameter_name, settings.config_max_age_s)
    default_text = load_default_policy().model_dump_json()
    return PolicyStore(
        parameter.name or None,
        max_age_seconds=settings.config_max_age_s,
        fetch=lambda _name, _max_age: parameter.get() or default_text,
    )


def classification_policy() -> Policy:
    """The classification policy in force (SSM parameter when it exists, else the shipped default)."""
    return _policy_store().get()


def extra_detectors(policy: Policy) -> tuple[Detector, ...]:
    """Amazon Comprehend DetectPiiEntities as an additional detector, when the policy asks for it."""
    return (_comprehend_detector(policy.comprehend),) if policy.comprehend.enabled else ()


@cache
def _comprehend_detector(settings: ComprehendSettings) -> Detector:
    return ComprehendPiiDetector(settings)
