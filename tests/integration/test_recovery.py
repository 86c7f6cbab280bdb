"""The disaster recovery runbook's in-region steps on the local stack (docs/operations.md, "Disaster
recovery"): the lineage table restored to a point in time into a new table holds the answered requests,
and an output overwritten or deleted in the versioned artifacts bucket is read back from its earlier
version. moto restores every item the table holds (it ignores the restore time) and its restore is
instant: this proves the commands and what to check after them, not DynamoDB's restore times."""

import uuid

import pytest

from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration


def test_the_lineage_table_restores_to_a_point_in_time_with_the_answered_requests(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN an answered request, and the lineage table's continuous backups
    request_id = local_stack.send({"model": "default", "prompt": "Name three rivers in Oregon."})
    results.wait_for(request_id, detail_type="Inference Completed")
    dynamodb = local_stack.client("dynamodb")
    table = local_stack.outputs["LineageTableName"]
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    recovery = backups["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"

    # WHEN the runbook restores it (latest restorable time) into a new table
    restored = f"{table}-restored-{uuid.uuid4().hex[:6]}"
    dynamodb.restore_table_to_point_in_time(
        SourceTableName=table, TargetTableName=restored, UseLatestRestorableTime=True
    )
    try:
        # THEN the restored table holds the request's lineage as the live one does
        key = {"request_id": {"S": request_id}}
        live = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        copy = dynamodb.get_item(TableName=restored, Key=key, ConsistentRead=True)["Item"]
        assert copy == live
        assert copy["status"]["S"] == "COMPLETED"
    finally:
        dynamodb.delete_table(TableName=restored)


def test_an_overwritten_or_deleted_output_is_read_back_from_its_earlier_version(
    local_stack: LocalStackClient,
) -> None:
    # GIVEN an output in the versioned artifacts bucket
    s3 = local_stack.client("s3")
    bucket = local_stack.outputs["ArtifactsBucketName"]
    key = f"outputs/recovery-drill-{uuid.uuid4().hex[:8]}.json"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    first = s3.put_object(Bucket=bucket, Key=key, Body=b'{"output": "the answer"}')["VersionId"]

    # WHEN it is overwritten and then deleted (a bad deploy, an operator's mistake)
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"output": "corrupted"}')
    s3.delete_object(Bucket=bucket, Key=key)

    # THEN the runbook finds its versions and restores the earlier one by copying it back
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)
    assert first in {v["VersionId"] for v in versions["Versions"]}
    assert any(m["IsLatest"] for m in versions["DeleteMarkers"])
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": first})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"output": "the answer"}'
