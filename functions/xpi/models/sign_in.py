"""Cognito's pre token generation event (trigger version 1), the parts the dashboard sign-in reads."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PreTokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_attributes: dict[str, Any] = Field(default_factory=dict, alias="userAttributes")


class PreTokenEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    trigger_source: str = Field("", alias="triggerSource")
    request: PreTokenRequest = Field(default_factory=PreTokenRequest)
