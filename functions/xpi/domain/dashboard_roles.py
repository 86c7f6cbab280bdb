"""The dashboard role a user signed in through the agency's identity provider gets, from the provider's
`groups` and `amr` (RFC 8176 authentication methods) claims. Pure: the sign-in trigger
(xpi.handlers.dashboard_sign_in) puts the answer in the ID token's `xpi_role` claim, and the identity
pool's rules give that role's credentials (template.yaml, DashboardIdentityPoolRoles)."""

import json
from typing import Literal

DashboardRole = Literal["admin", "operator", "auditor"]

# RFC 8176 values that name a factor beyond the password: one of them makes a sign-in multi-factor.
SECOND_FACTORS = frozenset({"mfa", "otp", "hwk", "swk", "sms", "tel", "fpt", "face", "iris", "retina"})


def claim_values(value: object) -> list[str]:
    """A list claim as Cognito hands a mapped attribute over: a list, its JSON text (`["a","b"]`), or
    text separated by commas or spaces. Anything else: no values."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return []
        return [str(v) for v in parsed] if isinstance(parsed, list) else []
    return [part for part in text.replace(",", " ").split() if part]


def dashboard_role(
    groups: list[str], amr: list[str], *, operator_group: str, auditor_group: str, admin_group: str
) -> DashboardRole | None:
    """admin only with a second factor; an admin without one gets the operator's read routes; no group of
    the three: no role (the identity pool then gives no credentials)."""
    if admin_group in groups and SECOND_FACTORS.intersection(amr):
        return "admin"
    if operator_group in groups or admin_group in groups:
        return "operator"
    if auditor_group in groups:
        return "auditor"
    return None
