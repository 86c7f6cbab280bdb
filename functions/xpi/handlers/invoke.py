"""Workflow step: call commercial Bedrock with the commercial credentials, only with what the classify
step allowed (its payload hash), priced with the routing snapshot the classify step recorded.

Idempotent on the request id, so a retried task (or a duplicate start) never calls Bedrock twice for
one request once its answer is stored; an attempt that finds an earlier one in progress raises
InvocationInProgress (retried by the workflow). The idempotency table is built on first use.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.errors import InvocationInProgress
from xpi.handlers import contain_errors
from xpi.models.workflow import ModelResponse, WorkflowState
from xpi.observability import logger, metrics, tracer
from xpi.services.invocation import invoke_model
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(
    dependencies.bedrock_gateway,
    dependencies.budget_ledger,
    dependencies.circuit_breaker,
    dependencies.event_publisher,
    dependencies.hash_key,
    dependencies.object_store,
    dependencies.payload_store,
    dependencies.quota_pacer,
    dependencies.response_cache,
)

IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="request.request_id", expires_after_seconds=24 * 3600, raise_on_no_idempotency_key=True
)


@cache
def _invoke_once() -> Callable[..., dict[str, Any]]:
    persistence = DynamoDBPersistenceLayer(table_name=get_settings().require("idempotency_table"))

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="state", config=IDEMPOTENCY, persistence_store=persistence
    )
    def invoke_once(*, state: dict[str, Any]) -> dict[str, Any]:
        settings = get_settings()
        response = invoke_model(
            WorkflowState.model_validate(state),
            dependencies.bedrock_gateway(),
            dependencies.object_store(),
            inline_max_bytes=settings.inline_output_max_bytes,
            payloads=dependencies.payload_store(),
            hash_key=dependencies.hash_key(),
            credential_max_age_s=settings.credential_max_age_s,
            events=dependencies.event_publisher(),
            pacer=dependencies.quota_pacer(),
            budgets=dependencies.budget_ledger(),
            cache=dependencies.response_cache(),
            breaker=dependencies.circuit_breaker(),
        )
        metrics.add_metric(name="InputTokens", unit=MetricUnit.Count, value=response.usage.input_tokens)
        metrics.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=response.usage.output_tokens)
        return response.model_dump(mode="json", exclude_none=True)

    return invoke_once  # type: ignore[no-any-return]


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=WorkflowState)
def handler(event: WorkflowState, context: LambdaContext) -> dict[str, Any]:
    IDEMPOTENCY.register_lambda_context(context)
    try:
        response = _invoke_once()(state=event.model_dump(mode="json", exclude_none=True))
    except IdempotencyAlreadyInProgressError:
        # An earlier attempt (killed mid-invoke, say) still holds the record: the workflow retries once it
        # has expired, rather than failing a request whose answer may be about to be stored.
        raise InvocationInProgress(
            "an earlier attempt of the invoke step holds the idempotency record"
        ) from None
    event.response = ModelResponse.model_validate(response)
    event.timings["invoked_at"] = datetime.now(UTC)
    return event.model_dump(mode="json", exclude_none=True)
