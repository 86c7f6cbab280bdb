"""DynamoSyncLedger against moto: the claim as the workflow's Claim state writes it, the one
transaction on the way out (lineage final and the kept answer together), and reads."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from xpi.adapters.budget_table import DynamoBudgetLedger
from xpi.adapters.sync_ledger import DynamoSyncLedger
from xpi.domain.access import Charge
from xpi.models.answer import StoredAnswer
from xpi.models.lineage import LineageItem
from xpi.models.workflow import Claim

from tests.helpers.aws import XpiResources, create_xpi_resources

NOW = datetime(2025, 3, 12, 14, 5, 12, 7000, tzinfo=UTC)
CLAIM = Claim(
    request_id="sync-1",
    created_at=NOW.isoformat(timespec="milliseconds"),
    day="2025-03-12",
    caller_principal="arn:aws-us-gov:iam::123456789012:user/alice",
    source="api",
    request_hmac="a" * 64,
    model_requested="default",
    expires_at="1776348000",
)
ANSWER = StoredAnswer(
    detail_type="Inference Completed",
    detail={"request_id": "sync-1", "status": "COMPLETED", "usage": {"estimated_cost_usd": 1.5e-05}},
)


@pytest.fixture
def stack() -> Iterator[XpiResources]:
    with mock_aws():
        yield create_xpi_resources()


def ledger(stack: XpiResources) -> DynamoSyncLedger:
    return DynamoSyncLedger(stack.lineage_table, stack.idempotency_table)


def final(claim: Claim = CLAIM, **changes: object) -> LineageItem:
    return LineageItem.claimed(claim).model_copy(
        update={
            "status": "COMPLETED",
            "completed_at": NOW.isoformat(),
            "steps": {"received_at": "x"},
            **changes,
        }
    )


def expires() -> int:
    return int((datetime.now(UTC) + timedelta(hours=24)).timestamp())


def test_the_claim_is_written_once_and_a_second_finds_it(stack: XpiResources) -> None:
    store = ledger(stack)
    assert store.claim(CLAIM) is None
    found = store.claim(CLAIM.model_copy(update={"created_at": "2025-03-12T14:05:13.000+00:00"}))
    assert found is not None and found.status == "ACCEPTED" and found.created_at == CLAIM.created_at


def test_finish_makes_the_claim_final_and_keeps_the_answer_together(stack: XpiResources) -> None:
    store = ledger(stack)
    store.claim(CLAIM)

    assert store.finish(final(), ANSWER, expires()) is True

    item = store.lineage("sync-1")
    assert item is not None and item.status == "COMPLETED" and item.created_at == CLAIM.created_at
    assert store.answer("sync-1") == ANSWER


def test_finish_over_an_item_made_final_by_another_writer_writes_nothing(stack: XpiResources) -> None:
    store = ledger(stack)
    store.claim(CLAIM)
    assert store.finish(final(status="FAILED"), ANSWER, expires()) is True
    # a second finish (another call's, or over another claim time) changes nothing and keeps no answer
    assert store.finish(final(), ANSWER.model_copy(update={"detail_type": "x"}), expires()) is False
    assert store.lineage("sync-1").status == "FAILED"  # type: ignore[union-attr]
    assert store.answer("sync-1") == ANSWER


def test_an_expired_answer_is_gone(stack: XpiResources) -> None:
    store = ledger(stack)
    store.claim(CLAIM)
    store.finish(final(), ANSWER, int(datetime.now(UTC).timestamp()) - 1)
    assert store.answer("sync-1") is None


def test_no_answer_for_an_unknown_request(stack: XpiResources) -> None:
    assert ledger(stack).answer("never") is None
    assert ledger(stack).lineage("never") is None


def test_finish_settles_the_budgets_in_the_same_transaction(stack: XpiResources) -> None:
    # GIVEN a budget table with the route's reservation on it
    boto3.client("dynamodb").create_table(
        TableName="budgets",
        AttributeDefinitions=[{"AttributeName": "budget", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "budget", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    budgets = DynamoBudgetLedger("budgets")
    item = "caller#narrow#2025-03-12"
    assert budgets.reserve([Charge(item, 1_000, 0.5, 1, tokens_limit=2_000)])
    store = DynamoSyncLedger(stack.lineage_table, stack.idempotency_table, "budgets")
    store.claim(CLAIM)

    # WHEN the request is finished with its settlement
    assert store.finish(final(), ANSWER, expires(), [Charge(item, -840, -0.4, 1)]) is True

    # THEN the one write made lineage final and the usage what the call used; a finish that writes
    # nothing settles nothing
    assert store.lineage("sync-1").status == "COMPLETED"  # type: ignore[union-attr]
    assert budgets.used([item]) == {item: (160, 0.1)}
    assert store.finish(final(), ANSWER, expires(), [Charge(item, -100, 0.0, 1)]) is False
    assert budgets.used([item]) == {item: (160, 0.1)}


def test_finish_replaces_the_claim_with_the_whole_final_item_in_one_put(stack: XpiResources) -> None:
    # GIVEN a claim, and the requests the ledger sends to DynamoDB
    import boto3
    from xpi.adapters import aws

    store = ledger(stack)
    store.claim(CLAIM)
    sent: list[dict[str, object]] = []
    client = aws.dynamodb().meta.client
    event = "before-parameter-build.dynamodb.TransactWriteItems"
    client.meta.events.register(event, lambda params, **_: sent.append(params), unique_id="sent")
    item = final(stop_reason="end_turn", classification=None)

    # WHEN the call finishes
    try:
        assert store.finish(item, ANSWER, expires()) is True
    finally:
        client.meta.events.unregister(event, unique_id="sent")

    # THEN the lineage item is written whole, under the claim's condition: no update expression of
    # every attribute for DynamoDB (or moto) to evaluate
    (transaction,) = sent
    lineage_write = transaction["TransactItems"][0]  # type: ignore[index]
    assert set(lineage_write) == {"Put"}
    # AND what is stored is exactly the final item, the claim's first-seen fields included
    stored = boto3.resource("dynamodb", region_name="us-gov-west-1").Table(stack.lineage_table)
    raw = stored.get_item(Key={"request_id": "sync-1"}, ConsistentRead=True)["Item"]
    assert aws.plain(raw) == item.model_dump(mode="json", exclude_none=True)


def test_a_warm_ledger_builds_each_table_resource_once(
    stack: XpiResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the DynamoDB resource, counting the table objects built from it
    from xpi.adapters import aws

    resource = aws.dynamodb()
    built: list[str] = []
    table_of = resource.Table
    monkeypatch.setattr(resource, "Table", lambda name: built.append(name) or table_of(name))
    store = ledger(stack)

    # WHEN two requests are claimed, finished and read back
    for number in (1, 2):
        claim = CLAIM.model_copy(update={"request_id": f"sync-warm-{number}"})
        store.claim(claim)
        store.finish(final(claim), ANSWER, expires())
        store.lineage(claim.request_id)
        store.answer(claim.request_id)

    # THEN each table's resource was built once, not once per call
    assert sorted(built) == sorted([stack.lineage_table, stack.idempotency_table])
