"""The policy model, the shipped default policy and its published JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import ValidationError
from xpi.domain.classification import CATEGORIES
from xpi.domain.policy import (
    Action,
    ComprehendSettings,
    ModelRule,
    Policy,
    load_default_policy,
    policy_json_schema,
)

REGENERATE = (
    '.venv/bin/python -c "from xpi.domain.policy import policy_json_schema; '
    "open('functions/xpi/schemas/policy.schema.json', 'w').write(policy_json_schema())\""
)


def _shipped(name: str) -> Any:
    return json.loads(resources.files("xpi").joinpath(*name.split("/")).read_text(encoding="utf-8"))


def test_default_policy_matches_the_issue() -> None:
    policy = load_default_policy()
    for category in CATEGORIES:
        action, rule = policy.action_for(category, "us.anthropic.claude-3-haiku-20240307-v1:0")
        expected = Action.REDACT if category.startswith("pii.") else Action.BLOCK
        assert (category, action, rule) == (category, expected, None)
    assert policy.action_for("pii.comprehend.name")[0] is Action.REDACT
    assert policy.model_rules == ()
    assert policy.comprehend.enabled is False


def test_default_policy_configures_every_builtin_category_explicitly() -> None:
    # A category missing from default.json would only be blocked by default_action: say it explicitly.
    assert set(CATEGORIES) <= set(load_default_policy().categories)


def test_schema_file_is_generated_from_the_model() -> None:
    assert _shipped("schemas/policy.schema.json") == json.loads(policy_json_schema()), (
        f"regenerate: {REGENERATE}"
    )


def test_default_policy_validates_against_the_published_schema() -> None:
    jsonschema.validate(_shipped("policy/default.json"), _shipped("schemas/policy.schema.json"))


def test_schema_rejects_what_the_model_rejects() -> None:
    schema = _shipped("schemas/policy.schema.json")
    bad = {**_shipped("policy/default.json"), "default_action": "maybe"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(ValidationError):
        Policy.model_validate(bad)


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2},
        {"unknown_key": True},
        {"categories": {"pii.ssn": "delete"}},
        {"categories": {"PII.SSN": "block"}},
        {"model_rules": [{"models": [], "categories": ["cui.*"], "action": "allow"}]},
        {"model_rules": [{"models": ["us.*"], "categories": ["cui.*"]}]},
        {"comprehend": {"enabled": True, "min_score": 1.5}},
        # the floor: nothing lets classification or CUI markings through, nor an unconfigured category
        {"default_action": "allow"},
        {"categories": {"cui.banner": "allow"}},
        {"categories": {"classified.portion": "redact"}},
        {"categories": {"*": "allow"}},
        {"categories": {"c*": "redact"}},
        {"categories": {"*.banner": "allow"}},
        {"model_rules": [{"models": ["us.*"], "categories": ["cui.*"], "action": "allow"}]},
        {
            "model_rules": [
                {"models": ["us.*"], "categories": ["pii.*", "classified.banner"], "action": "redact"}
            ]
        },
        {"model_rules": [{"models": ["*"], "categories": ["*"], "action": "allow"}]},
        {"comprehend": {"entity_types": ["NAME", "SHOE_SIZE"]}},
    ],
)
def test_invalid_policies_are_rejected(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate(document)


def test_exact_category_beats_glob_and_longest_glob_wins() -> None:
    policy = Policy(
        categories={"pii.*": Action.BLOCK, "pii.comprehend.*": Action.ALLOW, "pii.email": Action.REDACT},
        default_action=Action.BLOCK,
    )
    assert policy.action_for("pii.email") == (Action.REDACT, None)
    assert policy.action_for("pii.comprehend.name") == (Action.ALLOW, None)
    assert policy.action_for("pii.ssn") == (Action.BLOCK, None)


def test_unconfigured_category_gets_default_action() -> None:
    assert Policy(default_action=Action.BLOCK).action_for("anything.new") == (Action.BLOCK, None)
    assert Policy(default_action=Action.REDACT).action_for("anything.new") == (Action.REDACT, None)


def test_first_matching_model_rule_wins_over_categories() -> None:
    policy = Policy(
        categories={"export.eccn": Action.BLOCK},
        model_rules=(
            ModelRule(name="gov-only", models=("us-gov.*",), categories=("export.*",), action=Action.ALLOW),
            ModelRule(name="us", models=("us.*",), categories=("export.eccn",), action=Action.REDACT),
            ModelRule(name="shadowed", models=("us.*",), categories=("export.*",), action=Action.ALLOW),
        ),
    )
    assert policy.action_for("export.eccn", "us.meta.llama3-70b") == (Action.REDACT, "us")
    assert policy.action_for("export.itar", "us.meta.llama3-70b") == (Action.ALLOW, "shadowed")
    assert policy.action_for("export.eccn", "eu.meta.llama3-70b") == (Action.BLOCK, None)


def test_model_rules_do_not_apply_without_a_model_id() -> None:
    policy = Policy(model_rules=(ModelRule(models=("*",), categories=("export.*",), action=Action.ALLOW),))
    assert policy.action_for("export.itar", "") == (Action.BLOCK, None)
    assert policy.action_for("export.itar", "anything") == (Action.ALLOW, "model_rules[0]")


def test_model_globs_are_case_sensitive() -> None:
    rule = ModelRule(models=("us.*",), categories=("*",), action=Action.ALLOW)
    assert rule.matches_model("us.amazon.nova-pro-v1:0")
    assert not rule.matches_model("US.amazon.nova-pro-v1:0")


def test_comprehend_settings_defaults() -> None:
    settings = ComprehendSettings()
    assert (settings.enabled, settings.min_score, settings.language_code) == (False, 0.9, "en")
    assert "NAME" in settings.entity_types


def test_policy_round_trips_through_json() -> None:
    policy = load_default_policy()
    assert Policy.model_validate_json(policy.model_dump_json()) == policy


@pytest.mark.parametrize(
    "change",
    [
        {"default_action": "allow"},
        {"categories": {"cui.banner": "allow"}},
        {"model_rules": [{"models": ["us.*"], "categories": ["classified.banner"], "action": "redact"}]},
    ],
)
def test_the_schema_file_refuses_what_lowers_the_floor(change: dict[str, Any]) -> None:
    schema = _shipped("schemas/policy.schema.json")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**_shipped("policy/default.json"), **change}, schema)
