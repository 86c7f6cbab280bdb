"""Keys and the commercial secret in template.yaml: three keys, each used only by whom it serves, the data
key retained with the data it encrypts, and a secret policy naming only the roles that call Bedrock
(docs/security.md, "Keys"). The same properties are exercised on the local stack by
tests/integration/test_keys.py."""

from pathlib import Path
from typing import Any

import pytest
from xpi_tools.iam.template_policies import Resolver, TemplatePolicies, translated_template

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
COMMERCIAL_BATCH = {
    "CommercialBatchBucket": "xpi-batch-123456789012-us-east-1",
    "CommercialBatchKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "CommercialBatchRoleArn": "arn:aws:iam::123456789012:role/xpi-bedrock-batch",
}
KEY_ARN = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/"
CRYPTOGRAPHIC = ("Decrypt", "Encrypt", "GenerateDataKey", "ReEncrypt")


@pytest.fixture(scope="module")
def template() -> TemplatePolicies:
    return TemplatePolicies(TEMPLATE)


def _resources(template: TemplatePolicies) -> dict[str, Any]:
    resources: dict[str, Any] = template.cfn["Resources"]
    return resources


def _key_of(resource: dict[str, Any]) -> Any:
    properties = resource.get("Properties", {})
    for name in ("KmsMasterKeyId", "KmsKeyId"):
        if name in properties:
            return properties[name]
    if "Replicas" in properties:  # a global table: its replica in this region (the peer's is the peer's)
        here = next(r for r in properties["Replicas"] if r["Region"] == {"Ref": "AWS::Region"})
        return here["SSESpecification"]["KMSMasterKeyId"]
    if "SSESpecification" in properties:
        return properties["SSESpecification"]["KMSMasterKeyId"]
    if "BucketEncryption" in properties:
        rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        return rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]
    return None


def _named_key(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
    return None


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_data_key_is_retained_with_the_lineage_table(template: TemplatePolicies) -> None:
    resources = _resources(template)
    assert resources["LineageTable"]["DeletionPolicy"] == "Retain"
    assert resources["XpiKey"]["DeletionPolicy"] == "Retain"
    assert resources["XpiKey"]["UpdateReplacePolicy"] == "Retain"


def test_each_encrypted_resource_uses_the_key_of_what_it_holds(template: TemplatePolicies) -> None:
    keys = {
        logical_id: _named_key(_key_of(resource))
        for logical_id, resource in _resources(template).items()
        if _key_of(resource) is not None
    }
    # THEN what producers send is under the producer-facing key, the credentials under their own key,
    # and everything else (tables, buckets, logs, internal queues) under the data key
    assert keys.pop("RequestsQueue") == "RequestsQueueKey"
    assert keys.pop("RequestsDLQ") == "RequestsQueueKey"  # the redrive reads it and resends with one key
    assert keys.pop("CommercialCredentialsSecret") == "CommercialCredentialsKey"
    assert keys.pop("RolesAnywhereCertificateSecret") == "RolesAnywhereCertificateKey"
    assert keys.pop("ApiKeyManagerSecret") == "CommercialCredentialsKey"
    assert {"LineageTable", "ArtifactsBucket", "FunctionsLogGroup", "BatchInputBucket"} <= set(keys)
    assert set(keys.values()) == {"XpiKey"}, keys


def test_producers_get_the_queue_and_its_key_and_nothing_of_the_data_key(template: TemplatePolicies) -> None:
    resolver = template.resolver
    properties = _resources(template)["RequestsProducerPolicy"]["Properties"]
    statements = _statements(resolver.resolve(properties["PolicyDocument"]))
    granted = {
        (action, resource)
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in _listed(statement["Action"])
        for resource in _listed(statement["Resource"])
    }
    queue_key = resolver.resolve({"Fn::GetAtt": ["RequestsQueueKey", "Arn"]})
    queue = resolver.resolve({"Fn::GetAtt": ["RequestsQueue", "Arn"]})
    assert granted == {
        ("sqs:SendMessage", queue),
        ("sqs:GetQueueUrl", queue),
        ("kms:GenerateDataKey", queue_key),
        ("kms:Decrypt", queue_key),
    }
    data_key = resolver.resolve({"Fn::GetAtt": ["XpiKey", "Arn"]})
    assert data_key != queue_key and data_key.startswith(KEY_ARN)


# What the configuration checker (ComplianceCheckFunction) reads of keys and secrets: whether they rotate
# and which key encrypts them. Neither uses a key nor reads a value, so neither makes a role a holder.
CONFIGURATION_READS = {"kms:GetKeyRotationStatus", "secretsmanager:DescribeSecret"}


def _uses(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in _listed(statement.get("Action", [])) if str(a) not in CONFIGURATION_READS]


def test_only_the_roles_that_call_bedrock_and_the_rotation_role_hold_the_credentials_key(
    template: TemplatePolicies,
) -> None:
    secret_key = template.resolver.resolve({"Fn::GetAtt": ["CommercialCredentialsKey", "Arn"]})
    holders = {
        role
        for role, policies in template.role_policies().items()
        for document in policies.documents
        for statement in _statements(document)
        if {secret_key, "*"} & set(_listed(statement.get("Resource", [])))
        and any(a.startswith("kms:") for a in _uses(statement))
    }
    assert holders == {
        "InvokeModelFunctionRole",
        "SyncInvokeFunctionRole",
        "ProcessRequestFunctionRole",
        "RotateCredentialsFunctionRole",
        "BatchJobFunctionRole",  # the job path's commercial bucket and job API, with the same credentials
    }


def test_the_secret_policy_denies_reading_to_all_but_the_roles_that_call_bedrock_and_the_rotation_role(
    template: TemplatePolicies,
) -> None:
    resources = _resources(template)
    policies = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SecretsManager::ResourcePolicy"
        and r["Properties"]["SecretId"] == {"Ref": "CommercialCredentialsSecret"}
    ]
    assert len(policies) == 1
    properties = template.resolver.resolve(policies[0]["Properties"])
    assert properties["SecretId"] == template.resolver.resolve({"Ref": "CommercialCredentialsSecret"})
    assert properties["BlockPublicPolicy"] is True
    (deny,) = _statements(properties["ResourcePolicy"])
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert _listed(deny["Action"]) == ["secretsmanager:GetSecretValue"]
    readers = [
        template.resolver.resolve({"Fn::GetAtt": [role, "Arn"]})
        for role in (
            "InvokeModelFunctionRole",
            "RotateCredentialsFunctionRole",
            "SyncInvokeFunctionRole",
            "ProcessRequestFunctionRole",
            "BatchJobFunctionRole",
        )
    ]
    assert deny["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": readers}}


