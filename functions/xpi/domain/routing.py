"""Which model a request may reach, where, and at what price: a pure function of configuration.

The agency approves models (by id or inference profile id) and lists, per caller principal pattern,
which of them each caller may use. Aliases let producers ask for "default" or "fast" without knowing
ids. The first caller rule whose pattern matches the caller's principal applies. A caller rule and the
projects it belongs to also carry the fine-grained permissions (clearance, daily budgets:
xpi.domain.access); `grant_for` and `decide` apply them. A model is commercial (reached across the
partition) or GovCloud-native (`partition: govcloud`: the stack's own partition's Bedrock, called with
the function's role); the document's `routes` and `partition_policy` choose among them
(xpi.domain.strategies, `plan_route`).
"""

import json
from collections.abc import Mapping
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xpi.domain.access import (
    Budget,
    Clearance,
    Grant,
    Limit,
    ProjectGrant,
    Refusal,
    Refused,
    caller_key,
    clearance_refusal,
    project_key,
)
from xpi.domain.errors import ModelNotAllowedForCaller, ModelNotApproved
from xpi.domain.experiments import Experiment, applies, assign
from xpi.domain.pricing import batch_prices, cache_prices
from xpi.domain.strategies import (
    COMMERCIAL,
    Hop,
    Partition,
    PartitionPolicy,
    Plan,
    RouteContext,
    RoutingRule,
    apply_partition_policy,
    matches,
    ordered_targets,
    unique,
)
from xpi.models.request import InferenceRequest
from xpi.models.workflow import RequestHeader, Route, Usage


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovedModel(_Config):
    usd_per_1k_input_tokens: Annotated[float, Field(ge=0)] = 0.0
    usd_per_1k_output_tokens: Annotated[float, Field(ge=0)] = 0.0
    # Bedrock prompt caching's prices; None: the price table's line for the model (xpi.domain.pricing).
    usd_per_1k_cache_read_input_tokens: Annotated[float, Field(ge=0)] | None = None
    usd_per_1k_cache_write_input_tokens: Annotated[float, Field(ge=0)] | None = None
    api: Literal["converse", "invoke_model", "both"] = "both"
    partition: Partition = Field(
        COMMERCIAL, description="govcloud: offered by the stack's own partition's Bedrock (GovCloud-native)"
    )
    # This model's commercial quota in the region it is called in, overriding the stack's default
    # (BEDROCK_REQUESTS_PER_MINUTE / BEDROCK_TOKENS_PER_MINUTE); 0 turns that dimension's pacing off.
    requests_per_minute: Annotated[float, Field(ge=0)] | None = None
    tokens_per_minute: Annotated[float, Field(ge=0)] | None = None


class CallerRule(_Config):
    principal: str = Field(description="glob over the caller principal (ARN, SenderId or account)")
    allow: list[str] = Field(description="globs over approved model ids")
    name: str | None = Field(
        None,
        description="the caller's name for its budget: rules with one name are one caller (a role named by "
        "its ARN for the API and by its unique id for the queue); default: the principal glob",
    )
    projects: list[str] = Field(
        [], description="the projects this caller acts for (its xpi-project tag); the first is its default"
    )
    clearance: list[Clearance] | None = Field(
        None, description="which categories this caller may send, how and where; None: what policy allows"
    )
    budget: Budget | None = None
    cache_ttl_s: Annotated[int, Field(ge=1, le=24 * 3600)] | None = Field(
        None, description="answer this caller's deterministic requests from the response cache for this long"
    )


