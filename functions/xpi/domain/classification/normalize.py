"""Fold a text to the spelling the detectors expect, with a map back to the characters that were sent.

What is folded (each non-ASCII character on its own, so the work is O(n) and a character never merges with
its neighbours):

* format characters (Unicode category Cf: zero-width space, joiner and non-joiner, word joiner, soft
  hyphen, byte-order mark, bidi controls, tags) and the other default-ignorable characters (combining
  grapheme joiner, variation selectors, Hangul fillers) are removed;
* Unicode dashes and hyphens become ``-``; Unicode spaces (no-break, en/em and the other typographic
  spaces, ideographic) become `` ``; fraction and division slashes become ``/``;
* NFKC: fullwidth and mathematical letters, digits and signs (the fullwidth commercial at, the fullwidth
  solidus) and ligatures become their ASCII form;
* letters of Cyrillic and Greek (and a few Latin ones) that look like Latin letters become that Latin
  letter (a compact table in the spirit of the Unicode TR39 confusable skeletons, written for this module);
* decimal digits of any script become ASCII digits.

Pure-ASCII text is returned as is with an identity map (no per-character work). Otherwise the map is kept
sparse: only characters whose folded form is not exactly one character (removed, or expanded by NFKC)
break the one-to-one correspondence, so the map stores one entry per such character and a lookup is a
binary search. Runs of non-ASCII characters are cached with their folded form and the offsets of their
irregular characters, so building the map touches only those characters.

The normalized text is one copy of the input (when it is not pure ASCII): the one allocation that grows
with the input's length.
"""

from __future__ import annotations

import codecs
import threading
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field

# Letters that render like a Latin letter. Cyrillic and Greek capitals that share a glyph with a Latin
# capital, and the lower-case letters (including small-capital look-alikes) that read as a Latin letter.
_CONFUSABLES = {
    # Cyrillic capitals
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H",
    "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0423": "Y", "\u0425": "X",
    "\u0405": "S", "\u0406": "I", "\u0408": "J", "\u04ae": "Y", "\u04c0": "I", "\u0500": "D",
    "\u051a": "Q", "\u051c": "W", "\u0417": "3", "\u0401": "E", "\u0407": "I",
    # Cyrillic lower case
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u043a": "k", "\u043c": "m", "\u043d": "h",
    "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x",
    "\u0455": "s", "\u0456": "i", "\u0458": "j", "\u0451": "e", "\u0457": "i", "\u04bb": "h",
    "\u04cf": "l", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u0475": "v", "\u04af": "y",
    "\u0433": "r",
    # Greek capitals
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I",
    "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T",
    "\u03a5": "Y", "\u03a7": "X", "\u03f9": "C", "\u037f": "J", "\u03d2": "Y",
    # Greek lower case
    "\u03b1": "a", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p",
    "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u03b3": "y", "\u03f2": "c", "\u03f3": "j",
    # Latin letters outside ASCII that NFKC leaves alone
    "\u0131": "i", "\u0261": "g", "\u0251": "a", "\u1d00": "A", "\u0299": "B", "\u1d04": "C",
    "\u1d05": "D", "\u1d07": "E", "\u029c": "H", "\u026a": "I", "\u1d0a": "J", "\u1d0b": "K",
    "\u029f": "L", "\u1d0d": "M", "\u0274": "N", "\u1d0f": "O", "\u1d18": "P", "\u0280": "R",
    "\ua731": "S", "\u1d1b": "T", "\u1d1c": "U", "\u1d20": "V", "\u1d21": "W", "\u028f": "Y",
    "\u1d22": "Z",
}  # fmt: skip

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043\u02d7\u058a\u05be\u2e3a\u2e3b"
_SPACES = "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\u1680"
_SLASHES = "\u2044\u2215\u29f8"
# Default-ignorable characters that are not Cf (those are dropped by category).
_IGNORABLE = "\u034f\u115f\u1160\u3164\uffa0\u180b\u180c\u180d\u180f" + "".join(
    chr(c) for c in range(0xFE00, 0xFE10)
)

