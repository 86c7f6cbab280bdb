"""The local stand-in for the lineage global table's replication (replication.py), on moto in process:
two regions' tables, each item copied to the other, the owning region winning a conflict."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from xpi_tools.local.replication import LineageReplication, Replica


@pytest.fixture
def replication() -> Iterator[LineageReplication]:
    with mock_aws():
        replicas = []
        for region in ("us-gov-west-1", "us-gov-east-1"):
            client = boto3.client(
                "dynamodb", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            client.create_table(
                TableName="lineage",
                KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "request_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            replicas.append(Replica(region, client, "lineage"))
        yield LineageReplication(replicas[0], replicas[1])


def put(replica: Replica, request_id: str, status: str) -> None:
    replica.table.put_item(
        TableName="lineage", Item={"request_id": {"S": request_id}, "status": {"S": status}}
    )


def status(replica: Replica, request_id: str) -> Any:
    item = replica.table.get_item(TableName="lineage", Key={"request_id": {"S": request_id}}).get("Item")
    return item and item["status"]["S"]


def test_each_regions_writes_reach_the_other_and_nothing_is_copied_back(
    replication: LineageReplication,
) -> None:
    west, east = replication.replicas
    put(west, "us-gov-west-1.a", "ACCEPTED")
    put(east, "us-gov-east-1.b", "COMPLETED")

    assert replication.replicate_once() == 2
    assert status(east, "us-gov-west-1.a") == "ACCEPTED" and status(west, "us-gov-east-1.b") == "COMPLETED"
    # a later write travels too; an unchanged round writes nothing
    put(west, "us-gov-west-1.a", "COMPLETED")
    assert replication.replicate_once() == 1
    assert status(east, "us-gov-west-1.a") == "COMPLETED"
    assert replication.replicate_once() == 0


def test_when_both_changed_an_item_the_region_it_was_minted_for_wins(replication: LineageReplication) -> None:
    west, east = replication.replicas
    put(west, "us-gov-east-1.c", "ACCEPTED")
    replication.replicate_once()
    # GIVEN both regions writing the east request's item in one round
    put(east, "us-gov-east-1.c", "COMPLETED")
    put(west, "us-gov-east-1.c", "FAILED")

    replication.replicate_once()

    assert status(west, "us-gov-east-1.c") == status(east, "us-gov-east-1.c") == "COMPLETED"


def test_without_copying_existing_items_only_later_writes_travel(replication: LineageReplication) -> None:
    west, east = replication.replicas
    put(west, "it-before", "COMPLETED")
    joined = LineageReplication(west, east, copy_existing=False)

    assert joined.replicate_once() == 0
    put(west, "us-gov-west-1.after", "ACCEPTED")
    assert joined.replicate_once() == 1
    assert status(east, "it-before") is None and status(east, "us-gov-west-1.after") == "ACCEPTED"


def test_a_joining_replication_notes_what_exists_before_start_returns(
    replication: LineageReplication,
) -> None:
    # GIVEN another test's item, and a replication joining without copying existing items
    west, east = replication.replicas
    put(west, "it-before", "COMPLETED")
    joined = LineageReplication(west, east, interval_s=3600, copy_existing=False).start()
    try:
        # WHEN an item is written (and made final) right after start() returned, before any round ran
        put(west, "us-gov-west-1.right-after", "COMPLETED")

        # THEN the next round copies it: it was not part of what existed when the replication joined
        assert joined.replicate_once() == 1
        assert status(east, "us-gov-west-1.right-after") == "COMPLETED" and status(east, "it-before") is None
    finally:
        joined.stop()