class RoutingConfig(_Config):
    version: Literal["1"] = "1"
    aliases: dict[str, str] = {}
    models: dict[str, ApprovedModel]
    callers: list[CallerRule]
    projects: dict[str, ProjectGrant] = {}
    routes: list[RoutingRule] = Field([], description="routing strategies, the first matching rule applies")
    partition_policy: PartitionPolicy = PartitionPolicy()
    experiments: list[Experiment] = Field(
        [], description="A/B experiments, tried before the routes: the first running one that applies"
    )

    @model_validator(mode="after")
    def _projects_are_defined(self) -> "RoutingConfig":
        for rule in self.callers:
            unknown = sorted(set(rule.projects) - set(self.projects))
            if unknown:
                raise ValueError(f"caller '{rule.principal}' names undefined projects {unknown}")
        return self

    @model_validator(mode="after")
    def _route_targets_are_approved(self) -> "RoutingConfig":
        names = [rule.name for rule in self.routes]
        if len(set(names)) != len(names):
            raise ValueError("routing rules need distinct names")
        for rule in self.routes:
            unknown = sorted({t.model for t in rule.strategy.targets} - set(self.models))
            if unknown:
                raise ValueError(f"routing rule '{rule.name}' names models that are not approved: {unknown}")
        return self

    @model_validator(mode="after")
    def _experiments_stay_within_approval(self) -> "RoutingConfig":
        """An experiment never names a model a caller it can reach may not use (a caller or project may
        use all its variants or none), nor a commercial model for content kept in GovCloud."""
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names) or set(names) & {r.name for r in self.routes}:
            raise ValueError("experiments need distinct names, none a routing rule's")
        for experiment in self.experiments:
            models = {v.model for v in experiment.variants}
            unknown = sorted(models - set(self.models))
            if unknown:
                raise ValueError(
                    f"experiment '{experiment.name}' names models that are not approved: {unknown}"
                )
            apis = {self.models[m].api for m in models} - {"both"}
            if len(apis) > 1:
                raise ValueError(
                    f"experiment '{experiment.name}' mixes converse-only and invoke_model-only models"
                )
            kept_in_govcloud = any(
                fnmatchcase(category, pattern) or fnmatchcase(pattern, category)
                for category in experiment.when.categories or []
                for pattern in self.partition_policy.govcloud_only
            )
            if kept_in_govcloud and any(self.models[m].partition != "govcloud" for m in models):
                raise ValueError(
                    f"experiment '{experiment.name}' targets content kept in GovCloud, "
                    "yet has a commercial variant"
                )
            for rule in self.callers:
                own = {m for m in models if any(fnmatchcase(m, p) for p in rule.allow)}
                narrowed = [own] + [
                    {m for m in own if any(fnmatchcase(m, p) for p in grant.allow)}
                    for grant in (self.projects.get(p) for p in rule.projects)
                    if grant is not None and grant.allow is not None
                ]
                for allowed in narrowed:
                    if allowed and allowed != models:
                        raise ValueError(
                            f"experiment '{experiment.name}': caller '{rule.principal}' may use "
                            f"{sorted(allowed)} but not {sorted(models - allowed)}"
                        )
        return self

    def caller_rule(self, principal: str) -> CallerRule | None:
        return next((r for r in self.callers if fnmatchcase(principal, r.principal)), None)

    def resolve_alias(self, requested: str) -> str:
        return self.aliases.get(requested, requested)

    def models_for(self, principal: str) -> list[str]:
        rule = self.caller_rule(principal)
        if rule is None:
            return []
        return sorted(m for m in self.models if any(fnmatchcase(m, pattern) for pattern in rule.allow))


@cache
def load_default_routing() -> RoutingConfig:
    text = resources.files("xpi.config").joinpath("routing.json").read_text(encoding="utf-8")
    return RoutingConfig.model_validate(json.loads(text))


def resolve_route(
    request: InferenceRequest | RequestHeader,
    principal: str,
    config: RoutingConfig,
    region: str,
    endpoint: str,
) -> Route:
    model_id = config.resolve_alias(request.model)
    approved = config.models.get(model_id)
    if approved is None:
        raise ModelNotApproved(f"model '{request.model}' is not on this deployment's approved list")
    if approved.api not in ("both", request.api):
        raise ModelNotApproved(f"model '{model_id}' is approved for {approved.api} only, not {request.api}")
    if model_id not in config.models_for(principal):
        raise ModelNotAllowedForCaller(f"caller '{principal}' may not use model '{model_id}'")
    return Route(model_id=model_id, region=region, endpoint=endpoint, api=request.api)


def plan_route(config: RoutingConfig, context: RouteContext, *, experiments: bool = True) -> Plan:
    """Where the request may be answered, in order (xpi.domain.strategies): the variant of the first
    running experiment that applies (`experiments`: the route step passes False when the request may not
    use its variant), else the first rule that matches the requested model and the request, else the
    alias table; then the partition policy."""
    experiment = next(
        (e for e in config.experiments if experiments and applies(e, context, context.at)), None
    )
    if experiment is not None:
        variant = assign(experiment, context)
        partition = config.models[variant.model].partition
        hop = Hop(variant.model, partition, None)
        return Plan(
            experiment.name,
            unique(apply_partition_policy(config.partition_policy, [hop], context)),
            experiment=experiment.name,
            variant=variant.name,
        )
    rule = next(
        (
            r
            for r in config.routes
            if any(fnmatchcase(context.requested, pattern) for pattern in r.models)
            and matches(r.when, context)
        ),
        None,
    )
    if rule is None:
        model_id = config.resolve_alias(context.requested)
        approved = config.models.get(model_id)
        hops = [Hop(model_id, approved.partition if approved else COMMERCIAL, None)]
    else:
        hops = []
        for target in ordered_targets(rule.strategy, context, rule.name):
            partition = config.models[target.model].partition
            hops.append(Hop(target.model, partition, target.region if partition == COMMERCIAL else None))
    return Plan(
        rule.name if rule else None, unique(apply_partition_policy(config.partition_policy, hops, context))
    )


