"""The compliance resources as the template deploys them: the checker's role reads only (and writes
its own result), the report's role reads only, the managed AWS Config rules are off by default and
name the rules the checks mirror, and the checker is given every resource the checks cover."""

import json
import re
from typing import Any

from xpi.domain.compliance_controls import CHECKS
from xpi.models.compliance import ComplianceResources

from tests.unit.tools.test_statemachines import TEMPLATE

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
READ_ONLY = re.compile(
    r"^[a-z0-9-]+:(Get|Describe|List|Query)[A-Za-z]*$|^apigateway:GET$|^logs:FilterLogEvents$"
)


def _statements(function: str) -> list[dict[str, Any]]:
    policies = RESOURCES[function]["Properties"]["Policies"]
    return [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_the_checker_reads_only_and_writes_its_own_result() -> None:
    statements = _statements("ComplianceCheckFunction")
    writes = [s for s in statements if not all(READ_ONLY.match(a) for a in _actions(s))]
    assert [(_actions(s), s["Resource"]) for s in writes] == [
        (["s3:PutObject"], {"Fn::Sub": "${ArtifactsBucket.Arn}/compliance/config-checks/*"})
    ]
    # AND no action is a wildcard, and every ARN it writes out is partition-aware
    assert not [a for s in statements for a in _actions(s) if "*" in a]
    text = json.dumps(statements)
    assert "arn:aws:" not in text and "arn:aws-us-gov:" not in text


def test_the_report_reads_only() -> None:
    statements = _statements("ComplianceReportFunction")
    assert all(READ_ONLY.match(a) for s in statements for a in _actions(s)), statements
    assert "arn:aws:" not in json.dumps(statements)


def test_the_route_is_the_operators_and_the_auditors_only() -> None:
    def routes(policy: str) -> list[str]:
        statements = RESOURCES[policy]["Properties"]["PolicyDocument"]["Statement"]
        return [
            r["Fn::Sub"].split("/api/", 1)[1]
            for s in statements
            if s["Action"] == "execute-api:Invoke"
            for r in s["Resource"]
        ]

    route = "GET/v1/compliance/report"
    assert route in routes("ApiOperatorPolicy") and route in routes("AuditorReadPolicy")
    assert route not in routes("ApiCallerPolicy")


def test_config_rules_are_off_by_default_and_mirror_the_checks() -> None:
    assert TEMPLATE["Parameters"]["DeployConfigRules"]["Default"] == "false"
    rules = {k: r for k, r in RESOURCES.items() if r["Type"] == "AWS::Config::ConfigRule"}
    assert rules and all(
        r["Condition"] in ("CreateConfigRules", "CreateCredentialsRotationRule") for r in rules.values()
    )
    deployed = {r["Properties"]["Source"]["SourceIdentifier"] for r in rules.values()}
    assert all(r["Properties"]["Source"]["Owner"] == "AWS" for r in rules.values())
    mirrored = {c.config_rule for c in CHECKS.values() if c.config_rule}
    assert deployed == mirrored


def test_the_checker_is_given_the_stacks_resources() -> None:
    # GIVEN its COMPLIANCE_RESOURCES with every reference replaced by its logical id
    variables = RESOURCES["ComplianceCheckFunction"]["Properties"]["Environment"]["Variables"]
    text, names = variables["COMPLIANCE_RESOURCES"]["Fn::Sub"]
    document = re.sub(r"\$\{LogRetentionDays\}", "365", text)
    document = re.sub(r"\$\{CredentialsRotate\}", "true", document)
    resolved = re.sub(r"\$\{([A-Za-z]+)(?:\.Arn)?\}", r"\1", document)
    resources = ComplianceResources.model_validate_json(resolved)

    # THEN every bucket, table, log group, queue, symmetric key and secret of the template is in it
    def of(kind: str) -> set[str]:
        return {k for k, r in RESOURCES.items() if r["Type"] == kind and "Condition" not in r}

    assert {b.name for b in resources.buckets} == of("AWS::S3::Bucket")
    # (the lineage table by a variable: the regional table, or the global table's name with two regions)
    assert {t.name for t in resources.tables} == of("AWS::DynamoDB::Table") | {"LineageTableName"}
    assert names["LineageTableName"] == {
        "Fn::If": ["LineageGlobal", {"Ref": "LineageGlobalTableName"}, {"Ref": "LineageTable"}]
    }
    assert set(resources.log_groups) == of("AWS::Logs::LogGroup")
    assert {q.name for q in resources.queues} == of("AWS::SQS::Queue")
    symmetric = {k for k in of("AWS::KMS::Key") if "KeySpec" not in RESOURCES[k]["Properties"]}
    assert set(resources.keys) == symmetric
    secrets = {names[q.name]["Ref"] for q in resources.secrets if isinstance(names.get(q.name), dict)}
    assert secrets == of("AWS::SecretsManager::Secret")
    assert [b.name for b in resources.buckets if b.object_lock_required] == ["LineageDigestBucket"]
