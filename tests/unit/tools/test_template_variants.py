"""The templates with their network options on (xpi_tools.template_variants), which `make template-check`
runs sam validate --lint, cfn-lint and checkov on."""

import json
from pathlib import Path

from xpi_tools.template_variants import REGIONS, VARIANTS, write


def test_each_variant_is_its_template_with_the_options_on(tmp_path: Path) -> None:
    # WHEN the variants are written
    written = {path.name: json.loads(path.read_text()) for path in write(tmp_path)}

    # THEN there is one per variant, each its source's resources with the parameters' defaults replaced
    assert set(written) == set(VARIANTS) | {f"template-{region}.json" for region in REGIONS}
    vpc = written["template-vpc.json"]["Parameters"]
    assert vpc["VpcId"]["Default"].startswith("vpc-")
    # (the template's own rule: a VPC needs subnets and both prefix lists)
    assert all(
        vpc[name]["Default"] for name in ("VpcSubnetIds", "VpcS3PrefixListId", "VpcDynamoDbPrefixListId")
    )
    assert all(vpc[f"Egress{path}Cidr"]["Default"] for path in ("Internet", "Vpn", "DirectConnect"))
    shared = written["template-vpc-shared-endpoints.json"]["Parameters"]
    assert (
        shared["VpcCreateEndpoints"]["Default"] == "false"
        and shared["VpcEndpointsSecurityGroupId"]["Default"]
    )
    assert written["govcloud-tgw.json"]["Parameters"]["Attachment"]["Default"] == "tgw"
    assert written["commercial-vpn.json"]["Parameters"]["CreateVpn"]["Default"] == "true"
    assert "SyncInvokeFunction" in written["template-vpc.json"]["Resources"]
    # AND each region's variant is its samconfig profile with every two-region option on
    west = written["template-us-gov-west-1.json"]["Parameters"]
    assert west["LineageReplicaRegion"]["Default"] == "us-gov-east-1"
    assert west["LineageReplicaKmsKeyArn"]["Default"].startswith("arn:aws-us-gov:kms:us-gov-east-1:")
    assert (
        int(written["template-us-gov-east-1.json"]["Parameters"]["SyncProvisionedConcurrency"]["Default"]) > 0
    )
