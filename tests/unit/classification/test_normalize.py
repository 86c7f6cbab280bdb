"""Normalization before detection: what is folded, the map back to the original, the bypasses it closes."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from xpi.domain.classification import Detection, Segment, classify_segments, detect
from xpi.domain.classification.normalize import fold_char, normalize
from xpi.domain.policy import Policy, load_default_policy

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
LOCATION = "messages[0].content[0].text"


@pytest.fixture
def policy() -> Policy:
    return load_default_policy()


def expected_offsets(original: str) -> list[int]:
    """The source index of every normalized character, built the slow, obvious way."""
    return [index for index, ch in enumerate(original) for _ in fold_char(ch)]


# --- what is folded ---------------------------------------------------------------------------------------


def test_pure_ascii_takes_the_fast_path() -> None:
    text = "Plain ASCII: SSN 219-45-8832, TOP SECRET.\n" * 50
    folded = normalize(text)
    assert folded.text is text
    assert folded.identity
    assert folded.original_span(3, 17) == (3, 17)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("\uff11\uff12\uff13", "123"),  # fullwidth digits (NFKC)
        ("bob\uff20example.com", "bob@example.com"),  # fullwidth commercial at (NFKC)
        ("\uff33\uff25\uff23\uff32\uff25\uff34", "SECRET"),  # fullwidth letters (NFKC)
        ("\U0001d412\U0001d404\U0001d402", "SEC"),  # mathematical bold (NFKC)
        ("\u0662\u0661\u0669", "219"),  # Arabic-Indic digits
        ("\ufb01le", "file"),  # a ligature expands
        ("\u2026", "..."),  # an ellipsis expands
        ("\u0422\u041e\u0420 \u0405\u0415\u0421R\u0415\u0422", "TOP SECRET"),  # Cyrillic capitals
        ("\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455", "aeopcyxijs"),  # Cyrillic lower case
        (
            "\u039f\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u03a1\u03a4\u03a5\u03a7",
            "OABEZHIKMNPTYX",
        ),
        ("\u03bf\u03b1\u03c1\u03c4\u03bd\u03ba\u03b9", "oaptvki"),  # Greek lower case
        ("A\u0301", "A\u0301"),  # a combining accent is not a confusable: left alone
        ("\u4e2d\u6587", "\u4e2d\u6587"),  # other scripts are left alone
    ],
)
def test_folds(original: str, expected: str) -> None:
    assert normalize(original).text == expected


@pytest.mark.parametrize(
    "dash",
    ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe58", "\ufe63", "\uff0d"],
)
def test_unicode_dashes_become_hyphen_minus(dash: str) -> None:
    assert normalize(f"219{dash}45").text == "219-45"


@pytest.mark.parametrize(
    "space", ["\u00a0", *(chr(c) for c in range(0x2000, 0x200B)), "\u202f", "\u205f", "\u3000"]
)
def test_unicode_spaces_become_space(space: str) -> None:
    assert normalize(f"TOP{space}SECRET").text == "TOP SECRET"


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # zero-width space
        "\u200c",  # zero-width non-joiner
        "\u200d",  # zero-width joiner
        "\u2060",  # word joiner
        "\u00ad",  # soft hyphen
        "\ufeff",  # byte-order mark
        "\u200e",  # left-to-right mark
        "\u202e",  # right-to-left override
        "\u2066",  # left-to-right isolate
        "\u034f",  # combining grapheme joiner
        "\ufe0f",  # variation selector
        "\U000e0041",  # tag letter
    ],
)
def test_format_characters_are_removed(invisible: str) -> None:
    folded = normalize(f"T{invisible}OP")
    assert folded.text == "TOP"
    assert folded.original_span(0, 3) == (0, 4)  # the invisible character is inside the span


# --- the map back to the original -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "original",
    [
        "\u200bleading and trailing\u200b",
        "SSN \uff12\uff11\uff19\u2011\uff14\uff15\u2011\uff18\uff18\uff13\uff12 and \ufb01le\u2026 done",
        "\u200b\u200b\ufb01\u200b\u2026\u00e9\u0422x\u00a0\ufeff",
        "caf\u00e9 \u2014 na\u00efve \u201cquoted\u201d \u4e2d\u6587 \u0434\u0430 \u2153 \u00bd",
        "\u200b",
        "\ufb01",
    ],
)
def test_offsets_round_trip(original: str) -> None:
    folded = normalize(original)
    assert folded.text == "".join(fold_char(ch) for ch in original)
    assert [folded.original_index(p) for p in range(len(folded.text))] == expected_offsets(original)
    assert folded.original_index(len(folded.text)) == len(original)
    for start in range(len(folded.text)):
        for end in range(start + 1, len(folded.text) + 1):
            first, last = folded.original_span(start, end)
            # the original span folds to a text that contains the normalized span
            assert folded.text[start:end] in "".join(fold_char(ch) for ch in original[first:last])


def test_an_expanded_character_is_covered_whole() -> None:
    folded = normalize("x\ufb01y")  # "xfiy": the ligature is one original character
    assert folded.original_span(1, 2) == (1, 2)  # "f" alone still covers the whole ligature
    assert folded.original_span(2, 4) == (1, 3)


def test_lone_surrogates_do_not_break_normalization() -> None:
    folded = normalize("a\ud800b\u200bc")
    assert folded.text == "a\ud800bc"
    assert folded.original_span(0, 4) == (0, 5)


# --- the bypasses are closed, through the classification entry point -------------------------------------


@pytest.mark.parametrize(
    ("prefix", "value", "suffix", "category"),
    [
        ("SSN ", "\uff12\uff11\uff19-\uff14\uff15-\uff18\uff18\uff13\uff12", " on file.", "pii.ssn"),
        (
            "SSN ",
            "\uff11\uff12\uff13\u2011\uff14\uff15\u2011\uff16\uff17\uff18\uff19",
            " on file.",
            "pii.ssn",
        ),
        ("SSN ", "219\u00a045\u00a08832", " on file.", "pii.ssn"),
        ("SSN ", "219\u201045\u20108832", " on file.", "pii.ssn"),
        ("SSN ", "219\u221245\u22128832", " on file.", "pii.ssn"),
        ("SSN ", "219\u201345\u20138832", " on file.", "pii.ssn"),
        ("SSN \u200b", "219\u200b-45-8832", "\u200b on file.", "pii.ssn"),
        ("Write to ", "jane.doe\uff20example.com", " today.", "pii.email"),
        ("Call ", "(202)\u00a0555\u2011\uff10\uff11\uff17\uff13", " now.", "pii.phone"),
    ],
)
def test_obfuscated_pii_is_redacted_exactly(
    policy: Policy, prefix: str, value: str, suffix: str, category: str
) -> None:
    # GIVEN a value spelled with fullwidth digits, Unicode hyphens or spaces, or invisible characters
    text = prefix + value + suffix
    # WHEN classified with the default policy
    assessment = classify_segments([Segment(location=LOCATION, text=text)], policy, MODEL)
    # THEN it is found and redacted, and the finding's span is exactly the characters that were sent
    assert assessment.decision == "redact"
    assert assessment.categories == {category: 1}
    (finding,) = assessment.findings
    assert (finding.start, finding.end) == (len(prefix), len(prefix) + len(value))
    redacted = assessment.redacted[LOCATION]
    placeholder = (
        "[REDACTED:SSN]" if category == "pii.ssn" else f"[REDACTED:{category.split('.')[1].upper()}]"
    )
    assert redacted == prefix + placeholder + suffix  # everything outside the span is byte-identical
    assert not any(ch.isdigit() for ch in redacted)


@pytest.mark.parametrize(
    "banner",
    [
        "T\u200bOP SECRET",  # zero-width space
        "TOP\u00a0SECRET",  # no-break space
        "\u0422OP SECRET",  # Cyrillic capital Te
        "TOP S\u0415CRET",  # Cyrillic capital Ie
        "T\u039fP SECRET",  # Greek capital Omicron
        "\uff34\uff2f\uff30 \uff33\uff25\uff23\uff32\uff25\uff34",  # fullwidth
        "SECRET\u2215\u2215NOFORN",  # division slashes
        "S\u00adECRET//NOFORN",  # soft hyphen
    ],
)
def test_obfuscated_classification_banner_blocks(policy: Policy, banner: str) -> None:
    text = f"Weekly report\n{banner}\nThe convoy departs at 0400.\n"
    assessment = classify_segments([Segment(location=LOCATION, text=text)], policy, MODEL)
    assert assessment.decision == "block"
    assert "classified.banner" in assessment.categories
    assert assessment.security_alert
    finding = next(f for f in assessment.findings if f.category == "classified.banner")
    start = text.index(banner)
    assert start <= finding.start < finding.end <= start + len(banner)


def test_findings_point_at_the_original_characters(policy: Policy) -> None:
    # GIVEN a banner after text whose normalized form is shorter (a ligature expands, invisibles vanish)
    text = "\u200b\u200b\u200bA \ufb01le\u2026\nTOP S\u200bECRET\n"
    (finding,) = classify_segments([Segment(location=LOCATION, text=text)], policy, MODEL).findings
    # THEN the span is in the original text's offsets
    assert text[finding.start : finding.end] == "TOP S\u200bECRET"


class RecordingDetector:
    """An extra detector that reports one span in the offsets of the text it receives."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def detect(self, text: str) -> Iterable[Detection]:
        self.seen.append(text)
        start = text.index("Jane")
        return [Detection("pii.comprehend.name", start, start + len("Jane Doe"))]


def test_extra_detectors_receive_the_original_text() -> None:
    # GIVEN text with characters normalization removes before the name
    text = "\u200b\u200bHello \ufb01ne Jane Doe"
    detector = RecordingDetector()
    # WHEN detected
    found = detect(text, [detector])
    # THEN the extra detector saw the original text and its span is kept as it gave it
    assert detector.seen == [text]
    assert Detection("pii.comprehend.name", text.index("Jane"), len(text)) in found