_EXPLICIT: dict[str, str] = {
    **dict.fromkeys(_DASHES, "-"),
    **dict.fromkeys(_SPACES, " "),
    **dict.fromkeys(_SLASHES, "/"),
    **dict.fromkeys(_IGNORABLE, ""),
    **_CONFUSABLES,
}

_CACHE_LIMIT = 1 << 16
# Texts up to this length (a detection window's) get their lower-cased form with the normalization, from the
# folded UTF-8 bytes at hand; longer ones are lower-cased window by window, so memory stays flat.
_LOWER_LIMIT = 1 << 16


def _fold_one(ch: str) -> str:
    """One character after the table, the format-character rule and the digit rule (no NFKC)."""
    if ch.isascii():
        return ch
    explicit = _EXPLICIT.get(ch)
    if explicit is not None:
        return explicit
    if unicodedata.category(ch) == "Cf":
        return ""
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        return str(digit)
    return ch


def fold_char(ch: str) -> str:
    """The folded form of one character: zero, one or more characters."""
    folded = _fold_one(ch)
    if folded != ch or ch.isascii():  # ASCII, the table, a format character, a digit: done
        return folded
    compatible = unicodedata.normalize("NFKC", ch)
    return "".join(_fold_one(c) for c in compatible)


class _FoldCache(dict[str, str]):
    """Folded forms by character, computed on first sight (bounded: a text cannot grow it without limit)."""

    def __missing__(self, ch: str) -> str:
        folded = fold_char(ch)
        if len(self) < _CACHE_LIMIT:
            self[ch] = folded
        return folded


_Note = tuple[tuple[tuple[int, int], ...], bool]

# Runs of non-ASCII characters and their folded form in UTF-8. Runs repeat (a typographic quote, a
# no-break space, a word of a foreign script), so caching whole runs keeps the common case to one lookup in
# a plain dictionary per run. A run that needs a note is kept in ``_NOTED_RUNS`` instead, with its note:
# the characters that did not fold to exactly one (``(offset in the run, folded width)`` each), and whether
# the folded run keeps a non-ASCII character that lower-casing changes (see ``Normalized.ascii_case``).
# The offset map is built from the few irregular characters the notes name, not from every character.
# Both are bounded like ``_FoldCache``.
_PLAIN_RUNS: dict[str, bytes] = {}
_NOTED_RUNS: dict[str, tuple[bytes, _Note]] = {}


def _fold_new_run(run: str) -> tuple[bytes, _Note | None]:
    """A run seen for the first time (or not cached): folded, noted, cached."""
    folded = list(map(_FOLDED.__getitem__, run))
    irregular = tuple((offset, len(piece)) for offset, piece in enumerate(folded) if len(piece) != 1)
    joined = "".join(folded)
    cased = any(not ch.isascii() and ch.lower() != ch for ch in joined)
    encoded = joined.encode("utf-8", "surrogatepass")
    if not (irregular or cased):
        if len(_PLAIN_RUNS) < _CACHE_LIMIT:
            _PLAIN_RUNS[run] = encoded
        return encoded, None
    note = (irregular, cased)
    if len(_NOTED_RUNS) < _CACHE_LIMIT:
        _NOTED_RUNS[run] = (encoded, note)
    return encoded, note


_FOLDED = _FoldCache()
# The runs of the text being normalized that carry a note, by thread: (run start, note).
_NOTED = threading.local()

# The ASCII encoder copies ASCII stretches at C speed and calls this handler once per run of non-ASCII
# characters; the handler answers with the folded run, already UTF-8. Scanning the text with a regular
# expression instead costs several times more.
_ERRORS = "xpi.classification.normalize"


def _fold_run(error: UnicodeError) -> tuple[bytes, int]:
    end = error.end  # type: ignore[attr-defined]  # checked below unless the run is a cached str
    run = error.object[error.start : end]  # type: ignore[attr-defined]
    encoded = _PLAIN_RUNS.get(run)
    if encoded is None:
        if not isinstance(error, UnicodeEncodeError):
            raise error
        cached = _NOTED_RUNS.get(run)
        encoded, note = cached if cached is not None else _fold_new_run(run)
        if note is not None:
            _NOTED.runs.append((error.start, note))
    return encoded, end