def test_the_credentials_key_is_used_only_through_secrets_manager(template: TemplatePolicies) -> None:
    policy = template.resolver.resolve(_resources(template)["CommercialCredentialsKey"]["Properties"])
    for statement in _statements(policy["KeyPolicy"]):
        operations = [str(a).removeprefix("kms:") for a in _listed(statement["Action"])]
        if any(op == "*" or op.startswith(CRYPTOGRAPHIC) for op in operations):
            assert "kms:ViaService" in statement["Condition"]["StringEquals"], statement


def test_only_the_roles_that_call_bedrock_read_the_roles_anywhere_certificate(
    template: TemplatePolicies,
) -> None:
    resources = _resources(template)
    properties = template.resolver.resolve(resources["RolesAnywhereCertificateSecretPolicy"]["Properties"])
    assert properties["BlockPublicPolicy"] is True
    (deny,) = _statements(properties["ResourcePolicy"])
    assert deny["Effect"] == "Deny" and _listed(deny["Action"]) == ["secretsmanager:GetSecretValue"]
    invoke_roles = [
        template.resolver.resolve({"Fn::GetAtt": [role, "Arn"]})
        for role in ("InvokeModelFunctionRole", "SyncInvokeFunctionRole", "ProcessRequestFunctionRole")
    ]
    assert deny["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": invoke_roles}}
    certificate_key = template.resolver.resolve({"Fn::GetAtt": ["RolesAnywhereCertificateKey", "Arn"]})
    holders = {
        role
        for role, policies in template.role_policies().items()
        for document in policies.documents
        for statement in _statements(document)
        if certificate_key in _listed(statement.get("Resource", [])) and _uses(statement)
    }
    assert holders == {"InvokeModelFunctionRole", "SyncInvokeFunctionRole", "ProcessRequestFunctionRole"}


def test_only_the_rotation_role_reads_the_api_key_manager_secret(template: TemplatePolicies) -> None:
    resources = _resources(template)
    properties = template.resolver.resolve(resources["ApiKeyManagerSecretPolicy"]["Properties"])
    assert properties["SecretId"] == template.resolver.resolve({"Ref": "ApiKeyManagerSecret"})
    assert properties["BlockPublicPolicy"] is True
    (deny,) = _statements(properties["ResourcePolicy"])
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert _listed(deny["Action"]) == ["secretsmanager:GetSecretValue"]
    rotation_role = template.resolver.resolve({"Fn::GetAtt": ["RotateCredentialsFunctionRole", "Arn"]})
    assert deny["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": [rotation_role]}}
    # AND no other role is granted anything on it, the rotation role only GetSecretValue
    secret = template.resolver.resolve({"Ref": "ApiKeyManagerSecret"})
    grants = {
        (role, str(action))
        for role, policies in template.role_policies().items()
        for document in policies.documents
        for statement in _statements(document)
        if secret in _listed(statement.get("Resource", []))
        for action in _uses(statement)
    }
    assert grants == {("RotateCredentialsFunctionRole", "secretsmanager:GetSecretValue")}
    assert resources["ApiKeyManagerSecret"]["Properties"]["KmsKeyId"] == {"Ref": "CommercialCredentialsKey"}


@pytest.mark.parametrize(
    ("parameters", "in_force"),
    [
        ({}, "0"),  # the default threshold, without the commercial side: never
        (
            {"CommercialBatchBucket": "jobs", "CommercialBatchKmsKeyArn": "", "CommercialBatchRoleArn": ""},
            "0",
        ),
        (COMMERCIAL_BATCH, "1000"),  # configured: the default threshold is in force
        ({**COMMERCIAL_BATCH, "BatchJobMinLines": "250"}, "250"),
        ({**COMMERCIAL_BATCH, "BatchJobMinLines": "0"}, "0"),
    ],
)
def test_the_job_path_is_in_force_only_once_its_commercial_side_is_configured(
    parameters: dict[str, str], in_force: str
) -> None:
    cfn = translated_template(TEMPLATE, parameters)
    environment = Resolver(cfn, parameters).resolve(
        cfn["Resources"]["BatchJobFunction"]["Properties"]["Environment"]["Variables"]
    )
    assert str(environment["BATCH_JOB_MIN_LINES"]) == in_force
