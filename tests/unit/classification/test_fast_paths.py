"""The classifier's fast paths answer exactly what the plain computation answers.

The substring gates look needles up in a window's list of distinct letter runs instead of the window, and
the normalizer builds its offset map from per-run caches; both must give the same answers as the direct
``needle in text`` and the character-by-character fold, whatever the text.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from xpi.domain.classification.detectors import (
    _DIGIT_RUN_RE,
    _FIND_GATES,
    _HAS_GATES,
    _LONG_DIGIT_RUN_RE,
    _long_digit_runs,
    _Window,
)
from xpi.domain.classification.normalize import fold_char, normalize

# Every needle the detectors ask about, and pieces of them glued to letters, digits and punctuation.
NEEDLES = sorted(
    {*_HAS_GATES, *_HAS_GATES.values(), *(g[1:] for g in _FIND_GATES.values() if g.startswith("~"))}
    | {"secret", "ssn", "aba", "dob", "d.o.b", "c.f.r", "//", "(ts)", "[les", "ss#", "di-pi", "authori"}
)
_PIECES = st.sampled_from(
    [*NEEDLES, "data", "base", "x", "1", " ", "\n", "-", ".", "#", "(", "é", "中", "\u200b", "İ", "K"]
)


@given(st.lists(_PIECES, max_size=30), st.sampled_from(NEEDLES))
def test_gate_answers_exactly_whether_the_needle_occurs(pieces: list[str], needle: str) -> None:
    # GIVEN a text made of needles and pieces of words, in any case
    text = "".join(piece.upper() if index % 3 == 0 else piece for index, piece in enumerate(pieces))
    window = _Window(text, 0, len(text), set())
    # WHEN a detector asks the gate THEN it answers as a search of the lower-cased window would
    assert window.has(needle) == (needle in window.low)


def test_gate_sees_a_needle_only_inside_one_run_of_letters() -> None:
    window = _Window("data-base ss n SS#", 0, 18, set())
    assert window.has("aba") is False  # "data-base": the hyphen splits the run
    assert window.has("ssn") is False
    assert window.has("ss#") is True
    assert window.has("base") is True
    # A needle beyond its letters: the letters alone are not enough.
    window = _Window("Classified material, social media, date of issue", 0, 49, set())
    assert window.has("classified") is True
    assert window.has("classified by") is False
    assert window.has("social sec") is False
    assert window.has("date of birth") is False


_FOLD_ALPHABET = "ab 1-\u200b\u2026\ufb01\u00bd\u0130\uff11\u0430\u00a0\ud800"


@given(st.text(alphabet=st.sampled_from(_FOLD_ALPHABET), max_size=40))
def test_offset_map_matches_the_character_by_character_fold(text: str) -> None:
    folded = normalize(text)
    assert folded.text == "".join(fold_char(ch) if not ch.isascii() else ch for ch in text)
    # Every normalized position maps to the original character it was folded from.
    position = 0
    for index, ch in enumerate(text):
        width = len(fold_char(ch)) if not ch.isascii() else 1
        for offset in range(width):
            assert folded.original_index(position + offset) == index
        position += width
    assert folded.original_index(len(folded.text)) == len(text)


_DIGITS_ALPHABET = "0123456789" * 2 + " ().-+x|\n\u00e9\u4e2d"


@given(st.text(alphabet=st.sampled_from(_DIGITS_ALPHABET), max_size=80))
def test_long_digit_runs_are_those_the_expression_finds(text: str) -> None:
    # GIVEN any text of digits, separators and other characters
    expected = [m.span() for m in _LONG_DIGIT_RUN_RE.finditer(text)]
    # WHEN the runs are located from the character classes THEN they are the expression's own matches
    assert [m.span() for m in _long_digit_runs(text, len(text))] == expected
    # and they are the runs of the general expression that are long enough to hold an identifier.
    assert expected == [m.span() for m in _DIGIT_RUN_RE.finditer(text) if m.end() - m.start() >= 11]


def test_long_digit_runs_include_identifiers_between_other_text() -> None:
    text = "SKU-12345 on 2024-05-12, call (555) 123-4567 or SSN 219-45-8832."
    assert [text[m.start() : m.end()] for m in _long_digit_runs(text, len(text))] == [
        "555) 123-4567",
        "219-45-8832",
    ]
