"""Properties of the classifier under adversarial spelling and placement (hypothesis).

For every detector family, generated positives (values valid under the validators' rules, markings from a
grammar of real marking forms) must be reported in their category, with the default policy's action or a
stricter one, plain, obfuscated (case, fullwidth forms, zero-width characters, one Cyrillic or Greek
look-alike, Unicode dashes and spaces) and wrapped (a markdown table row, a CSV cell, a log line, a JSON
string). A redacted PII value must be gone from the redacted text, whatever characters spelled it.
Generated near-misses must stay allowed, plain, under the obfuscations a normalizer undoes, and wrapped.

Profiles are in conftest.py (``HYPOTHESIS_PROFILE=thorough`` for more examples).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xpi.domain.classification import Assessment, Segment, classify_segments
from xpi.domain.classification.validators import card_number_is_valid, luhn_is_valid, ssn_is_valid
from xpi.domain.policy import load_default_policy

from .strategies import (
    CONFUSABLES,
    FAMILIES,
    NEAR_MISSES,
    NORMALIZATION_OBFUSCATIONS,
    OBFUSCATIONS,
    WRAPPERS,
    Positive,
    card_digits,
    json_string_unescaped,
    ssn_digits,
)

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
LOCATION = "messages[0].content[0].text"
POLICY = load_default_policy()
RANK = {"allow": 0, "redact": 1, "block": 2}

# Families whose every form needs a line of its own (or is already a table): never wrapped in a table row,
# a CSV cell or a log line.
MULTILINE_ONLY = frozenset(
    {"authority_block", "cui_designation_indicator", "export_banner", "column_labelled_pii"}
)
LINE_WRAPPERS = ("markdown_row", "csv_cell", "log_line")

_LOOKALIKE_TO_LATIN = {glyph: latin for latin, glyphs in CONFUSABLES.items() for glyph in glyphs}


def classify(text: str) -> Assessment:
    return classify_segments([Segment(location=LOCATION, text=text)], POLICY, MODEL)


def skeleton(text: str) -> str:
    """Letters and digits only, after NFKC and look-alike folding: how a value reads to a person."""
    folded = (_LOOKALIKE_TO_LATIN.get(c, c) for c in unicodedata.normalize("NFKC", text))
    return "".join(c for c in folded if c.isalnum()).lower()


def expected_action(category: str) -> str:
    return "redact" if category.startswith("pii.") else "block"


def assert_detected(positive: Positive, text: str) -> None:
    assessment = classify(text)
    assert positive.category in assessment.categories, (
        f"{positive.category} not reported in {text!r}: got {assessment.categories}"
    )
    want = expected_action(positive.category)
    assert RANK[assessment.decision] >= RANK[want], (
        f"decision {assessment.decision} (want {want} or stricter) for {text!r}"
    )
    if positive.value and assessment.decision == "redact":
        redacted = assessment.redacted[LOCATION]
        assert skeleton(positive.value) not in skeleton(redacted), (
            f"value survives redaction: {text!r} -> {redacted!r}"
        )


def assert_allowed(text: str) -> None:
    assessment = classify(text)
    assert assessment.decision == "allow", f"{text!r}: {assessment.decision} {assessment.categories}"


def _draw_positive(data: st.DataObject, family: str, inline: bool = False) -> Positive:
    strategy = FAMILIES[family]
    if inline:
        strategy = strategy.filter(lambda p: p.inline)
    return data.draw(strategy, label=family)


# --- the generators themselves ---------------------------------------------------------------------------


@given(ssn=ssn_digits(), card=card_digits(), bad_card=card_digits(valid=False))
def test_generated_values_follow_the_validators_rules(ssn: str, card: str, bad_card: str) -> None:
    assert ssn_is_valid(ssn)
    assert card_number_is_valid(card)
    assert not luhn_is_valid(bad_card)


# --- positives --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
@given(data=st.data())
def test_positive_is_detected(family: str, data: st.DataObject) -> None:
    positive = _draw_positive(data, family)
    assert_detected(positive, positive.text)


@pytest.mark.parametrize("obfuscation", sorted(OBFUSCATIONS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
@given(data=st.data())
def test_obfuscated_positive_is_detected(family: str, obfuscation: str, data: st.DataObject) -> None:
    positive = OBFUSCATIONS[obfuscation](data, _draw_positive(data, family))
    assert_detected(positive, positive.text)


WRAPPED_CASES = [
    (family, wrapper)
    for family in sorted(FAMILIES)
    for wrapper in sorted(WRAPPERS)
    if wrapper not in LINE_WRAPPERS or family not in MULTILINE_ONLY
]


@pytest.mark.parametrize(("family", "wrapper"), WRAPPED_CASES)
@given(data=st.data())
def test_wrapped_positive_is_detected(family: str, wrapper: str, data: st.DataObject) -> None:
    positive = _draw_positive(data, family, inline=wrapper in LINE_WRAPPERS)
    assert_detected(positive, WRAPPERS[wrapper](positive.text))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@given(data=st.data())
def test_obfuscated_and_wrapped_positive_is_detected(family: str, data: st.DataObject) -> None:
    """Both at once: one obfuscation of the core, then the whole text wrapped (a JSON string keeps its
    non-ASCII characters, as it would after an obfuscation)."""
    wrappers: dict[str, Callable[[str], str]] = {"json_string": json_string_unescaped}
    if family not in MULTILINE_ONLY:
        wrappers |= {name: WRAPPERS[name] for name in LINE_WRAPPERS}
    wrapper = data.draw(st.sampled_from(sorted(wrappers)), label="wrapper")
    obfuscation = data.draw(st.sampled_from(sorted(OBFUSCATIONS)), label="obfuscation")
    positive = _draw_positive(data, family, inline=wrapper in LINE_WRAPPERS)
    positive = OBFUSCATIONS[obfuscation](data, positive)
    assert_detected(positive, wrappers[wrapper](positive.text))


# --- near-misses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NEAR_MISSES))
@given(data=st.data())
def test_near_miss_is_allowed(kind: str, data: st.DataObject) -> None:
    assert_allowed(data.draw(NEAR_MISSES[kind], label=kind))


@pytest.mark.parametrize("obfuscation", sorted(NORMALIZATION_OBFUSCATIONS))
@pytest.mark.parametrize("kind", sorted(NEAR_MISSES))
@given(data=st.data())
def test_obfuscated_near_miss_is_allowed(kind: str, obfuscation: str, data: st.DataObject) -> None:
    text = data.draw(NEAR_MISSES[kind], label=kind)
    assert_allowed(NORMALIZATION_OBFUSCATIONS[obfuscation](data, Positive("", text)).text)


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@pytest.mark.parametrize("kind", sorted(NEAR_MISSES))
@given(data=st.data())
def test_wrapped_near_miss_is_allowed(kind: str, wrapper: str, data: st.DataObject) -> None:
    assert_allowed(WRAPPERS[wrapper](data.draw(NEAR_MISSES[kind], label=kind)))
