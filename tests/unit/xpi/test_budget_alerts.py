"""Budget alerts at 80 % and 100 %: raised on the bus once per budget, threshold and day, by the
settlement that reaches it; never failing the request."""

from typing import Any

import pytest
from xpi.domain.access import Budget
from xpi.domain.budget_alerts import thresholds_reached
from xpi.models.events import BUDGET_ALERT
from xpi.models.workflow import Usage
from xpi.services import invocation
from xpi.services.routing import route

from tests.helpers.fakes import (
    FakeBedrockGateway,
    FakeBudgetLedger,
    FakeEventPublisher,
    FakeHashKey,
    FakeObjectStore,
)
from tests.unit.xpi.test_access import NARROW_ID, NOW, _state, access_routing, plain

ITEM = "caller#narrow#2025-03-12"


@pytest.mark.parametrize(
    ("tokens", "usd", "reached"),
    [(799, 0.0, []), (800, 0.0, [80]), (999, 0.0, [80]), (1000, 0.0, [80, 100]), (0, 0.9, [80])],
)
def test_the_thresholds_reached_by_tokens_or_dollars(tokens: int, usd: float, reached: list[int]) -> None:
    assert thresholds_reached(Budget(tokens_per_day=1000, usd_per_day=1.0), tokens, usd) == reached


def test_a_budget_without_limits_or_with_a_zero_limit_is_never_alerted_on() -> None:
    assert thresholds_reached(Budget(), 10**9, 10.0) == []
    assert thresholds_reached(Budget(tokens_per_day=0), 10, 0.0) == []


def _answered(ledger: FakeBudgetLedger, events: Any, usage_before: int = 0, used: int = 160) -> Any:
    config = access_routing(narrow={"budget": {"tokens_per_day": 1000}})
    state, payloads = _state(plain(project="benefits", max_tokens=100), NARROW_ID, config)
    ledger.usage[ITEM] = (usage_before, 0.0)
    state.route = route(state, region="us-east-1", endpoint="", budgets=ledger, clock=lambda: NOW)
    return invocation.invoke_model(
        state,
        FakeBedrockGateway(usage=Usage(input_tokens=used - 40, output_tokens=40)),
        FakeObjectStore(),
        32_768,
        payloads=payloads,
        hash_key=FakeHashKey(),
        budgets=ledger,
        events=events,
    )


def test_the_settlement_reaching_80_percent_raises_one_alert_and_the_next_none() -> None:
    # GIVEN a caller with 1,000 tokens a day that used 700 today
    ledger, events = FakeBudgetLedger(), FakeEventPublisher()
    # WHEN a request using 160 tokens is settled (860: 86 %), then another (1,020 is refused: 940 fits)
    _answered(ledger, events, usage_before=700)
    # THEN one 80 % alert names the budget, the day, the usage and the limit
    [(kind, detail)] = events.published
    assert kind == BUDGET_ALERT
    assert detail["scope"] == "caller" and detail["name"] == "narrow" and detail["day"] == "2025-03-12"
    assert (detail["threshold"], detail["tokens_used"], detail["tokens_per_day"]) == (80, 860, 1000)
    # AND the next settlement over 80 % raises nothing more that day
    _answered(ledger, events, usage_before=780)
    assert len(events.published) == 1


def test_reaching_the_whole_budget_raises_the_100_percent_alert() -> None:
    ledger, events = FakeBudgetLedger(), FakeEventPublisher()
    _answered(ledger, events, usage_before=700, used=300)  # 1,000 after this one
    assert [d["threshold"] for _, d in events.published] == [80, 100]


def test_below_80_percent_no_alert() -> None:
    ledger, events = FakeBudgetLedger(), FakeEventPublisher()
    _answered(ledger, events, usage_before=100)
    assert events.published == []


def test_an_alert_that_cannot_be_published_never_fails_the_request() -> None:
    class Down:
        def publish(self, detail_type: str, detail: Any) -> None:
            raise ConnectionError("bus unreachable")

    response = _answered(FakeBudgetLedger(), Down(), usage_before=700)
    assert response.output_text
