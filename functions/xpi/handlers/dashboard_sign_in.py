"""Cognito pre token generation (the dashboard's user pool): the `xpi_role` claim of the ID token, from
the agency provider's `groups` and `amr` claims as the user pool mapped them (custom:groups,
custom:amr). The identity pool's rules give that role's credentials; without the claim, none."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi.domain.dashboard_roles import claim_values, dashboard_role
from xpi.models.sign_in import PreTokenEvent
from xpi.observability import logger
from xpi.settings import get_settings

ROLE_CLAIM = "xpi_role"


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = PreTokenEvent.model_validate(event)
    settings = get_settings()
    attributes = parsed.request.user_attributes
    role = dashboard_role(
        claim_values(attributes.get("custom:groups")),
        claim_values(attributes.get("custom:amr")),
        operator_group=settings.dashboard_operator_group,
        auditor_group=settings.dashboard_auditor_group,
        admin_group=settings.dashboard_admin_group,
    )
    # Whatever the provider sent, the claim is this function's: set, or suppressed.
    details: dict[str, Any] = (
        {"claimsToAddOrOverride": {ROLE_CLAIM: role}} if role else {"claimsToSuppress": [ROLE_CLAIM]}
    )
    logger.info("dashboard sign-in", extra={"trigger": parsed.trigger_source, "role": role or "none"})
    return {**event, "response": {**(event.get("response") or {}), "claimsOverrideDetails": details}}
