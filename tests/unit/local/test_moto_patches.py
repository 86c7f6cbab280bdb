"""The local stack's patches into moto (docs/local-stack.md, gaps 12 and 13), on moto's own objects."""

import copy
import importlib
import threading
from typing import Any

import pytest
from moto import mock_aws
from xpi_tools.local.stack import _NoTableCopies, _share_live_thread_list, _with_item_rollback

from tests.helpers.aws import create_table


def test_the_interpreters_thread_list_keeps_only_live_threads() -> None:
    # GIVEN moto's interpreter modules, imported (each holds TMP_THREADS by name)
    execute_state: Any = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.execute_state"
    )
    program: Any = importlib.import_module("moto.stepfunctions.parser.asl.component.program.program")
    utils: Any = importlib.import_module("moto.stepfunctions.parser.utils")
    original = utils.TMP_THREADS

    # WHEN the list is shared out, and threads come and go as the interpreter starts them
    replaced = _share_live_thread_list()
    try:
        assert replaced is original
        shared = utils.TMP_THREADS
        assert execute_state.TMP_THREADS is shared and program.TMP_THREADS is shared
        release = threading.Event()
        waiting = threading.Thread(target=release.wait)
        waiting.start()
        shared.append(waiting)
        for _ in range(50):
            finished = threading.Thread(target=lambda: None)
            finished.start()
            finished.join()
            shared.append(finished)

        # THEN only the live thread and the last one appended are kept
        assert list(shared) == [waiting, finished]
        release.set()
        waiting.join()
    finally:
        _share_live_thread_list(original)
    # AND moto's own list is back in every module
    assert utils.TMP_THREADS is original and execute_state.TMP_THREADS is original


def test_a_failed_transaction_is_rolled_back_item_by_item(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    dynamodb_models: Any = importlib.import_module("moto.dynamodb.models")
    backend = dynamodb_models.DynamoDBBackend
    # GIVEN moto with gap 12 filled: no table copies, the named items saved and restored instead
    monkeypatch.setattr(dynamodb_models, "copy", _NoTableCopies(copy))
    monkeypatch.setattr(backend, "transact_write_items", _with_item_rollback(backend.transact_write_items))
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-gov-west-1")
        create_table("t", "pk", "sk")
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"N": "0"}, "n": {"N": "5"}})
        new_item = {"pk": {"S": "a"}, "sk": {"N": "1"}}
        update = {
            "TableName": "t",
            "Key": {"pk": {"S": "a"}, "sk": {"N": "0"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        failing_check = {
            "TableName": "t",
            "Key": {"pk": {"S": "missing"}, "sk": {"N": "0"}},
            "ConditionExpression": "attribute_exists(pk)",
        }

        # WHEN a transaction that writes two items fails on its last condition
        with pytest.raises(client.exceptions.TransactionCanceledException):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": new_item}},
                    {"Update": update},
                    {"ConditionCheck": failing_check},
                ]
            )

        # THEN neither write is left: the new item is gone and the counter is back
        assert "Item" not in client.get_item(TableName="t", Key=new_item)
        kept = client.get_item(TableName="t", Key=update["Key"])["Item"]
        assert kept["n"] == {"N": "5"}
        # AND a transaction that succeeds keeps both writes
        client.transact_write_items(
            TransactItems=[{"Put": {"TableName": "t", "Item": new_item}}, {"Update": update}]
        )
        assert "Item" in client.get_item(TableName="t", Key=new_item)
        assert client.get_item(TableName="t", Key=update["Key"])["Item"]["n"] == {"N": "6"}
