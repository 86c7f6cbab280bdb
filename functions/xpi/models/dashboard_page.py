"""sign-in.json: what the dashboard page needs to sign in (sign-in.js reads it)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict


class SignInConfig(BaseModel):
    """With signIn "none" (DashboardSignIn=none) the rest is empty: the page is reached through
    `xpi dashboard` instead."""

    model_config = ConfigDict(frozen=True)

    signIn: Literal["oidc", "none"]
    region: str = ""
    signInUrl: str = ""
    clientId: str = ""
    identityPoolUrl: str = ""
    identityPoolId: str = ""
    userPoolProvider: str = ""
    identityProvider: str = ""
