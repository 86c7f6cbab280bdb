"""The classification policy: what happens to each category of finding, per model.

A policy is configuration (shipped default in ``xpi/policy/default.json``, deployed copy in SSM Parameter
Store) validated by :class:`Policy`. The decision for a request is the most restrictive action over its
findings: ``block`` > ``redact`` > ``allow``.

Resolution of one finding's action, first match wins:

1. the first ``model_rules`` entry whose ``models`` glob matches the model id (or, for an ARN, the part
   after its last ``/``) and whose ``categories`` glob matches the category;
2. the ``categories`` entry equal to the category;
3. the longest ``categories`` glob key that matches the category (``pii.*``);
4. ``default_action`` (``block``: a category nobody configured fails closed).

The floor (:data:`FLOOR_BLOCKED`) comes after all of that and no configuration lowers it: a finding of a
classification marking or of CUI is blocked whatever the policy says. A policy that tries (an ``allow`` or
``redact`` whose category pattern can reach a floor category, or ``default_action: allow``) does not
validate, so it is refused when an admin stores it and when a loader reads it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "ACTION_RANK",
    "COMPREHEND_ENTITY_TYPES",
    "FLOOR_BLOCKED",
    "FLOOR_RULE",
    "Action",
    "ComprehendEntityType",
    "ComprehendSettings",
    "ModelRule",
    "Policy",
    "load_default_policy",
    "most_restrictive",
    "policy_json_schema",
]


class Action(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"


ACTION_RANK: dict[str, int] = {Action.ALLOW: 0, Action.REDACT: 1, Action.BLOCK: 2}

# The policy floor: category families every policy blocks (classification markings and CUI). Checked after
# the configured policy, so even a policy that got past validation cannot send them.
FLOOR_BLOCKED: tuple[str, ...] = ("classified", "cui")
FLOOR_RULE = "floor"  # the rule name an assessment's reasons show for a floor block
# Names a category pattern is tried against to find whether it reaches the floor: every category the
# classifier emits in the floor families today, plus a stand-in for one added later.
_FLOOR_PROBES: tuple[str, ...] = tuple(
    f"{family}.{name}"
    for family in FLOOR_BLOCKED
    for name in ("banner", "portion", "authority_block", "specified", "designation_indicator", "legacy", "x")
)


def in_floor(category: str) -> bool:
    """Whether ``category`` belongs to a family the floor blocks."""
    return category.split(".", 1)[0] in FLOOR_BLOCKED


def _reaches_floor(pattern: str) -> bool:
    """Whether a category glob can match a floor category (``*``, ``c*``, ``cui.*``, ``*.banner``...)."""
    if pattern.split(".", 1)[0] in FLOOR_BLOCKED:
        return True
    return any(fnmatchcase(probe, pattern) for probe in _FLOOR_PROBES)


# Entity types Amazon Comprehend DetectPiiEntities can return.
ComprehendEntityType = Literal[
    "BANK_ACCOUNT_NUMBER", "BANK_ROUTING", "CREDIT_DEBIT_NUMBER", "CREDIT_DEBIT_CVV", "CREDIT_DEBIT_EXPIRY",
    "PIN", "EMAIL", "ADDRESS", "NAME", "PHONE", "SSN", "DATE_TIME", "PASSPORT_NUMBER", "DRIVER_ID", "URL",
    "AGE", "USERNAME", "PASSWORD", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "IP_ADDRESS", "MAC_ADDRESS",
    "LICENSE_PLATE", "VEHICLE_IDENTIFICATION_NUMBER", "UK_NATIONAL_INSURANCE_NUMBER",
    "CA_SOCIAL_INSURANCE_NUMBER", "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
    "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER", "IN_PERMANENT_ACCOUNT_NUMBER", "IN_NREGA",
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER", "SWIFT_CODE", "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
    "CA_HEALTH_NUMBER", "IN_AADHAAR", "IN_VOTER_NUMBER",
]  # fmt: skip
COMPREHEND_ENTITY_TYPES: frozenset[str] = frozenset(get_args(ComprehendEntityType))

CategoryPattern = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_*?\[\]!-]+(\.[a-z0-9_*?\[\]!-]+)*$", min_length=1, max_length=128),
]
ModelPattern = Annotated[str, StringConstraints(pattern=r"^\S+$", min_length=1, max_length=2048)]


# What JSON Schema can say of the floor (the model's validator says all of it): a key or rule category
# naming a floor family literally takes only "block".
_FLOOR_KEY = r"^(classified|cui)(\.|$)"


class ModelRule(BaseModel):
    """Gives ``action`` to findings of ``categories`` when the target model matches ``models``.

    Example: CUI Basic may go to U.S. cross-region inference profiles only::

        {"name": "cui-basic-to-us-profiles", "models": ["us.*"],
         "categories": ["cui.banner", "cui.portion", "cui.designation_indicator"], "action": "allow"}
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"action": {"enum": ["allow", "redact"]}}, "required": ["action"]},
            "then": {"properties": {"categories": {"items": {"not": {"pattern": _FLOOR_KEY}}}}},
        },
    )

    name: str = Field(default="", max_length=128, description="Shown in the assessment's reasons.")
    models: tuple[ModelPattern, ...] = Field(
        min_length=1,
        description="Glob patterns (fnmatch, case-sensitive) over the Bedrock model id or inference profile "
        "id, e.g. 'us.*' or 'us.anthropic.*'. For an ARN the part after the last '/' is matched too.",
    )
    categories: tuple[CategoryPattern, ...] = Field(
        min_length=1, description="Glob patterns over finding categories, e.g. 'cui.banner' or 'pii.*'."
    )
    action: Action

    def matches_model(self, model_id: str) -> bool:
        if not model_id:
            return False
        resource = model_id.rsplit("/", 1)[-1]
        return any(fnmatchcase(model_id, p) or fnmatchcase(resource, p) for p in self.models)

    def matches_category(self, category: str) -> bool:
        return any(fnmatchcase(category, p) for p in self.categories)


