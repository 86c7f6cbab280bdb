"""The commercial credentials secret (a GovCloud Secrets Manager secret) and what is read from it.

The secret holds either IAM access keys of a commercial-account user or a Bedrock API key:
    {"type": "iam", "aws_access_key_id": "...", "aws_secret_access_key": "...", "aws_session_token": null}
    {"type": "api_key", "api_key": "...", "user_name": "...", "credential_id": "..."}
Secret parts are SecretStr, so no repr, str or dump ever shows them; only the version id leaves.
The rotation function (xpi.services.rotation) adds `created_at` (when the key was made) and
`previous_access_key_id` (the key it replaced, deleted once the grace period is over); of an API key
(a Bedrock service-specific credential of `user_name`), `created_at` and `previous_credential_id`.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter


class IamKeys(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["iam"] = "iam"
    aws_access_key_id: str
    aws_secret_access_key: SecretStr
    aws_session_token: SecretStr | None = None
    created_at: str | None = None  # ISO 8601, set by the rotation function
    previous_access_key_id: str | None = None


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["api_key"]
    api_key: SecretStr
    # Which service-specific credential of which commercial IAM user it is: what its rotation needs.
    user_name: str | None = None
    credential_id: str | None = None
    created_at: str | None = None  # ISO 8601, set by the rotation function
    previous_credential_id: str | None = None


CommercialSecret = Annotated[IamKeys | ApiKey, Field(discriminator="type")]
COMMERCIAL_SECRET: TypeAdapter[IamKeys | ApiKey] = TypeAdapter(CommercialSecret)


class CommercialCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)
    version_id: str
    secret: CommercialSecret
    source: Literal["secret", "roles-anywhere"] = "secret"


class RotationEvent(BaseModel):
    """What Secrets Manager sends the rotation function, once per step."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    step: Literal["createSecret", "setSecret", "testSecret", "finishSecret"] = Field(alias="Step")
    secret_id: str = Field(alias="SecretId")
    token: str = Field(alias="ClientRequestToken")


class AccessKeyMetadata(BaseModel):
    """One access key of the commercial IAM user, as ListAccessKeys reports it (no secret)."""

    model_config = ConfigDict(frozen=True)
    access_key_id: str
    status: str


class ServiceCredentialMetadata(BaseModel):
    """One Bedrock service-specific credential of a commercial IAM user, as listed (no secret)."""

    model_config = ConfigDict(frozen=True)
    credential_id: str
    status: str
