"""Environment read once, into a validated model.

Every function receives the same environment from the template's Globals; a function that needs a
setting asks for it with `require`, so a missing variable fails with a clear message naming it.
"""

from functools import cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SettingMissingError(RuntimeError):
    """A function needs an environment variable the template did not give it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    lineage_table: str = Field("", alias="LINEAGE_TABLE")
    idempotency_table: str = Field("", alias="IDEMPOTENCY_TABLE")
    event_bus_name: str = Field("", alias="EVENT_BUS_NAME")
    event_source: str = Field("xpi.inference", alias="EVENT_SOURCE")
    artifacts_bucket: str = Field("", alias="ARTIFACTS_BUCKET")
    state_machine_arn: str = Field("", alias="STATE_MACHINE_ARN")
    credentials_secret_id: str = Field("", alias="COMMERCIAL_CREDENTIALS_SECRET_ID")
    commercial_region: str = Field("us-east-1", alias="COMMERCIAL_REGION")
    # Empty means the public commercial endpoint for commercial_region (what a deployment uses).
    commercial_bedrock_endpoint: str = Field("", alias="COMMERCIAL_BEDROCK_ENDPOINT")
    credentials_max_age_s: Annotated[int, Field(ge=0, le=3600)] = Field(300, alias="CREDENTIALS_MAX_AGE_S")
    config_max_age_s: Annotated[int, Field(ge=0, le=3600)] = Field(60, alias="CONFIG_MAX_AGE_S")
    lineage_retention_days: Annotated[int, Field(ge=1)] = Field(365, alias="LINEAGE_RETENTION_DAYS")
    inline_output_max_bytes: Annotated[int, Field(ge=1024, le=200_000)] = Field(
        32_768, alias="INLINE_OUTPUT_MAX_BYTES"
    )
    bedrock_timeout_s: Annotated[int, Field(ge=1, le=900)] = Field(60, alias="BEDROCK_TIMEOUT_S")
    policy_parameter_name: str = Field("", alias="POLICY_PARAMETER_NAME")
    routing_parameter_name: str = Field("", alias="ROUTING_PARAMETER_NAME")

    @property
    def bedrock_endpoint(self) -> str:
        """The Bedrock Runtime endpoint actually called (recorded in lineage): the override, else the
        public endpoint of the commercial region."""
        return (
            self.commercial_bedrock_endpoint
            or f"https://bedrock-runtime.{self.commercial_region}.amazonaws.com"
        )

    def require(self, field: str) -> str:
        value = getattr(self, field)
        if not value:
            alias = type(self).model_fields[field].alias
            raise SettingMissingError(f"environment variable {alias} is not set for this function")
        return str(value)


@cache
def get_settings() -> Settings:
    import os

    return Settings.model_validate(dict(os.environ))
