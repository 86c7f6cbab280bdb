"""What template.yaml promises about the VPC deployment option: off by default; on, every function runs in
the given subnets behind a security group allowing only HTTPS out, and every GovCloud service a function's
role calls has a VPC endpoint, so nothing but the call to commercial Bedrock leaves the VPC."""

import json
from pathlib import Path
from typing import Any

import pytest
from xpi_tools.iam.template_policies import Resolver, granted_actions, role_policies, translated_template

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
VPC_ON = {
    "VpcId": "vpc-0123456789abcdef0",
    "VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "VpcRouteTableIds": "rtb-0123456789abcdef0",
    "VpcS3PrefixListId": "pl-0123abcd",
    "VpcDynamoDbPrefixListId": "pl-0456abcd",
    "EgressVpnCidr": "10.20.0.0/16",
}

GATEWAY_SERVICES = {"s3", "dynamodb"}
# An action prefix whose calls go to an endpoint of another name: bedrock:InvokeModel* is bedrock-runtime's.
ENDPOINT_OF = {"bedrock": "bedrock-runtime"}
# Action prefixes a role holds that no endpoint of this VPC serves, each with the reason.
NOT_THROUGH_AN_ENDPOINT = {
    # AWSLambdaVPCAccessExecutionRole: the Lambda service creates the function's network interfaces.
    "ec2": "used by the Lambda service to attach the function to the subnets, not by the function",
    # The compliance check's IAM reads (policy versions): IAM has no interface endpoint in GovCloud; in a
    # VPC they go out through the internet path's NAT, or the check reports them unreadable.
    "iam": "IAM has no interface endpoint in AWS GovCloud (US)",
}


@pytest.fixture(scope="module")
def vpc_on() -> tuple[dict[str, Any], Resolver]:
    cfn = translated_template(TEMPLATE, VPC_ON)
    return cfn, Resolver(cfn, VPC_ON)


@pytest.fixture(scope="module")
def vpc_off() -> tuple[dict[str, Any], Resolver]:
    cfn = translated_template(TEMPLATE)
    return cfn, Resolver(cfn)


