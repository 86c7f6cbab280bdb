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


def test_a_functions_bytecode_is_deployed_with_its_sources(tmp_path: Path) -> None:
    # GIVEN a built function folder with the bytecode `make bytecode` put beside its sources
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-313.pyc").write_bytes(b"compiled")

    # WHEN it is zipped for moto's Lambda and unpacked where the runtime runs it
    digest, body = deploy._zipped(tmp_path, tmp_path.parent / "zips")
    code_dir = deploy.code_dir_for(body, digest, tmp_path.parent / "code")

    # THEN the bytecode is there, as `sam deploy` ships it (Lambda's /var/task is read-only: what is not
    # shipped compiled is compiled again at every cold start)
    assert (code_dir / "pkg" / "__pycache__" / "mod.cpython-313.pyc").read_bytes() == b"compiled"
    assert (code_dir / "pkg" / "mod.py").read_text() == "X = 1\n"


def test_new_bytecode_is_new_code(tmp_path: Path) -> None:
    # GIVEN a deployed folder
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "mod.py").write_text("X = 1\n")
    (tmp_path / "__pycache__" / "mod.cpython-313.pyc").write_bytes(b"first")
    first, _ = deploy._zipped(tmp_path, tmp_path.parent / "zips")

    # WHEN only its bytecode changes (compiled again)
    (tmp_path / "__pycache__" / "mod.cpython-313.pyc").write_bytes(b"second")
    second, body = deploy._zipped(tmp_path, tmp_path.parent / "zips")

    # THEN it is another zip, not the cached one with the old bytecode
    assert second != first
    assert (
        deploy.code_dir_for(body, second, tmp_path.parent / "code")
        .joinpath("__pycache__", "mod.cpython-313.pyc")
        .read_bytes()
        == b"second"
    )