codecs.register_error(_ERRORS, _fold_run)


@dataclass(frozen=True, slots=True)
class Normalized:
    """A folded text and the map from its character positions back to the original's.

    The map is built on first use (most texts yield no finding to map back). ``anchors`` is empty when the
    map is the identity (every position maps to itself). Otherwise it holds pieces
    ``(normalized_start, original_start, expanded)`` in order: positions of a plain piece map linearly from
    its start; every position of an expanded piece (one original character that folded to several) maps
    to that one original character.

    ``ascii_case``: lower-casing ``text`` changes no character but ASCII letters (every non-ASCII character
    it keeps is one lower-casing leaves alone), so lower-casing its UTF-8 bytes lower-cases it, and a slice
    of it, at byte speed. ``lower`` is then ``text.lower()`` for a text that is not ASCII and not longer
    than ``_LOWER_LIMIT`` (computed from the folded bytes at hand); ``None`` otherwise.
    """

    text: str
    original_length: int
    ascii_case: bool = True
    lower: str | None = None
    _irregular: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = field(default=(), repr=False)
    _map: list[tuple[tuple[tuple[int, int, bool], ...], tuple[int, ...]]] = field(
        default_factory=list, repr=False, compare=False
    )

    @property
    def identity(self) -> bool:
        return not self._irregular

    @property
    def anchors(self) -> tuple[tuple[int, int, bool], ...]:
        return self._offsets()[0]

    def _offsets(self) -> tuple[tuple[tuple[int, int, bool], ...], tuple[int, ...]]:
        if not self._map:
            self._map.append(_anchors(self._irregular))
        return self._map[0]

    def original_index(self, position: int) -> int:
        """The index of the original character normalized ``position`` comes from (the length at the end)."""
        if not 0 <= position <= len(self.text):
            raise IndexError(f"position {position} outside 0-{len(self.text)}")
        if position == len(self.text):
            return self.original_length
        if not self._irregular:
            return position
        anchors, starts = self._offsets()
        norm_start, orig_start, expanded = anchors[bisect_right(starts, position) - 1]
        return orig_start if expanded else orig_start + position - norm_start

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original span covering normalized ``[start, end)``: from the start of the first source
        character to the end of the last one. Removed characters inside the span fall inside it."""
        if not self._irregular:
            return start, end
        first = self.original_index(start)
        if end <= start:
            return first, first
        return first, self.original_index(end - 1) + 1


def _anchors(
    irregular: tuple[tuple[int, tuple[tuple[int, int], ...]], ...],
) -> tuple[tuple[tuple[int, int, bool], ...], tuple[int, ...]]:
    """The pieces of the offset map (see :class:`Normalized`) and their normalized starts."""
    if not irregular:
        return (), ()
    anchors: list[tuple[int, int, bool]] = [(0, 0, False)]
    append = anchors.append
    delta = 0  # normalized position minus original position, after the characters seen so far
    for run_start, characters in irregular:
        for offset, width in characters:
            index = run_start + offset
            position = index + delta
            if width:
                append((position, index, True))
            append((position + width, index + 1, False))
            delta += width - 1
    frozen = tuple(anchors)
    return frozen, tuple(a[0] for a in frozen)


def normalize(text: str) -> Normalized:
    """``text`` folded for detection (see the module docstring), with the map back to ``text``."""
    if text.isascii():
        return Normalized(text, len(text))
    noted: list[tuple[int, _Note]] = []
    _NOTED.runs = noted
    try:
        encoded = text.encode("ascii", _ERRORS)
    finally:
        del _NOTED.runs
    normalized = encoded.decode("utf-8", "surrogatepass")
    irregular = tuple((start, characters) for start, (characters, _) in noted if characters)
    cased = any(note[1] for _, note in noted)
    lower = None
    if not cased and len(normalized) <= _LOWER_LIMIT:
        lower = encoded.lower().decode("utf-8", "surrogatepass")
    return Normalized(normalized, len(text), not cased, lower, irregular)