class ComprehendSettings(BaseModel):
    """Whether the classify step adds Amazon Comprehend DetectPiiEntities as an extra PII detector."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    min_score: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Entities scoring below this are ignored."
    )
    entity_types: tuple[ComprehendEntityType, ...] = Field(
        default=(
            "NAME",
            "ADDRESS",
            "BANK_ACCOUNT_NUMBER",
            "DRIVER_ID",
            "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        ),
        description="Comprehend PII entity types to report; each becomes category pii.<mapped name>.",
    )
    language_code: Literal["en", "es"] = "en"


class Policy(BaseModel):
    """An agency's classification policy. See the module docstring for how an action is resolved."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="xpi classification policy")

    version: Literal[1] = 1
    description: str = Field(default="", max_length=1024)
    default_action: Action = Field(
        default=Action.BLOCK,
        description="Action for a category that neither a rule nor a key configures: 'block' or 'redact' "
        "('allow' does not validate: a category nobody configured never passes unchanged).",
        json_schema_extra={"enum": [Action.REDACT.value, Action.BLOCK.value]},
    )
    categories: dict[CategoryPattern, Action] = Field(
        default_factory=dict,
        description="Action per finding category; keys are category names or glob patterns ('pii.*'). "
        "Classification and CUI categories (and any pattern reaching them) take only 'block'.",
        json_schema_extra={"patternProperties": {_FLOOR_KEY: {"const": "block"}}},
    )
    model_rules: tuple[ModelRule, ...] = Field(
        default=(), description="Per-model exceptions, evaluated in order before 'categories'."
    )
    comprehend: ComprehendSettings = Field(default_factory=ComprehendSettings)

    @model_validator(mode="after")
    def _respects_the_floor(self) -> Policy:
        if self.default_action is Action.ALLOW:
            raise ValueError("default_action 'allow' is not permitted: use 'block' or 'redact'")
        for pattern, action in self.categories.items():
            if action is not Action.BLOCK and _reaches_floor(pattern):
                raise ValueError(
                    f"categories['{pattern}'] would {action.value} classification or CUI markings, "
                    "which are always blocked"
                )
        for index, rule in enumerate(self.model_rules):
            if rule.action is not Action.BLOCK and any(_reaches_floor(p) for p in rule.categories):
                raise ValueError(
                    f"model_rules[{index}] would {rule.action.value} classification or CUI markings, "
                    "which are always blocked"
                )
        return self

    def action_for(self, category: str, model_id: str = "") -> tuple[Action, str | None]:
        """The action for ``category`` when sending to ``model_id``, and the name of the rule that set it;
        the floor last, over whatever the configuration said."""
        action, rule = self._configured_action(category, model_id)
        if in_floor(category) and action is not Action.BLOCK:
            return Action.BLOCK, FLOOR_RULE
        return action, rule

    def _configured_action(self, category: str, model_id: str) -> tuple[Action, str | None]:
        for index, rule in enumerate(self.model_rules):
            if rule.matches_category(category) and rule.matches_model(model_id):
                return rule.action, rule.name or f"model_rules[{index}]"
        exact = self.categories.get(category)
        if exact is not None:
            return exact, None
        best: tuple[int, Action] | None = None
        for pattern, action in self.categories.items():
            if fnmatchcase(category, pattern) and (best is None or len(pattern) > best[0]):
                best = (len(pattern), action)
        if best is not None:
            return best[1], None
        return self.default_action, None


def most_restrictive(actions: list[Action] | tuple[Action, ...]) -> Action:
    """``block`` over ``redact`` over ``allow``; ``allow`` for no actions."""
    result = Action.ALLOW
    for action in actions:
        if ACTION_RANK[action] > ACTION_RANK[result]:
            result = action
    return result


@cache
def load_default_policy() -> Policy:
    """The policy shipped with the package (``xpi/policy/default.json``), validated once per process."""
    text = resources.files("xpi").joinpath("policy", "default.json").read_text(encoding="utf-8")
    return Policy.model_validate_json(text)


def policy_json_schema() -> str:
    """The JSON Schema of :class:`Policy` as written to ``xpi/schemas/policy.schema.json``."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Policy.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
