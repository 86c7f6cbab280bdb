"""The templates with their options on, for `make template-check` (docs/network.md, docs/operations.md).

`sam validate --lint` and checkov read a template's parameter defaults, which leave every option off (no
VPC, no VPN, a virtual private gateway, one region). Each variant here is a copy of a template (as JSON:
the short-form tags written out) whose parameters default to a deployment with the option on, so the
same checks run on what that deployment builds: `template.yaml` in a VPC with the three egress paths,
the companion templates with a VPN connection, over a transit gateway, and `template.yaml` as each
region's samconfig.toml profile deploys it with every two-region option on (the global lineage table,
the API's failover record, provisioned concurrency): `template-us-gov-west-1.json`, `...-east-1.json`.

    python -m xpi_tools.template_variants OUT_DIR   # writes the variants, prints their paths
"""

import json
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]

# What a deployment with the option on passes (well-formed ids, documentation CIDRs).
VPC_ON = {
    "VpcId": "vpc-0a1b2c3d4e5f60718",
    "VpcSubnetIds": "subnet-0a1b2c3d4e5f60718,subnet-0b1c2d3e4f5a60718",
    "VpcRouteTableIds": "rtb-0a1b2c3d4e5f60718,rtb-0b1c2d3e4f5a60718",
    "VpcCreateEndpoints": "true",
    "VpcS3PrefixListId": "pl-0a1b2c3d",
    "VpcDynamoDbPrefixListId": "pl-0b1c2d3e",
    "EgressInternetCidr": "0.0.0.0/0",
    "EgressVpnCidr": "10.20.0.0/16",
    "EgressDirectConnectCidr": "10.20.0.0/16",
}
VPC_SHARED_ENDPOINTS = VPC_ON | {
    "VpcCreateEndpoints": "false",
    "VpcEndpointsSecurityGroupId": "sg-0a1b2c3d4e5f6071",
}
GOVCLOUD = {
    "VpcId": "vpc-0a1b2c3d4e5f60718",
    "PrivateRouteTableA": "rtb-0a1b2c3d4e5f60718",
    "PrivateRouteTableB": "rtb-0b1c2d3e4f5a60718",
    "CommercialVpcCidr": "10.20.0.0/16",
    "CreateVpn": "true",
    "RouterPublicIp": "198.51.100.10",
}

VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "template-vpc.json": ("template.yaml", VPC_ON),
    "template-vpc-shared-endpoints.json": ("template.yaml", VPC_SHARED_ENDPOINTS),
    "govcloud-vgw-vpn.json": ("network/govcloud.yaml", GOVCLOUD),
    "govcloud-tgw.json": (
        "network/govcloud.yaml",
        GOVCLOUD
        | {
            "Attachment": "tgw",
            "TransitGatewayId": "tgw-0a1b2c3d4e5f60718",
            "TransitGatewaySubnetIds": "subnet-0a1b2c3d4e5f60718,subnet-0b1c2d3e4f5a60718",
        },
    ),
    "commercial-vpn.json": (
        "network/commercial.yaml",
        {
            "GovCloudVpcCidr": "10.10.0.0/16",
            "CallerPrincipalArn": "arn:aws:iam::111122223333:user/xpi-bedrock",
            "CreateVpn": "true",
            "RouterPublicIp": "198.51.100.10",
        },
    ),
}


# The two regions (samconfig.toml's profiles) with the options their parameters leave to the deployer.
REGIONS = ("us-gov-west-1", "us-gov-east-1")
_EXAMPLE_ACCOUNT = "123456789012"


def region_options(region: str) -> dict[str, str]:
    options = {
        "ApiFailoverDomainName": "api.xpi.example.gov",
        "ApiFailoverHostedZoneId": "Z0123456789ABCDEFGHIJ",
        "ApiFailoverCertificateArn": f"arn:aws-us-gov:acm:{region}:{_EXAMPLE_ACCOUNT}:certificate/"
        "0123abcd-0123-4567-89ab-0123456789ab",
        "SyncProvisionedConcurrency": "2",
        "SyncReservedConcurrency": "4",
    }
    if region == "us-gov-west-1":  # the primary names the replica's key (the peer stack's output)
        options["LineageReplicaKmsKeyArn"] = (
            f"arn:aws-us-gov:kms:us-gov-east-1:{_EXAMPLE_ACCOUNT}:key/0123abcd-0123-4567-89ab-0123456789ab"
        )
    return options


def profile_parameters(samconfig: Path, profile: str) -> dict[str, str]:
    """A samconfig.toml profile's parameter_overrides, as `sam deploy --config-env PROFILE` passes them."""
    config = tomllib.loads(samconfig.read_text())
    overrides = str(config[profile]["deploy"]["parameters"].get("parameter_overrides", ""))
    return dict(item.split("=", 1) for item in shlex.split(overrides))


def all_variants() -> dict[str, tuple[str, dict[str, str]]]:
    regions = {
        f"template-{region}.json": (
            "template.yaml",
            profile_parameters(ROOT / "samconfig.toml", region) | region_options(region),
        )
        for region in REGIONS
    }
    return VARIANTS | regions


def variant(source: str, defaults: dict[str, str]) -> dict[str, Any]:
    """The template at `source` (relative to the repository) with these parameters' defaults."""
    template, matches = decode(str(ROOT / source))
    if template is None:
        raise ValueError(f"{source} does not parse: {matches}")
    template = dict(json.loads(json.dumps(template)))
    parameters = template["Parameters"]
    for name, value in defaults.items():
        if name not in parameters:
            raise KeyError(f"{source} has no parameter {name}")
        parameters[name]["Default"] = value
    return template


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (source, defaults) in all_variants().items():
        path = out_dir / name
        path.write_text(json.dumps(variant(source, defaults), indent=1))
        written.append(path)
    return written


def main() -> None:
    for path in write(Path(sys.argv[1])):
        print(path)


if __name__ == "__main__":
    main()
