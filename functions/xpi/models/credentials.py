"""The commercial credentials secret (a GovCloud Secrets Manager secret) and what is read from it.

The secret holds either IAM access keys of a commercial-account user or a Bedrock API key:
    {"type": "iam", "aws_access_key_id": "...", "aws_secret_access_key": "...", "aws_session_token": null}
    {"type": "api_key", "api_key": "..."}
Secret parts are SecretStr, so no repr, str or dump ever shows them; only the version id leaves.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter


class IamKeys(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["iam"] = "iam"
    aws_access_key_id: str
    aws_secret_access_key: SecretStr
    aws_session_token: SecretStr | None = None


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["api_key"]
    api_key: SecretStr


CommercialSecret = Annotated[IamKeys | ApiKey, Field(discriminator="type")]
COMMERCIAL_SECRET: TypeAdapter[IamKeys | ApiKey] = TypeAdapter(CommercialSecret)


class CommercialCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)
    version_id: str
    secret: CommercialSecret
