"""The local deployer's handling of what moto's CloudFormation lacks (tools/xpi_tools/local/deploy.py)."""

import json
from pathlib import Path

from xpi_tools.local import deploy


def test_a_cloudformation_state_machines_definition_file_is_inlined(tmp_path: Path) -> None:
    # GIVEN a plain AWS::StepFunctions::StateMachine (the type that takes EncryptionConfiguration)
    (tmp_path / "statemachines").mkdir()
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    (tmp_path / "statemachines" / "x.asl.json").write_text(json.dumps(definition))
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionS3Location": "statemachines/x.asl.json"},
            }
        }
    }

    # WHEN
    deploy._inline_state_machines(template, tmp_path)

    # THEN the definition is inline, as `sam deploy` would have uploaded it
    assert template["Resources"]["Machine"]["Properties"] == {"Definition": definition}


def test_an_encryption_configuration_is_passed_to_the_api_in_its_spelling() -> None:
    encryption = {
        "Type": "CUSTOMER_MANAGED_KMS_KEY",
        "KmsKeyId": "arn:k",
        "KmsDataKeyReusePeriodSeconds": 300,
    }

    assert deploy._api_encryption(encryption) == {
        "type": "CUSTOMER_MANAGED_KMS_KEY",
        "kmsKeyId": "arn:k",
        "kmsDataKeyReusePeriodSeconds": 300,
    }


def test_a_plain_generated_secret_is_a_random_string_of_its_length() -> None:
    # The hash key's GenerateSecretString has no template: its value is the generated string itself.
    created: list[dict[str, str]] = []

    class FakeSecrets:
        def create_secret(self, **arguments: str) -> dict[str, str]:
            created.append(arguments)
            return {"ARN": f"arn:secret:{arguments['Name']}"}

    class FakeSession:
        region_name = "us-gov-west-1"

        def client(self, service: str, endpoint_url: str) -> FakeSecrets:
            return FakeSecrets()

    cfn = {
        "Resources": {
            "HashKey": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {"GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True}},
            },
            "User": {"Type": "X", "Properties": {"Secret": {"Ref": "HashKey"}}},
        }
    }

    result = deploy.prepare_for_moto(cfn, "xpi-local", FakeSession(), "http://moto")  # type: ignore[arg-type]

    [secret] = created
    assert len(secret["SecretString"]) == 64 and not secret["SecretString"].startswith("{")
    assert result["Resources"]["User"]["Properties"]["Secret"] == "arn:secret:xpi-local-HashKey"
