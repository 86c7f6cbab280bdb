"""Fine-grained permissions per caller and per project: which models, which data, how much per day.

A pure function of the routing document (signed, versioned, changed through the admin routes: the same
document that already held each caller's model allow-list and the prices). Lambda does not see an IAM
caller's principal tags, so the document states what the tags say in IAM: which callers (principal
globs, the API path's ARN and the queue path's `aws:userid`) belong to which projects, and per caller and
per project the models, the clearance and the daily budgets.

The decision is taken in order and stops at the first refusal:
1. project: the request's `caller.project` must be one of the caller's projects (none claimed: the
   caller's first project, or none);
2. model: the resolved model id must be on the caller's allow-list and on its project's;
3. clearance: every classification category found in the request must be cleared, by the caller's
   clearance and by its project's (each level that sets one), for how it is sent (`as_is` only when
   the policy let it through unchanged, `redacted` when the policy redacted it, `never`) and where
   (the model ids it may go to);
4. budget: the day's tokens and dollars, caller's and project's, reserved before the call; the atomic
   reservation is the adapter's (a conditional write), the limits and the estimate are decided here.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# A request's output tokens count against a budget at most this much before the call (max_tokens).
CHARS_PER_TOKEN = 4
# How long a day's usage item is kept after its day (its TTL): long enough for GET /v1/models and a look.
USAGE_KEPT = timedelta(days=2)

Send = Literal["as_is", "redacted", "never"]


class Refusal(StrEnum):
    """Why a request was refused before Bedrock: what lineage records (`access_refusal`)."""

    PROJECT = "project_not_allowed"
    MODEL = "model_not_allowed"
    CLEARANCE = "clearance"
    BUDGET = "budget"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clearance(_Config):
    """How content of the categories `category` matches (a glob over classification categories) may be
    sent, and to which models (globs over model ids)."""

    category: str = Field(description="glob over classification categories, e.g. 'pii.*'")
    send: Send = Field(description="as_is, redacted (only once the policy redacted it) or never")
    models: list[str] = Field(["*"], description="globs over the model ids this content may be sent to")


class Budget(_Config):
    """Limits per UTC day; a dimension left out is not limited."""

    tokens_per_day: Annotated[int, Field(ge=0)] | None = None
    usd_per_day: Annotated[float, Field(ge=0)] | None = None


class ProjectGrant(_Config):
    """A project's permissions (what its `xpi-project` principal tag grants): each set field narrows
    what its members' own rules allow."""

    allow: list[str] | None = Field(None, description="globs over approved model ids; None: no narrowing")
    clearance: list[Clearance] | None = None
    budget: Budget | None = None


@dataclass(frozen=True)
class Limit:
    """One budget a request counts against: its usage item's key (without the day) and its limits."""

    key: str
    budget: Budget


@dataclass(frozen=True)
class Charge:
    """What one request reserves (or, settling, adds) on one usage item of one day (`item`), with the
    limits a reservation must stay within (None: not limited; a settlement has none)."""

    item: str
    tokens: int
    usd: float
    expires_at: int
    tokens_limit: int | None = None
    usd_limit: float | None = None


@dataclass(frozen=True)
class Grant:
    """What one caller may do, acting for one project (None: for no project)."""

    caller: str  # the budget's name for this caller: its rule's name, or its principal glob
    project: str | None
    models: frozenset[str]
    clearances: tuple[tuple[Clearance, ...], ...]  # one entry per level that sets a clearance
    limits: tuple[Limit, ...]


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    detail: str  # for the reader of the code and its tests; never rendered (xpi.domain.errors)


def caller_key(name: str) -> str:
    return f"caller#{name}"


def project_key(name: str) -> str:
    return f"project#{name}"


def usage_item_key(key: str, day: date) -> str:
    return f"{key}#{day.isoformat()}"


def usage_expires_at(day: date) -> int:
    """Epoch seconds at which a day's usage item may go (the table's TTL)."""
    end = datetime(day.year, day.month, day.day) + timedelta(days=1) + USAGE_KEPT
    return int((end - datetime(1970, 1, 1)).total_seconds())


def cleared(clearances: tuple[tuple[Clearance, ...], ...], category: str, action: str, model_id: str) -> bool:
    """Whether content of `category`, handled by the policy with `action` (allow: sent as it is; redact:
    the redacted copy is sent), may go to `model_id` under every level's clearance."""
    for level in clearances:
        entry = next((c for c in level if fnmatchcase(category, c.category)), None)
        if entry is None or entry.send == "never":
            return False
        if entry.send == "redacted" and action != "redact":
            return False
        if not any(fnmatchcase(model_id, pattern) for pattern in entry.models):
            return False
    return True


def clearance_refusal(
    grant: Grant, model_id: str, categories: Mapping[str, int], actions: Mapping[str, str]
) -> Refused | None:
    """The first category the grant's clearance does not let go to `model_id` as the policy handled
    it; a category without a recorded action counts as sent as it is."""
    for category in sorted(categories):
        action = actions.get(category, "allow")
        if not cleared(grant.clearances, category, action, model_id):
            return Refused(Refusal.CLEARANCE, f"'{category}' ({action}) is not cleared for '{model_id}'")
    return None


def estimate(
    payload_bytes: int, max_tokens: int, usd_in_per_1k: float, usd_out_per_1k: float
) -> tuple[int, float]:
    """What a call may cost at most before it is made: its input (about four bytes a token of the stored
    request, which holds at least what is sent) and the most it may generate; and those at the prices."""
    input_tokens = math.ceil(payload_bytes / CHARS_PER_TOKEN)
    usd = (input_tokens * usd_in_per_1k + max_tokens * usd_out_per_1k) / 1000
    return input_tokens + max_tokens, round(usd, 8)


def charges(grant: Grant, tokens: int, usd: float, day: date) -> tuple[Charge, ...]:
    """What a request of this estimate reserves on each of its grant's budgets for `day`."""
    return tuple(
        Charge(
            item=usage_item_key(limit.key, day),
            tokens=tokens,
            usd=usd,
            expires_at=usage_expires_at(day),
            tokens_limit=limit.budget.tokens_per_day,
            usd_limit=limit.budget.usd_per_day,
        )
        for limit in grant.limits
    )


def fits(charge: Charge, used_tokens: int, used_usd: float) -> bool:
    """Whether `charge` may be reserved on top of the day's usage: what the adapter's conditional write
    checks atomically (the usage after it within every limit)."""
    if charge.tokens_limit is not None and used_tokens + charge.tokens > charge.tokens_limit:
        return False
    return charge.usd_limit is None or used_usd + charge.usd <= charge.usd_limit + 1e-9


def remaining(budget: Budget, used_tokens: int, used_usd: float) -> tuple[int | None, float | None]:
    """What is left of a day's budget (None: that dimension is not limited)."""
    tokens = None if budget.tokens_per_day is None else max(0, budget.tokens_per_day - used_tokens)
    usd = None if budget.usd_per_day is None else round(max(0.0, budget.usd_per_day - used_usd), 8)
    return tokens, usd
