"""Routing strategies: which approved models (and where) may answer one request, in which order.

A pure function of the routing document and what is known of the request once it is classified. The
document's `routes` are rules tried in order; the first whose requested-model globs and condition match
gives the strategy:

- `single`: one target;
- `fallback`: the targets in order, each tried when the one before could not answer (throttled, out,
  the model not enabled), never after one has answered;
- `weighted`: one target drawn by weight (a hash of the request id, so a retried step draws the same;
  or, `sticky: caller` or `project`, of the caller's principal or project, so each keeps one target),
  the others after it as fallbacks, heavier first.

No rule matching: the alias table, one target, as before rules existed.

Then the partition policy: a request holding a category `govcloud_only` names (for example `cui.*`) keeps
only GovCloud-native targets (none left: the request is refused, never sent across), and a caller tag
(`prefer_govcloud_tag`, value "true": the task says GovCloud's models suffice) moves the GovCloud-native
targets first.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Partition = Literal["commercial", "govcloud"]
GOVCLOUD: Partition = "govcloud"
COMMERCIAL: Partition = "commercial"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Config):
    model: str = Field(description="an approved model id or inference profile id")
    region: str | None = Field(
        None, description="the commercial region to call it in (None: the stack's); unused in GovCloud"
    )
    weight: Annotated[float, Field(gt=0)] = 1.0


class Strategy(_Config):
    kind: Literal["single", "fallback", "weighted"]
    targets: Annotated[list[Target], Field(min_length=1)]
    sticky: Literal["request", "caller", "project"] = Field(
        "request",
        description="weighted: what the draw is fixed by: each request, or every request of one caller "
        "(principal) or one project getting the same target (an experiment's variant)",
    )

    @model_validator(mode="after")
    def _single_has_one_target(self) -> "Strategy":
        if self.kind == "single" and len(self.targets) != 1:
            raise ValueError("a single strategy names exactly one target")
        return self


class Condition(_Config):
    """What a rule applies to; every field set must hold (None: not a condition)."""

    categories: list[str] | None = Field(None, description="globs: any classification category matching")
    callers: list[str] | None = Field(None, description="globs over the caller principal")
    projects: list[str] | None = Field(None, description="the request's project (its caller.project)")
    tags: dict[str, str] | None = Field(None, description="caller tags, each value a glob; all must match")
    min_request_bytes: Annotated[int, Field(ge=0)] | None = None
    max_request_bytes: Annotated[int, Field(ge=0)] | None = None


class RoutingRule(_Config):
    name: str
    models: list[str] = Field(["*"], description="globs over the model (or alias) the request asks for")
    when: Condition = Condition()
    strategy: Strategy


# Classification markings are never sent anywhere, GovCloud included: no partition policy reaches them.
_CLASSIFIED_PROBES = ("classified.banner", "classified.portion", "classified.marking", "classified.x")


class PartitionPolicy(_Config):
    govcloud_only: list[str] = Field(
        [],
        description="category globs whose requests go only to GovCloud-native models, never across (the "
        "policy's block of them is lifted for those models only); never classification markings",
    )
    prefer_govcloud_tag: str = Field(
        "xpi-govcloud-sufficient",
        description="a caller tag whose value 'true' puts GovCloud-native targets first",
    )

    @model_validator(mode="after")
    def _never_classified(self) -> "PartitionPolicy":
        for pattern in self.govcloud_only:
            if any(fnmatchcase(probe, pattern) for probe in _CLASSIFIED_PROBES):
                raise ValueError(f"govcloud_only '{pattern}' reaches classification markings, always blocked")
        return self


@dataclass(frozen=True)
class RouteContext:
    """What the route step knows of a request when it chooses."""

    request_id: str
    requested: str
    principal: str
    project: str | None = None
    tags: Mapping[str, str] | None = None
    categories: Mapping[str, int] | None = None
    request_bytes: int = 0
    at: datetime | None = None  # when the request was received: an experiment's start and stop


@dataclass(frozen=True)
class Hop:
    model_id: str
    partition: Partition
    region: str | None  # a commercial hop's region override (None: the stack's commercial region)


@dataclass(frozen=True)
class Plan:
    strategy: str | None  # the rule's name; None: the alias table
    hops: tuple[Hop, ...]  # empty: the partition policy left nothing (the request stays unsent)
    experiment: str | None = None  # the A/B experiment that chose the hop (xpi.domain.experiments)
    variant: str | None = None


def matches(condition: Condition, context: RouteContext) -> bool:
    categories = context.categories or {}
    tags = context.tags or {}
    if condition.categories is not None and not any(
        fnmatchcase(category, pattern) for category in categories for pattern in condition.categories
    ):
        return False
    if condition.callers is not None and not any(
        fnmatchcase(context.principal, pattern) for pattern in condition.callers
    ):
        return False
    if condition.projects is not None and context.project not in condition.projects:
        return False
    if condition.tags is not None and not all(
        key in tags and fnmatchcase(tags[key], pattern) for key, pattern in condition.tags.items()
    ):
        return False
    if condition.min_request_bytes is not None and context.request_bytes < condition.min_request_bytes:
        return False
    return condition.max_request_bytes is None or context.request_bytes <= condition.max_request_bytes


def draw(request_id: str, salt: str) -> float:
    """A number in [0, 1) fixed by the request id (and the rule), spread evenly over request ids."""
    digest = hashlib.sha256(f"{salt}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def weighted_order(targets: list[Target], point: float) -> list[Target]:
    """The target `point` falls on when [0, 1) is cut in proportion to the weights, then the others,
    heavier first (their document order among equals)."""
    total = sum(t.weight for t in targets)
    cumulative = 0.0
    chosen = len(targets) - 1
    for index, target in enumerate(targets):
        cumulative += target.weight / total
        if point < cumulative:
            chosen = index
            break
    rest = sorted((t for i, t in enumerate(targets) if i != chosen), key=lambda t: -t.weight)
    return [targets[chosen], *rest]


def draw_key(strategy: Strategy, context: "RouteContext") -> str:
    """What fixes a weighted draw: the request id, the caller's principal, or its project (a request
    without one: its caller)."""
    if strategy.sticky == "caller":
        return f"caller\x00{context.principal}"
    if strategy.sticky == "project":
        return f"project\x00{context.project}" if context.project else f"caller\x00{context.principal}"
    return context.request_id


def ordered_targets(strategy: Strategy, context: "RouteContext", salt: str) -> list[Target]:
    if strategy.kind == "weighted":
        return weighted_order(strategy.targets, draw(draw_key(strategy, context), salt))
    return list(strategy.targets)


def stays_in_govcloud(policy: PartitionPolicy, categories: Mapping[str, int] | None) -> bool:
    return any(
        fnmatchcase(category, pattern) for category in categories or {} for pattern in policy.govcloud_only
    )


def apply_partition_policy(policy: PartitionPolicy, hops: list[Hop], context: RouteContext) -> list[Hop]:
    if stays_in_govcloud(policy, context.categories):
        return [h for h in hops if h.partition == GOVCLOUD]
    if (context.tags or {}).get(policy.prefer_govcloud_tag, "").lower() == "true":
        return [h for h in hops if h.partition == GOVCLOUD] + [h for h in hops if h.partition != GOVCLOUD]
    return hops


def unique(hops: list[Hop]) -> tuple[Hop, ...]:
    """Each hop once (the first time it is named): one place is never asked twice for one request."""
    seen: set[Hop] = set()
    kept = []
    for hop in hops:
        if hop not in seen:
            seen.add(hop)
            kept.append(hop)
    return tuple(kept)
