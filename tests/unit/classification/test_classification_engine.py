"""classify_segments: the interface the workflow's classify step calls."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable

import pytest
from pydantic import ValidationError
from xpi.domain.classification import (
    Assessment,
    Detection,
    Detector,
    Finding,
    Segment,
    classify_segments,
)
from xpi.domain.policy import Action, ModelRule, Policy, load_default_policy

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"


@pytest.fixture
def policy() -> Policy:
    return load_default_policy()


def classify(policy: Policy, *texts: str, model: str = MODEL) -> Assessment:
    segments = [Segment(location=f"messages[{i}].content[0].text", text=t) for i, t in enumerate(texts)]
    return classify_segments(segments, policy, model)


def test_clean_request_is_allowed(policy: Policy) -> None:
    assessment = classify(policy, "Summarize the meeting notes.", "The secret ingredient is cocoa.")
    assert assessment.decision == "allow"
    assert assessment.findings == []
    assert assessment.categories == {}
    assert assessment.redacted == {}
    assert not assessment.security_alert


def test_pii_is_redacted_with_typed_placeholders(policy: Policy) -> None:
    # GIVEN a system prompt without PII and a message with an SSN, a phone and an e-mail
    segments = [
        Segment(location="system[0]", text="You are a helpful assistant."),
        Segment(
            location="messages[0].content[0].text", text="SSN 219-45-8832, call (202) 555-0173 or a@b.com"
        ),
    ]
    # WHEN classified
    assessment = classify_segments(segments, policy, MODEL)
    # THEN the decision is redact and only the changed segment has a redacted text
    assert assessment.decision == "redact"
    assert assessment.redacted == {
        "messages[0].content[0].text": "SSN [REDACTED:SSN], call [REDACTED:PHONE] or [REDACTED:EMAIL]"
    }
    assert assessment.categories == {"pii.ssn": 1, "pii.phone": 1, "pii.email": 1}
    assert {f.action for f in assessment.findings} == {"redact"}


def test_most_restrictive_action_wins(policy: Policy) -> None:
    assessment = classify(policy, "SSN 219-45-8832", "(S//NF) The convoy departs at 0400.")
    assert assessment.decision == "block"
    assert assessment.redacted == {}  # a blocked request crosses nothing, not even a redacted copy
    assert sorted(assessment.categories) == ["classified.portion", "pii.ssn"]


def test_classified_marking_raises_security_alert(policy: Policy) -> None:
    assert classify(policy, "SECRET//NOFORN\nplan").security_alert
    assert not classify(policy, "CUI\nroster").security_alert  # blocked, but CUI is not classified


def test_findings_locate_spans_without_the_matched_text(policy: Policy) -> None:
    # GIVEN a message with a banner
    text = "intro\nSECRET//NOFORN\nThe convoy departs at 0400."
    assessment = classify(policy, "hello", text)
    # THEN the finding points at the segment and span ...
    (finding,) = assessment.findings
    assert finding == Finding(
        category="classified.banner", location="messages[1].content[0].text", start=6, end=20, action="block"
    )
    assert text[finding.start : finding.end] == "SECRET//NOFORN"
    # ... and nothing in the assessment repeats the marked content
    dumped = assessment.model_dump_json()
    assert "NOFORN" not in dumped
    assert "convoy" not in dumped


def test_reasons_name_categories_and_locations_but_no_values(policy: Policy) -> None:
    assessment = classify(policy, "SSN 219-45-8832 and card 4111 1111 1111 1111")
    text = "\n".join(assessment.reasons)
    assert "pii.ssn" in text
    assert "pii.credit_card" in text
    assert "messages[0].content[0].text" in text
    assert "219-45-8832" not in text
    assert "4111" not in text


@pytest.mark.parametrize("kind", ["image", "binary"])
def test_uninspectable_content_blocks_by_default(policy: Policy, kind: str) -> None:
    segment = Segment(location="messages[0].content[1].image", text=None, kind=kind)
    assessment = classify_segments([segment], policy, MODEL)
    assert assessment.decision == "block"
    assert assessment.categories == {"content.uninspectable": 1}


def test_document_with_extracted_text_is_inspected(policy: Policy) -> None:
    segment = Segment(
        location="messages[0].content[1].document", text="Quarterly plan, nothing marked.", kind="document"
    )
    assert classify_segments([segment], policy, MODEL).decision == "allow"


def test_document_without_text_is_uninspectable(policy: Policy) -> None:
    segment = Segment(location="messages[0].content[1].document", text=None, kind="document")
    assert classify_segments([segment], policy, MODEL).categories == {"content.uninspectable": 1}


def test_tool_input_json_is_inspected(policy: Policy) -> None:
    segment = Segment(
        location="messages[1].content[0].tool_use.input",
        text='{"body": "CUI\\nPersonnel roster with home stations."}',
        kind="tool_input",
    )
    assert classify_segments([segment], policy, MODEL).categories == {"cui.banner": 1}


def test_policy_can_allow_uninspectable_content() -> None:
    policy = load_default_policy().model_copy(
        update={"categories": {**load_default_policy().categories, "content.uninspectable": Action.ALLOW}}
    )
    segment = Segment(location="messages[0].content[1].image", text=None, kind="image")
    assert classify_segments([segment], policy, MODEL).decision == "allow"


def test_model_rule_allows_an_export_marking_to_us_profiles_only() -> None:
    # GIVEN the default policy plus a rule: ECCN notices may go to us.* inference profiles
    rule = ModelRule(name="eccn-us", models=("us.*",), categories=("export.eccn",), action=Action.ALLOW)
    policy = load_default_policy().model_copy(update={"model_rules": (rule,)})
    text = "ECCN 3A001.a.2 applies to the attached drawings."
    # WHEN sent to a US profile, the notice is allowed but still reported ...
    us = classify(policy, text, model="us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert us.decision == "allow"
    assert us.categories == {"export.eccn": 1}
    assert any("eccn-us" in reason for reason in us.reasons)
    # ... while other profiles stay blocked
    assert classify(policy, text, model="eu.anthropic.claude-3-5-sonnet-20240620-v1:0").decision == "block"
    assert classify(policy, text, model="anthropic.claude-3-5-sonnet-20240620-v1:0").decision == "block"


def test_the_floor_blocks_cui_and_classified_even_in_a_policy_that_skipped_validation() -> None:
    # GIVEN a policy object built without validation whose rules allow everything to every model
    rule = ModelRule(name="all", models=("*",), categories=("pii.email",), action=Action.ALLOW)
    everything = ModelRule.model_construct(
        name="everything", models=("*",), categories=("*",), action=Action.ALLOW
    )
    policy = load_default_policy().model_copy(
        update={
            "model_rules": (rule, everything),
            "categories": {"cui.banner": Action.ALLOW, "classified.banner": Action.REDACT},
        }
    )
    # WHEN CUI and a classification banner are sent
    cui = classify(policy, "CUI\n(CUI) The board reviews the packets.", model="us.amazon.nova-pro-v1:0")
    secret = classify(policy, "SECRET//NOFORN\n\n(S) The convoy departs at 0400.", model="us.x")
    # THEN the floor, applied after the configuration, blocks both and says so
    assert (cui.decision, secret.decision) == ("block", "block")
    assert any("floor" in reason for reason in cui.reasons)


def test_model_rule_matches_the_profile_id_inside_an_arn() -> None:
    rule = ModelRule(models=("us.*",), categories=("export.eccn",), action=Action.ALLOW)
    policy = load_default_policy().model_copy(update={"model_rules": (rule,)})
    arn = "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    assert classify(policy, "ECCN 3A001.a.2 applies.", model=arn).decision == "allow"


class FakeDetector:
    """An extra detector that reports every occurrence of a word."""

    def __init__(self, word: str, category: str) -> None:
        self.word, self.category, self.calls = word, category, 0

    @property
    def name(self) -> str:
        return "fake"

    def detect(self, text: str) -> Iterable[Detection]:
        self.calls += 1
        start = text.find(self.word)
        return [Detection(self.category, start, start + len(self.word))] if start != -1 else []


def test_extra_detectors_run_on_every_text_segment(policy: Policy) -> None:
    # GIVEN an extra detector for names (as Comprehend would report them)
    detector = FakeDetector("Alice", "pii.comprehend.name")
    assert isinstance(detector, Detector)
    segments = [
        Segment(location="system[0]", text="Be brief."),
        Segment(location="messages[0].content[0].text", text="Alice asked for the report."),
        Segment(location="messages[0].content[1].image", text=None, kind="image"),
    ]
    # WHEN classified with it
    assessment = classify_segments(segments, policy, MODEL, extra_detectors=[detector])
    # THEN it ran on both texts (not on the image) and its finding is redacted per the pii.comprehend.* rule
    assert detector.calls == 2
    assert assessment.categories == {"pii.comprehend.name": 1, "content.uninspectable": 1}
    assert [f.action for f in assessment.findings if f.category == "pii.comprehend.name"] == ["redact"]


def test_extra_detector_redaction_uses_its_span() -> None:
    policy = load_default_policy()
    assessment = classify_segments(
        [Segment(location="m", text="Alice asked.")],
        policy,
        MODEL,
        extra_detectors=[FakeDetector("Alice", "pii.comprehend.name")],
    )
    assert assessment.redacted == {"m": "[REDACTED:NAME] asked."}


def test_unknown_category_from_an_extra_detector_fails_closed(policy: Policy) -> None:
    detector = FakeDetector("widget", "vendor.new_thing")
    assessment = classify_segments(
        [Segment(location="m", text="a widget")], policy, MODEL, extra_detectors=[detector]
    )
    assert assessment.decision == "block"


def test_extra_detector_errors_propagate(policy: Policy) -> None:
    class Broken:
        name = "broken"

        def detect(self, text: str) -> Iterable[Detection]:
            raise RuntimeError("service unavailable")

    with pytest.raises(RuntimeError, match="service unavailable"):
        classify_segments([Segment(location="m", text="hello")], policy, MODEL, extra_detectors=[Broken()])


def test_extra_detector_span_outside_the_text_is_an_error(policy: Policy) -> None:
    class OffByOne:
        name = "off-by-one"

        def detect(self, text: str) -> Iterable[Detection]:
            return [Detection("pii.comprehend.name", 0, len(text) + 1)]

    with pytest.raises(ValueError, match="outside the text"):
        classify_segments([Segment(location="m", text="Alice")], policy, MODEL, extra_detectors=[OffByOne()])


def test_segment_is_frozen_and_validated() -> None:
    segment = Segment(location="system[0]", text="x")
    with pytest.raises(ValidationError):
        segment.text = "y"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Segment(location="system[0]", text="x", kind="audio")
    with pytest.raises(ValidationError):
        Segment(location="", text="x")


def test_overlapping_redactions_collapse(policy: Policy) -> None:
    # GIVEN an extra detector whose span starts before and ends inside a built-in e-mail finding
    detector = FakeDetector("write bob", "pii.comprehend.name")
    assessment = classify_segments(
        [Segment(location="m", text="write bob.smith@example.com today")],
        policy,
        MODEL,
        extra_detectors=[detector],
    )
    # THEN the union of the spans is replaced by one placeholder, never leaving a fragment of the value
    assert assessment.categories == {"pii.comprehend.name": 1, "pii.email": 1}
    assert assessment.redacted == {"m": "[REDACTED:NAME] today"}


def test_nested_spans_take_the_outer_placeholder(policy: Policy) -> None:
    detector = FakeDetector("bob.smith", "pii.comprehend.name")
    assessment = classify_segments(
        [Segment(location="m", text="write bob.smith@example.com")], policy, MODEL, extra_detectors=[detector]
    )
    assert assessment.redacted == {"m": "write [REDACTED:EMAIL]"}


def test_domain_package_does_not_import_boto3() -> None:
    code = "import sys, xpi.domain.classification, xpi.domain.policy; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
