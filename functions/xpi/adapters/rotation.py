"""What rotating the commercial credentials touches: the secret's versions (GovCloud Secrets Manager),
the commercial IAM user's access keys or Bedrock service-specific credentials (commercial IAM, over the
same egress as Bedrock) and one probe call to commercial Bedrock with the new key (SigV4, or bearer).

Errors leave as CredentialRotationFailed / CredentialsRejected with the service's error code only:
an IAM or Bedrock message can name the commercial account and user.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from xpi.adapters import aws
from xpi.adapters.bedrock import CREDENTIALS, _StaticToken
from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import AccessKeyMetadata, ApiKey, IamKeys, ServiceCredentialMetadata
from xpi.settings import check_endpoint

NOT_FOUND = {"ResourceNotFoundException"}
# The commercial IAM API's global endpoint is in us-east-1 (its SigV4 scope).
IAM_REGION = "us-east-1"
BEDROCK_SERVICE = "bedrock.amazonaws.com"  # the service of a long-term Bedrock API key
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

    # -- Bedrock service-specific credentials (long-term Bedrock API keys) of another user ----------

    def list_credentials(self, signer: IamKeys, user_name: str) -> list[ServiceCredentialMetadata]:
        listed = self._call(
            signer, "list_service_specific_credentials", UserName=user_name, ServiceName=BEDROCK_SERVICE
        )["ServiceSpecificCredentials"]
        return [
            ServiceCredentialMetadata(credential_id=c["ServiceSpecificCredentialId"], status=c["Status"])
            for c in listed
        ]

    def create_credential(self, signer: IamKeys, user_name: str) -> ApiKey:
        created = self._call(
            signer, "create_service_specific_credential", UserName=user_name, ServiceName=BEDROCK_SERVICE
        )["ServiceSpecificCredential"]
        return ApiKey(
            type="api_key",
            api_key=created["ServiceCredentialSecret"],
            user_name=user_name,
            credential_id=created["ServiceSpecificCredentialId"],
        )

    def delete_credential(self, signer: IamKeys, user_name: str, credential_id: str) -> None:
        try:
            self._client(signer).delete_service_specific_credential(
                UserName=user_name, ServiceSpecificCredentialId=credential_id
            )
        except ClientError as error:
            if _code(error) != "NoSuchEntity":
                raise CredentialRotationFailed(f"commercial IAM answered {_code(error)}") from None
        except BotoCoreError as error:
            raise CredentialRotationFailed(f"{type(error).__name__} reaching commercial IAM") from None


class BedrockProbe:
    """A Converse call of one output token on the probe model: what a request does, at the least cost."""

    def __init__(self, region: str, endpoint: str, model_id: str) -> None:
        self._region = region
        self._endpoint = check_endpoint(endpoint)
        self._model_id = model_id

    def check(self, keys: IamKeys | ApiKey) -> None:
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=30)
        client: Any
        if isinstance(keys, ApiKey):  # a bearer token, as the invoke step sends it
            session = botocore.session.Session()
            session.register_component("token_provider", _StaticToken(keys.api_key.get_secret_value()))
            client = boto3.Session(botocore_session=session).client(
                "bedrock-runtime",
                region_name=self._region,
                endpoint_url=self._endpoint or None,
                config=config.merge(Config(signature_version="bearer")),
            )
        else:
            client = boto3.client(
                "bedrock-runtime",
                region_name=self._region,
                endpoint_url=self._endpoint or None,
                aws_access_key_id=keys.aws_access_key_id,
                aws_secret_access_key=keys.aws_secret_access_key.get_secret_value(),
                config=config,
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
