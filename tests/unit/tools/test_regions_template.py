"""What template.yaml holds for two regions (docs/operations.md, "Two regions"): the lineage global table
created by the primary with its replica in the peer, every use of the lineage table following it; the
API's health-checked failover record; the sync path's provisioned concurrency. All off by default."""

import json
from pathlib import Path
from typing import Any

import pytest
from xpi_tools.local.deploy import load_template
from xpi_tools.template_variants import profile_parameters, variant

ROOT = Path(__file__).resolve().parents[3]
OPTIONS_OFF = {
    "LineageGlobalTableName": "",
    "LineageReplicaRegion": "",
    "ApiFailoverDomainName": "",
    "SyncProvisionedConcurrency": 0,
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_every_two_region_option_is_off_by_default(template: dict[str, Any]) -> None:
    defaults = {name: template["Parameters"][name]["Default"] for name in OPTIONS_OFF}
    assert defaults == OPTIONS_OFF
    conditions = {r.get("Condition") for r in template["Resources"].values()}
    assert {"LineageGlobalPrimary", "ApiFailover", "SyncProvisioned", "LineageRegional"} <= conditions


def test_the_primary_creates_the_global_table_with_the_regional_tables_schema_and_a_replica_in_the_peer(
    template: dict[str, Any],
) -> None:
    regional = template["Resources"]["LineageTable"]
    glob = template["Resources"]["LineageGlobalTable"]
    assert (regional["Condition"], glob["Condition"]) == ("LineageRegional", "LineageGlobalPrimary")
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "TimeToLiveSpecification"):
        assert glob["Properties"][key] == regional["Properties"][key], key
    assert glob["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    here, peer = glob["Properties"]["Replicas"]
    assert (here["Region"], peer["Region"]) == ({"Ref": "AWS::Region"}, {"Ref": "LineageReplicaRegion"})
    for replica in (here, peer):
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert peer["SSESpecification"] == {"KMSMasterKeyId": {"Ref": "LineageReplicaKmsKeyArn"}}
    assert glob["DeletionPolicy"] == "Retain"


def test_no_use_of_the_lineage_table_bypasses_the_global_option(template: dict[str, Any]) -> None:
    """Every Ref and GetAtt of LineageTable sits in an Fn::If on LineageGlobal (its other branch the
    global table's name or ARN), but the table's own definition."""
    text = json.dumps({k: v for k, v in template["Resources"].items() if k != "LineageTable"})
    text += json.dumps(template["Outputs"]) + json.dumps(template["Globals"])
    bare = text.count('{"Ref": "LineageTable"}') + text.count('{"Fn::GetAtt": ["LineageTable", "Arn"]}')
    guarded = text.count('{"Fn::If": ["LineageGlobal", ')
    assert bare > 20 and guarded >= bare
    assert "${LineageTable}" not in text and "${LineageTable.Arn}" not in text


def test_the_api_fails_over_by_a_health_checked_record_and_the_sync_path_may_be_provisioned(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    record = resources["ApiFailoverRecord"]["Properties"]
    assert record["Failover"] == {"Ref": "ApiFailoverRole"}
    assert record["HealthCheckId"] == {"Ref": "ApiRegionHealthCheck"}
    check = resources["ApiRegionHealthCheck"]["Properties"]["HealthCheckConfig"]
    assert check["Type"] == "CLOUDWATCH_METRIC" and check["InsufficientDataHealthStatus"] == "Unhealthy"
    # (an alarm the local stack drives: tests/integration/test_alarms.py)
    assert check["AlarmIdentifier"]["Name"] == {"Ref": "SyncInvokeErrorRateAlarm"}
    alias = resources["SyncInvokeLiveAlias"]["Properties"]
    assert alias["ProvisionedConcurrencyConfig"] == {
        "ProvisionedConcurrentExecutions": {"Ref": "SyncProvisionedConcurrency"}
    }
    assert resources["SyncInvokeFunctionInvokedByApi"]["Properties"]["FunctionName"] == {
        "Fn::If": ["SyncProvisioned", {"Ref": "SyncInvokeLiveAlias"}, {"Ref": "SyncInvokeFunction"}]
    }
    document = load_template(ROOT / "api" / "openapi.yaml")
    uri = document["paths"]["/v1/invoke"]["post"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert uri[1] == {"Qualifier": {"Fn::If": ["SyncProvisioned", ":live", ""]}}


def test_each_regions_profile_becomes_the_defaults_of_a_template_variant() -> None:
    west = profile_parameters(ROOT / "samconfig.toml", "us-gov-west-1")
    east = profile_parameters(ROOT / "samconfig.toml", "us-gov-east-1")
    assert (west["LineageReplicaRegion"], west["ApiFailoverRole"]) == ("us-gov-east-1", "PRIMARY")
    assert "LineageReplicaRegion" not in east and east["ApiFailoverRole"] == "SECONDARY"
    assert west["LineageGlobalTableName"] == east["LineageGlobalTableName"]

    # WHEN the east profile's parameters become a variant's defaults
    east_variant = variant("template.yaml", east)

    # THEN the variant deploys as the profile does, and an unknown parameter is refused
    parameters = east_variant["Parameters"]
    assert parameters["LineageGlobalTableName"]["Default"] == east["LineageGlobalTableName"]
    assert parameters["CommercialRegion"]["Default"] == "us-east-2"
    with pytest.raises(KeyError, match="NoSuchParameter"):
        variant("template.yaml", {"NoSuchParameter": "x"})
