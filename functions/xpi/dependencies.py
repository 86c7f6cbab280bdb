"""Production adapters, built from settings on first use and reused across warm invocations.

Handlers ask for what they need here; unit tests replace a factory's result with a fake of the same
Protocol (or point the real adapter at moto).
"""

from functools import cache

from aws_lambda_powertools.utilities.parameters import GetParameterError, get_parameter
from botocore.exceptions import ClientError

from xpi.adapters.bedrock import BedrockGateway, BotoBedrockGateway
from xpi.adapters.credentials import SecretsManagerCredentials
from xpi.adapters.event_bus import EventBridgePublisher, EventPublisher
from xpi.adapters.lineage_store import DynamoLineageStore, LineageStore
from xpi.adapters.object_store import ObjectStore, S3ObjectStore
from xpi.adapters.workflow import StepFunctionsStarter, WorkflowStarter
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


def routing_config() -> RoutingConfig:
    """The routing configuration: from SSM when a parameter is configured (cached by Powertools for
    CONFIG_MAX_AGE_S, so a change takes effect without a deploy), else the shipped default."""
    settings = get_settings()
    if not settings.routing_parameter_name:
        return load_default_routing()
    try:
        raw = get_parameter(settings.routing_parameter_name, max_age=settings.config_max_age_s)
    except GetParameterError as exc:  # the template always names the parameter; absent means the default
        cause = exc.__context__
        if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ParameterNotFound":
            return load_default_routing()
        raise
    return _parse_routing(str(raw))


@cache
def _parse_routing(raw: str) -> RoutingConfig:
    return RoutingConfig.model_validate_json(raw)