def _functions(cfn: dict[str, Any]) -> dict[str, Any]:
    """The functions deployed with the default parameters (an option's function is not)."""
    resolver = Resolver(cfn)
    return {
        name: r
        for name, r in cfn["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
        and ("Condition" not in r or resolver.condition(r["Condition"]))
    }


def _created(cfn: dict[str, Any], resolver: Resolver, kind: str) -> dict[str, Any]:
    return {
        name: resource
        for name, resource in cfn["Resources"].items()
        if resource["Type"] == kind
        and ("Condition" not in resource or resolver.condition(resource["Condition"]))
    }


def test_the_option_is_off_by_default(vpc_off: tuple[dict[str, Any], Resolver]) -> None:
    cfn, resolver = vpc_off

    assert not resolver.condition("DeployInVpc")
    for name, function in _functions(cfn).items():
        assert "VpcConfig" in function["Properties"], name  # an Fn::If (Globals)
        assert "VpcConfig" not in resolver.resolve(function["Properties"]), name
    assert _created(cfn, resolver, "AWS::EC2::VPCEndpoint") == {}
    assert _created(cfn, resolver, "AWS::EC2::SecurityGroup") == {}


def test_on_every_function_runs_in_the_subnets_behind_the_functions_group(
    vpc_on: tuple[dict[str, Any], Resolver],
) -> None:
    cfn, resolver = vpc_on
    functions = _functions(cfn)

    assert len(functions) >= 20
    for name, function in functions.items():
        config = resolver.resolve(function["Properties"]["VpcConfig"])
        assert config["SubnetIds"] == VPC_ON["VpcSubnetIds"].split(","), name
        assert config["SecurityGroupIds"] == [resolver.ref("FunctionsSecurityGroup")], name


def test_the_functions_group_allows_only_https_out_and_nothing_in(
    vpc_on: tuple[dict[str, Any], Resolver],
) -> None:
    cfn, resolver = vpc_on
    group = resolver.resolve(cfn["Resources"]["FunctionsSecurityGroup"]["Properties"])
    rules = list(group["SecurityGroupEgress"])
    rules += [
        resolver.resolve(r["Properties"])
        for r in _created(cfn, resolver, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Ref": "FunctionsSecurityGroup"}
    ]

    assert "SecurityGroupIngress" not in group
    assert {(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules} == {("tcp", 443, 443)}
    destinations = {
        r.get("CidrIp") or r.get("DestinationPrefixListId") or r.get("DestinationSecurityGroupId")
        for r in rules
    }
    # the endpoints, the gateway prefix lists, and the one egress path configured here (no 0.0.0.0/0)
    assert destinations == {
        resolver.ref("EndpointsSecurityGroup"),
        VPC_ON["VpcS3PrefixListId"],
        VPC_ON["VpcDynamoDbPrefixListId"],
        VPC_ON["EgressVpnCidr"],
    }


def test_every_service_a_function_calls_has_an_endpoint(vpc_on: tuple[dict[str, Any], Resolver]) -> None:
    # GIVEN every action any function's role may call (its inline, attached and AWS managed policies)
    cfn, resolver = vpc_on
    function_roles = {
        resolver.resolve(f["Properties"]["Role"]).rsplit("/", 1)[-1] for f in _functions(cfn).values()
    }
    services: dict[str, set[str]] = {}
    for role, policies in role_policies(TEMPLATE, VPC_ON).items():
        if resolver.physical_name(role) not in function_roles:
            continue
        for action in granted_actions(policies):
            services.setdefault(action.split(":", 1)[0], set()).add(role)

    # WHEN the endpoints the option creates are listed
    endpoints = {
        resolver.resolve(e["Properties"]["ServiceName"]).rsplit(".", 1)[-1]: resolver.resolve(e["Properties"])
        for e in _created(cfn, resolver, "AWS::EC2::VPCEndpoint").values()
    }

    # THEN each service has one (gateway for S3 and DynamoDB, interface with private DNS for the rest)
    missing = {
        s: sorted(roles)
        for s, roles in services.items()
        if ENDPOINT_OF.get(s, s) not in endpoints and s not in NOT_THROUGH_AN_ENDPOINT
    }
    assert missing == {}
    for service in services.keys() - NOT_THROUGH_AN_ENDPOINT.keys():
        endpoint = endpoints[ENDPOINT_OF.get(service, service)]
        if service in GATEWAY_SERVICES:
            assert endpoint["VpcEndpointType"] == "Gateway"
            assert endpoint["RouteTableIds"] == VPC_ON["VpcRouteTableIds"].split(",")
        else:
            assert endpoint["VpcEndpointType"] == "Interface", service
            assert endpoint["PrivateDnsEnabled"] is True
            assert endpoint["SecurityGroupIds"] == [resolver.ref("EndpointsSecurityGroup")]
    # and the X-Ray daemon's traces (Tracing Active) have theirs
    assert "xray" in endpoints


def test_existing_endpoints_are_used_when_the_stack_creates_none() -> None:
    parameters = VPC_ON | {
        "VpcCreateEndpoints": "false",
        "VpcEndpointsSecurityGroupId": "sg-0123456789abcdef0",
    }
    cfn = translated_template(TEMPLATE, parameters)
    resolver = Resolver(cfn, parameters)

    assert _created(cfn, resolver, "AWS::EC2::VPCEndpoint") == {}
    egress = _created(cfn, resolver, "AWS::EC2::SecurityGroupEgress")["FunctionsToEndpointsEgress"]
    assert resolver.resolve(egress["Properties"])["DestinationSecurityGroupId"] == "sg-0123456789abcdef0"


def test_outside_the_vpc_no_function_role_may_manage_network_interfaces(
    vpc_off: tuple[dict[str, Any], Resolver], vpc_on: tuple[dict[str, Any], Resolver]
) -> None:
    # GIVEN SAM attaching AWSLambdaVPCAccessExecutionRole to every function role (VpcConfig is an Fn::If)
    cfn, resolver = vpc_off
    function_roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in _functions(cfn).values()}
    vpc_access = "service-role/AWSLambdaVPCAccessExecutionRole"
    policies = role_policies(TEMPLATE)
    assert all(any(vpc_access in arn for arn in policies[r].managed_policy_arns) for r in function_roles)

    # WHEN / THEN with the option off, a Deny of its network interface actions is on every one of them
    deny = _created(cfn, resolver, "AWS::IAM::ManagedPolicy")["NoNetworkInterfacesOutsideTheVpc"]
    assert {role["Ref"] for role in deny["Properties"]["Roles"]} == function_roles
    (statement,) = deny["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert {a.lower() for a in statement["Action"]} == {
        a for a in granted_actions(policies["InvokeModelFunctionRole"]) if a.startswith("ec2:")
    }
    # and with it on, no Deny
    assert "NoNetworkInterfacesOutsideTheVpc" not in _created(vpc_on[0], vpc_on[1], "AWS::IAM::ManagedPolicy")


def test_the_dashboard_shows_every_egress_path_metric_the_functions_emit() -> None:
    # GIVEN the metrics emitted with the EgressPath dimension (xpi.services.egress)
    import re

    from cfnlint.decode import decode

    emitted = set(
        re.findall(r'path_metric\(\s*"(\w+)"', (ROOT / "functions/xpi/services/egress.py").read_text())
    )
    assert {"EgressLatency", "EgressBytesSent", "EgressBytesReceived", "EgressFailover"} <= emitted

    # WHEN the dashboard's body is read
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    body = template["Resources"]["XpiDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    shown = {
        name
        for widget in widgets
        for line in widget["properties"].get("metrics", [])
        for item in line
        if isinstance(item, dict) and "expression" in item
        for name in re.findall(r'MetricName="(\w+)"', item["expression"])
    }

    # THEN each is on a panel, per path (a SEARCH over the EgressPath dimension)
    assert emitted <= shown