def candidate_plans(config: RoutingConfig, context: RouteContext) -> tuple[Plan, ...]:
    """The plans the route step may take, in order: an experiment's variant (when one applies), then the
    plan without experiments (a request that may not use its variant leaves the experiment)."""
    plan = plan_route(config, context)
    if plan.experiment is None:
        return (plan,)
    return plan, plan_route(config, context, experiments=False)


def estimate_cost(config: RoutingConfig, model_id: str, usage: Usage, *, batch: bool = False) -> float:
    """What `usage` of `model_id` costs: on-demand, or (`batch`) as the answer of a Bedrock batch
    inference job, at the price table's batch price (xpi.domain.pricing.batch_prices)."""
    price = config.models.get(model_id)
    if price is None:
        return 0.0
    input_price, output_price = price.usd_per_1k_input_tokens, price.usd_per_1k_output_tokens
    if batch:
        input_price, output_price = batch_prices(model_id, input_price, output_price)
    read, write = cache_prices(model_id, price.usd_per_1k_input_tokens)
    if price.usd_per_1k_cache_read_input_tokens is not None:
        read = price.usd_per_1k_cache_read_input_tokens
    if price.usd_per_1k_cache_write_input_tokens is not None:
        write = price.usd_per_1k_cache_write_input_tokens
    cost = (
        usage.input_tokens * input_price
        + usage.output_tokens * output_price
        + (usage.cache_read_input_tokens or 0) * read
        + (usage.cache_write_input_tokens or 0) * write
    ) / 1000
    return round(cost, 8)


def _allowed(models: dict[str, ApprovedModel], patterns: list[str]) -> frozenset[str]:
    return frozenset(m for m in models if any(fnmatchcase(m, pattern) for pattern in patterns))


def grant_for(config: RoutingConfig, principal: str, project: str | None) -> Grant | Refused:
    """What `principal` may do acting for `project` (None: its default project, if it has any)."""
    rule = config.caller_rule(principal)
    if rule is None:
        return Refused(Refusal.MODEL, f"no caller rule matches '{principal}'")
    if not rule.projects:
        project = None  # a caller bound to no project: the request's project is its own metadata only
    elif project is None:
        project = rule.projects[0]
    elif project not in rule.projects:
        return Refused(Refusal.PROJECT, f"caller '{principal}' does not act for project '{project}'")
    models = _allowed(config.models, rule.allow)
    clearances = [tuple(rule.clearance)] if rule.clearance is not None else []
    caller = rule.name or rule.principal
    limits = [Limit(caller_key(caller), rule.budget)] if rule.budget is not None else []
    grant = config.projects.get(project) if project is not None else None
    if project is not None and grant is not None:
        if grant.allow is not None:
            models &= _allowed(config.models, grant.allow)
        if grant.clearance is not None:
            clearances.append(tuple(grant.clearance))
        if grant.budget is not None:
            limits.append(Limit(project_key(project), grant.budget))
    return Grant(caller, project, models, tuple(clearances), tuple(limits))


def decide(
    config: RoutingConfig,
    principal: str,
    *,
    project: str | None,
    model_id: str,
    categories: Mapping[str, int],
    actions: Mapping[str, str],
) -> Grant | Refused:
    """Whether `principal` may send this request (its categories, as the policy handled them: `actions`)
    to `model_id` for `project`: the grant whose budgets it then reserves, or why not. The one decision
    of the route step and of POST /v1/invoke."""
    grant = grant_for(config, principal, project)
    if isinstance(grant, Refused):
        return grant
    if model_id not in grant.models:
        return Refused(Refusal.MODEL, f"caller '{principal}' may not use model '{model_id}'")
    return clearance_refusal(grant, model_id, categories, actions) or grant
