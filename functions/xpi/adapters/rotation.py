"""What rotating the commercial credentials touches: the secret's versions (GovCloud Secrets Manager),
the commercial IAM user's access keys (commercial IAM, over the same egress as Bedrock) and one probe
call to commercial Bedrock with the new key.

Errors leave as CredentialRotationFailed / CredentialsRejected with the service's error code only:
an IAM or Bedrock message can name the commercial account and user.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from xpi.adapters import aws
from xpi.adapters.bedrock import CREDENTIALS
from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import AccessKeyMetadata, IamKeys
from xpi.settings import check_endpoint

NOT_FOUND = {"ResourceNotFoundException"}
# The commercial IAM API's global endpoint is in us-east-1 (its SigV4 scope).
IAM_REGION = "us-east-1"
PROBE_PROMPT = [{"role": "user", "content": [{"text": "ping"}]}]
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=20)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


class SecretsManagerRotatingSecret:
    def stages(self, secret_id: str) -> Mapping[str, Sequence[str]]:
        described = aws.secretsmanager().describe_secret(SecretId=secret_id)
        return {version: list(labels) for version, labels in described.get("VersionIdsToStages", {}).items()}

    def value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> str | None:
        options: dict[str, str] = {}
        if stage:
            options["VersionStage"] = stage
        if version_id:
            options["VersionId"] = version_id
        try:
            response = aws.secretsmanager().get_secret_value(SecretId=secret_id, **options)
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                return None
            raise
        return response.get("SecretString")

    def put_pending(self, secret_id: str, token: str, value: str) -> None:
        aws.secretsmanager().put_secret_value(
            SecretId=secret_id, ClientRequestToken=token, SecretString=value, VersionStages=["AWSPENDING"]
        )

    def promote(self, secret_id: str, token: str, current_version_id: str | None) -> None:
        options = {"RemoveFromVersionId": current_version_id} if current_version_id else {}
        aws.secretsmanager().update_secret_version_stage(
            SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token, **options
        )


class BotoCommercialIam:
    def __init__(self, endpoint: str) -> None:
        self._endpoint = check_endpoint(endpoint)

    def _client(self, signer: IamKeys) -> Any:
        return boto3.client(
            "iam",
            region_name=IAM_REGION,
            endpoint_url=self._endpoint or None,
            aws_access_key_id=signer.aws_access_key_id,
            aws_secret_access_key=signer.aws_secret_access_key.get_secret_value(),
            config=_CONFIG,
        )

    def _call(self, signer: IamKeys, operation: str, **arguments: str) -> Any:
        try:
            return getattr(self._client(signer), operation)(**arguments)
        except ClientError as error:
            raise CredentialRotationFailed(f"commercial IAM answered {_code(error)} to {operation}") from None
        except BotoCoreError as error:
            raise CredentialRotationFailed(f"{type(error).__name__} reaching commercial IAM") from None

    def list_access_keys(self, signer: IamKeys) -> list[AccessKeyMetadata]:
        listed = self._call(signer, "list_access_keys")["AccessKeyMetadata"]
        return [AccessKeyMetadata(access_key_id=k["AccessKeyId"], status=k["Status"]) for k in listed]

    def create_access_key(self, signer: IamKeys) -> IamKeys:
        key = self._call(signer, "create_access_key")["AccessKey"]
        return IamKeys(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])

    def delete_access_key(self, signer: IamKeys, access_key_id: str) -> None:
        try:
            self._client(signer).delete_access_key(AccessKeyId=access_key_id)
        except ClientError as error:
            if _code(error) != "NoSuchEntity":
                raise CredentialRotationFailed(f"commercial IAM answered {_code(error)}") from None


class BedrockProbe:
    """A Converse call of one output token on the probe model: what a request does, at the least cost."""

    def __init__(self, region: str, endpoint: str, model_id: str) -> None:
        self._region = region
        self._endpoint = check_endpoint(endpoint)
        self._model_id = model_id

    def check(self, keys: IamKeys) -> None:
        client: Any = boto3.client(
            "bedrock-runtime",
            region_name=self._region,
            endpoint_url=self._endpoint or None,
            aws_access_key_id=keys.aws_access_key_id,
            aws_secret_access_key=keys.aws_secret_access_key.get_secret_value(),
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=30),
        )
        try:
            client.converse(modelId=self._model_id, messages=PROBE_PROMPT, inferenceConfig={"maxTokens": 1})
        except ClientError as error:
            code = _code(error)
            if code in CREDENTIALS:
                raise CredentialsRejected("the probe call was refused", bedrock_code=code) from None
            raise CredentialRotationFailed(f"the probe call failed: {code}") from None
        except BotoCoreError as error:
            raise CredentialRotationFailed(f"{type(error).__name__} reaching commercial Bedrock") from None
