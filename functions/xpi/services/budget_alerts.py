"""Budget alerts: after a request's usage is settled on its day's budgets, each budget that reached 80 %
or 100 % raises one `Budget Threshold Reached` event on the bus, once per threshold and day: the first
settlement to reach it marks the day's usage item (a conditional write), and only that one publishes.
Bedrock has answered by then: nothing here fails the request (errors are logged)."""

from collections.abc import Sequence

from xpi.adapters.ports import BudgetLedger, EventPublisher
from xpi.domain.budget_alerts import thresholds_reached
from xpi.domain.routing import RoutingConfig, grant_for
from xpi.models.events import BUDGET_ALERT, BudgetAlertDetail
from xpi.models.workflow import BudgetCharge, WorkflowState
from xpi.observability import logger


def alert_budgets(
    state: WorkflowState,
    routing: RoutingConfig,
    ledger: BudgetLedger | None,
    events: EventPublisher | None,
    at: str,
) -> None:
    """Raise the alerts the request's settled budgets are due (its route's reservations name them)."""
    if state.route is None or not state.route.budget or ledger is None or events is None:
        return
    try:
        _alert(state, state.route.budget, routing, ledger, events, at)
    except Exception as error:  # the answer is what the request waits for
        logger.error("budget alerts not checked", extra={"error_class": type(error).__name__})


def _alert(  # noqa: PLR0917 - private, called once
    state: WorkflowState,
    reserved: Sequence[BudgetCharge],
    routing: RoutingConfig,
    ledger: BudgetLedger,
    events: EventPublisher,
    at: str,
) -> None:
    assert state.route is not None
    grant = grant_for(routing, state.source.principal, state.route.project)
    limits = {limit.key: limit.budget for limit in getattr(grant, "limits", ())}
    items = [charge.item for charge in reserved]
    used = ledger.used(items)
    for item in items:
        key, _, day = item.rpartition("#")
        budget = limits.get(key)
        if budget is None or item not in used:
            continue
        tokens, usd = used[item]
        for threshold in thresholds_reached(budget, tokens, usd):
            if not ledger.mark_alerted(item, threshold, at):
                continue  # raised already today
            scope, _, name = key.partition("#")
            events.publish(
                BUDGET_ALERT,
                BudgetAlertDetail(
                    reached_by=state.request.request_id,
                    scope="project" if scope == "project" else "caller",
                    name=name,
                    day=day,
                    threshold=threshold,
                    tokens_used=tokens,
                    tokens_per_day=budget.tokens_per_day,
                    usd_used=usd,
                    usd_per_day=budget.usd_per_day,
                ),
            )
            logger.info("budget alert raised", extra={"budget": key, "threshold": threshold})
