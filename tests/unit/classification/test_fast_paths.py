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
    _MAX_LINE,
    _long_digit_runs,
    _neighbour_lines,
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


_CASE_ALPHABET = (
    "aB 1-\u00e9\u00c9\u0130\u03a3\u03c3\u0414\u0434\u0410\u212a\u4e2d\u2019\u200b\ufb01\ud800\U0001d400"
)


@given(st.text(alphabet=st.sampled_from(_CASE_ALPHABET), max_size=60))
def test_a_window_lowers_a_normalized_text_as_str_lower_does(text: str) -> None:
    # GIVEN any normalized text, cased non-ASCII letters (a final sigma, a dotted capital I) included
    folded = normalize(text)
    # WHEN a window lower-cases it with the normalizer's hint (at byte speed when the hint allows)
    fast = _Window(folded.text, 0, len(folded.text), set(), ascii_case=folded.ascii_case)
    given = _Window(folded.text, 0, len(folded.text), set(), ascii_case=folded.ascii_case, lower=folded.lower)
    # THEN it has the lower-cased text and letter runs a window without the hint has
    slow = _Window(folded.text, 0, len(folded.text), set())
    assert fast.low == given.low == slow.low
    assert fast.words() == given.words() == slow.words()
    assert len(fast.ascii_low()) == len(fast.low) and fast.ascii_low().isascii()
    if folded.lower is not None:
        assert folded.lower == folded.text.lower()


def test_the_case_hint_holds_only_when_lower_casing_changes_nothing_but_ascii_letters() -> None:
    assert normalize("Caf\u00e9 \u201cSECRET\u201d \u4e2d\u6587").ascii_case is True
    assert normalize("SECRET \u0414\u0416").ascii_case is False  # Cyrillic capitals that are no confusables
    assert normalize("\u03a3\u039f\u03a3").ascii_case is False  # a final sigma lower-cases by context
    assert normalize("\u0130D").ascii_case is False  # lower-cases to two characters
    # The lower-cased form comes with the normalization for a text of one window, when the hint holds.
    assert normalize("Caf\u00c9\u2013SECRET").lower is None
    assert normalize("Caf\u00e9\u2013SECRET").lower == "caf\u00e9-secret"
    assert normalize("\u00e9" + "A" * 70_000).lower is None


@given(st.text(alphabet=st.sampled_from(_DIGITS_ALPHABET + "AB\u0130\u0414"), max_size=80))
def test_long_digit_runs_from_a_window_projection_are_the_same(text: str) -> None:
    # GIVEN a window over the whole text, whose ASCII projection of the lower-cased text is shared
    window = _Window(text, 0, len(text), set())
    # WHEN the digit runs are located from that projection THEN they are those located from the text
    assert [m.span() for m in _long_digit_runs(text, len(text), window.ascii_low())] == [
        m.span() for m in _long_digit_runs(text, len(text))
    ]


def test_the_offset_map_is_built_only_when_a_position_is_mapped_back() -> None:
    folded = normalize("x\u200bSECRET\ufb01")
    assert not folded.identity
    assert folded._map == []  # nothing built by normalizing
    assert folded.original_span(1, 7) == (2, 8)
    assert folded.anchors == ((0, 0, False), (1, 2, False), (7, 8, True), (9, 9, False))


def test_the_line_before_a_marking_is_read_clipped_when_it_is_long() -> None:
    # GIVEN a level on its own line under a line far longer than any marking line
    text = "word " * 400_000 + "\nTop Secret\nnext line"
    line_start = text.index("Top Secret")

    # WHEN its neighbour lines are read
    previous, following = _neighbour_lines(text, line_start, line_start + len("Top Secret"))

    # THEN the long line is read clipped, never copied from the text's start
    assert len(previous) <= _MAX_LINE
    assert following == "next line"
