"""What template.yaml keeps for recovery (docs/operations.md, "Disaster recovery"): point-in-time recovery
on every table, versioning on every bucket, optional replication of outputs to the other region, and
reserved concurrency of the Bedrock functions as parameters that are off (unreserved) by default."""

from pathlib import Path
from typing import Any

import pytest
from xpi_tools.local.deploy import load_template

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_every_table_has_point_in_time_recovery_and_every_bucket_versioning(template: dict[str, Any]) -> None:
    for logical_id, table in of_type(template, "AWS::DynamoDB::Table").items():
        recovery = table["Properties"]["PointInTimeRecoverySpecification"]
        assert recovery == {"PointInTimeRecoveryEnabled": True}, logical_id
    for logical_id, bucket in of_type(template, "AWS::S3::Bucket").items():
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id


def test_replication_is_off_unless_a_destination_and_its_key_are_given(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["ReplicationDestinationBucketArn"]["Default"] == ""
    assert parameters["ReplicationDestinationKmsKeyArn"]["Default"] == ""
    replication = template["Resources"]["ArtifactsBucket"]["Properties"]["ReplicationConfiguration"]
    condition, configured, otherwise = replication["Fn::If"]
    assert (condition, otherwise) == ("ReplicateArtifacts", {"Ref": "AWS::NoValue"})
    [rule] = configured["Rules"]
    assert rule["Filter"] == {"Prefix": "outputs/"}
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    for name in ("ArtifactsReplicationRole", "ArtifactsReplicationPolicy"):
        assert template["Resources"][name]["Condition"] == "ReplicateArtifacts"


def test_the_replication_role_is_s3s_and_reaches_only_outputs(template: dict[str, Any]) -> None:
    role = template["Resources"]["ArtifactsReplicationRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"}
    policy = template["Resources"]["ArtifactsReplicationPolicy"]["Properties"]["PolicyDocument"]
    statements = policy["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions)
        resource = statement["Resource"]
        if isinstance(resource, dict) and "Fn::Sub" in resource:
            assert resource["Fn::Sub"].endswith("/outputs/*")


@pytest.mark.parametrize(
    ("function", "parameter"),
    [("SyncInvokeFunction", "SyncReservedConcurrency"), ("InvokeModelFunction", "InvokeReservedConcurrency")],
)
def test_reserved_concurrency_is_a_parameter_unreserved_by_default(
    template: dict[str, Any], function: str, parameter: str
) -> None:
    assert template["Parameters"][parameter]["Default"] == ""
    reserved = template["Resources"][function]["Properties"]["ReservedConcurrentExecutions"]
    condition, value, otherwise = reserved["Fn::If"]
    assert value == {"Ref": parameter}
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}
