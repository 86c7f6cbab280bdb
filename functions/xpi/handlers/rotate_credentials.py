"""Secrets Manager's rotation function for the commercial credentials secret: one step per invoke
(createSecret, setSecret, testSecret, finishSecret; xpi.services.rotation)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.credentials import RotationEvent
from xpi.observability import logger, metrics, tracer
from xpi.services.rotation import rotate

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.credential_rotator)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    rotate(dependencies.credential_rotator(), RotationEvent.model_validate(event))
