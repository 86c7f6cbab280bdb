"""sign-in.json: what the dashboard page needs to sign in (sign-in.js reads it)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict


class SignInConfig(BaseModel):
    """With signIn "none" (DashboardSignIn=none) the rest is empty: the page is reached through
    `xpi dashboard` instead."""

    model_config = ConfigDict(frozen=True)

    signIn: Literal["oidc", "none"]  # noqa: N815 - the page's JSON names
    region: str = ""
    signInUrl: str = ""  # noqa: N815
    clientId: str = ""  # noqa: N815
    identityPoolUrl: str = ""  # noqa: N815
    identityPoolId: str = ""  # noqa: N815
    userPoolProvider: str = ""  # noqa: N815
    identityProvider: str = ""  # noqa: N815
