"""Built-in detectors: markings, export-control notices and PII, tuned for speed and for near-misses.

How it stays fast (the classifier runs on every request):

* Markings are upper case by convention, so they are found with ``str.find`` on the original text (a C
  scan at GB/s); only the rare hits get Python-level checks (word boundaries, "alone on its line",
  "opens a paragraph").
* Case-insensitive phrases (notices, PII labels) are found with ``str.find`` on one lower-cased copy of
  the text; each detector first asks a substring gate and does nothing when it is absent. The gates are
  answered from the window's distinct runs of letters (a few KB where the window has tens): one pass
  builds that list, and some sixty gate searches then run over it instead of the window (exactly: a
  string of letters occurs in the text only inside one run of letters).
* Digits: one character-class regex collects digit runs of at least eleven characters (the shortest SSN,
  card or phone shape); the SSN, card and phone expressions then run only over those short runs.
* Long texts are processed in windows of ``WINDOW`` characters with ``OVERLAP`` characters of context on
  each side, so the lower-cased copy and the list of letter runs (the only per-window allocations) are
  bounded and memory stays flat in the input size.

How it stays accurate: a marking only counts where markings are placed (a banner alone on its line or with
``//`` controls; a portion mark opening a paragraph); prose that mentions a marking does not; an export
regime counts only in a notice about the content itself; PII numbers must pass their checksum or
numbering rules.
"""

from __future__ import annotations

import csv
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator

from .models import Detection
from .validators import (
    aba_routing_is_valid,
    card_number_is_valid,
    date_is_plausible,
    luhn_is_valid,
    nanp_is_valid,
    ssn_is_valid,
)

WINDOW = 65_536
OVERLAP = 1_024
_MAX_LINE = 240  # a banner or marking line is never longer than this


class _Window:
    """One slice of the text being scanned, and where its detections go.

    Detectors anchor their searches in ``[lo, hi)`` (the window's own range) and may read context up to
    ``OVERLAP`` characters either side. ``low`` is the lower-cased text of ``[base, end)``. ``ascii_case``
    says lower-casing ``text`` changes no character but ASCII letters: then a text that is not ASCII is
    lower-cased as UTF-8 bytes, at byte speed, instead of character by character. ``lower``, when given,
    is ``text.lower()`` (computed by the caller), used when the window is the whole text.
    """

    __slots__ = (
        "_ascii",
        "_found",
        "_has",
        "_has_text",
        "_index",
        "_words",
        "base",
        "end",
        "found",
        "hi",
        "lo",
        "low",
        "restriction_checks",
        "text",
    )

    def __init__(
        self,
        text: str,
        lo: int,
        hi: int,
        found: set[Detection],
        *,
        ascii_case: bool = False,
        lower: str | None = None,
    ) -> None:
        self.text = text
        self.lo, self.hi = lo, hi
        self.base, self.end = max(0, lo - OVERLAP), min(len(text), hi + OVERLAP)
        whole = self.base == 0 and self.end == len(text)
        window = text if whole else text[self.base : self.end]
        if whole and lower is not None:
            low = lower
        elif ascii_case and not window.isascii():
            low = window.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")
        else:
            low = window.lower()
            if len(low) != len(window):  # only U+0130 lower-cases to two characters
                low = window.replace("\u0130", "i").lower()
        self.low = low
        self._ascii: str | None = None
        self.found = found
        self._index: dict[str, list[int]] = {}
        self._has: dict[str, bool] = {}
        self._has_text: dict[str, bool] = {}
        self._found: dict[str, list[int]] = {}
        self._words: str | None = None
        self.restriction_checks = 0

    def has(self, needle: str) -> bool:
        """``needle in low``, asked once per window: several detectors share their substring gates.

        The answer is exact. A needle's longest run of letters is first looked up in the window's word
        list (see ``words``), a few KB instead of the whole window: for a needle of letters only that is
        the answer; otherwise only a needle whose letters occur is looked for in ``low``.
        """
        hit = self._has.get(needle)
        if hit is None:
            gate = _HAS_GATES.get(needle)
            if gate is not None and not self.has(gate):
                hit = False
            else:
                piece = _PIECES[needle] if needle in _PIECES else _letter_piece(needle)
                if piece is None:
                    hit = needle in self.low
                else:
                    letters, whole = piece
                    hit = letters in (self._words or self.words()) and (whole or needle in self.low)
            self._has[needle] = hit
        return hit

    def words(self) -> str:
        """The distinct runs of ASCII letters of ``low``, space-separated; built once, lazily.

        A string of letters occurs in ``low`` exactly when it occurs in this list (it can only sit inside
        one run of letters), and the list is a small fraction of the window: one pass builds it, and every
        gate then searches the list instead of the window.
        """
        words = self._words
        if words is None:
            words = self._words = " ".join(set(self.ascii_low().translate(_LETTERS_ONLY).split()))
        return words

    def ascii_low(self) -> str:
        """``low`` with one "?" for each non-ASCII character (same positions); built once, lazily, so that
        translations of it run at ASCII speed."""
        projected = self._ascii
        if projected is None:
            projected = self.low
            if not projected.isascii():
                projected = projected.encode("ascii", "replace").decode("ascii")
            self._ascii = projected
        return projected

    def emit(self, category: str, start: int, end: int) -> None:
        self.found.add(Detection(category, start, end))

    def has_text(self, needle: str) -> bool:
        """``needle in`` the window's text (case-sensitive), asked once per window."""
        hit = self._has_text.get(needle)
        if hit is None:
            hit = self._has_text[needle] = self.text.find(needle, self.base, self.end) != -1
        return hit

    def find(self, needle: str) -> Iterator[int]:
        """Positions of ``needle`` (case-sensitive) starting in the window's own range; searched once per
        window, and not at all when a cheaper shared gate (see ``_FIND_GATES``) says it is absent."""
        hits = self._found.get(needle)
        if hits is None:
            gate = _FIND_GATES.get(needle)
            if gate is not None and not (self.has(gate[1:]) if gate[0] == "~" else self.has_text(gate)):
                hits = []
            else:
                hits = list(_find_all(self.text, needle, self.lo, self.hi + len(needle) - 1))
            self._found[needle] = hits
        return iter(hits)

    def find_low(self, needle: str) -> Iterator[int]:
        """Positions (in ``text``) of lower-case ``needle`` in the lower-cased text, in the own range."""
        base = self.base
        for rel in _find_all(self.low, needle, self.lo - base, self.hi - base + len(needle) - 1):
            yield rel + base

    def word_positions(self, words: tuple[str, ...]) -> list[int]:
        """Sorted positions (relative to ``low``) of whole ``words`` in the whole window; built once, lazily.

        Detectors that check context around many hits look up the nearest word here instead of scanning
        the context again for every hit, which keeps adversarial texts ("EAR EAR EAR ...") linear.
        """
        key = "|".join(words)
        positions = self._index.get(key)
        if positions is None:
            low = self.low
            positions = sorted(
                pos
                for word in words
                for pos in _find_all(low, word, 0, len(low))
                if not (pos > 0 and low[pos - 1].isalnum())
                and not low[pos + len(word) : pos + len(word) + 1].isalnum()
            )
            self._index[key] = positions
        return positions

    def pattern_positions(self, pattern: re.Pattern[str]) -> list[int]:
        """Sorted start positions (in ``text``) of ``pattern`` over the whole window; built once, lazily."""
        positions = self._index.get(pattern.pattern)
        if positions is None:
            positions = [m.start() for m in pattern.finditer(self.text, self.base, self.end)]
            self._index[pattern.pattern] = positions
        return positions

    def low_pattern_positions(self, pattern: re.Pattern[str]) -> list[int]:
        """Sorted start positions (relative to ``low``) of ``pattern`` over ``low``; built once, lazily."""
        key = "low:" + pattern.pattern
        positions = self._index.get(key)
        if positions is None:
            positions = [m.start() for m in pattern.finditer(self.low)]
            self._index[key] = positions
        return positions

    def low_iter(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Matches of ``pattern`` over ``low`` starting in the own range (positions relative to ``base``)."""
        hi = self.hi - self.base
        for match in pattern.finditer(self.low, self.lo - self.base, self.end - self.base):
            if match.start() >= hi:
                return
            yield match


# For ASCII text: lower-case letters stay, every other character becomes a space (the separator of
# ``_Window.words``).
_LETTERS_ONLY = "".join(chr(c) if 0x61 <= c <= 0x7A else " " for c in range(128))
_PIECES: dict[str, tuple[str, bool] | None] = {}


def _letter_piece(needle: str) -> tuple[str, bool] | None:
    """The longest run of ASCII lower-case letters in ``needle`` (None when shorter than three) and
    whether it is the whole needle; cached in ``_PIECES`` (needles are the detectors' constants)."""
    runs = re.findall(r"[a-z]+", needle)
    longest = max(runs, key=len) if runs else ""
    piece = (longest, longest == needle) if len(longest) >= 3 else None
    _PIECES[needle] = piece
    return piece


# A case-sensitive needle is looked for only when its gate occurs in the window: "~word" asks the
# lower-cased text (a gate other detectors ask too, so it is shared), anything else the text itself (one
# pass for several needles that hold it). A needle always contains its gate, so a missing gate is a miss.
_FIND_GATES = {
    "DISTRIBUTION ": "~distribution",
    "CUI": "~cui",
    "SBU": "~sbu",
    "FOUO": "~fouo",
    "LIMDIS": "~limdis",
    "EXDIS": "~exdis",
    "NODIS": "~nodis",
    "NOFORN": "~noforn",
    "SECRET": "~secret",
    "CONFIDENTIAL": "~confidential",
    "CONTROLLED": "~controlled",
    "LES": "~les",
    "NOCON": "~nocon",
    "FEDCON": "~fedcon",
    "DL ONLY": "ONLY",
    "FED ONLY": "ONLY",
    "DISPLAY ONLY": "ONLY",
    "EAR": "~ear",
    "BIS": "~bis",
    "REL TO": "~rel to",
    "ORCON": "~orcon",
    "IMCON": "~imcon",
    "RELIDO": "~relido",
    "PROPIN": "~propin",
}

# A lower-case needle is looked for only when a shorter one it contains (its gate, asked once per window
# and shared) occurs: most windows hold none of these words, and one pass then answers for several needles.
_HAS_GATES = {
    "top secret": "secret",
    "controlled unclassified information": "controlled",
    "controlled by": "controlled",
    "cui categor": "cui",
    "social security": "social sec",
    "ss#": "#",
    "edipi": "dipi",
    "edi-pi": "di-pi",
    "dod id": "dod",
    "dodid": "dod",
    "dod identification": "dod id",
    "date of birth": "birth",
    "birth date": "birth",
    "birthdate": "birth",
    "export control": "export",
    "export administration": "export",
    "export controlled": "export control",
    "export classification": "export",
    "license exception": "licen",
    "licence exception": "licen",
    "arms export control act": "export control",
    "export control classification": "export control",
    "export administration regulations": "export administration",
    "export administration act": "export administration",
    "classified as": "classified",
    "classified under": "classified",
    "classified by": "classified",
    "derived from": "derived",
    "declassify on": "declassify",
    "[les": "les",
    "/les": "les",
    "/sbu": "sbu",
    "/fouo": "fouo",
    "sensitive but unclassified": "sensitive",
    "law enforcement sensitive": "sensitive",
}

# --------------------------------------------------------------------------------------------------------
# Small helpers over the original text
# --------------------------------------------------------------------------------------------------------


def _find_all[T: (str, bytes)](haystack: T, needle: T, start: int, end: int) -> Iterator[int]:
    pos = haystack.find(needle, start, end)
    while pos != -1:
        yield pos
        pos = haystack.find(needle, pos + 1, end)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _bounded(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is a whole word (no letter, digit or underscore glued to either side)."""
    return (start == 0 or not _is_word_char(text[start - 1])) and (
        end >= len(text) or not _is_word_char(text[end])
    )


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The (line_start, line_end) around text[start:end], or None when that line is longer than _MAX_LINE."""
    lo = max(0, start - _MAX_LINE)
    line_start = text.rfind("\n", lo, start) + 1
    if line_start == 0 and lo > 0:
        return None
    line_end = text.find("\n", end, end + _MAX_LINE)
    if line_end == -1:
        if end + _MAX_LINE < len(text):
            return None
        line_end = len(text)
    return line_start, line_end


def _near_line(text: str, start: int, end: int, reach: int) -> tuple[int, int]:
    """The line around text[start:end], clipped to ``reach`` characters either side (a long line is not
    read whole)."""
    line_start = max(text.rfind("\n", max(0, start - reach), start) + 1, start - reach)
    line_end = text.find("\n", end, end + reach)
    return line_start, min(len(text), end + reach) if line_end == -1 else line_end


_JSON_STRING_START_RE = re.compile(r'(?:"\s*:|[\[,{])\s*"\Z')


def _line_context(text: str, start: int, end: int, *, json_start: bool = False) -> tuple[str, str] | None:
    """What stands before and after text[start:end] on its logical line; None for an over-long line.

    Text inside JSON (tool inputs, pasted payloads) carries its line breaks as the two characters
    backslash-n; those count as line breaks. The start of a JSON string value (``"key": "``) counts as a
    line start when the value goes on to an escaped line break (or always, with ``json_start``).
    """
    bounds = _line_bounds(text, start, end)
    if bounds is None:
        return None
    prefix, suffix = text[bounds[0] : start], text[end : bounds[1]]
    if "\\" not in prefix and "\\" not in suffix and '"' not in prefix:
        return prefix, suffix
    escaped_before = max(prefix.rfind("\\n"), prefix.rfind("\\r"))
    escaped_after = min((i for i in (suffix.find("\\n"), suffix.find("\\r")) if i != -1), default=-1)
    if escaped_before != -1:
        prefix = prefix[escaped_before + 2 :]
    elif _JSON_STRING_START_RE.search(prefix) and (json_start or escaped_after != -1 or not suffix.strip()):
        prefix = ""  # (a blank rest of the line: the string's escaped line break, rendered as one)
    if escaped_after != -1:
        suffix = suffix[:escaped_after]
    elif escaped_before != -1 and suffix.lstrip(" \t").startswith('"'):
        suffix = ""
    return prefix, suffix


# Markdown around a line's only words: a heading ("# CUI"), emphasis ("**SECRET**"), a quote ("> CUI").
_MARKUP_BEFORE_RE = re.compile(r"[ \t]*(?:#{1,6}[ \t]+|>[ \t]*)?(?:[*_]{1,3}[ \t]*)?\Z")
_MARKUP_AFTER_RE = re.compile(r"[ \t]*(?:[*_]{1,3}[ \t]*)?(?:#{1,6}[ \t]*)?\Z")
# A banner set off the same way on both sides: rules ("--- CUI ---", "=== SECRET ===") or guillemets
# ("<<CUI>>"). Not single brackets: "[secret]" alone on a line is an INI section.
_RULE_RE = re.compile(r"[\-=~*]{2,}")
# Page furniture a PDF's text keeps on a banner's line: "Page 3 of 12", "[Page 1]", "p. 4", "- 7 -".
_PAGE_FURNITURE_RE = re.compile(
    r"\[?[ \t]*(?:(?i:page|pg\.?|p\.)[ \t]*[0-9]+(?:[ \t]*(?i:of|/)[ \t]*[0-9]+)?|[0-9]+[ \t]+of[ \t]+[0-9]+"
    r"|-[ \t]*[0-9]+[ \t]*-)[ \t]*\]?"
)


def _without_markup(prefix: str, suffix: str) -> tuple[str, str]:
    """("", "") when the line holds nothing but markdown, a banner's rules or guillemets, or page furniture
    around the words between; else as given."""
    before, after = prefix.strip(), suffix.strip()
    if not (before or after):
        return prefix, suffix
    if _MARKUP_BEFORE_RE.match(prefix) and _MARKUP_AFTER_RE.match(suffix):
        return "", ""
    if (_RULE_RE.fullmatch(before) and _RULE_RE.fullmatch(after)) or (before, after) == ("<<", ">>"):
        return "", ""
    if all(not side or _PAGE_FURNITURE_RE.fullmatch(side) for side in (before, after)):
        return "", ""
    return prefix, suffix


def _alone_on_line(text: str, start: int, end: int) -> bool:
    context = _line_context(text, start, end)
    if context is None:
        return False
    prefix, suffix = _without_markup(*context)
    return not prefix.strip() and not suffix.strip()


_FIELD_OPEN_RE = re.compile(r"(?:^|[|\t,\[{]|[,:\[{][ \t]*\"|<[A-Za-z][^<>\n]{0,80}>)[ \t]*\Z")
# (a closing quote then ends the field: a delimiter or the line's end after it, not a word, as in a menu's
# 'garlic parm, "top secret" honey-habanero')
_FIELD_CLOSE_RE = re.compile(r"[ \t\r]*(?:[|\t,\]}]|\"(?![ \t]*[A-Za-z])|</|\Z)")
_ENUMERATION_GOES_ON_RE = re.compile(r"[ \t]*,[ \t]+(?:or|and|nor)[ \t]")


def _alone_in_field(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is alone on its line, or alone in a table cell, a CSV cell (quoted or
    not) or a JSON string line: nothing but field delimiters on either side."""
    context = _line_context(text, start, end)
    if context is None:
        return False
    prefix, suffix = context
    if not prefix.strip() and not suffix.strip():
        return True
    opened = _FIELD_OPEN_RE.search(prefix.rstrip(" \t") if prefix.strip() else "")
    return (
        opened is not None
        and _FIELD_CLOSE_RE.match(suffix) is not None
        # commas of a sentence's enumeration, not a CSV row's ("no classified information, CUI, or ...")
        and not (prefix.rstrip(" \t")[-1:] == "," and _ENUMERATION_GOES_ON_RE.match(suffix))
    )


def _upper_line_with(text: str, start: int, end: int, words: tuple[str, ...]) -> bool:
    """True when the line around text[start:end] is short, all upper case and holds one of ``words``."""
    bounds = _line_bounds(text, start, end)
    if bounds is None:
        return False
    line = text[bounds[0] : bounds[1]]
    return line.isupper() and len(line.strip()) <= 160 and any(word in line for word in words)


# Dissemination controls after a level: "//NOFORN", " // REL TO USA, FVEY", "//SP-PRVCY/SP-CTI//FEDCON".
# The older single-slash style ("S/NF", "UNCLASSIFIED/FOUO") counts only with a known control, so that
# "(S/MIME)" or "(C/C++)" do not.
_KNOWN_CONTROLS = (
    r"(?:NF|NOFORN|REL(?:IDO)?|ORCON|OC|IMCON|PROPIN|PR|FISA|SI|TK|HCS|G|FVEY|FOUO|LES|SBU|LIMDIS|EXDIS|"
    r"NODIS|DSEN|SAR|RD|FRD|CNWDI|SCI|FGI|NATO|NNPI|FEDCON|NOCON|DL ONLY|FED ONLY|DISPLAY ONLY|REL TO|"
    r"SP-[A-Z]{2,8}|PRVCY|PROPIN|LEI|CTI|EXPT|OPSEC|PRIIG|TAX|PCII|CVI|SSI|NUC|ISVI|INTEL|LEGAL|PRIVILEGE|"
    r"ATTORNEY-CLIENT|AWP)(?![A-Za-z0-9])"
)
# The older style puts a dissemination control after a space: "SECRET NOFORN", "SECRET REL TO USA, AUS".
_CONTROLS_RE = re.compile(
    r"(?:[ \t]*(?://[ \t]*[A-Z0-9]|/[ \t]*"
    + _KNOWN_CONTROLS
    # (and the older COMINT and imagery codewords after a level: "TOP SECRET UMBRA", "SECRET SPOKE")
    + r")|[ \t]+(?:NOFORN|REL TO [A-Z]{3}|ORCON|IMCON|RELIDO|PROPIN|UMBRA|SPOKE|MORAY|RUFF|ZARF|DINAR|TRINE"
    r"|TALENT KEYHOLE)(?![A-Za-z]))[A-Z0-9 ,/\-]*"
)
_LEVEL_BEFORE_SLASH_RE = re.compile(r"(?:^|[^A-Za-z0-9])(?:UNCLASSIFIED|U|SECRET|CONFIDENTIAL|CUI|C|S|TS)/\Z")


def _controls_after(text: str, end: int) -> int:
    """End of the controls that follow a marking level at ``end``, or -1 when there are none."""
    match = _CONTROLS_RE.match(text, end, end + _MAX_LINE)
    if match is None:
        return -1
    return match.start() + len(match.group().rstrip(" ,/-"))


def _controls_before(text: str, start: int) -> bool:
    """True when the word at ``start`` is a control: after "//", or after "LEVEL/" ("UNCLASSIFIED/FOUO")."""
    head = text[max(0, start - 16) : start]
    return (
        head.rstrip(" \t").endswith("//")
        or bool(_LEVEL_BEFORE_SLASH_RE.search(head))
        # a naval message's classification line: "UNCLAS FOUO"
        or bool(_UNCLAS_BEFORE_RE.search(head))
    )


_UNCLAS_BEFORE_RE = re.compile(r"(?:^|[^A-Za-z0-9])UNCLAS[ \t]+\Z")


# --------------------------------------------------------------------------------------------------------
# Classified markings
# --------------------------------------------------------------------------------------------------------

# Commercial data-handling labels: a level word alone on a line beside these is a list item, not a banner.
_COMMERCIAL_LABELS = frozenset(
    {
        "PUBLIC",
        "INTERNAL",
        "INTERNAL USE ONLY",
        "RESTRICTED",
        "PRIVATE",
        "PROPRIETARY",
        "HIGHLY CONFIDENTIAL",
        "SENSITIVE",
        "GENERAL",
        "OPEN",
        "HIGHLY RESTRICTED",
        "COMPANY CONFIDENTIAL",
    }
)
# The same labels as cells of a neighbouring row: a table of commercial tiers, not of marked documents.
_COMMERCIAL_CELL_RE = re.compile(
    r"(?:^|[|\t,\"\[])[ \t]*(?:"
    + "|".join(sorted(_COMMERCIAL_LABELS, key=len, reverse=True))
    + r")[ \t]*(?:[|\t,\"\]]|\Z)"
)
# A markup element that holds a marking: <classification>, <marking class="x">, <banner>.
_MARKING_ELEMENT = r"<(?i:classification|marking|banner)(?:[ \t][^<>\n]{0,60})?>"
# "Classification: SECRET", "Sensitivity: SECRET", and the same as a markup element: "<classification>SECRET".
_CLASSIFICATION_LABEL_RE = re.compile(
    r"(?:(?i:classification|classified|sensitivity|security[ \t]+level)[ \t]*:|"
    + _MARKING_ELEMENT
    + r")[ \t]*\Z"
)
# A field that holds a marking: "classification": "SECRET", marking=SECRET, Banner: 'SECRET'.
_MARKING_FIELD_RE = re.compile(
    r"(?i:classification|classif|marking|banner|header|footer|caveat|sensitivity|handling|"
    r"security[ _-]?level)"
    r"[\"']?[ \t]*[:=][ \t]*[\"']?\Z"
)


# A credential's label before a bracketed placeholder: "password: [SECRET]", "Bearer [SECRET]" hide a
# secret's value, they do not mark the text.
_CREDENTIAL_LABEL_RE = re.compile(
    r"(?i:password|passwd|pwd|passphrase|token|api[ _-]?key|key|secret|bearer|credentials?|authorization)"
    r"[\"']?[ \t]*[:=]?[ \t]*\Z"
)


def _in_cell(prefix: str, suffix: str) -> bool:
    """True when a level word fills a delimited field on its own: a table or CSV cell (``| SECRET |``,
    ``A-113,SECRET,J2``), a bracketed tag (``[SECRET]``) or a marking field's value
    (``"classification": "SECRET"``). A level word inside a sentence is not a marking."""
    before, after = prefix.rstrip(" "), suffix.lstrip(" ")
    opener = before[-1:]
    if opener == "[":
        return after.startswith("]") and not _CREDENTIAL_LABEL_RE.search(before, 0, len(before) - 1)
    if opener in ("|", "\t", ","):
        return not after.strip() or after[0] in "|\t,"
    if not before.strip():
        return after[:1] in ("|", "\t", ",") and after[:1] != ""
    if _MARKING_FIELD_RE.search(prefix):
        return not after.strip() or after[0] in "\"',;|}"
    return False


def _neighbour_lines(text: str, line_start: int, line_end: int) -> tuple[str, str]:
    previous = ""
    if line_start > 0:
        prev_end = line_start - 1
        # (a line longer than _MAX_LINE is read clipped: never a slice from the text's start)
        prev_start = max(text.rfind("\n", max(0, prev_end - _MAX_LINE), prev_end) + 1, prev_end - _MAX_LINE)
        previous = text[prev_start:prev_end].strip()
    next_start = line_end + 1
    next_end = text.find("\n", next_start, next_start + _MAX_LINE)
    following = text[next_start : next_end if next_end != -1 else next_start + _MAX_LINE].strip()
    return previous, following


def _level_start(text: str, pos: int, needle: str) -> int:
    """Start of the level word at ``pos``, extended over a preceding "TOP" for "TOP SECRET"."""
    if needle != "SECRET":
        return pos
    head = text[max(0, pos - 8) : pos]
    stripped = head.rstrip(" \t")
    top = pos - len(head) + len(stripped) - 3
    if stripped.endswith("TOP") and stripped != head and _bounded(text, top, top + 3):
        return top
    return pos


_LEVEL_LABEL_RE = re.compile(r"(?<![A-Za-z])(?i:level)[ \t]*:[ \t]*\Z")


def _classified(w: _Window) -> None:
    text = w.text
    for needle in ("SECRET", "CONFIDENTIAL"):
        for pos in w.find(needle):
            end = pos + len(needle)
            if not _bounded(text, pos, end):
                continue
            start = _level_start(text, pos, needle)
            controls_end = _controls_after(text, end)
            if controls_end != -1:
                w.emit("classified.banner", start, controls_end)
                continue
            context = _line_context(text, start, end)
            if context is None:
                continue
            # a level alone in a code comment stands as a banner, as alone on its line
            context = ("", "") if _alone_in_comment(text, start, end) else _without_markup(*context)
            if _in_cell(*context):
                bounds = _line_bounds(text, start, end)
                if bounds is None or not _COMMERCIAL_CELL_RE.search(
                    " ".join(_neighbour_lines(text, *bounds))
                ):
                    w.emit("classified.banner", start, end)
                continue
            prefix, suffix = context
            if prefix.strip() or suffix.strip():
                # "CLASSIFICATION: SECRET" (the line may go on), "Level: SECRET"; a tag, "SECRET: the target
                # list", "Subject: TOP SECRET - movements". The ambiguous CONFIDENTIAL needs an upper-case
                # classification label ("CONFIDENTIAL: Q3 results" is a company's courtesy).
                if (
                    _CLASSIFICATION_LABEL_RE.search(prefix) and (needle == "SECRET" or "CLASSIF" in prefix)
                ) or (
                    needle == "SECRET" and (_LEVEL_LABEL_RE.search(prefix) or _opens_as_tag(text, start, end))
                ):
                    w.emit("classified.banner", start, end)
                continue
            bounds = _line_bounds(text, start, end)
            if bounds is not None and not _COMMERCIAL_LABELS.isdisjoint(_neighbour_lines(text, *bounds)):
                continue
            w.emit("classified.banner", start, end)


_AUTHORITY_LABEL_RE = re.compile(r"[ \t]*(?:derived from|declassify on|reason|declassification date)[ \t]*:")


def _opens_logical_line(text: str, pos: int) -> bool:
    """True when nothing but spaces precedes ``pos`` on its line, a JSON string's escaped line counting."""
    context = _line_context(text, pos, pos, json_start=True)
    return context is not None and not context[0].strip()


# The next line of a block: after a line break, or after an escaped one inside a JSON string.
# (the block may sit in a source file's comment: " * Classified By: ...", "# Derived From: ...")
_COMMENT_LEAD = r"(?:(?:/?\*+|//+|#+|--|;+|%+)[ \t]*)?"
_COMMENT_LEAD_RE = re.compile(r"[ \t]*" + _COMMENT_LEAD + r"\Z")
_AUTHORITY_NEXT_RE = re.compile(
    r"(?:\n|\\n)[ \t]*"
    + _COMMENT_LEAD
    + r"(?:derived from|declassify on|reason|declassification date)[ \t]*:"
)


_AUTHORITY_INLINE_RE = re.compile(
    r"classified by[ \t]*:[^|;\n]{1,80}[|;][ \t]*(?:derived from|reason)[ \t]*:[^|;\n]{1,80}[|;][ \t]*"
    r"declassify on[ \t]*:[^|;\n]{1,40}"
)


# A derivative classifier's block may name no classifier: "Derived From:" and "Declassify On:" lines, in
# either order; each label with the pattern of the other's line below it.
_DERIVATIVE_LINES = (
    ("derived from", re.compile(r"(?:\n|\\n)[ \t]*" + _COMMENT_LEAD + r"declassify on[ \t]*:")),
    ("declassify on", re.compile(r"(?:\n|\\n)[ \t]*" + _COMMENT_LEAD + r"derived from[ \t]*:")),
)


def _opens_block_line(text: str, pos: int) -> bool:
    """True when ``pos`` opens its logical line, or follows a comment's marker alone ("  * ", "# ")."""
    if _opens_logical_line(text, pos):
        return True
    line_start = text.rfind("\n", max(0, pos - 12), pos)
    return line_start != -1 and _COMMENT_LEAD_RE.match(text, line_start + 1, pos) is not None


def _authority_block(w: _Window) -> None:
    low = w.low
    # (also beside a "Classified By:" that opens no line: "[6/3/25, 7:48 AM] SSgt Hale: Classified By: ...")
    if w.has("derived from") and w.has("declassify on"):
        for label, other_line in _DERIVATIVE_LINES:
            for pos in w.find_low(label):
                bounds = _line_bounds(w.text, pos, pos)
                rel = pos - w.base
                after = rel + len(label)
                if bounds is None or not low[after : after + 3].lstrip().startswith(":"):
                    continue
                if _opens_block_line(w.text, pos) and other_line.search(low, rel, rel + 400):
                    w.emit("classified.authority_block", pos, bounds[1])
    if not w.has("classified by") or (not w.has("declassify on") and not w.has("derived from")):
        return
    # the block on one line, its fields between separators: a log's "| Classified By: SSO | Derived From: ..."
    for match in w.low_iter(_AUTHORITY_INLINE_RE):
        w.emit("classified.authority_block", match.start() + w.base, match.end() + w.base)
    for pos in w.find_low("classified by"):
        bounds = _line_bounds(w.text, pos, pos)
        rel = pos - w.base
        if (
            bounds is None
            or not low[rel + 13 : rel + 16].lstrip().startswith(":")
            or not _opens_block_line(w.text, pos)
        ):
            continue
        # Another authority line ("Derived From:", "Declassify On:") within the next few lines.
        if _AUTHORITY_NEXT_RE.search(low, rel, rel + 400):
            w.emit("classified.authority_block", pos, bounds[1])


# --------------------------------------------------------------------------------------------------------
# Portion marks: (S), (TS//SCI), (CUI), (CUI//SP-CTI), (U//FOUO)
# --------------------------------------------------------------------------------------------------------

_PORTION_RE = re.compile(
    r"\((TS|S|C|U|CUI|FOUO|SBU|LES)((?:[ \t]*//[ \t]*[A-Z0-9]|/"
    + _KNOWN_CONTROLS
    + r")[A-Z0-9 ,/\-]{0,80}?|)\)"
)
# What may stand before a portion mark on its line: indentation, bullets, paragraph numbers, a subject label,
# a code comment's or a markdown heading's leader ("# (CUI) Coefficients below ...", "// (S) ...").
_PORTION_PREFIX_RE = re.compile(
    r"[ \t]*(?:(?:[-*\u2022>]|\d{1,3}(?:\.\d{1,3})*[.)]?|[A-Za-z][.)]|\(\d{1,3}\)|\([a-z]{1,4}\)"
    r"|#{1,6}|//|--|;{1,2}|%{1,2}|/\*+|<!--)[ \t]+)*"
    r"(?:(?i:subject|subj|title|re)[ \t]*:[ \t]*)?[\"'\u201c]?\Z"
)
_SUBJECT_LINE_RE = re.compile(r"[ \t>]*(?i:subject|subj)[ \t]*:")
_SENTENCE_END_RE = re.compile(r"[.!?:][\"')\]]?[ \t]+\Z")
# (a calendar's or a form's key before its value, with no space: "SUMMARY:(CUI) Debrief")
_SPEAKER_RE = re.compile(r"[ \t]*(?:\[[0-9:. APMapm]{4,12}\][ \t]*)?[A-Z][A-Za-z.' -]{0,30}:[ \t]*")
# A portion mark also opens a field: a table or CSV cell, a quoted or keyed value (msg="(CUI) ..."), the
# message of a log line (after its level or a bracketed logger name).
_BULLETS = r"(?:(?:[-*\u2022>]|\d{1,3}(?:\.\d{1,3})*[.)]?|[A-Za-z][.)]|\(\d{1,3}\)|\([a-z]{1,4}\))[ \t]+)*"
_FIELD_START_RE = re.compile(
    r"(?:[|\t,;\"'=\[\]{>]|(?<![A-Za-z])(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE|NOTICE|FATAL|CRITICAL|ALERT))"
    r"[ \t]*" + _BULLETS + r"\Z"
)
_LOG_LINE_RE = re.compile(r"[ \t]*\[?[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
# A timeline's or a log's entry opened by its date and time, in the other ways they are written ("06/15 0012",
# "06/16", "14 Jun 2024 22:10", "2024/06/15 22:10:05"): the portion mark opens its text.
_TIMELINE_PREFIX_RE = re.compile(
    r"[ \t]*\[?(?:[0-9]{1,4}[/.-][0-9]{1,2}(?:[/.-][0-9]{2,4})?"
    r"|[0-9]{1,2}[ \t]+[A-Z][a-z]{2}[ \t]+[0-9]{2,4})"
    r"(?:[ \tT]+(?:[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?(?:[ \t]*[AaPp][Mm])?|[0-9]{4}Z?))?\]?[ \t]+\Z"
)
# A log's entry opened by its time alone ("0330 (CUI) Received tasking ..."), for a mark of two letters or
# more ("2011 (C) Acme" is a copyright's year).
_TIME_PREFIX_RE = re.compile(r"[ \t]*(?:[0-9]{4}Z?|[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)[ \t]+\Z")
_COPYRIGHT_TAIL_RE = re.compile(
    r"[^\n]{0,40}\b(?:19|20)\d\d\b|[^\n]{0,120}(?i:all rights reserved|copyright)"
)
# A text that writes its copyright sign "(C)" ("(C) 2024 Parroquia San Jose", "Copyright (C)") means that by
# its other bare "(C)"s too, unless unclassified portion marks show it is marked ("(U) ...").
_COPYRIGHT_SIGN_RE = re.compile(
    r"[^\n]*?(?i:copyright)[ \t]*\(C\)|\(C\)[ \t]*(?:(?i:copyright)|(?:19|20)\d\d\b)"
)
_LEGACY_CONTROLS = ("FOUO", "LES", "SBU", "FOR OFFICIAL USE ONLY", "LAW ENFORCEMENT SENSITIVE")
# A parenthesised capital that is no classification level - "(B) the term", "(M) Medium" - near a bare
# "(C)" or "(S)" makes that an item of a list or legend, not a portion mark.
_LEGEND_LETTER_RE = re.compile(r"\([ABD-RTV-Z]\)")
# ("(S) Slim · (R) Regular", "circle one: (S) (M) (L)")
_LEGEND_SEPARATOR_RE = re.compile(r"(?:[,;|\u00b7\u2022]|\s{2}|\t|\([A-Z0-9]{1,3}\)[ \t])\s*\Z")


def _in_letter_list(w: _Window, start: int, end: int) -> bool:
    text = w.text
    positions = w.pattern_positions(_LEGEND_LETTER_RE)
    for index in range(bisect_left(positions, start - 2000), bisect_left(positions, end + 2000)):
        pos = positions[index]
        context = _line_context(text, pos, pos + 3, json_start=True)
        if context is None:
            continue
        if not context[0].strip() or context[0].rstrip(" ")[-1:] in ("\t", "|", ","):
            return True  # the letter opens a line or a field: an item of a list, as (C) then is
        same_line = text.find("\n", min(start, pos), max(end, pos + 3)) == -1
        if same_line and _LEGEND_SEPARATOR_RE.search(context[0]):
            return True
    return False


def _opens_paragraph(text: str, start: int, end: int) -> bool:
    """True when a bare portion mark stands where portion marks go: opening a paragraph or sentence."""
    follow = text[end : end + 3]
    if follow[:1] not in (" ", "\t") or not follow.strip():
        return False
    first = follow.strip()[0]
    context = _line_context(text, start, end, json_start=True)
    if not (first.isupper() or first.isdigit() or first in "\"'(\u201c"):
        # a timeline's entries are often in lower case ("06/15 0040  (CUI) files copied", "(CUI) vendor sent")
        return end - start >= 5 and context is not None and _TIMELINE_PREFIX_RE.match(context[0]) is not None
    if context is None:  # a paragraph longer than a line may be: opening it, or a sentence, counts
        # (after an opening quote: a pasted paragraph, '"(CUI) The contractor shall ...')
        before = text[max(0, start - 8) : start]
        quoted = before.rstrip("\"'\u201c\u2018")
        opens_text = start - (len(before) - len(quoted)) == 0
        return opens_text or quoted.endswith("\n") or bool(_SENTENCE_END_RE.search(quoted))
    prefix = context[0]
    if _PORTION_PREFIX_RE.match(prefix) or _FIELD_START_RE.search(prefix):
        return True
    if _LOG_LINE_RE.match(prefix) and prefix[-1:] in (" ", "\t"):
        return True
    return (
        _TIMELINE_PREFIX_RE.match(prefix) is not None
        or (end - start >= 4 and _TIME_PREFIX_RE.match(prefix) is not None)
        or (bool(prefix.strip()) and bool(_SENTENCE_END_RE.search(prefix)))
    )


def _after_speaker(text: str, start: int, end: int) -> bool:
    """A portion mark of two letters or more opening a chat line's message, in any case after it ("Lt Park:
    (CUI) pax manifest for the 14th"); one letter is not taken there ("Size: (S) small")."""
    if end - start < 4 or text[end : end + 1] not in (" ", "\t") or not text[end : end + 2].strip():
        return False
    context = _line_context(text, start, end)
    return context is not None and _SPEAKER_RE.fullmatch(context[0]) is not None


def _in_subject_line(text: str, start: int, end: int) -> bool:
    """A mark of three letters or more anywhere in a message's subject line, which marks the message
    ("Subject: midterm answer key (fouo) - do not post"); "(TS)" there is as often TypeScript, "(S)" a
    size."""
    if end - start < 5:
        return False
    line_start = _near_line(text, start, end, 200)[0]
    return _SUBJECT_LINE_RE.match(text, line_start, start) is not None


def _portion_category(level: str, controls: str) -> str | None:
    if level in ("TS", "S", "C"):
        return "classified.portion"
    if level == "CUI":
        return "cui.specified" if "SP-" in controls else "cui.portion"
    if level == "U":
        return "cui.legacy" if any(word in controls for word in _LEGACY_CONTROLS) else None
    return "cui.legacy"  # FOUO, SBU, LES


def _portion_marks(w: _Window) -> None:
    text = w.text
    copyright_sign: list[bool] = []  # whether the text writes "(C)" for its copyright: read once, if asked
    defined_letters: dict[str, bool] = {}
    for match in _PORTION_RE.finditer(text, w.lo, w.end):
        start, end = match.span()
        if start >= w.hi:
            return
        level, controls = match.group(1), match.group(2)
        category = _portion_category(level, controls)
        if category is None:
            continue
        # With '//' controls the mark is unmistakable; a bare one must stand where portion marks stand.
        if not controls and (
            not (
                _opens_paragraph(text, start, end)
                or _after_speaker(text, start, end)
                or _in_subject_line(text, start, end)
            )
            or (
                level == "C"
                and (
                    _COPYRIGHT_TAIL_RE.match(text, end, end + 160)
                    or _writes_copyright_sign(text, copyright_sign)
                )
                and not _among_portions(w)
            )
            or (len(level) == 1 and _in_letter_list(w, start, end))
            or (len(level) == 1 and _letter_defined(text, level, defined_letters))
        ):
            continue
        w.emit(category, start, end)
    # Multi-letter levels in any case ("(Cui) The ...", "(ts) The ..."), where a portion mark opens a
    # paragraph or a field. One-letter ones stay upper case: "(c) The contractor shall" is a list item.
    if "(" not in w.low or not any(w.has(key) for key in _PORTION_ANY_CASE_KEYS):
        return
    for match in w.low_iter(_PORTION_ANY_CASE_RE):
        start, end = match.start() + w.base, match.end() + w.base
        if text[start:end].isupper() or not (
            _opens_paragraph(text, start, end) or _in_subject_line(text, start, end)
        ):
            continue
        w.emit(_portion_category(match.group(1).upper(), "") or "cui.legacy", start, end)


# A legend that gives a letter another meaning, in words ("Legend: (I) = interviewer, (S) = student"): the
# text's bare "(S)"s are that ("[00:00:09] (S) Fall of 2019"). A legend of the marks says "(S) = Secret".
def _letter_defined(text: str, level: str, memo: dict[str, bool]) -> bool:
    if level not in memo:
        mark = f"({level})"
        memo[level] = any(
            _LETTER_DEFINITION_RE.match(text, pos + 3) is not None
            for pos in _find_all(text, mark, 0, len(text))
        )
    return memo[level]


_LETTER_DEFINITION_RE = re.compile(r"[ \t]*=[ \t]*[a-z]")


def _writes_copyright_sign(text: str, memo: list[bool]) -> bool:
    if not memo:  # from each "(C)" (a byte-speed find), not a case-blind search of the whole text
        memo.append(
            any(
                _COPYRIGHT_SIGN_RE.match(text, max(0, pos - 12), pos + 20) is not None
                or _COPYRIGHT_SIGN_RE.match(text, pos, pos + 20) is not None
                for pos in _find_all(text, "(C)", 0, len(text))
            )
        )
    return memo[0]


def _among_portions(w: _Window) -> bool:
    """Paragraphs of the window open with an unclassified portion mark, "(U) ...": a "(C)" opening another is
    its portion mark even with a year after it ("(C) The 2011 arrangement ..."), not a copyright."""
    return any(_opens_paragraph(w.text, pos, pos + 3) for pos in w.find("(U)"))


_PORTION_ANY_CASE_RE = re.compile(r"\((ts|cui|fouo|sbu|les)\)")
_PORTION_ANY_CASE_KEYS = ("cui", "fouo", "sbu", "les", "(ts)")  # every match holds one (gates shared)


# --------------------------------------------------------------------------------------------------------
# CUI banners, the designation indicator, legacy markings
# --------------------------------------------------------------------------------------------------------


def _cui_banners(w: _Window) -> None:
    text = w.text
    for needle in ("CUI", "CONTROLLED"):
        for pos in w.find(needle):
            end = pos + len(needle)
            if not _bounded(text, pos, end) or text[pos - 1 : pos] == "(" or text[pos - 7 : pos] == "EXPORT ":
                continue
            controls_end = _controls_after(text, end)
            if controls_end != -1:
                category = "cui.specified" if "SP-" in text[end:controls_end] else "cui.banner"
                w.emit(category, pos, controls_end)
            elif (
                _alone_on_line(text, pos, end)
                or (needle == "CUI" and _alone_in_field(text, pos, end))
                or _labelled_marking(text, pos, end)
                or _alone_in_comment(text, pos, end)
                or (
                    needle == "CUI"
                    and _opens_as_tag(text, pos, end)
                    and not _CUI_TOPIC_AFTER_RE.match(text, end)
                )
            ):
                w.emit("cui.banner", pos, end)
            elif (
                needle == "CUI"
                and (kind := _CUI_KIND_RE.match(text, end))
                and _alone_on_line(text, pos, kind.end())
            ):
                category = "cui.specified" if kind.group(1).lower() == "specified" else "cui.banner"
                w.emit(category, pos, kind.end())
    # "Cui" or "cui" in any case alone on a line or in a field (a table cell, a JSON string line), not in a
    # list of the levels a scheme allows ("Allowed values: public | internal | sensitive | cui"); or after a
    # marking's label ("Marking: cui (basic) -- keep it on the wiki").
    if w.has("cui"):
        for pos in w.find_low("cui"):
            end = pos + 3
            if text[pos:end] == "CUI" or not _bounded(text, pos, end):
                continue
            if (_alone_in_field(text, pos, end) and not _among_levels(text, pos, end)) or _line_around(
                text, pos, end, _MARKING_LABEL_RE, _LOOSE_VALUE_END_RE
            ):
                w.emit("cui.banner", pos, end)


# What may follow a marking's lower-case value after its label: its kind, then the line's end or a break.
_LOOSE_VALUE_END_RE = re.compile(
    r"[ \t]*(?:\((?i:basic|specified)\))?[ \t]*(?:\Z|[|;,]|--|-[ \t]|[\u2013\u2014])"
)
_OTHER_LEVELS_RE = re.compile(r"(?i:\b(?:public|internal|sensitive|restricted|private|proprietary)\b)")


def _among_levels(text: str, start: int, end: int) -> bool:
    """A lower-case "cui" among other levels of a data-classification scheme on its line: a list of the
    values a tag may take, not a marking."""
    bounds = _line_bounds(text, start, end)
    return bounds is not None and _OTHER_LEVELS_RE.search(text, bounds[0], bounds[1]) is not None


# "CUI Basic" and "CUI Specified" standing as a banner.
_CUI_KIND_RE = re.compile(r"[ \t]+((?i:basic|specified))(?![A-Za-z0-9])")
# "CUI: An overview", "CUI - what you need to know": a title about CUI, not a tag on the content.
_CUI_TOPIC_AFTER_RE = re.compile(
    r"[ \t]*[:|\-\u2013\u2014][ \t]*(?i:an?[ \t]+|the[ \t]+)?(?i:overview|basics|training|guide|"
    r"introduction|intro|program|registry|policy|policies|faq|what|how|why|awareness|101|markings?|handbook|"
    r"course|module|requirements|rules|explained|quick)(?![A-Za-z])"
)
# A code comment that holds nothing but a marking: "% CUI", "// SECRET", "-- CUI", "<!-- CUI -->".
_COMMENT_BEFORE_RE = re.compile(r"\A[ \t]*(?:%{1,2}|//|;{1,2}|--|<!--|/\*)[ \t]*\Z")
_COMMENT_AFTER_RE = re.compile(r"[ \t]*(?:-->|\*/)?[ \t]*\Z")


def _line_around(text: str, start: int, end: int, before: re.Pattern[str], after: re.Pattern[str]) -> bool:
    """True when the line's text before text[start:end] ends as ``before`` says (searched) and the text
    after it starts as ``after`` says (matched)."""
    context = _line_context(text, start, end)
    return (
        context is not None and before.search(context[0]) is not None and after.match(context[1]) is not None
    )


def _alone_in_comment(text: str, start: int, end: int) -> bool:
    """An upper-case marking alone in a code or markup comment; the detectors that call it check the case
    ("// secret" above a key's line is about the key)."""
    return _line_around(text, start, end, _COMMENT_BEFORE_RE, _COMMENT_AFTER_RE)


# A marking as a labelled value that ends its line or its pipe-separated field: "classification: CUI",
# "Markings: CONTROLLED", "<marking>CUI</marking>", "Footer: CUI | Page 4".
_MARKING_LABEL_RE = re.compile(
    r"(?:(?i:classification|classified|markings?|banner|header|footer)[ \t]*:[ \t]*[\"']?|"
    + _MARKING_ELEMENT
    + r"[ \t]*)\Z"
)
_MARKING_VALUE_END_RE = re.compile(r"[ \t]*(?:[\"']|</[A-Za-z]+>)?[ \t,;]*(?:\|.*)?\Z")


def _labelled_marking(text: str, start: int, end: int) -> bool:
    return _line_around(text, start, end, _MARKING_LABEL_RE, _MARKING_VALUE_END_RE)


_CUI_WORDS = "controlled unclassified information"


def _cui_spelled_out(w: _Window) -> None:
    """The banner written out in full on a cover sheet, alone on its line, in any case: three words that
    alone on a line are never prose."""
    if not w.has(_CUI_WORDS):
        return
    for pos in w.find_low(_CUI_WORDS):
        end = pos + len(_CUI_WORDS)
        controls_end = _controls_after(w.text, end)  # "CONTROLLED UNCLASSIFIED INFORMATION//BASIC"
        if controls_end != -1:
            w.emit("cui.banner", pos, controls_end)
        elif _alone_on_line(w.text, pos, end):
            w.emit("cui.banner", pos, end)


_LEGACY_ALONE = {
    "FOUO": frozenset({"FOUO"}),
    "F.O.U.O": frozenset({"F.O.U.O", "F.O.U.O."}),
    "SBU": frozenset({"SBU", "SBU NOFORN", "SBU-NF", "SBU - NOFORN"}),
    "LES": frozenset({"LES"}),
    "LIMDIS": frozenset({"LIMDIS"}),
    "EXDIS": frozenset({"EXDIS"}),
    "NODIS": frozenset({"NODIS"}),
}
# A marking used as a tag: "[FOUO]" anywhere, or "FOUO:" / "FOUO -" opening a line or a subject.
_TAG_PREFIX_RE = re.compile(
    r"(?:[^\n]*(?:[|\t,\"\]]|:[ \t]))?[ \t]*(?:[-*>][ \t]+)?"
    r"(?:(?i:subject|subj|title|re|fw|fwd)[ \t]*:[ \t]*)*(?:\[[^\]\n]{0,20}\][ \t]*)*\Z"
)
_TAG_SUFFIX_RE = re.compile(r"[ \t]*[:|]|[ \t]+(?:--?|[\u2013\u2014])[ \t]")  # "--" is a typed dash
# A glossary entry ("FOUO: For Official Use Only") spells the marking out; it is not a tag.
_EXPANSION_RE = re.compile(
    r"[ \t]*[:|\-\u2013\u2014][ \t]*[\"'(]?(?i:for official|sensitive but|law enforcement|limited dis|"
    r"exclusive dis|no dis|not releasable|no foreign|controlled unclass)"
)


# A tag that opens its line (after a bullet, a subject label, bracketed tags): the stricter position for a
# word as common in prose as CUI ("the policy floor (classified, CUI: always blocked)" is a sentence).
_LINE_TAG_PREFIX_RE = re.compile(
    r"[ \t]*(?:[-*>][ \t]+)?(?:(?i:subject|subj|title|re|fw|fwd)[ \t]*:[ \t]*)*(?:\[[^\]\n]{0,20}\][ \t]*)*\Z"
)


def _prefix_tag(text: str, start: int, end: int, before: re.Pattern[str]) -> bool:
    """True when text[start:end] is a tag that ``before`` allows in front of it ("FOUO: ...", "CUI - ..."),
    not a glossary entry spelling it out."""
    context = _line_context(text, start, end)
    return (
        context is not None
        and _TAG_SUFFIX_RE.match(context[1]) is not None
        and _EXPANSION_RE.match(context[1]) is None
        and before.match(context[0]) is not None
    )


def _opens_as_tag(text: str, start: int, end: int) -> bool:
    return _prefix_tag(text, start, end, _LINE_TAG_PREFIX_RE)


def _is_tag(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is bracketed ("[FOUO]", "[ LIMDIS ]") or a prefix tag ("FOUO: ...")."""
    head = text[max(0, start - 3) : start].rstrip(" ")
    if head.endswith("[") and text[end : end + 3].lstrip(" ").startswith("]"):
        return True
    return _prefix_tag(text, start, end, _TAG_PREFIX_RE)


def _legacy_words(w: _Window) -> None:
    text = w.text
    for needle, alone_forms in _LEGACY_ALONE.items():
        for pos in w.find(needle):
            end = pos + len(needle)
            if not _bounded(text, pos, end) or text[pos - 1 : pos] == "(":
                continue
            if _controls_before(text, pos):
                controls_end = _controls_after(text, end)
                w.emit("cui.legacy", pos, max(end, controls_end))
            elif _controls_after(text, end) != -1 or (
                _is_tag(text, pos, end) and not _spelled_otherwise(text[pos : end + 90].lower(), 0, end - pos)
            ):
                w.emit("cui.legacy", pos, end)
            else:
                bounds = _line_bounds(text, pos, end)
                line = text[bounds[0] : bounds[1]].strip() if bounds is not None else ""
                if _alone_between_markup(text, pos, end):
                    w.emit("cui.legacy", pos, end)
                elif line in alone_forms or (
                    bounds is not None and _spelled_out_banner(text, line, bounds[0], bounds[1])
                ):
                    w.emit("cui.legacy", pos, pos + len(line))
                elif _alone_in_field(text, pos, end) or (
                    bounds is not None
                    and _DISSEMINATION_LABEL_RE.search(text, bounds[0], pos)
                    and _LEGACY_VALUE_END_RE.match(text, end, bounds[1])
                ):
                    w.emit("cui.legacy", pos, end)


def _alone_between_markup(text: str, start: int, end: int) -> bool:
    """The word alone on its line but for a banner's rules or markdown: "*** FOUO ***", "== SBU ==", and a
    dotted form's last dot ("*** F.O.U.O. ***")."""
    context = _line_context(text, start, end)
    if context is None:
        return False
    prefix, suffix = context
    if text[end - 2 : end - 1] == ".":
        suffix = suffix.removeprefix(".")
    prefix, suffix = _without_markup(prefix, suffix)
    return not prefix.strip() and not suffix.strip()


# A legacy marking as a handling label's whole value: "Handling: FOUO", "Caveat: LES."
_LEGACY_VALUE_END_RE = re.compile(r"[ \t]*[\"']?[ \t]*[.,;]?[ \t]*\Z")


# "SBU - Sensitive But Unclassified" alone on a line is a banner; the same line among others of its shape
# ("NOFORN: Not Releasable to Foreign Nationals") is a glossary entry.
_SPELLED_OUT_RE = re.compile(
    r"(?:FOUO[ \t]*[-:\u2013\u2014][ \t]*for official use only|SBU[ \t]*[-:\u2013\u2014][ \t]*sensitive but "
    r"unclassified|LES[ \t]*[-:\u2013\u2014][ \t]*law enforcement sensitive)\Z",
    re.IGNORECASE,
)
_GLOSSARY_ENTRY_RE = re.compile(r"[ \t]*[A-Z][A-Z0-9/]{1,9}[ \t]*[-:\u2013\u2014][ \t]*[A-Za-z]")


def _spelled_out_banner(text: str, line: str, line_start: int, line_end: int) -> bool:
    if not line[:4].isupper() or not _SPELLED_OUT_RE.match(line):
        return False
    return not any(_GLOSSARY_ENTRY_RE.match(other) for other in _neighbour_lines(text, line_start, line_end))


# --------------------------------------------------------------------------------------------------------
# Markings in any case: "Secret//NoForn", "cui//sp-prvcy", "(s//nf)", "Top Secret" alone on a line
# --------------------------------------------------------------------------------------------------------

_LEVEL_BEFORE_SLASHES_RE = re.compile(
    r"(?:^|(?<=[\s\"'(\[{|,;:=>*]))(\(?)"
    r"(top[ \t]+secret|secret|confidential|unclassified|cui|ts|s|c|u)[ \t]*\Z"
)
_LOW_CONTROLS_RE = re.compile(r"//[ \t]*[a-z][a-z0-9 ,/\-]{0,80}")
_KNOWN_CONTROL_LOW_RE = re.compile(r"//[ \t]*" + _KNOWN_CONTROLS, re.IGNORECASE)
_LEGACY_CONTROL_RE = re.compile(
    r"fouo|les\b|sbu|for official use only|law enforcement sensitive|sensitive but unclassified"
)


_CUI_CONTROL_RE = re.compile(r"//[ \t]*(?:cui|controlled[ \t]+unclassified[ \t]+information)(?![a-z0-9])")


def _slashed_category(paren: bool, level: str, controls: str) -> str | None:
    if level in ("unclassified", "u"):
        if _CUI_CONTROL_RE.match(controls):  # "UNCLASSIFIED//CUI", "(U//CUI)": CUI under the level
            return "cui.specified" if "sp-" in controls else ("cui.portion" if paren else "cui.banner")
        return "cui.legacy" if _LEGACY_CONTROL_RE.search(controls) else None
    if level == "cui":
        return "cui.specified" if "sp-" in controls else ("cui.portion" if paren else "cui.banner")
    return "classified.portion" if paren else "classified.banner"


def _slashed_markings(w: _Window) -> None:
    """A level with "//" controls in any case. Upper case is already handled by the banner and portion
    detectors; this catches "Secret//NoForn" and "cui//sp-prvcy". A one-letter level needs its
    parenthesis and a known control ("(s//nf)"), so that "(s // 2)" in code is not a marking; a spaced
    "secret // n" needs a known control too."""
    low, text, base = w.low, w.text, w.base
    if not w.has("//"):
        return
    for pos in w.find_low("//"):
        rel = pos - base
        level_match = _LEVEL_BEFORE_SLASHES_RE.search(low, max(0, rel - 24), rel)
        if level_match is None:
            continue
        paren, level = level_match.group(1) == "(", re.sub(r"[ \t]+", " ", level_match.group(2))
        start = level_match.start(2) + base
        controls = _LOW_CONTROLS_RE.match(low, rel)
        if controls is None:
            continue
        under_unclassified = level in ("unclassified", "u") and _CUI_CONTROL_RE.match(low, rel) is not None
        abbreviated = len(level) <= 2 and not paren
        if text[start : controls.end() + base].isupper() and not (under_unclassified or abbreviated):
            continue  # all upper case: the banner and portion detectors own these spans
        spaced = low[rel - 1 : rel] in (" ", "\t") or low[rel + 2 : rel + 3] in (" ", "\t")
        if (len(level) <= 2 or spaced) and not (_KNOWN_CONTROL_LOW_RE.match(low, rel) or under_unclassified):
            continue
        body = controls.group().rstrip(" ,/-")
        end = rel + len(body)
        # "TS//SCI", "S//NF" without a parenthesis where a banner stands (alone on its line, after a
        # classification label), or anywhere with a dissemination control ("the S//REL TO USA, FVEY
        # summary"): controls on who may see information mark information. "TS//SCI clearance required"
        # is a job's requirement, not a marking.
        bracketed = text[start - 1 : start] == "[" and text[end + base : end + base + 1] == "]"
        if abbreviated and not bracketed and not _stands_as_banner(text, start, end + base):
            # inline: written in capitals, as markings are ("rows = n//nf" is code), up to where they stop
            level_end = level_match.end(2) + base
            controls_end = _controls_after(text, level_end)
            if (
                controls_end == -1
                or not text[start:controls_end].isupper()
                or not _DISSEMINATION_LOW_RE.search(low, level_end - base, controls_end - base)
            ):
                continue
            end = controls_end - base
        if paren:
            close = low.find(")", rel, end + 1)
            if close == -1:
                continue
            end, body = close + 1, low[rel:close]
        category = _slashed_category(paren, level, body)
        if category is not None:
            w.emit(category, (start - 1 if paren else start), end + base)


# Dissemination controls among a marking's lower-cased controls ("//nf", "//rel to usa, fvey", "//orcon").
_DISSEMINATION_LOW_RE = re.compile(r"(?<![a-z])(?:nf|noforn|rel(?:ido)?|orcon|oc|imcon|propin|fvey)(?![a-z])")


def _stands_as_banner(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is alone on its line (markup and page furniture aside) or follows a
    classification label with nothing after it."""
    context = _line_context(text, start, end)
    if context is None:
        return False
    prefix, suffix = _without_markup(*context)
    if suffix.strip():
        return False
    return not prefix.strip() or _CLASSIFICATION_LABEL_RE.search(prefix) is not None


_TOP_BEFORE_RE = re.compile(r"(?<![a-z0-9_])top[ \t]+\Z")


_ODD_CASE_LEVELS = ("secret", "top secret", "confidential", "controlled", "cui")


def _odd_case_levels(w: _Window) -> None:
    """A level word alone on its line in lower or random case ("secret", "sEcReT", "controlled"): no
    heading or title is written so. Title case ("Secret", "Confidential") stays a title or a courtesy
    header; upper case belongs to the banner detectors."""
    text = w.text
    for level in _ODD_CASE_LEVELS:
        if not w.has(level):
            continue
        for pos in w.find_low(level):
            end = pos + len(level)
            word = text[pos:end]
            if word.isupper() or word.istitle() or not _alone_on_line(text, pos, end):
                continue
            bounds = _line_bounds(text, pos, end)
            neighbours = _neighbour_lines(text, *bounds) if bounds is not None else ()
            if _COMMERCIAL_LABELS.isdisjoint(line.upper() for line in neighbours):
                category = "cui.banner" if level in ("controlled", "cui") else "classified.banner"
                w.emit(category, pos, end)


def _mixed_case_levels(w: _Window) -> None:
    """ "Top Secret" or "Secret" in any case after a "Classification:" label, and "Top Secret" alone on its
    line beside no commercial data-handling labels. Upper case is handled by the banner detector. A
    mixed-case "Secret" alone on a line is a title (a novel, a chapter), and "Confidential" in mixed case
    is a commercial courtesy header: neither counts."""
    low, text, base = w.low, w.text, w.base
    if not w.has("secret"):
        return
    for pos in w.find_low("secret"):
        end = pos + 6
        if text[pos:end] == "SECRET" or not _bounded(text, pos, end):
            continue
        top = _TOP_BEFORE_RE.search(low, max(0, pos - base - 12), pos - base)
        start = top.start() + base if top is not None else pos
        context = _line_context(text, start, end)
        if context is None:
            continue
        if _CLASSIFICATION_LABEL_RE.search(context[0]) and not context[1].strip():
            w.emit("classified.banner", start, end)
        elif top is not None and _alone_in_field(text, start, end):
            bounds = _line_bounds(text, start, end)
            neighbours = _neighbour_lines(text, *bounds) if bounds is not None else ()
            if _COMMERCIAL_LABELS.isdisjoint(line.upper() for line in neighbours) and not (
                bounds is not None and _is_sentence_list(text[bounds[0] : bounds[1]])
            ):
                w.emit("classified.banner", start, end)


# Words in a comma-separated piece of a line above which the line is a sentence listing things, not a CSV
# row.
_CSV_CELL_MAX_WORDS = 8


def _in_sentence_list(text: str, start: int, end: int) -> bool:
    bounds = _line_bounds(text, start, end)
    return bounds is not None and _is_sentence_list(text[bounds[0] : bounds[1]])


def _is_sentence_list(line: str) -> bool:
    """True when a line's commas separate the pieces of a sentence ("three levels, Top Secret, Secret and
    Confidential, and who assigns them."): a space after every comma, as prose has and CSV writers do not
    put, and the line ends as a sentence or one piece runs to many words."""
    if "," not in line or line.count(",") != line.count(", "):
        return False
    text = line.rstrip()
    return text.endswith((".", "?", "!")) or any(
        len(p.split()) > _CSV_CELL_MAX_WORDS for p in text.split(",")
    )


# --------------------------------------------------------------------------------------------------------
# Dissemination controls and legacy tags standing alone: "NOFORN" on its own line, "[LIMDIS]", "fouo:"
# --------------------------------------------------------------------------------------------------------

# The CUI program's limited dissemination controls, and the intelligence community's (ORCON, IMCON,
# RELIDO, PROPIN), which go only on classified or controlled material.
_DISSEMINATION = (
    "NOFORN",
    "FEDCON",
    "NOCON",
    "DL ONLY",
    "FED ONLY",
    "DISPLAY ONLY",
    "REL TO",
    "ORCON",
    "IMCON",
    "RELIDO",
    "PROPIN",
)
_CONTROL_WORD = (
    r"(?:NOFORN|FEDCON|NOCON|DL ONLY|FED ONLY|DISPLAY ONLY|ORCON|IMCON|RELIDO|PROPIN"
    r"|REL TO [A-Z]{3,4}(?:,[ \t]*[A-Z]{3,4})*)"
)
_CONTROL_LINE_RE = re.compile(_CONTROL_WORD + r"(?:[ \t]*(?:/{1,2}|,|;)[ \t]*" + _CONTROL_WORD + r")*\Z")
# A control given as a labelled field's value: "Distro: NOFORN.", "Dissemination: FEDCON; REL TO USA, GBR".
_DISSEMINATION_LABEL_RE = re.compile(
    r"(?:^|(?<=[\s|\"',;]))(?i:distro|dissem|dissemination(?:[ \t]+controls?)?|distribution|"
    r"handling(?:[ \t]+caveats?)?|caveats?)[\"']?[ \t]*[:=][ \t]*[\"']?\Z"
)
_CONTROL_FIELD_RE = re.compile(
    _CONTROL_WORD + r"(?:[ \t]*(?:/{1,2}|,|;)[ \t]*" + _CONTROL_WORD + r")*(?=[ \t]*(?:[.,;|\"]|\Z|$))",
    re.MULTILINE,
)
# Tokens that are no English word: any case counts when bracketed, a prefix tag, or alone on a line.
_TAG_TOKENS = {
    "fouo": "cui.legacy",
    "limdis": "cui.legacy",
    "exdis": "cui.legacy",
    "nodis": "cui.legacy",
    "noforn": "cui.banner",
    "sbu": "cui.legacy",
}
# English words elsewhere ("les", "sbu" rarely): any case only as a bracketed or prefix tag.
_TAG_WORDS = {"[les": "cui.legacy"}


def _dissemination_alone(w: _Window) -> None:
    text = w.text
    for needle in _DISSEMINATION:
        for pos in w.find(needle):
            end = pos + len(needle)
            if not _bounded(text, pos, end) or _controls_before(text, pos):
                continue
            bounds = _line_bounds(text, pos, end)
            if bounds is None:
                continue
            line = text[bounds[0] : bounds[1]]
            stripped = line.strip()
            if _CONTROL_LINE_RE.match(stripped) or (needle == "NOFORN" and _is_tag(text, pos, end)):
                w.emit("cui.banner", pos, bounds[0] + len(line.rstrip()))
            elif (
                _DISSEMINATION_LABEL_RE.search(text, bounds[0], pos)
                and (control := _CONTROL_FIELD_RE.match(text, pos, bounds[1]))
                and not _in_designation_block(w, bounds[0])
            ):
                w.emit("cui.banner", pos, control.end())


def _in_designation_block(w: _Window, line_start: int) -> bool:
    """True when the line is one of a CUI designation indicator's (that detector reports the block)."""
    return (w.has("controlled by") or w.has("cui categor")) and bool(
        _DESIGNATION_LINE_RE.match(w.low, line_start - w.base)
    )


def _tags_any_case(w: _Window) -> None:
    text = w.text
    for tag, category in _TAG_TOKENS.items():
        if not w.has(tag):
            continue
        for pos in w.find_low(tag):
            end = pos + len(tag)
            if text[pos:end].isupper() and category == "cui.legacy":
                continue  # the upper-case legacy detector owns these
            if not _bounded(text, pos, end):
                continue
            if _is_tag(text, pos, end) or _alone_in_field(text, pos, end):
                w.emit(category, pos, end)
    for tag, category in _TAG_WORDS.items():
        if not w.has(tag):
            continue
        for pos in w.find_low(tag):
            end = pos + len(tag)
            if (
                not text[pos + 1 : end].isupper()
                and _bounded(text, pos + 1, end)
                and _is_tag(text, pos + 1, end)
            ):
                w.emit(category, pos + 1, end)


_LEGACY_PHRASES = ("for official use only", "sensitive but unclassified", "law enforcement sensitive")


# "This report is FOUO.", "heads up it's fouo", "This email contains FOUO information": a
# legacy abbreviation said of the content. FOUO in any case (no word is spelled so); SBU and LES in capitals
# ("les" is French). Not when the subject is the marking itself ("The old marking was FOUO"), nor a question
# ("What is FOUO?").
_IS_LEGACY_RE = re.compile(
    # (the subject's last word may be a date: "the manifest for 4/22 is FOUO")
    r"\b(?P<subject>[a-z][a-z0-9_-]*|[0-9]{1,4}[/.-][0-9][0-9/.-]*)(?:\s+(?:is|are)|['\u2019]s)\s+(?:marked\s+(?:as\s+)?)?\Z"
    # "its FOUO so don't screenshot it": "it's" typed without its apostrophe (not "its FOUO marking")
    r"|\b(?P<its>it)s\s+\Z"
)
_POSSESSIVE_RE = re.compile(r"[a-z]['\u2019]s\s+\Z")
_ITS_NOUN_AFTER_RE = re.compile(
    r"[\s/-]*(?:markings?|labels?|banners?|caveats?|status|designation|version|portions?)"
)
_LEGACY_META_SUBJECTS = frozenset(
    {"what", "which", "who", "marking", "markings", "label", "labels", "term", "terms", "acronym",
     "abbreviation", "caveat", "caveats", "word", "designation", "example", "answer", "meaning",
     # a word that is no subject: the verb comes first ("And is FOUO even still a thing?")
     "and", "or", "but", "so", "if", "whether", "why", "how", "when", "where", "also", "still", "then"}
)  # fmt: skip


def _legacy_statements(w: _Window) -> None:
    low, text, base = w.low, w.text, w.base
    hits = [(pos, 4) for pos in w.find_low("fouo")] if w.has("fouo") else []
    hits += [(pos, 3) for needle in ("SBU", "LES") for pos in w.find(needle)]
    for pos, length in hits:
        if not _bounded(text, pos, pos + length):
            continue
        rel = pos - base
        said = _IS_LEGACY_RE.search(low, max(0, rel - 40), rel)
        if said is not None:
            if (
                said.group("subject") in _LEGACY_META_SUBJECTS
                or _QUESTION_BEFORE_RE.search(low, max(0, said.start() - 12), said.start())
                or (said.group("its") and _ITS_NOUN_AFTER_RE.match(low, rel + length))
                or _spelled_otherwise(low, rel, rel + length)
                # a possessive before LES, the pay statement: "the member's LES and orders"
                or (
                    length == 3
                    and text[pos : pos + 3] == "LES"
                    and _POSSESSIVE_RE.search(low, said.start(), rel)
                )
            ):
                continue
            subject: int | None = said.start()
        elif "contain" in (near := low[max(0, rel - 12) : rel]) or "include" in near or near.endswith(" as "):
            # "This email contains FOUO information", "treat this roster as fouo", "Contains FOUO."
            subject = _content_statement_before(low, rel)
            if subject is None:
                subject = _subjectless_statement(low, rel, rel + length)
        else:
            continue
        if subject is not None:
            w.emit("cui.legacy", subject + base, pos + length)


def _wrapped(phrase: str) -> re.Pattern[str]:
    """``phrase`` broken over two lines at one of its spaces ("FOR OFFICIAL USE" then "ONLY")."""
    words = phrase.split()
    cuts = (
        r"[ \t]+".join(words[:cut]) + r"[ \t]*\n[ \t]*" + r"[ \t]+".join(words[cut:])
        for cut in range(1, len(words))
    )
    return re.compile("|".join(cuts))


# Each phrase, with its wrapped form and the word that gates it, its longest (looked for only in windows
# holding a line break and that word).
_LEGACY_WRAPPED = tuple(
    (phrase, max(phrase.split(), key=len), _wrapped(phrase)) for phrase in _LEGACY_PHRASES
)


def _legacy_phrase_hits(w: _Window) -> Iterator[tuple[int, int]]:
    for phrase, gate, wrapped in _LEGACY_WRAPPED:
        if w.has(phrase):
            yield from ((pos, pos + len(phrase)) for pos in w.find_low(phrase))
        elif w.has(gate) and w.has("\n"):  # a window holding the phrase whole is not searched again
            yield from ((m.start() + w.base, m.end() + w.base) for m in w.low_iter(wrapped))


def _legacy_phrases(w: _Window) -> None:
    for pos, end in _legacy_phrase_hits(w):
        # Upper case is how markings are written; "for official use only" in a sentence is prose, unless
        # the sentence says it of the content ("This message contains Law Enforcement Sensitive ...").
        if (
            w.text[pos:end].isupper()
            or (_alone_in_field(w.text, pos, end) and not _in_sentence_list(w.text, pos, end))
            or _is_tag(w.text, pos, end)
        ):
            w.emit("cui.legacy", pos, end)
            continue
        subject = _content_statement_before(w.low, pos - w.base)
        if subject is None:
            subject = _subjectless_statement(w.low, pos - w.base, end - w.base)
        if subject is not None:
            w.emit("cui.legacy", subject + w.base, end)


_OUO_BANNER_TAIL_RE = re.compile(r"(?:[ \t]*[-:/\u2013\u2014]+[ \t]*[A-Z][A-Z0-9 ,/()&-]*)?[ \t]*(?:\n|\Z)")
_OFFICIAL_DASH_RE = re.compile(r"(?:^|\n)[ \t]*(official)[ \t]*[-:\u2013\u2014][ \t]*\Z")
_LINE_ENDS_RE = re.compile(r"[ \t]*(?:\n|\Z)")


def _agency_legacy_banners(w: _Window) -> None:
    # OFFICIAL USE ONLY, the legacy marking of DOE and NRC papers, as a banner: opening its line, alone
    # or with its caveat ("OFFICIAL USE ONLY - SECURITY-RELATED INFORMATION")
    if w.has("official use only"):
        for pos in w.find("OFFICIAL USE ONLY"):
            head = w.text[max(0, pos - 80) : pos]
            opens_line = head.rpartition("\n")[2].strip(" \t") == "" and ("\n" in head or pos <= 80)
            if opens_line and _OUO_BANNER_TAIL_RE.match(w.text, pos + 17):
                w.emit("cui.legacy", pos, pos + 17)
    # The State Department's banner for its SBU papers: "Official - SBU" (any case), a line of its own
    if w.has("sbu") and w.has("official"):
        low = w.low
        for pos in w.find_low("sbu"):
            rel = pos - w.base
            official = _OFFICIAL_DASH_RE.search(low, max(0, rel - 40), rel)
            if official is not None and _LINE_ENDS_RE.match(low, rel + 3) is not None:
                w.emit("cui.legacy", official.start(1) + w.base, pos + 3)


def _slashed_legacy(w: _Window) -> None:
    # The single- or double-slash style in any case: "unclassified/fouo", "(u/fouo)", "u//fouo".
    low, text = w.low, w.text
    for control in ("/fouo", "/les", "/sbu"):
        if not w.has(control[1:]) or not w.has(control):
            continue
        for pos in w.find_low(control):
            end = pos + len(control)
            slashes = pos - w.base - (1 if low[pos - w.base - 1 : pos - w.base] == "/" else 0)
            level = _LEVEL_BEFORE_SLASHES_RE.search(low, max(0, slashes - 20), slashes)
            if level is not None and _bounded(text, pos + 1, end) and level.group(2) in ("unclassified", "u"):
                w.emit("cui.legacy", level.start(2) + w.base, end)


_DESIGNATION_LINE_RE = re.compile(
    r"[ \t]*(?:controlled by|cui categor(?:y|ies)|(?:limited )?dissemination control|"
    r"distribution/dissemination control|ldc|poc)[ \t]*:"
)


def _designation_indicator(w: _Window) -> None:
    low = w.low
    if not w.has("controlled by") and not w.has("cui categor"):
        return
    covered = -1  # hits inside a block already reported are part of it
    for label in ("controlled by", "cui categor"):
        if not w.has(label):
            continue
        for pos in w.find_low(label):
            rel = pos - w.base
            bounds = _line_bounds(w.text, pos, pos)
            if pos < covered or bounds is None or not _opens_logical_line(w.text, pos):
                continue
            if not _DESIGNATION_LINE_RE.match(low, rel):
                continue
            escaped = low.find("\\n", rel, bounds[1] - w.base)
            if escaped != -1 and _DESIGNATION_LINE_RE.match(low, escaped + 2):
                # An indicator block inside a JSON string: its lines are escaped line breaks.
                w.emit("cui.designation_indicator", pos, bounds[1])
                covered = max(covered, bounds[1])
                continue
            # Extend over the indicator lines that follow ("Controlled by:", "CUI Category:", "POC:").
            lines, end_rel = 1, bounds[1] - w.base
            while (
                lines < 12
                and end_rel < len(low)
                and _DESIGNATION_LINE_RE.match(low, end_rel + 1, end_rel + 200)
            ):
                next_end = low.find("\n", end_rel + 1, end_rel + _MAX_LINE)
                end_rel = next_end if next_end != -1 else min(len(low), end_rel + _MAX_LINE)
                lines += 1
            if label == "cui categor" or lines >= 2:
                w.emit("cui.designation_indicator", pos, end_rel + w.base)
                covered = max(covered, end_rel + w.base)


# --------------------------------------------------------------------------------------------------------
# Export control
# --------------------------------------------------------------------------------------------------------

# A notice speaks about the content it sits on: "This document contains ...", "The attached drawings are
# subject to ...". Prose about the regulations ("The ITAR controls defense articles") has no such subject.
_NOUNS = (
    r"(?:documents?|data|drawings?|files?|information|info|materials?|reports?|presentations?|specifications?|"
    r"attachments?|e-?mails?|messages?|items?|technology|software|hardware|packages?|pages?|slides?|"
    r"contents?|diagrams?|schematics?|manuals?|models?|designs?|products?|commodit(?:y|ies)|records?|"
    r"spreadsheets?|workbooks?|briefings?|memos?|memorand(?:um|a|ums)|letters?|tables?|charts?|images?|"
    r"photos?|photographs?|videos?|recordings?|transcripts?|notes?|paragraphs?|sections?|chapters?|"
    r"annex(?:es)?|appendi(?:x|ces)|passages?|summar(?:y|ies)|text|drafts?|folders?|director(?:y|ies)|"
    r"repositor(?:y|ies)|repos?|channels?|threads?|workspaces?|rosters?|lists?|forms?|sheets?|datasets?|"
    r"databases?|logs?|packets?|bundles?|archives?|plans?|tickets?|decks?|notebooks?|extracts?|dumps?|"
    r"deliverables?|submissions?|proposals?|excerpts?|snippets?|portions?|handouts?|outputs?|"
    r"sows?|statements?\s+of\s+work|manifests?|schedules?|agendas?|itinerar(?:y|ies)|contracts?|invoices?|"
    r"results?|findings?|screenshots?|scans?|pdfs?|docs?|maps?|playbooks?|runbooks?|procedures?|sops?|"
    r"rubrics?|scores?|captions?|subtitles?|calls?|meetings?|sessions?|webinars?|podcasts?|episodes?|"
    r"conversations?|discussions?)"
)
# The content a sentence is about: "this document", "the attached two drawings", "these files". What is
# attached or enclosed is the content whatever it is called ("the enclosed paper", "the attached xlsx"),
# and "the attached" alone names it too.
# Words that end the name of what is attached: its verb, or the preposition of a phrase about it (the
# name's words are read greedily, and some rules read them in an atomic group that never gives one back).
_NOT_A_NAME = (
    r"(?:is|are|was|were|has|have|had|contains?|includes?|may|might|could|also|hereby|for|of|from|on|about|"
    r"to|with)\b(?![-/])"
)
_CONTENT_SUBJECT = (
    # What is attached or enclosed, whatever it is called (first: an atomic group takes the first that fits)
    # ("the attachment contains": the noun after "the"; "Attachment 2" is a labelled part, below)
    r"(?:(?:\b(?:the\s+)?(?:attached|enclosed)|\bthe\s+(?:attachments?|enclosures?)(?!\s+[0-9a-z]\b))"
    # ("the attached SAR and POA&M")
    + r"(?:\s+(?!"
    + _NOT_A_NAME
    # ("the attached chapter 11")
    + r")[a-z0-9][a-z0-9./&-]*){0,3}"
    # "the attached load plan for the Yermo move": one phrase naming what it is for or about
    + r"(?:\s+(?:for|of|from|on|about|to|with)\s+(?:the\s+|a\s+|an\s+|our\s+|this\s+|your\s+)?"
    + r"[a-z0-9][a-z0-9./'\u2019-]*(?:\s+(?!"
    + _NOT_A_NAME
    + r")[a-z0-9][a-z0-9./'\u2019-]*){0,3})?"
    # and a parenthetical naming it: ("Hull Acoustic Signature Modeling, FY24 Q2")
    + r"(?:\s*\([^()\n]{1,80}\))?"
    + r"|\b(?:this|these|(?:the\s+)?(?:attached|enclosed|following))\s+(?:[a-z][a-z/-]*\s+){0,3}?"
    + _NOUNS
    # and more of it: "this recording and its captions", "this call and the transcript that otter spits out"
    + r"(?:\s+(?:and|&)\s+(?:its|the|their|this|these|our)\s+(?:[a-z][a-z/-]*\s+){0,2}?"
    + _NOUNS
    + r"(?:\s+(?:that|which)(?:\s+[a-z'][a-z'-]*){1,5}?)?)?"
    # a labelled part of the content: "Annex B", "Appendix C of this report (the squib drawings)", "Tab 3"
    + r"|\b(?:annex|appendix|enclosure|attachment|tab|exhibit|slides?|pages?|sections?|figure|table)\s+"
    + r"(?:[a-z]|[0-9]{1,3}(?:[.-][0-9]{1,3})*)(?![a-z0-9])"
    + r"(?:\s+(?:of|to)\s+(?:this|these|the|our)\s+[a-z]+)?"
    + r"(?:\s*\([^()\n]{1,80}\))?"
    + r"(?=\s+(?:(?:may|might|could|also|hereby)\s+)?(?:is|are|contains?|includes?|has|have|was|were)\b))"
)
# The content a sentence places rather than points at: "the drawing below", "the data that follows",
# "everything below this line", "everything below the dashed line".
_PLACED_CONTENT = (
    # (without its article too: "** LES ** info below is Law Enforcement Sensitive")
    r"(?:(?:\bthe\s+(?:[a-z][a-z/-]*\s+){0,3}?|\b)" + _NOUNS + r"\s+(?:below|above|herein|that\s+follows?)"
    # ("the glider tracks and the decimated CTD profiles below": what stands below, whatever it is called)
    r"|\bthe\s+[a-z][a-z0-9/-]*(?:\s+[a-z&][a-z0-9/-]*){0,7}?\s+(?:below|above)(?=\s+(?:is|are)\b)"
    r"|\beverything\s+(?:(?:below|above|after|under)\s+(?:this|the)\s+(?:[a-z][a-z/-]*\s+){0,2}?"
    r"(?:line|point|break|divider|separator|rule|marker)|below|above|that\s+follows)"
    # "the intake packet I'm pasting", "the files we are sending": the content the writer hands over
    r"|\b(?:the|that|this)\s+(?:[a-z][a-z/-]*\s+){0,3}?" + _NOUNS + r"\s+(?:(?:that|which)\s+)?"
    # ("that plan output you pasted": the content the reader handed over, in a thread)
    r"(?:i'm|i\s+am|we're|we\s+are|i've|we've|i\s+have|we\s+have|you|you're|you\s+are|you've|you\s+have"
    # ("the traveler roster I just dropped in the channel": what the writer put there, in the past)
    r"|i|we)"
    r"\s+(?:just\s+)?"
    r"(?:past|shar|send|attach|post|forward|upload|sen|dropp)(?:ing|ed|t)?"
    # ("the revised SOW I just sent you for the Huntsville task order": to whom, and what it is for)
    r"(?:\s+(?:you|u|him|her|them|us|me|everyone))?"
    r"(?:\s+(?:in|into|on|to|here)(?:\s+(?:the|this|our|your))?(?:\s+[a-z][a-z0-9-]*){0,2})?"
    r"(?:\s+(?:for|about|on|re)\s+(?:the\s+|a\s+|our\s+|this\s+|your\s+)?[a-z0-9][a-z0-9./-]*"
    r"(?:\s+[a-z0-9][a-z0-9./-]*){0,3})?)"
)
_NOTICE_SUBJECT = (
    _CONTENT_SUBJECT + r"\s+(?:(?:may|might|could|also|hereby|herein)\s+)?"
    r"(?P<verb>is|are|contains?|includes?|has\s+been|have\s+been|was|were|falls?)\b"
)
_GAP = r"(?:[^\n]|\n(?!\n)){0,160}"
# A subject placed by where it stands: "the drawing below", "the data that follows".
_PLACED_SUBJECT_RE = re.compile(
    _PLACED_CONTENT
    + r"\s+(?:(?:may|might|could|also|hereby)\s+)?(?P<verb>is|are|contains?|includes?)\b(?P<gap>"
    + _GAP
    + r")\Z"
)
# A sentence that is the notice itself: "Technical data subject to the ITAR."
_DATA_NOTICE_RE = re.compile(
    r"(?:^|[.!?:;]\s+|\n\s*)(technical\s+data\s+(?:is\s+|are\s+)?(?:subject\s+to|controlled\s+(?:under|by)|"
    r"governed\s+by)\s+(?:the\s+)?)\Z"
)
_NOTICE_BEFORE_RE = re.compile(
    r"(?:" + _NOTICE_SUBJECT + r"|\b(?:contained|included|provided|disclosed|described)\s+herein\b)"
    r"(?P<gap>" + _GAP + r")\Z|\bwhose\s+export\s+is\s+(?:restricted|controlled)" + _GAP + r"\Z"
)
# Words that make a sentence about the content a control notice rather than a description of it.
_CONTROL_RE = re.compile(
    r"subject\s+to|controlled|restricted|governed\s+by|regulated|technical\s+data|jurisdiction|"
    r"licen[cs]e|defen[cs]e\s+articles?|whose\s+export"
)
_CONTROL_AFTER_RE = re.compile(r"[\s\-]*(?:controlled|restricted|regulated|technical\s+data)")
# After "contains" / "includes" the regime named as a kind of content is a notice: "contains ITAR data".
_CONTENT_AFTER_RE = re.compile(r"[\s\-]*(?:technical|data|information|materials?|drawings?|content|items?)\b")
# Words a notice starts with: the search for one begins at the first of them in range.
_NOTICE_STARTS = (
    "this", "these", "attached", "enclosed", "following", "contained", "included", "provided", "disclosed",
    "described", "whose", "annex", "appendix", "enclosure", "attachment", "exhibit",
)  # fmt: skip
# Regime terms, found from literal anchors in the lower-cased text; each anchor's pattern is matched at the
# anchor (CFR citations from a few characters before it, where the title number stands).
_ITAR_ANCHORS = (
    ("itar", re.compile(r"itar\b")),
    ("international traffic in arms", re.compile(r"international traffic in arms")),
    ("arms export control act", re.compile(r"arms export control act")),
    # The licensing office and the munitions list count only beside restriction language (below).
    ("ddtc", re.compile(r"ddtc\b")),
    ("directorate of defense trade controls", re.compile(r"directorate of defense trade controls")),
    ("usml", re.compile(r"usml(?:\s+cat(?:egory|\.)?\s*[ivx]{1,5}\b)?")),
)

_EAR_ANCHORS = (
    ("export administration regulations", re.compile(r"export administration regulations")),
    ("export administration act", re.compile(r"export administration act")),
    ("bureau of industry and security", re.compile(r"bureau of industry and security")),
)
# The regimes' names of several words: each with its words (all present in a window: the gate) and its
# form wrapped over two lines.
_WRAPPED_REGIMES = tuple(
    (category, tuple(sorted(anchor.split(), key=len, reverse=True)), _wrapped(anchor))
    for category, anchors in (("export.itar", _ITAR_ANCHORS), ("export.ear", _EAR_ANCHORS))
    for anchor, _ in anchors
    if " " in anchor
)
# Restriction language: what a notice says about its content even when it never says "export"
# ("Transfer to a foreign person requires prior written approval from DDTC", "may not be transferred to
# any foreign national without authorization"). Beside a regime, office or citation in the same paragraph
# it makes a notice; prose about the regulations ("the ITAR control defense articles") has none.
_RESTRICTION_RE = re.compile(
    r"foreign\s+(?:persons?|nationals?|parties)|not\s+releasable|"
    r"only\s+(?:by|to)\s+u\.?\s?s\.?\s+persons|u\.?\s?s\.?\s+persons\s+only|"
    r"without\s+(?:(?:a|an|the|prior|written|valid|approved|appropriate|proper|export|government)\s+){0,3}"
    r"(?:licen[cs]es?|authori[sz]ations?|approvals?)|"
    r"(?:may|shall|must|will|can|cannot)\s*(?:not\s+)?be\s+(?:exported|re-?exported|transferred|disclosed|"
    r"released|shared|provided|shipped|sent)\s+(?:to|outside|without|abroad)|"
    r"re-?exports?\s+(?:requires?|is\s+prohibited)|requires?\s+(?:an?\s+|prior\s+)?(?:written\s+)?"
    r"(?:[a-z]+\s+)?(?:licen[cs]e|authori[sz]ation|approval)|controlled\s+under|jurisdiction\s*:|"
    # the EAR's destination control statement: "Diversion contrary to U.S. law is prohibited."
    r"diversion\s+contrary\s+to\s+(?:u\.?\s?s\.?|united\s+states)\s+law"
)
# A foreign person, and "without authorization", in German, Spanish, French, Italian and Portuguese: its own
# expression, run only where one of its keys stands (every alternative more is tried at every character).
_FOREIGN_RESTRICTION_RE = re.compile(
    r"personnes?\s+[ée]trang[èe]res?|personas?\s+extranjeras?|ausl[äa]ndische[nr]?\s+personen?|"
    r"pessoas?\s+estrangeiras?|persone?\s+stranier[ae]|sans\s+(?:l['\u2019]\s*)?autorisation|"
    r"sin\s+(?:la\s+)?autorizaci[óo]n|ohne\s+(?:vorherige\s+)?genehmigung|sem\s+(?:a\s+)?autoriza[cç][ãa]o|"
    r"senza\s+(?:l['\u2019]\s*)?autorizzazione"
)
_ANY_RESTRICTION_RE = re.compile(_RESTRICTION_RE.pattern + "|" + _FOREIGN_RESTRICTION_RE.pattern)
_CFR_RE = re.compile(
    r"(?<![0-9])(22|15)\s*c\.?\s*f\.?\s*r\.?\s*(?:parts?\s*|\u00a7+\s*)?(1[23][0-9]|7[3-7][0-9])"
)
_NOTICE_WORDS = ("CONTROLLED", "RESTRICTED", "WARNING", "NOTICE", "TECHNICAL DATA")
_ITAR_DCS_RE = re.compile(r"for\s+export\s+only\s+to\s+the\s+country\s+of\s+ultimate\s+destination")


def _notice_before(w: _Window, rel_start: int, rel_end: int) -> int:
    """Start (in ``text``) of a control notice on the content that ends with the regime term at
    low[rel_start:rel_end], or -1. "This document contains technical data subject to the ITAR" is one;
    "This document summarises the ITAR" is not."""
    low = w.low
    lo = max(0, rel_start - 300)
    para = low.rfind("\n\n", lo, rel_start)
    if para != -1:
        lo = para + 2
    starts = w.word_positions(_NOTICE_STARTS)
    # Try the notice openers nearest the term first; a sentence's own subject is the one that counts.
    last, first = bisect_left(starts, rel_start) - 1, bisect_left(starts, lo)
    for index in range(last, max(first, last - 6) - 1, -1):
        match = _NOTICE_BEFORE_RE.match(low, starts[index], rel_start)
        if match is not None and _is_notice(low, match, rel_end):
            return match.start() + w.base
    # "The drawing below is ITAR controlled"; "Technical data subject to the ITAR." opening a sentence.
    match = _PLACED_SUBJECT_RE.search(low, max(lo, rel_start - 200), rel_start)
    if match is not None and _is_notice(low, match, rel_end):
        return match.start() + w.base
    match = _DATA_NOTICE_RE.search(low, max(lo, rel_start - 80), rel_start)
    if match is not None:
        return match.start(1) + w.base
    # "The drawing pkg ... is attached. It's ITAR controlled": "it" (or "these"), beside a handover ("pics of
    # the drawings coming, these are ITAR controlled" then "<attached: 3 images>"), said to be controlled
    match = _ITS_BEFORE_RE.search(low, max(lo, rel_start - 40), rel_start)
    if match is None and "are " in low[max(lo, rel_start - 16) : rel_start]:
        match = _THESE_ARE_BEFORE_RE.search(low, max(lo, rel_start - 40), rel_start)
    if (
        match is not None
        and _CONTROL_AFTER_RE.match(low, rel_end, rel_end + 40) is not None
        and any(word in low[max(lo, rel_start - 300) : rel_end + 300] for word in _HANDOVER_WORDS)
    ):
        return match.start() + w.base
    return -1


def _is_notice(low: str, match: re.Match[str], rel_end: int) -> bool:
    gap, verb = match.group("gap"), match.group("verb")
    if gap is None or _CONTROL_RE.search(gap) or _CONTROL_AFTER_RE.match(low, rel_end, rel_end + 40):
        return True
    contains = verb is not None and verb.startswith(("contain", "include")) and not gap.strip()
    return contains and _CONTENT_AFTER_RE.match(low, rel_end, rel_end + 40) is not None


def _wrapped_regime_terms(w: _Window) -> Iterator[tuple[str, int, int]]:
    """A regime's name wrapped onto the next line ("... restricted by the Arms" / "Export Control Act")."""
    if not w.has("\n"):
        return
    low, base = w.low, w.base
    for category, words, wrapped in _WRAPPED_REGIMES:
        if all(w.has(word) for word in words):  # the longest first: most windows stop there
            first = wrapped.pattern.split("[", 1)[0]  # the name's first word, found at C speed
            for pos in w.find_low(first):
                rel = pos - base
                match = wrapped.match(low, rel)
                if match is not None and not (rel > 0 and low[rel - 1].isalnum()):
                    yield category, rel, match.end()


def _regime_terms(w: _Window) -> Iterator[tuple[str, int, int]]:
    """(category, start, end) of each ITAR or EAR term in the own range; positions relative to ``low``."""
    low = w.low
    for category, anchors in (("export.itar", _ITAR_ANCHORS), ("export.ear", _EAR_ANCHORS)):
        for anchor, pattern in anchors:
            if not w.has(anchor):
                continue
            for pos in w.find_low(anchor):
                rel = pos - w.base
                match = pattern.match(low, rel)
                if match is not None and not (rel > 0 and low[rel - 1].isalnum()):  # not "guitar"
                    yield category, rel, match.end()
    yield from _wrapped_regime_terms(w)
    for anchor in ("cfr", "c.f.r"):
        if not w.has(anchor):
            continue
        for pos in w.find_low(anchor):
            rel = pos - w.base
            cfr = _CFR_RE.search(low, max(0, rel - 6), rel + 40)
            if cfr is None or cfr.start() > rel:
                continue
            if cfr.group(1) == "22" and cfr.group(2)[0] == "1":
                yield "export.itar", cfr.start(), cfr.end()
            elif cfr.group(1) == "15" and cfr.group(2)[0] == "7":
                yield "export.ear", cfr.start(), cfr.end()


# Every restriction phrase holds one of these: a cheap test before the expression runs.
_RESTRICTION_KEYS = (
    "foreign", "releasable", "without", "be ", "export", "requir", "under", "jurisdiction", "diversion",
    "s. persons", "us persons",
)  # fmt: skip
_FOREIGN_RESTRICTION_KEYS = (
    "trang",
    "extranjer",
    "ausl",
    "estrangeir",
    "stranier",
    "autoris",
    "autoriz",
    "genehm",
)


# A job's access to controlled data, in a posting: "This position requires access to technical data
# controlled under the ITAR" describes the work, not this text.
_JOB_ACCESS_RE = re.compile(
    r"\b(?:position|role|job|candidates?|applicants?|employees?|you)\b[^.!?\n]{0,60}?"
    r"\b(?:requires?|will\s+(?:have|require|need)|needs?|involves?)\s+access\s+to\b[^.!?\n]{0,80}\Z"
)


# Restriction told as past events, in an account of a case: "Prosecutors said the data was controlled under
# the International Traffic in Arms Regulations".
_PAST_RESTRICTION_RE = re.compile(r"\b(?:was|were|had\s+been)\s+(?:[a-z]+\s+)?\Z")


def _not_this_texts(low: str, at: int) -> bool:
    """True when the restriction language at ``at`` is about a job's access or told in the past tense, not
    said of this text."""
    if _PAST_RESTRICTION_RE.search(low, max(0, at - 24), at) is not None:
        return True
    return (
        "access" in low[max(0, at - 100) : at]
        and _JOB_ACCESS_RE.search(low, max(0, at - 180), at) is not None
    )


def _restriction_near(w: _Window, rel: int, rel_end: int) -> bool:
    """True when restriction language stands in the same paragraph within 300 characters of the term."""
    low = w.low
    lo, hi = max(0, rel - 300), rel_end + 300
    w.restriction_checks += 1
    if w.restriction_checks <= 16:
        # A few terms: search around each. Many ("ITAR ITAR ..."): index the window once, stay linear.
        around = low[lo:hi]
        for keys, pattern in (
            (_RESTRICTION_KEYS, _RESTRICTION_RE),
            (_FOREIGN_RESTRICTION_KEYS, _FOREIGN_RESTRICTION_RE),
        ):
            if not any(key in around for key in keys):
                continue
            for match in pattern.finditer(low, lo, hi):
                other = match.start()
                if low.find("\n\n", min(other, rel), max(other, rel_end)) == -1 and not _not_this_texts(
                    low, other
                ):
                    return True
        return False
    positions = w.low_pattern_positions(_ANY_RESTRICTION_RE)
    index = bisect_left(positions, rel - 300)
    while index < len(positions) and positions[index] <= rel_end + 300:
        other = positions[index]
        lo, hi = min(other, rel), max(other, rel_end)
        if low.find("\n\n", lo, hi) == -1 and not _not_this_texts(low, other):
            return True
        index += 1
    return False


# A sentence's end: its stop, or a paragraph break (a hard-wrapped sentence goes on after one line break).
_SENTENCE_STOP_RE = re.compile(r"[.?!]|\n[ \t]*\n")


def _in_question(low: str, rel: int) -> bool:
    """True when the sentence going on at ``rel`` ends with a question mark: "Is it legal to send ITAR
    technical data to a foreign national?" asks about a rule; it carries no notice."""
    end = _SENTENCE_STOP_RE.search(low, rel, rel + 200)
    return end is not None and end.group() == "?"


def _export_notices(w: _Window) -> None:
    for category, rel, rel_end in _regime_terms(w):
        pos, end = rel + w.base, rel_end + w.base
        office = w.low[rel:rel_end].startswith(("ddtc", "directorate", "usml", "bureau"))
        notice = -1 if office else _notice_before(w, rel, rel_end)
        if notice != -1:
            w.emit(category, notice, end)
        elif (w.text[pos:end] == "ITAR" and _upper_line_with(w.text, pos, end, _NOTICE_WORDS)) or (
            _restriction_near(w, rel, rel_end) and not _in_question(w.low, rel_end)
        ):
            w.emit(category, pos, end)
    # The ITAR's destination control statement (22 CFR 123.9(b)), which never names the regulation.
    if w.has("ultimate"):
        for match in w.low_iter(_ITAR_DCS_RE):
            w.emit("export.itar", match.start() + w.base, match.end() + w.base)
    # BIS, the licensing office of the EAR, only in upper case and beside restriction language.
    for pos in w.find("BIS"):
        end = pos + 3
        if _bounded(w.text, pos, end) and _restriction_near(w, pos - w.base, end - w.base):
            w.emit("export.ear", pos, end)
    # The abbreviation EAR is only the regulation in upper case ("the inner ear" is not).
    for pos in w.find("EAR"):
        end = pos + 3
        if not _bounded(w.text, pos, end):
            continue  # also skips EAR99, the designation of items that need no licence
        notice = _notice_before(w, pos - w.base, end - w.base)
        if notice != -1:
            w.emit("export.ear", notice, end)
        elif _upper_line_with(w.text, pos, end, _NOTICE_WORDS) or _restriction_near(
            w, pos - w.base, end - w.base
        ):
            w.emit("export.ear", pos, end)


_ITAR_WORD_RE = re.compile(r"\bITAR\b")
_EAR_WORD_RE = re.compile(r"\bEAR\b")


def _export_banner(w: _Window) -> None:
    if not w.has("export controlled"):
        return
    for pos in w.find_low("export controlled"):
        end = pos + 17
        bounds = _line_bounds(w.text, pos, end)
        if bounds is None:
            continue
        upper = _upper_line_with(w.text, pos, end, ("EXPORT CONTROLLED",))
        if not upper and not _alone_in_field(w.text, pos, end):
            continue
        line = w.text[bounds[0] : bounds[1]]
        if _ITAR_WORD_RE.search(line):
            w.emit("export.itar", pos, end)
        elif _EAR_WORD_RE.search(line):
            w.emit("export.ear", pos, end)
        else:
            w.emit("export.banner", pos, end)


# "ITAR-controlled: do not share", "Export Controlled Information (ECI) - handle per procedure 4.2",
# "EAR-Controlled" alone on a line: a regime's "controlled" label opening a line, as a tag (a colon or a
# dash after it) or alone. Not a form's answer ("Export controlled: No"), not a phrase that goes on
# ("ITAR-controlled items: a primer"). Found from each "controlled": what opens the line before it, what
# follows after.
_CONTROLLED_TAG_BEFORE_RE = re.compile(r"(?:^|\n)[ \t]*(?:[-*>#][ \t]*)*(?P<regime>itar|ear|export)[- ]\Z")
_CONTROLLED_TAG_AFTER_RE = re.compile(
    r"(?:[ \t]+(?:technical[ \t]+)?(?:data|information))?(?:[ \t]*\((?:eci|ctd)\))?"
    r"(?:[ \t]*:(?![ \t]*(?:no|none|n/a|false|not\b))|[ \t]+(?:--?|[\u2013\u2014])[ \t]|[ \t]*(?:\n|\Z))"
)
_TAG_CATEGORY = {"itar": "export.itar", "ear": "export.ear", "export": "export.banner"}
# A form's export field naming the regime: "Export Control: ITAR", "Export controls: EAR" (not "EAR99").
# "Export Control: ITAR", and as a field or attribute: export_control: EAR, exportJurisdiction="ITAR".
_EXPORT_FIELD_RE = re.compile(
    r"export[ \t_-]*(?:control(?:s|led)?|classification|jurisdiction)[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?P<regime>itar|ear)(?![a-z0-9])"
)


# The intelligence community's XML markings (ISM): a level in an `ism:classification` attribute; "U" is
# unclassified.
_ISM_LEVEL_RE = re.compile(
    r"ism:classification[ \t]*=[ \t]*[\"'](?:ts|s|c|r|top secret|secret|confidential)[\"']"
)


def _ism_levels(w: _Window) -> None:
    if w.has("ism:classification"):
        for match in w.low_iter(_ISM_LEVEL_RE):
            w.emit("classified.banner", match.start() + w.base, match.end() + w.base)


def _export_fields(w: _Window) -> None:
    if not w.has("export") or not (w.has("itar") or w.has("ear")):
        return
    for pos in w.find_low("export"):
        rel = pos - w.base
        field = _EXPORT_FIELD_RE.match(w.low, rel) if rel == 0 or not w.low[rel - 1].isalpha() else None
        if field is not None:
            w.emit(_TAG_CATEGORY[field.group("regime")], pos, field.end() + w.base)


def _controlled_tags(w: _Window) -> None:
    if not w.has("controlled") or not (w.has("itar") or w.has("ear") or w.has("export")):
        return
    low, base = w.low, w.base
    for pos in w.find_low("controlled"):
        rel = pos - base
        opened = _CONTROLLED_TAG_BEFORE_RE.search(low, max(0, rel - 24), rel)
        tag = _CONTROLLED_TAG_AFTER_RE.match(low, rel + 10) if opened is not None else None
        if opened is None or tag is None:
            continue
        start = opened.start("regime") + base
        category = _TAG_CATEGORY[opened.group("regime")]
        bounds = _line_bounds(w.text, start, start)
        if category == "export.banner" and bounds is not None:
            line = w.text[bounds[0] : bounds[1]]
            if _ITAR_WORD_RE.search(line):
                category = "export.itar"
            elif _EAR_WORD_RE.search(line):
                category = "export.ear"
        end = tag.end() + base
        w.emit(category, start, start + len(w.text[start:end].rstrip(" \t:-\u2013\u2014\n")))


_ECCN_RE = re.compile(
    r"(?:eccn|export\s+control\s+classification\s+number)s?(?:\s*\(eccn\))?[\s:#=\-]{0,5}"
    r"(?:is\s+|of\s+|classified\s+as\s+)?(?<![a-z0-9])([0-9][a-e][0-9]{3}(?:\.[a-z0-9]{1,3}){0,4})(?![a-z0-9])"
)


def _emit_word_matches(w: _Window, pattern: re.Pattern[str], category: str) -> None:
    """Each match of ``pattern`` over the window's lower-cased text that starts a word."""
    for match in w.low_iter(pattern):
        rel = match.start()
        if rel == 0 or not w.low[rel - 1].isalnum():
            w.emit(category, rel + w.base, match.end() + w.base)


# A form's marking for what is written on it: "CUI (when filled in)", "FOR OFFICIAL USE ONLY (When Filled
# In)"; in lower case ("the old "for official use only (when filled in)" footer") it is named in prose.
_FILLED_IN_RE = re.compile(
    r"(?P<word>cui|fouo|for\s+official\s+use\s+only|sbu|les|confidential|secret)[ \t]*\(when\s+filled\s+in\)"
)
_FILLED_IN_CATEGORIES = {
    "cui": "cui.banner",
    "confidential": "classified.banner",
    "secret": "classified.banner",
}


def _filled_in_marks(w: _Window) -> None:
    if not w.has("filled in"):
        return
    for match in w.low_iter(_FILLED_IN_RE):
        rel = match.start()
        word = w.text[rel + w.base : match.end("word") + w.base]
        if (rel == 0 or not w.low[rel - 1].isalnum()) and not word.islower():
            category = _FILLED_IN_CATEGORIES.get(match.group("word"), "cui.legacy")
            w.emit(category, rel + w.base, match.end() + w.base)


def _eccn(w: _Window) -> None:
    if w.has("eccn") or w.has("export control classification"):
        _emit_word_matches(w, _ECCN_RE, "export.eccn")


# An item's place on the U.S. Munitions List down to its paragraph, the ITAR's counterpart of an ECCN:
# "USML Category XI(d)", "USML Cat. XV(e)(3)", "(USML) Category XII(c)", "USML XII(d)". A category without
# a paragraph ("Category XI covers military electronics") names a part of the list, not an item.
_USML_RE = re.compile(
    # (also after a comma or a parenthesis: "a defense article on the USML, Category XII(c), ITAR-controlled")
    r"(?:usml\)?(?:[ \t]*[,(])?[ \t]+(?:(?:category|cat\.?)[ \t]+)?"
    r"[ivx]{1,5}[ \t]*\([a-z]\)(?:\([0-9]{1,2}\))?"
    # a record's field: "usml_category":"XI(c)(1)", usml_cat = "IV"
    r"|usml[_ -]?cat(?:egory)?[\"']?[ \t]*[:=][ \t]*[\"']?(?:cat(?:egory)?\.?[ \t]*)?[ivx]{1,5}"
    r"(?:\([a-z]\)(?:\([0-9]{1,2}\))?)?)"
    r"(?![a-z0-9])"
)
# The same place written the other way round: "described in Category XII(c) of the United States Munitions
# List", "Category XI(a)(3) of the USML".
_USML_OF_RE = re.compile(
    r"(?:category|cat\.?)\s+[ivx]{1,5}[ \t]*\([a-z]\)(?:\([0-9]{1,2}\))?\s+(?:of|on|in)\s+(?:the\s+)?"
    r"(?:usml\b|(?:u\.\s?s\.|united\s+states)\s+munitions\s+list)"
    # or the list named first, in words: "a defense article on the U.S. Munitions List, Category XII(c)"
    r"|(?:u\.\s?s\.|united\s+states)\s+munitions\s+list[ \t]*[,(]?[ \t]*(?:category|cat\.?)\s+"
    r"[ivx]{1,5}[ \t]*"
    r"\([a-z]\)(?:\([0-9]{1,2}\))?"
)


def _usml_items(w: _Window) -> None:
    if w.has("usml"):
        _emit_word_matches(w, _USML_RE, "export.itar")
    if w.has("usml") or w.has("munitions"):
        _emit_word_matches(w, _USML_OF_RE, "export.itar")


# An ECCN-shaped code without the label counts beside the words that place it on the Commerce Control List
# ("classified as 3A001.a.1", "5A002 under the EAR"), in the same line and sentence, unless the sentence is
# a question about ECCNs or gives the code as an example ("an ECCN like 5A002").
_ECCN_SHAPE_RE = re.compile(
    r"[0-9](?<![A-Za-z0-9.\-][0-9])[A-E][0-9]{3}(?:\.[a-z0-9]{1,3}){0,4}(?![A-Za-z0-9\-])"
)
_ECCN_CONTEXT_RE = re.compile(
    r"\beccns?\b|classified\s+(?:as|under)|commerce\s+control\s+list|\bccl\b|licen[cs]e\s+exception|"
    r"export\s+classification|\bear\b|\bear99\b"
)
_ECCN_ANCHORS = (
    "eccn", "classified as", "classified under", "commerce control", "ccl", "export classification",
    "license exception", "licence exception",
)  # fmt: skip
# An ECCN down to its sub-paragraph ("3A001.b.4.a", "7D003.a") is no catalogue's shape: it counts with export
# vocabulary anywhere near it, not only in its own sentence ("Classification came back: the mill is
# 2B001.b.2 ... we'll need a BIS license").
_ECCN_PARAGRAPH_RE = re.compile(r"[0-9][A-E][0-9]{3}\.[a-z]")
_ECCN_WIDE_ANCHORS = ("export", "licen", "nlr", "classified")
_ECCN_WIDE_CONTEXT_RE = re.compile(
    r"\beccns?\b|export|\bbis\b|licen[cs]es?\b|\bear\b|\bear99\b|commerce\s+control|\bccl\b|classifi(?:cation|ed)"
    r"|\bnlr\b|\bend[- ]use\b"
)
_ECCN_WIDE = 400
_EXAMPLE_BEFORE_RE = re.compile(
    # ("e.g. in 3A001")
    r"(?:like|such\s+as|e\.\s?g\.,?|for\s+example|example|say)[\s:,]*(?:(?:in|under)\s+)?\Z"
)


def _eccn_in_context(w: _Window) -> None:
    low, text, base = w.low, w.text, w.base
    anchors = sorted(
        [(pos - base, 170) for anchor in _ECCN_ANCHORS if w.has(anchor) for pos in w.find_low(anchor)]
        # "EAR", and "EAR99" beside an ECCN ("says 3A001.a.7, not EAR99"): from the one search for "EAR"
        + [
            (pos - base, 170)
            for pos in w.find("EAR")
            if _bounded(text, pos, pos + 3) or text[pos + 3 : pos + 5] == "99"
        ]
        + [
            (pos - base, _ECCN_WIDE)
            for anchor in _ECCN_WIDE_ANCHORS
            if w.has(anchor)
            for pos in w.find_low(anchor)
        ]
    )
    if not anchors:
        return
    # ECCN-shaped codes only near an anchor; the ranges are merged, so each character is scanned once.
    candidates: list[re.Match[str]] = []
    scanned = w.lo - base
    for anchor, reach in anchors:
        lo, hi = max(scanned, anchor - reach), min(w.hi - base, anchor + reach)
        if lo < hi:
            candidates.extend(_ECCN_SHAPE_RE.finditer(text, lo + base, hi + base))
            scanned = hi
    for match in candidates:
        rel, rel_end = match.start() - base, match.end() - base
        line_start = (
            max(
                low.rfind("\n", max(0, rel - 160), rel),
                _sentence_stop(low, max(0, rel - 160), rel),
                rel - 161,
            )
            + 1
        )
        line_end = low.find("\n", rel_end, rel_end + 160)
        line_end = rel_end + 160 if line_end == -1 else line_end
        sentence_end = low.find(". ", rel_end, line_end)
        line_end = line_end if sentence_end == -1 else sentence_end
        in_context = (
            not hit.group().startswith("ear") or text.startswith("EAR", hit.start() + base)
            for hit in _ECCN_CONTEXT_RE.finditer(low, line_start, line_end)
        )
        if not any(in_context) and not (
            _ECCN_PARAGRAPH_RE.match(match.group())
            and _ECCN_WIDE_CONTEXT_RE.search(low, max(0, rel - _ECCN_WIDE), rel_end + _ECCN_WIDE)
        ):
            continue  # no context, or only "the inner ear", which is no regulation
        if "?" in low[rel_end:line_end] or _EXAMPLE_BEFORE_RE.search(low, max(0, rel - 24), rel):
            continue
        w.emit("export.eccn", match.start(), match.end())


def _sentence_stop(low: str, lo: int, hi: int) -> int:
    """The last ". " in ``low[lo:hi]`` that ends a sentence, not a dot leader's ("ECCN ........  6A001"); -1
    when there is none."""
    stop = low.rfind(". ", lo, hi)
    while stop > lo and low[stop - 1] == ".":
        stop = low.rfind(". ", lo, stop - 1)
    return stop


_DIST_STATEMENT_RE = re.compile(r"distribution\s+statement\s*([a-f])(?![a-z0-9])")
_DIST_HEADING_END_RE = re.compile(r"[ \t]*[.:\-]")  # "Distribution Statement F.", "statement  e  :"
_DIST_AUTHORIZED_RE = re.compile(
    r"(?:distribution|dist\.?)\s+(?:is\s+)?authori[sz]ed\s+to\s+(?:u\.\s?s\.|us\b|the\s+u\.\s?s\.|dod\b|the\s+dod\b|"
    r"department\s+of\s+defense|the\s+department\s+of\s+defense|doe\b|nasa\b)"
)


# The wording of statements B-F besides "Distribution authorized to": "Further dissemination only as
# directed by the controlling office" (F), "... and their contractors" (C, D); it counts right after the
# statement's own heading ("Distribution Statement F."), not in prose that explains the letters.
_DIST_TERMS_RE = re.compile(
    r"further\s+dissemination|controlling\s+(?:dod\s+)?office|(?:dod|government)\s+contractors|"
    r"contractors\s+only|agencies\s+only|dod\s+components\s+only"
)


_DIST_LETTER_RE = re.compile(r"distribution\s+([b-f])\s*[:.]")
_DIST_AGENCIES_RE = re.compile(
    r"\s*(?:u\.\s?s\.|us)\s+government\s+agencies|\s*dod\b|\s*department\s+of\s+defense"
)


def _distribution_statements(w: _Window) -> None:
    low, base = w.low, w.base
    if w.has("distribution statement"):
        for match in w.low_iter(_DIST_STATEMENT_RE):
            if match.group(1) == "a":
                continue  # Statement A is approval for public release
            pos, end = match.start() + base, match.end() + base
            if (
                w.text[pos : pos + 22].isupper()
                or _DIST_AUTHORIZED_RE.search(low, match.end(), match.end() + 200)
                or (
                    _DIST_HEADING_END_RE.match(low, match.end())
                    and _DIST_TERMS_RE.search(low, match.end(), match.end() + 200)
                )
            ):
                w.emit("export.distribution_statement", pos, end)
    # "DISTRIBUTION B: U.S. Government agencies only": the heading without "Statement", upper case.
    for pos in w.find("DISTRIBUTION "):
        heading = _DIST_LETTER_RE.match(low, pos - base)
        if heading is None or not _bounded(w.text, pos, pos + 12):
            continue
        after = heading.end()
        if (
            _DIST_AUTHORIZED_RE.search(low, after, after + 200)
            or _DIST_TERMS_RE.search(low, after, after + 200)
            or _DIST_AGENCIES_RE.match(low, after)
        ):
            w.emit("export.distribution_statement", pos, after + base)
    if w.has("authori"):
        for match in w.low_iter(_DIST_AUTHORIZED_RE):
            w.emit("export.distribution_statement", match.start() + base, match.end() + base)


# --------------------------------------------------------------------------------------------------------
# PII: unlabelled shapes found in digit runs (SSN, card, phone), e-mail, labelled identifiers
# --------------------------------------------------------------------------------------------------------

# A run of digits and separators; only runs with at least nine digits (the fewest any SSN, card or phone
# number has) go on to the detailed patterns. Dates, times and prices in logs and JSON never get that far.
_DIGIT_RUN_RE = re.compile(r"[0-9][0-9 ().\-]{7,}[0-9]")
# The same runs, only those of eleven characters or more: every SSN, card and phone shape spans at least
# eleven from its first digit (123-45-6789, 555-123-4567, 4111111111111111), so shorter runs (dates, times,
# prices) can hold none. Used from the start of a text, where each run is found from its first digit.
_LONG_DIGIT_RUN_RE = re.compile(r"[0-9][0-9 ().\-]{9,}[0-9]")
# Each character of an ASCII text as "0" (a digit or a separator of a run) or "x" (anything else): a run of
# eleven characters or more lies in a stretch of eleven "0"s, which ``str.find`` locates at C speed.
_RUN_CLASSES = "".join("0" if chr(c) in "0123456789 ().-" else "x" for c in range(128))
_ELEVEN = "0" * 11


def _long_digit_runs(text: str, end: int, projected: str | None = None) -> Iterator[re.Match[str]]:
    """The matches of ``_LONG_DIGIT_RUN_RE`` in ``text[:end]``: the regular expression runs only over the
    stretches of digits and separators that are long enough to hold one (most texts have a handful).

    ``projected``, when given, is an ASCII string as long as ``text[:end]`` with the same digits and
    separators at the same places (a window's ``ascii_low``), which saves projecting ``text`` again."""
    head = text if end == len(text) else text[:end]
    if projected is not None:
        head = projected
    elif not head.isascii():  # one "?" for each other character, so positions stay; then ASCII speed
        head = head.encode("ascii", "replace").decode("ascii")
    classes = head.translate(_RUN_CLASSES)
    pos = classes.find(_ELEVEN)
    while pos != -1:
        stop = classes.find("x", pos)
        stop = end if stop == -1 else stop
        yield from _LONG_DIGIT_RUN_RE.finditer(text, pos, stop)
        pos = classes.find(_ELEVEN, stop)


# Matches a run (all digits and separators) exactly when it holds nine digits: one C call per run.
_NINE_DIGITS_RE = re.compile(r"(?:[0-9][ ().\-]*){9}")
_SSN_RE = re.compile(r"(?<![\w\-])([0-9]{3})([\- ])([0-9]{2})\2([0-9]{4})(?![\w\-]|\.[0-9])")
_CARD_RE = re.compile(
    r"(?<![\w\-])(?:[0-9]{4}([ \-])[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}(?:\1[0-9]{1,3})?"
    r"|[0-9]{4}([ \-])[0-9]{6}\2[0-9]{4,5}|[0-9]{15,16})(?![\w\-]|\.[0-9])"
)
_PHONE_RE = re.compile(
    r"(?<![\w.+\-])(?:\+?1[ .\-]?)?(?:\(([0-9]{3})\)[ ]?|([0-9]{3})([ .\-]))"
    r"([0-9]{3})(?(3)\3|[ .\-])([0-9]{4})(?![\w\-]|\.[0-9])"
)


def _in_spaced_groups(text: str, start: int, end: int) -> bool:
    """True when the space-separated shape at text[start:end] has another group of digits beside it."""
    before, after = text[max(0, start - 2) : start], text[end : end + 2]
    return (len(before) == 2 and before[0].isdigit() and before[1] == " ") or (
        len(after) == 2 and after[0] == " " and after[1].isdigit()
    )


def _digit_shapes(w: _Window) -> None:
    text = w.text
    n = len(text)
    nine_digits = _NINE_DIGITS_RE.match
    start = max(0, w.lo - 32)
    # A later window may start inside a run: there every run found counts, as it always has.
    runs = (
        _long_digit_runs(text, w.end, w.ascii_low())  # the window starts at 0: its low is text[: w.end]
        if start == 0
        else _DIGIT_RUN_RE.finditer(text, start, w.end)
    )
    for run in runs:
        run_start, run_end = run.span()
        if run_start >= w.hi:
            return
        if run_end < w.lo or nine_digits(run.group()) is None:
            continue
        lo, hi = max(0, run_start - 4), min(n, run_end + 2)
        for m in _SSN_RE.finditer(text, lo, hi):
            if m.group(2) == " " and _in_spaced_groups(text, m.start(), m.end()):
                continue  # "tracking 1Z 9W4 482 03 5510 7721": three groups of a longer spaced number
            if ssn_is_valid(m.group(1) + m.group(3) + m.group(4)):
                w.emit("pii.ssn", m.start(), m.end())
        for m in _CARD_RE.finditer(text, lo, hi):
            if card_number_is_valid(m.group().replace(" ", "").replace("-", "")):
                w.emit("pii.credit_card", m.start(), m.end())
        for m in _PHONE_RE.finditer(text, lo, hi):
            if nanp_is_valid(m.group(1) or m.group(2), m.group(4)):
                w.emit("pii.phone", m.start(), m.end())


_EMAIL_DOMAIN_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![A-Za-z0-9\-])"
)
_EMAIL_LOCAL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
# "logo@2x.png" is an image name, "getty@tty1.service" a systemd unit's instance: not addresses (no such
# top-level domains).
_NOT_TLDS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "heic",
     "service", "socket", "timer", "mount", "automount", "slice", "scope", "swap", "device"}
)  # fmt: skip


def _emails(w: _Window) -> None:
    text = w.text
    for at in w.find("@"):
        domain = _EMAIL_DOMAIN_RE.match(text, at + 1, at + 256)
        if domain is None or domain.group(1).lower() in _NOT_TLDS:
            continue
        local = _EMAIL_LOCAL_RE.search(text, max(0, at - 64), at)
        if local is None:
            continue
        start = local.start()
        while start < at and text[start] in ".-":
            start += 1
        after = text[domain.end() : domain.end() + 2]
        if start == at or (after[:1] == ":" and after[1:2].strip() and not after[1:2].isdigit()):
            continue  # scp-style "git@github.com:org/repo.git" is a host address, not a mailbox
        w.emit("pii.email", start, domain.end())


_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_MONTH_NUMBER = {
    name: index + 1
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
# A label asked as a question and answered on the next line, in a transcript: "NICOLE: Passport number?" /
# "CLIENT: 548120937."
_ANSWER_GAP = r"[^0-9\n]{0,16}?\?[ \t]*\r?\n[ \t]*[a-z][a-z0-9 .'-]{0,30}:[ \t]*"
# A form's field name, then its value: a PDF form's dump ("FieldName: RoutingNumber" / "FieldValue: ..."),
# XFDF ('<field name="DateOfBirth"><value>08/14/1986</value>'), a log's key and value ('label="Date of
# Birth" value=1979-02-11').
_FIELD_GAP = (
    r"[a-z]{0,16}(?:\"?[ \t]*>[ \t]*<value>|[ \t]*\r?\n[ \t]*fieldvalue[ \t]*:"
    r"|\"?[ \t]+value[ \t]*[=:][ \t]*\"?)[ \t]*"
)
_DOB_TAIL_RE = re.compile(
    # GEDCOM's date line under its birth event: "1 BIRT" / "2 DATE 27 MAR 1914"; or the answer to a question
    r"(?:[ \t]*\r?\n[0-9][ \t]+date(?=[ \t])|" + _ANSWER_GAP + r"|" + _FIELD_GAP + r")?"
    # a format hint may stand between the label and the date: "Date of Birth (MM/DD/YYYY): 01/31/1970"
    r"(?:[ \t]*\((?:mm|dd|yy|yyyy|m|d)(?:[/.\-](?:mm|dd|yy|yyyy|m|d)){2}\))?"
    # a form's columns may align the value far from its label: "Date of birth:          07/22/1989"
    r"[^0-9a-z\n]{0,6}[ \t]{0,40}(?:(?:is|was|on|of)[^0-9a-z\n]{1,4}){0,2}(?<![0-9])(?:"
    r"(?P<a>[0-9]{1,2})[/.\-](?P<b>[0-9]{1,2})[/.\-](?P<y1>[0-9]{4}|[0-9]{2})"
    r"|(?P<y2>[0-9]{4})(?P<s2>[/.\-])(?P<m2>[0-9]{1,2})(?P=s2)(?P<d2>[0-9]{1,2})"
    r"|(?P<mn3>" + _MONTHS + r")(?:\s+|-)(?P<d3>[0-9]{1,2})(?:st|nd|rd|th)?(?:,?\s+|-)(?P<y3>[0-9]{4})"
    r"|(?P<d4>[0-9]{1,2})(?:st|nd|rd|th)?(?:\s+(?:of\s+)?|[-/.])(?P<mn4>"
    + _MONTHS
    + r")(?:,?\s+|[-/.])(?P<y4>[0-9]{4})"
    # as Chinese and Japanese write it: "1990年5月6日"
    r"|(?P<y5>[0-9]{4})[ \t]*\u5e74[ \t]*(?P<m5>[0-9]{1,2})[ \t]*\u6708[ \t]*(?P<d5>[0-9]{1,2})[ \t]*\u65e5"
    r")(?![0-9])"
)


def _dob_is_valid(match: re.Match[str]) -> bool:
    if match.group("a"):
        a, b, y = int(match.group("a")), int(match.group("b")), int(match.group("y1"))
        return date_is_plausible(a, b, y) or date_is_plausible(b, a, y)  # US or day-first order
    if match.group("y2"):
        return date_is_plausible(int(match.group("m2")), int(match.group("d2")), int(match.group("y2")))
    if match.group("mn3"):
        month = _MONTH_NUMBER[match.group("mn3")[:3]]
        return date_is_plausible(month, int(match.group("d3")), int(match.group("y3")))
    if match.group("y5"):
        return date_is_plausible(int(match.group("m5")), int(match.group("d5")), int(match.group("y5")))
    month = _MONTH_NUMBER[match.group("mn4")[:3]]
    return date_is_plausible(month, int(match.group("d4")), int(match.group("y4")))


def _dob_span(match: re.Match[str]) -> tuple[int, int]:
    for name in ("a", "y2", "mn3", "d4", "y5"):
        if match.group(name):
            return match.start(name), match.end()
    return match.span()  # pragma: no cover - one of the alternatives always matched


def _value_tail(value: str) -> re.Pattern[str]:
    """A value of shape ``value`` at most 24 non-digit characters after its label (": ", " number is "), and
    perhaps a parenthetical about it, digits and all ("Routing number (9 digits): ")."""
    return re.compile(
        r"(?:" + _ANSWER_GAP + r"|" + _FIELD_GAP + r"|[^0-9\n]{0,24}?(?:\([^()\n]{1,20}\)[^0-9\n]{0,6}?)?)"
        r"(?<![0-9a-z])(" + value + r")(?![0-9a-z])"
    )


def _ssn_value(match: re.Match[str]) -> tuple[int, int] | None:
    digits = match.group(1).replace("-", "").replace(" ", "")
    return match.span(1) if ssn_is_valid(digits) else None


def _aba_value(match: re.Match[str]) -> tuple[int, int] | None:
    return match.span(1) if aba_routing_is_valid(match.group(1)) else None


def _any_value(match: re.Match[str]) -> tuple[int, int] | None:
    return match.span(1)


def _card_value(match: re.Match[str]) -> tuple[int, int] | None:
    digits = match.group(1).replace(" ", "").replace("-", "")
    return match.span(1) if 13 <= len(digits) <= 19 and luhn_is_valid(digits) else None


def _dob_value(match: re.Match[str]) -> tuple[int, int] | None:
    return _dob_span(match) if _dob_is_valid(match) else None


_Label = tuple[
    str, tuple[str, ...], tuple[str, ...], re.Pattern[str], Callable[[re.Match[str]], tuple[int, int] | None]
]


_DOB_LABELS = (
    "date of birth", "date-of-birth", "birth date", "birth-date", "birthdate", "dob", "d.o.b", "born",
    "fecha de nacimiento", "date de naissance", "geburtsdatum", "data di nascita", "data de nascimento",
    # a GEDCOM file's birth event, its date on the next line ("1 BIRT" / "2 DATE 27 MAR 1914")
    "birt",
)  # fmt: skip


def _key_forms(words: tuple[str, ...]) -> tuple[str, ...]:
    """Each label also as a field name writes it: "dod_id", "date_of_birth", "social_security" (a camel-case
    key lower-cases to the form without spaces: "dateOfBirth")."""
    forms = dict.fromkeys(words)
    for word in words:
        if " " in word:
            forms.update(dict.fromkeys((word.replace(" ", "_"), word.replace(" ", ""))))
    return tuple(forms)


# category, gates (cheap substrings: skip the labels when none occurs), labels (lower case), the value
# pattern that follows a label, the span of a valid value. The labels of the forms an agency handles in other
# languages as well: Spanish, French, German, Italian and Portuguese.
_LABELLED: tuple[_Label, ...] = (
    (
        "pii.ssn",
        _key_forms(("ssn", "social sec", "ss#")),
        _key_forms(("ssn", "social security", "ss#")),
        # separators as typed or copied from a form: "523-81-4460", "523 81 4460", "523-81-  4460"
        _value_tail(r"[0-9]{3}[\- ]{0,3}[0-9]{2}[\- ]{0,3}[0-9]{4}"),
        _ssn_value,
    ),
    (
        "pii.passport",
        ("passport", "pasaporte", "passeport", "reisepass", "passaport"),
        ("passport", "pasaporte", "passeport", "reisepass", "passaporto", "passaporte"),
        # letters and digits as each country issues them ("G48213977", France's "18AV01234", Germany's
        # "C01X00T47"): six to nine of them, at least four digits
        _value_tail(r"(?=[a-z0-9]{6,9}(?![0-9a-z]))(?:[a-z]*[0-9]){4}[a-z0-9]*"),
        _any_value,
    ),
    (
        "pii.aba_routing",
        ("routing", "aba", "rtn"),
        ("routing", "aba", "rtn"),
        _value_tail(r"[0-9]{9}"),
        _aba_value,
    ),
    (
        "pii.edipi",
        ("dod", "dipi", "di-pi"),
        _key_forms(("edipi", "edi-pi", "dod id", "dodid", "dod identification")),
        _value_tail(r"[0-9]{10}"),
        _any_value,
    ),
    (
        # a card number after its label, from any issuer a payment card's first digit allows (2 to 6: a
        # store's own card, "MILITARY STAR 6019 ..."); a SIM's ICCID starts 89
        "pii.credit_card",
        ("card",),
        _key_forms(("card", "card number", "card no", "card #")),
        _value_tail(r"[2-6][0-9]{3}(?:[ -]?[0-9]{4}){2}[ -]?[0-9]{1,7}"),
        _card_value,
    ),
    (
        "pii.dob",
        ("birt", "dob", "d.o.b", "born", "nacimiento", "naissance", "geburtsdatum", "nascita", "nascimento"),
        _key_forms(_DOB_LABELS),
        _DOB_TAIL_RE,
        _dob_value,
    ),
)


def _label_bounded(text: str, low: str, pos: int, rel: int, end: int) -> bool:
    """A label stands as a word of its own, or as one of a field name's in camel case ("RoutingNumber",
    "MostRecentPassportBookNumber")."""
    if rel > 0 and low[rel - 1].isalnum() and not (text[pos].isupper() and text[pos - 1].islower()):
        return False
    after = pos + end - rel
    return not low[end : end + 1].isalpha() or (text[after].isupper() and text[after - 1].islower())


def _labelled(w: _Window) -> None:
    low, base = w.low, w.base
    for category, gates, labels, tail, value_span in _LABELLED:
        if not any(w.has(gate) for gate in gates):
            continue
        for label in labels:
            if not w.has(label):
                continue
            for pos in w.find_low(label):
                rel = pos - base
                end = rel + len(label)
                if not _label_bounded(w.text, low, pos, rel, end):
                    continue
                match = tail.match(low, end, end + 120)
                span = value_span(match) if match is not None else None
                if span is not None:
                    w.emit(category, span[0] + base, span[1] + base)


# What follows an account label ("account", "acct"; lower case) up to its digits: "account 4400123456",
# "Acct #: 000123456789", "account number is 12345678".
_ACCOUNT_TAIL_RE = re.compile(
    r"\.?(?:[ \t]*(?:number|num|no\.?|#))?[^0-9a-z\n]{0,4}(?:is[ \t]+)?#?([0-9]{6,17})(?![0-9a-z])"
)
# How far from a routing number an account number counts as the bank account it names.
_ACCOUNT_NEAR_ROUTING = 160


def _bank_account_in_prose(w: _Window) -> None:
    """A labelled account number near a valid routing number (found by ``_labelled``, which runs first):
    the two together name a bank account. An account number alone ("AWS account 123456789012") is not."""
    if not (w.has("account") or w.has("acct")):
        return
    routings = sorted(
        d.start for d in w.found if d.category == "pii.aba_routing" and w.base <= d.start < w.end
    )
    if not routings:
        return
    low, base = w.low, w.base
    for label in ("account", "acct"):
        for pos in w.find_low(label):
            rel = pos - base
            if rel > 0 and low[rel - 1].isalnum():
                continue
            match = _ACCOUNT_TAIL_RE.match(low, rel + len(label))
            if match is None:
                continue
            start, end = match.start(1) + base, match.end(1) + base
            # the routing number nearest the account's digits: one bisection, so a text of many stays linear
            at = bisect_left(routings, start - _ACCOUNT_NEAR_ROUTING)
            if at < len(routings) and routings[at] <= start + _ACCOUNT_NEAR_ROUTING:
                w.emit("pii.bank_account", start, end)


# --------------------------------------------------------------------------------------------------------
# Identifiers labelled by a column header (CSV, TSV, markdown tables)
# --------------------------------------------------------------------------------------------------------


def _ssn_cell(cell: str) -> bool:
    return ssn_is_valid(cell.replace("-", "").replace(" ", ""))


def _dob_cell(cell: str) -> bool:
    match = _DOB_TAIL_RE.match(cell.lower())
    return match is not None and match.end() == len(cell) and _dob_is_valid(match)


def _card_cell(cell: str) -> bool:
    return card_number_is_valid(cell.replace("-", "").replace(" ", ""))


_Column = tuple[str, re.Pattern[str], re.Pattern[str], Callable[[str], bool] | None]
# category, header (a whole cell, lower case), value shape (a whole cell), validator
_COLUMNS: tuple[_Column, ...] = (
    (
        "pii.ssn",
        re.compile(r"(?:ssn(?:\s+(?:nbr|num|no))?|ss#|social\s+security(?:\s+(?:number|no\.?|#|num|nbr))?)"),
        re.compile(r"[0-9]{3}[\- ]?[0-9]{2}[\- ]?[0-9]{4}"),
        _ssn_cell,
    ),
    (
        "pii.dob",
        re.compile(
            r"(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*(?:date|dt)|birthday|fecha\s+de\s+nacimiento|"
            r"date\s+de\s+naissance|geburtsdatum|data\s+di\s+nascita|data\s+de\s+nascimento)"
        ),
        re.compile(r"[0-9a-z][0-9a-z ,./\-]{4,20}", re.IGNORECASE),
        _dob_cell,
    ),
    (
        "pii.passport",
        re.compile(
            r"(?:passport|pasaporte|passeport|reisepass|passaporto|passaporte)(?:\s+(?:number|no\.?|#|num|nr\.?))?"
        ),
        re.compile(r"[A-Za-z]{0,2}[0-9]{6,9}"),
        None,
    ),
    (
        "pii.edipi",
        re.compile(r"(?:(?:dod\s+)?edipi|edi-pi|dod\s*id(?:\s+(?:number|no\.?|#))?)"),
        re.compile(r"[0-9]{10}"),
        None,
    ),
    (
        "pii.aba_routing",
        re.compile(
            r"(?:aba|rtn|(?:bank\s+)?routing)(?:\s+(?:number|no\.?|#|num))?|aba\s+routing(?:\s+number)?"
        ),
        re.compile(r"[0-9]{9}"),
        aba_routing_is_valid,
    ),
    (
        "pii.bank_account",
        re.compile(r"(?:bank\s+)?(?:account|acct\.?)(?:\s+(?:number|no\.?|#|num))?"),
        re.compile(r"[0-9]{6,17}"),
        None,
    ),
    (
        "pii.credit_card",
        re.compile(r"(?:credit\s+|debit\s+)?card(?:\s+(?:number|no\.?|#|num))?|pan"),
        re.compile(r"[0-9][0-9 \-]{11,22}[0-9]"),
        _card_cell,
    ),
    # ("Export Class", "Export Classification": an inventory's column of ECCNs and EAR99)
    ("export.eccn", re.compile(r"eccn|export\s+class(?:ification)?"), _ECCN_SHAPE_RE, None),
    # an item's USML category under a "USML" column: "XII(c)(2)", "Cat IV(h)"
    (
        "export.itar",
        re.compile(r"usml(?:\s+cat(?:egory|\.)?)?"),
        re.compile(r"(?:cat(?:egory|\.)?\s*)?[IVX]{1,5}(?:\([a-z0-9]{1,3}\)){0,4}", re.IGNORECASE),
        None,
    ),
)
# Where a header word may start; each hit is then matched against the header words at that place.
_HEADER_GATES = ("ssn", "ss#", "social sec", "dob", "d.o.b", "birth", "passport", "dipi", "di-pi", "dod",
                 "aba", "rtn", "routing", "account", "acct", "card", "eccn", "nacimiento", "naissance",
                 "geburtsdatum", "nascita", "nascimento", "pasaporte", "passeport", "reisepass",
                 "passaport", "usml", "export class")  # fmt: skip


def _header_words(w: _Window) -> Iterator[int]:
    """Positions (in ``text``) of header words in the own range, found with ``str.find``; each only
    locates a line, whose cells are then matched whole against the column headers."""
    low, base = w.low, w.base
    for gate in _HEADER_GATES:
        if not w.has(gate):
            continue
        for pos in w.find_low(gate):
            shift = 1 if gate in ("dipi", "di-pi") else 0  # the header word is "edipi"
            rel = pos - base - shift
            glued = rel > 0 and low[rel - 1].isalnum() and low[rel - 2 : rel] not in ("\\t", "\\n")
            if not glued:
                yield pos - shift


_MARKDOWN_RULE_RE = re.compile(r"[ \t|:\-]+\Z")
_MAX_TABLE_ROWS = 100_000


def _split_cells(line: str, delimiter: str) -> list[tuple[int, str]]:
    """(offset in line, stripped text) of each cell; a markdown row's outer pipes open no cells. A cell's
    quotes and an SQL row's parentheses are not its text: `('021000021', '4839200177')`."""
    cells: list[tuple[int, str]] = []
    if delimiter == _POSITIONAL:
        return [(match.start(), match.group()) for match in _RUN_RE.finditer(line)]
    if delimiter == _ALIGNED:
        for match in _ALIGNED_CELL_RE.finditer(line):
            raw, offset = match.group(), match.start()
            stripped = _cell_text(raw)
            cells.append((offset + raw.find(stripped) if stripped else offset, stripped))
        return cells
    offset = 0
    for raw in _csv_split(line) if delimiter == "," and '"' in line else line.split(delimiter):
        stripped = _cell_text(raw)
        cells.append((offset + raw.find(stripped) if stripped else offset, stripped))
        offset += len(raw) + len(delimiter)
    return cells


# A CSV cell: runs outside quotes and quoted runs (a quote left open runs to the line's end).
_CSV_CELL_RE = re.compile(r'(?:[^,"]+|"[^"]*"?)*')


def _csv_split(line: str) -> list[str]:
    """``line`` split at each comma outside double quotes: a CSV cell may hold one ("Tube, Gen 3")."""
    pieces, at = [], 0
    while True:
        cell = _CSV_CELL_RE.match(line, at)
        end = cell.end() if cell is not None else at
        pieces.append(line[at:end])
        if end >= len(line) or line[end] != ",":
            return pieces
        at = end + 1


def _cell_text(raw: str) -> str:
    cell = raw.strip().strip("\"'")
    if "(" in cell or ")" in cell:
        if cell.startswith("(") and ")" not in cell:
            cell = cell[1:]
        if cell.endswith(")") and "(" not in cell:
            cell = cell[:-1]
        cell = cell.strip().strip("\"'")
    return cell


# Columns aligned with spaces (a report printed in a fixed-width font): cells are set apart by two spaces or
# more, and a header has at least three of them.
_ALIGNED = "  "
_ALIGNED_CELL_RE = re.compile(r"\S+(?: \S+)*")
_ALIGNED_HEADER_RE = re.compile(r"\S(?: {2,}\S+(?: \S+)*){2,}")
_ALIGNED_RULE_RE = re.compile(r"[ \t\-=+]+\Z")
# A printout's columns under names parted by single spaces: each value is the run of characters under its
# column's name (right- or left-aligned to it).
_POSITIONAL = " "
_RUN_RE = re.compile(r"\S+")
# Three to twenty-four names and nothing a sentence has: no punctuation at a name's end.
_PRINTOUT_NAME = r"[^\s.,;:?!]*[^\s.,;:?!\)]"
_PRINTOUT_HEADER_RE = re.compile(
    r"[ \t]*(?:" + _PRINTOUT_NAME + r"[ \t]+){2,23}" + _PRINTOUT_NAME + r"[ \t]*"
)


def _in_row(line: str, delimiter: str) -> bool:
    return (_ALIGNED_HEADER_RE.search(line) is not None) if delimiter == _ALIGNED else delimiter in line


def _delimiter(line: str) -> str | None:
    if line.count("|") >= 2:
        return "|"
    for delimiter in ("\t", "\\t", ","):  # "\\t": a TSV inside a JSON string
        if delimiter in line:
            return delimiter
    if _ALIGNED_HEADER_RE.search(line):
        return _ALIGNED
    if _PRINTOUT_HEADER_RE.fullmatch(line):
        return _POSITIONAL  # a printout's header, names parted by one space (pandas, R, a terminal)
    return None


_LINE_BREAK_RE = re.compile(r"\n|\\r\\n|\\n")


def _logical_line(text: str, pos: int) -> tuple[int, int] | None:
    """The line around ``pos``, a JSON string's escaped line breaks counting as line breaks."""
    bounds = _line_bounds(text, pos, pos)
    if bounds is None:
        return None
    start, end = bounds
    escaped = text.rfind("\\n", start, pos)
    if escaped != -1:
        start = escaped + 2
    elif "\\n" in text[pos:end] or (text[end - 1 : end] == " " and '"' in text[start:pos]):
        # a JSON string's first line, its escaped line break ahead (or rendered as one, a space and a break)
        # The first line of a JSON string starts after the string's opening quote.
        quote = text.rfind('"', start, pos)
        while quote > start and text[quote - 1] == "\\":
            quote = text.rfind('"', start, quote - 1)
        start = quote + 1 if quote != -1 else start
    escaped = text.find("\\n", pos, end)
    if escaped != -1 and text[escaped - 2 : escaped] == "\\r":
        escaped -= 2
    return start, (end if escaped == -1 else escaped)


def _column_headers(w: _Window) -> None:
    """Values under a header that names an identifier ("SSN", "Social Security Number", "DOB", "Passport",
    "EDIPI", "Routing", "Account" beside a routing column, "ECCN") are that identifier even without an
    inline label; they must have the identifier's shape and pass its validator. Header lines are found
    from the header words; only the rows of such a table are split into cells."""
    text = w.text
    done: set[int] = set()
    for pos in _header_words(w):
        bounds = _logical_line(text, pos)
        if bounds is None or bounds[0] in done:
            continue
        done.add(bounds[0])
        line = text[bounds[0] : bounds[1]]
        delimiter = _delimiter(line)
        if delimiter is None:
            continue
        header, columns = _header_columns(line, delimiter)
        if not columns and delimiter == "," and _ALIGNED in line:
            # a printout's header with a comma in a column's name ("Family name, given names   Rank")
            delimiter = _ALIGNED
            header, columns = _header_columns(line, delimiter)
        if not columns and delimiter == _ALIGNED:
            # a printout whose names are parted by one space here, two there ("pt_name   dob sex")
            delimiter = _POSITIONAL
            header, columns = _header_columns(line, delimiter)
        if columns and delimiter == _POSITIONAL:
            _positional_rows(w, bounds[1], header, columns)
        elif columns:
            _table_rows(w, bounds[1], delimiter, header, columns)


_ColumnSpec = tuple[int, str, re.Pattern[str], Callable[[str], bool] | None]


def _header_columns(line: str, delimiter: str) -> tuple[list[tuple[int, str]], list[_ColumnSpec]]:
    """A header line's cells, and the columns among them that name an identifier."""
    header = _split_cells(line, delimiter)
    if sum(1 for _, cell in header if cell) < 2:
        return header, []
    names = [_header_name(cell) for _, cell in header]
    has_routing = any(_COLUMNS[4][1].fullmatch(name) for name in names)
    columns: list[_ColumnSpec] = []
    for index, name in enumerate(names):
        for category, header_re, value_re, validator in _COLUMNS:
            if header_re.fullmatch(name):
                if category == "pii.bank_account" and not (has_routing or name[:1] == "b" or " " in name):
                    continue  # a bare "Account" column is an AWS account, a customer: not a bank account
                columns.append((index, category, value_re, validator))
                break
    return header, columns


def _positional_rows(
    w: _Window,
    header_end: int,
    header: list[tuple[int, str]],
    columns: list[_ColumnSpec],
) -> None:
    """The rows under a printout's header: each column's value is the run of characters that overlaps its
    name. The table ends at a blank line or at the first row whose values do not fit their columns, so a
    sentence that merely holds a header word costs one line."""
    text = w.text
    start = header_end + 1
    for _ in range(_MAX_TABLE_ROWS):
        if start >= len(text):
            return
        end = text.find("\n", start)
        end = len(text) if end == -1 else end
        line = text[start:end]
        if not line.strip():
            return
        if not _ALIGNED_RULE_RE.match(line):
            runs = [(m.start(), m.end()) for m in _RUN_RE.finditer(line)]
            for index, category, value_re, validator in columns:
                name_start, name = header[index]
                run = next((r for r in runs if r[0] < name_start + len(name) and r[1] > name_start), None)
                cell = line[run[0] : run[1]] if run is not None else ""
                if not (value_re.fullmatch(cell) and (validator is None or validator(cell))):
                    return
                if not (category == "export.eccn" and cell.upper() == "EAR99"):
                    w.emit(category, start + run[0], start + run[1])  # type: ignore[index]
        start = end + 1


def _header_name(cell: str) -> str:
    """A header as the column patterns match it: lower case, "account_number" as "account number", and a
    trailing gloss dropped ("DoD ID (EDIPI)" is "dod id")."""
    name = cell.lower().replace("_", " ")
    gloss = name.find(" (")
    return name[:gloss] if gloss > 0 and name.endswith(")") else name


def _aligned_cell(header: list[tuple[int, str]], index: int, cells: list[tuple[int, str]]) -> int:
    """The index of the one cell of an aligned row under the header's cell ``index`` (a header cell with one
    space in it, "No. Name", stands over two of the row's); else ``index``."""
    name_start, name = header[index]
    name_end = name_start + len(name)
    under = [
        i for i, (offset, cell) in enumerate(cells) if offset < name_end and offset + len(cell) > name_start
    ]
    return under[0] if len(under) == 1 else index


def _table_rows(
    w: _Window,
    header_end: int,
    delimiter: str,
    header: list[tuple[int, str]],
    columns: list[tuple[int, str, re.Pattern[str], Callable[[str], bool] | None]],
) -> None:
    text = w.text
    width = len(header)
    line_break = _LINE_BREAK_RE.match(text, header_end)
    if line_break is None:
        return
    escaped = line_break.group() != "\n"
    start = line_break.end()
    for _ in range(_MAX_TABLE_ROWS):
        if start >= len(text):
            return
        end = text.find("\\n" if escaped else "\n", start)
        end = len(text) if end == -1 else end
        line = text[start:end]
        if line.strip().upper() == "VALUES":  # an SQL INSERT: its column list, then its rows
            start = end + (2 if escaped else 1)
            continue
        if delimiter in (_ALIGNED, "|") and _ALIGNED_RULE_RE.match(line) and start == line_break.end():
            # the rule under an aligned header, or under a psql or MySQL result's ("-----+-----")
            start = end + (2 if escaped else 1)
            continue
        if not line.strip() or not _in_row(line, delimiter):
            return
        if not (delimiter == "|" and _MARKDOWN_RULE_RE.match(line)):
            cells = _split_cells(line, delimiter)
            if abs(len(cells) - width) > 1:
                return
            for index, category, value_re, validator in columns:
                at = _aligned_cell(header, index, cells) if delimiter == _ALIGNED else index
                if at >= len(cells):
                    continue
                offset, cell = cells[at]
                if value_re.fullmatch(cell) and (validator is None or validator(cell)):
                    if category == "export.eccn" and cell.upper() == "EAR99":
                        continue
                    w.emit(category, start + offset, start + offset + len(cell))
        start = end + (2 if escaped else 1)


# --------------------------------------------------------------------------------------------------------
# NATO levels, and statements that the content itself is CUI
# --------------------------------------------------------------------------------------------------------

# NATO's own levels, upper case only (classified information under the NATO security agreement).
_NATO_LEVEL_RE = re.compile(r"(?:COSMIC TOP SECRET|NATO (?:SECRET|CONFIDENTIAL|RESTRICTED))(?![A-Za-z0-9])")
# A sentence that says what the content it sits on is: "This document is NATO RESTRICTED".
_CONTENT_IS_RE = re.compile(
    r"(?i:" + _CONTENT_SUBJECT + r"\s+(?:is|are)\s+(?:(?:marked|classified|labell?ed)\s+(?:as\s+)?)?)\Z"
)

_CONTENT_VERB_RE = re.compile(r"(?i:\b(?:is|are|marked|classified|labell?ed|as)\s+)\Z")


def _nato_levels(w: _Window) -> None:
    """A NATO level (NATO SECRET, COSMIC TOP SECRET, ...) as a banner, with controls, after a
    "Classification:" label, or stated of the content. In prose about the levels it stays allowed."""
    if not w.has("nato") and not w.has("cosmic"):
        return
    text = w.text
    for start in sorted([*w.find("NATO "), *w.find("COSMIC TOP SECRET")]):
        match = _NATO_LEVEL_RE.match(text, start)
        if match is None or not _bounded(text, start, match.end()):
            continue
        end = match.end()
        controls_end = _controls_after(text, end)
        context = _line_context(text, start, end)
        prefix = context[0] if context is not None else text[max(0, start - 200) : start]
        if controls_end != -1:
            w.emit("classified.banner", start, controls_end)
        elif (
            _alone_on_line(text, start, end)
            or _CLASSIFICATION_LABEL_RE.search(prefix)
            or (_CONTENT_VERB_RE.search(prefix[-24:]) and _CONTENT_IS_RE.search(prefix[-200:]))
        ):
            w.emit("classified.banner", start, end)


# "This briefing is classified TOP SECRET", "The following paragraph is classified Secret:", "These files
# are classified as Confidential": a sentence giving the content's level. CONFIDENTIAL needs "classified"
# ("This e-mail is marked confidential" is a company's courtesy); SECRET may also be "marked".
# The subject is atomic: its first noun must be followed by the verb ("This section explains how documents
# are classified secret" is about documents in general, not this section).
_CLASSIFIED_AS_RE = re.compile(
    # "This ECP is classified CONFIDENTIAL": with "classified" and a level after it, any one word after "this"
    r"(?:(?>"
    + _CONTENT_SUBJECT
    + r"|"
    + _PLACED_CONTENT
    # (one word or two after "this": "This lesson guide is classified SECRET in its entirety"; outside the
    # atomic group, so that one word is tried first and two after it)
    + r")|\bthis\s+(?:[a-z][a-z0-9-]{1,24}\s+)??[a-z][a-z0-9-]{1,24})"
    r"\s+(?:is|are|was|were|has\s+been|have\s+been)\s+"
    r"(?P<verb>classified|marked)\s+(?:as\s+|at\s+(?:the\s+)?)?(?:top\s+)?\Z"
)


# "The following is Top Secret:", "These slides are SECRET": the level itself, in capitals or title case,
# after the content and its verb. Not CONFIDENTIAL ("This e-mail is CONFIDENTIAL" is a company's courtesy).
_IS_LEVEL_RE = re.compile(r"(?>\bthe\s+following|" + _CONTENT_SUBJECT + r")\s+(?:is|are)\s+(?:top\s+)?\Z")
_IS_NEAR_RE = re.compile(r"\b(?:is|are)\s+(?:top\s+)?\Z")


def _classified_statements(w: _Window) -> None:
    low, text, base = w.low, w.text, w.base
    for level in ("secret", "confidential"):
        # CONFIDENTIAL is stated only with "classified"
        if not w.has(level) or (level == "confidential" and not w.has("classified")):
            continue
        for pos in w.find_low(level):
            rel = pos - base
            if (rel > 0 and low[rel - 1].isalpha()) or low[rel + len(level) : rel + len(level) + 1].isalpha():
                continue
            # the verb is at most "classified as the top " before the level: look for it before the subject
            near = max(0, rel - 26)
            said = None
            if low.find("classified", near, rel) != -1 or low.find("marked", near, rel) != -1:
                said = _CLASSIFIED_AS_RE.search(low, max(0, rel - 200), rel)
                if said is not None and level == "confidential" and said.group("verb") != "classified":
                    said = None
            elif (
                level == "secret"
                and text[pos : pos + 6] in ("SECRET", "Secret")
                and _IS_NEAR_RE.search(low, near, rel)
            ):
                said = _IS_LEVEL_RE.search(low, max(0, rel - 200), rel)
            if said is None:
                continue
            if _QUESTION_BEFORE_RE.search(low, max(0, said.start() - 12), said.start()):
                continue
            w.emit("classified.banner", said.start() + base, pos + len(level))


# A level spelled with a space between its letters ("S E C R E T // N O F O R N"), a way to slip a banner
# past a word match. Upper case, and standing as a banner: alone on its line, before controls, or after a
# "Classification:" label.
_SPACED_LEVEL_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:T O P {1,3})?(?:S E C R E T|C O N F I D E N T I A L)"
    # dotted or hyphenated the same way: "S.E.C.R.E.T.", "S-E-C-R-E-T" (a dash folds to "-")
    r"|(?:T([.\-])O\1P\1 ?)?S([.\-])E\2C\2R\2E\2T\2?)(?![A-Za-z0-9])"
)
_SPACED_CONTROLS_RE = re.compile(r"[ \t]*/(?:[ \t]*/)?[ \t]*[A-Z]")  # "// N O F O R N", "/ / N O F O R N"
_SPACED_PIECES = ("E C R E T", "N F I D E N", "E.C.R.E.T", "E-C-R-E-T")  # long needles: the fastest finds


def _spaced_levels(w: _Window) -> None:
    text = w.text
    if not any(w.has_text(piece) for piece in _SPACED_PIECES):
        return
    for match in _SPACED_LEVEL_RE.finditer(text, w.lo, min(len(text), w.hi + 40)):
        start, end = match.span()
        if start >= w.hi:
            return
        context = _line_context(text, start, end)
        if context is None:
            continue
        prefix, suffix = context
        if (
            (not prefix.strip() and not suffix.strip())
            or _SPACED_CONTROLS_RE.match(suffix)
            or _CLASSIFICATION_LABEL_RE.search(prefix)
        ):
            w.emit("classified.banner", start, end)


# "This email contains Controlled Unclassified Information (CUI)": the content says it is CUI. Found from
# each "CUI" backwards, so windows without such a sentence cost one word lookup.
# What holds the content, and "contains", in German, Spanish, French, Italian and Portuguese.
_FOREIGN_CONTENT_NOUNS = (
    r"(?:anhang|anlagen?|dokument|datei|nachricht|bericht|adjunto|anexo|documento|archivo|correo|informe|"
    r"pi[eè]ce\s+jointe|annexe|fichier|courriel|rapport|allegato|relazione|arquivo|relat[óo]rio|mensagem)"
)
_FOREIGN_CONTAINS = r"(?:enth[äa]lt|beinhaltet|contiene|incluye|contient|comprend|cont[ée]m|inclui)"
_CONTENT_STATEMENT_BEFORE_RE = re.compile(
    r"(?:(?:"
    + _CONTENT_SUBJECT
    + r"|"
    + _PLACED_CONTENT
    + r")\s+(?:(?:also|hereby|herein)\s+)?(?:contains?|includes?|is|are)\s+(?:marked\s+(?:as\s+)?)?"
    # "This answer key contains CUI": what this holds, whatever it is called
    + r"|\b(?:this|these)\s+(?:[a-z][a-z0-9/-]*\s+){0,2}[a-z][a-z0-9/-]*\s+(?:also\s+)?"
    + r"(?:contains?|includes?)\s+"
    # files named by where they are: "the parquet files under `data/raw/` contain"
    + r"|\bthe\s+(?:[a-z][a-z0-9/-]*\s+){0,2}?"
    + _NOUNS
    + r"\s+(?:under|in|at)\s+[`'\"]?[a-z0-9_.~-]*/[a-z0-9_./~-]*[`'\"]?"
    + r"\s+(?:also\s+)?(?:contains?|includes?|is|are)\s+"
    # "requests that this filing remain sealed because it contains": the content, then why, in one sentence
    + r"|\b(?:this|these)\s+[a-z][a-z0-9/-]*\b[^.?!\n]{0,80}?\b(?:because|since)\s+(?:it|they)\s+"
    + r"(?:also\s+)?(?:contains?|includes?)\s+)\Z"
)
# "fyi this tab has CUI in it": what this holds, said with "has" and "in it" (without them "this program has
# CUI requirements" is about rules).
_HAS_IN_IT_BEFORE_RE = re.compile(
    r"\b(?:this|these|the\s+attached|attached)\s+(?:[a-z][a-z0-9/-]*\s+){0,2}[a-z][a-z0-9/-]*\s+(?:also\s+)?"
    r"(?:has|have)\s+\Z"
)
_IN_IT_AFTER_RE = re.compile(r"[a-z0-9/ -]{2,30}?\s+in\s+(?:it|them|here)\b")
# "here's the para from our SSP, technically it's CUI": the content just given (as "it's fouo").
# (not the object of a preposition: "I don't think anything in it is CUI")
_NOT_AFTER_PREPOSITION = r"(?<!\bin )(?<!\bof )(?<!\bon )(?<!\bto )(?<!from )(?<!with )(?<!about )"
_ITS_BEFORE_RE = re.compile(
    _NOT_AFTER_PREPOSITION
    + r"\b(?:it|this|that)(?:['\u2019]s|\s+is)\s+(?:(?:technically|also|all|still|actually|definitely)\s+)?\Z"
)
# (and of things just handed over: "these are ITAR controlled")
_THESE_ARE_BEFORE_RE = re.compile(
    _NOT_AFTER_PREPOSITION + r"\b(?:these|those|they)\s+are\s+(?:all\s+|also\s+)?\Z"
)
_ITS_TYPED_BEFORE_RE = re.compile(_NOT_AFTER_PREPOSITION + r"\bits\s+\Z")
_CLAUSE_ENDS_RE = re.compile(r"[a-z/-]+(?:[ \t]*[,.;!]|[ \t]+(?:so|and|but|pls|please)\b|[ \t]*(?:\n|\Z))")
_IT_CONTAINS_BEFORE_RE = re.compile(
    _NOT_AFTER_PREPOSITION + r"\b(?:it|they)\s+(?:also\s+)?(?:contains?|includes?)\s+\Z"
)
_THE_CONTENT_IS_BEFORE_RE = re.compile(
    r"\bthe\s+(?:[a-z][a-z0-9/-]*\s+){0,2}?"
    + _NOUNS
    + r"(?:\s+(?:and|&)\s+(?:the\s+)?(?:[a-z][a-z0-9/-]*\s+){0,2}?"
    + _NOUNS
    + r")?\s+(?:is|are|contains?|includes?)\s+\Z"
)
# Words by which a writer hands content over, so that "it" in the next sentence is that content.
_HANDOVER_WORDS = (
    "attach", "enclos", "sending", "here's", "here is", "pasting", "pasted", "upload", "sent you", "shared",
    "forwarding", "forwarded",
)  # fmt: skip
# A condition opening the sentence: "If you're creating it now, " (perhaps after a speaker's name).
_CONDITION_BEFORE_RE = re.compile(
    r"(?:^|[.!?:][ \t]+|\n)[ \t]*(?:[-*\u2022][ \t]+)?(?:[a-z][a-z .'-]{0,30}:[ \t]*)?"
    r"(?:(?:and|but|so)[ \t]+)?(?:if|when|once|unless|whenever)\b[^.!?\n]{0,100},[ \t]*\Z",
    re.MULTILINE,
)
# "pls treat this roster as fouo", "handle the attached as CUI": the writer's instruction for the content.
_TREATED_AS_BEFORE_RE = re.compile(
    r"\b(?:treat|handle|protect|safeguard|mark|label)(?:ed|ing|s)?\s+(?:this|these|(?:the\s+)?"
    r"(?:attached|enclosed|following))(?:\s+(?!as\b)[a-z][a-z0-9/-]*){0,2}\s+as\s+\Z"
)
# The statement in the languages of the forms' labels: "Der Anhang enthält", "o Anexo B ... contém".
_FOREIGN_STATEMENT_BEFORE_RE = re.compile(
    r"\b"
    + _FOREIGN_CONTENT_NOUNS
    + r"(?:\s+[a-z0-9](?!\w))?(?:\s+[^\s()]+){0,3}?(?:\s*\([^()\n]{1,80}\))?\s+"
    + _FOREIGN_CONTAINS
    + r"\s+(?:(?:des|de\s+la|du|la|el|las|los)\s+)?\Z"
)
_FOREIGN_CONTAINS_KEYS = (
    "enth",
    "beinhaltet",
    "contien",
    "incluye",
    "comprend",
    "cont\u00e9m",
    "contem",
    "inclui",
)
# "is CUI compliant", "includes CUI training", "CUI-free": CUI naming a program or a quality, not the content.
_CUI_NOT_CONTENT_RE = re.compile(
    r"-|\s+(?:compliant|compliance|ready|certified|free|safe|training|program|policy|policies|related|"
    r"markings?|handling|requirements?|guidance|registry|rules?|awareness|basics|course|modules?|"
    r"categor(?:y|ies)|examples?|definitions?|overview)\b"
    # under a condition: "the API returns data that is CUI when it's real" (a rule, not this text)
    r"|\s+(?:when|if|once|unless|whenever)\s+(?:it|they|the|this|that|those|these|real|filled|completed)\b"
)
# "Does this document contain CUI?", "whether the attached files include CUI": a question, no statement.
_QUESTION_BEFORE_RE = re.compile(
    r"\b(?:does|do|did|can|could|will|would|should|may|might|whether|if)\s+(?:(?:i|we|you|they)\s+)?\Z"
)


def _content_statement_before(low: str, rel: int) -> int | None:
    """Where the statement that ends at ``rel`` begins, when it says what the content is or contains ("This
    email contains ", "The attached files are marked "): not a question ("Does this document contain ")."""
    lo, near = max(0, rel - 160), low[max(0, rel - 16) : rel]
    subject = None
    # the rarer forms only where their last word stands right before: each search reads 160 characters
    if near.endswith(" as "):
        subject = _TREATED_AS_BEFORE_RE.search(low, lo, rel)
    elif any(verb in near for verb in _FOREIGN_CONTAINS_KEYS):
        subject = _FOREIGN_STATEMENT_BEFORE_RE.search(low, lo, rel)
    elif "'s " in near or "\u2019s " in near or " is " in near:  # "it's", "this is" (maybe an adverb after)
        subject = _ITS_BEFORE_RE.search(low, max(0, rel - 40), rel)
        if subject is not None and _CONDITION_BEFORE_RE.search(
            low, max(0, subject.start() - 120), subject.start()
        ):
            return None  # "If you're creating it now, it's CUI or it's nothing": a rule, not this content
    if subject is None:
        subject = _CONTENT_STATEMENT_BEFORE_RE.search(low, lo, rel)
    if subject is None and ("has " in near or "have " in near) and _IN_IT_AFTER_RE.match(low, rel):
        subject = _HAS_IN_IT_BEFORE_RE.search(low, lo, rel)  # "this tab has CUI in it"
    if subject is None and (
        " it " in near
        or "its " in near
        or "they " in near
        or " is " in near
        or " are " in near
        or "contain" in near
        or "include" in near
    ):
        # "attaching the tenant security plan for Suite 400. It contains CUI", "pasting the rubric and the
        # scores below ... the rubric and the scores are CUI": "it" or "the <content>", after a handover
        subject = (
            _IT_CONTAINS_BEFORE_RE.search(low, max(0, rel - 24), rel)
            or _THE_CONTENT_IS_BEFORE_RE.search(low, lo, rel)
            # "it's" typed without its apostrophe, the marking ending its clause ("fyi its CUI so pls dont")
            or (
                _ITS_TYPED_BEFORE_RE.search(low, max(0, rel - 12), rel)
                if _CLAUSE_ENDS_RE.match(low, rel)
                else None
            )
        )
        if subject is not None and not any(word in low[max(0, rel - 300) : rel] for word in _HANDOVER_WORDS):
            subject = None
    if (
        subject is None
        or _QUESTION_BEFORE_RE.search(low, max(0, subject.start() - 12), subject.start())
        or low.find("\u00bf", max(0, subject.start() - 40), subject.start()) != -1  # "¿El documento contiene"
    ):
        return None
    return subject.start()


# A note without its subject: 'Sender note: "Contains CUI (PRVCY). Download to GFE only."', a line that
# opens "Contains FOUO - do not forward". The marking ends its phrase ("Contains CUI Devices buzzers" names
# a maker's part).
_SUBJECTLESS_CONTAINS_RE = re.compile(
    r"(?:^|[\"'\u201c(]|[.!?:][ \t]+)[ \t]*(?:also[ \t]+)?(?P<verb>contains|includes)[ \t]+\Z",
    re.MULTILINE,
)
_PHRASE_ENDS_RE = re.compile(
    r"(?:[ \t]+(?:information|info|data|material|records))?"
    r"[ \t]*(?:[.,;:!()\"'\u201d\u2014\u2013]|-[ \t]|\n|\Z)"
)


def _subjectless_statement(low: str, rel: int, end: int) -> int | None:
    """Where "Contains" opens the statement that ends at ``rel`` with a marking ending at ``end``, if one
    does."""
    said = _SUBJECTLESS_CONTAINS_RE.search(low, max(0, rel - 24), rel)
    if said is None or _PHRASE_ENDS_RE.match(low, end) is None:
        return None
    return said.start("verb")


def _cui_statements(w: _Window) -> None:
    low = w.low
    for rel, end in _cui_word_spans(w):
        if not w.lo <= rel + w.base < w.hi or _CUI_NOT_CONTENT_RE.match(low, end):
            continue
        subject = _content_statement_before(low, rel)
        if subject is None:
            subject = _subjectless_statement(low, rel, end)
        if subject is not None:
            w.emit("cui.banner", subject + w.base, end + w.base)


# The three words wrapped onto the next line: "... are Controlled" / "Unclassified Information (CUI)".
_CUI_WORDS_WRAPPED = _wrapped(_CUI_WORDS)


def _cui_word_spans(w: _Window) -> Iterator[tuple[int, int]]:
    """(start, end) in ``low`` of each "cui" and "controlled unclassified information", wrapped or not."""
    for word in ("cui", _CUI_WORDS):
        if w.has(word):
            yield from ((rel, rel + len(word)) for rel in w.word_positions((word,)))
    if w.has("unclassified") and w.has("\n") and not w.has(_CUI_WORDS):
        for match in w.low_iter(_CUI_WORDS_WRAPPED):
            yield match.start(), match.end()


# --------------------------------------------------------------------------------------------------------
# The scan
# --------------------------------------------------------------------------------------------------------

_DETECTORS: tuple[Callable[[_Window], None], ...] = (
    _classified,
    _authority_block,
    _portion_marks,
    _cui_banners,
    _cui_spelled_out,
    _legacy_words,
    _legacy_phrases,
    _slashed_legacy,
    _agency_legacy_banners,
    _legacy_statements,
    _ism_levels,
    _designation_indicator,
    _slashed_markings,
    _mixed_case_levels,
    _odd_case_levels,
    _dissemination_alone,
    _tags_any_case,
    _export_notices,
    _export_banner,
    _controlled_tags,
    _export_fields,
    _eccn,
    _eccn_in_context,
    _filled_in_marks,
    _usml_items,
    _distribution_statements,
    _nato_levels,
    _classified_statements,
    _spaced_levels,
    _cui_statements,
    _digit_shapes,
    _emails,
    _labelled,
    _bank_account_in_prose,
    _column_headers,
)


# A line listing the values a marking scheme takes ("enum: [UNCLASSIFIED, CONFIDENTIAL, SECRET, TOP SECRET]",
# "allowed: [NONE, FOUO, SBU, LES]", "caveats: NOFORN, REL TO, FEDCON"): three different levels, or three
# different dissemination controls or legacy markings, one after another as items of a list. None of them
# marks the content: a marking holds one level, and its controls are set apart by slashes, not commas.
_SCHEME_ITEM_RE = re.compile(
    # (the levels' abbreviations in capitals too: a confusion matrix's "| U | CUI | C | S | TS |")
    r"(?<![A-Za-z0-9])(?:(?P<level>top[ _]secret|secret|confidential|unclassified|cui|restricted"
    r"|(?-i:TS|S|C|U))"
    r"|(?P<control>noforn|rel[ _]to|fedcon|fedonly|nocon|dl[ _]only|orcon|imcon|relido|propin"
    r"|display[ _]only)"
    r"|(?P<legacy>fouo|sbu|les|for official use only|law enforcement sensitive|sensitive but unclassified))"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_LIST_GAP_RE = re.compile(r"""[ \t"'`]*(?:[,|;\t]|or\b|and\b)?[ \t"'`]*\Z""", re.IGNORECASE)
_SCHEME_CATEGORIES = frozenset({"classified.banner", "cui.banner", "cui.legacy"})
_SCHEME_REACH = 300  # characters either side of a finding read for its list (a long line is not read whole)


def _scheme_lists(text: str, findings: list[Detection]) -> list[tuple[int, int]]:
    """The sorted spans that list three or more values of one kind of marking (see _SCHEME_ITEM_RE) on the
    lines of ``findings``, read _SCHEME_REACH characters either side of each (the regions merged, so each
    character is read once); none where a marking's double slash stands within that reach."""
    regions: list[tuple[int, int]] = []
    for det in sorted(findings, key=lambda d: d.start):
        lo, hi = _near_line(text, det.start, det.end, _SCHEME_REACH)
        if regions and lo <= regions[-1][1]:
            regions[-1] = (regions[-1][0], max(hi, regions[-1][1]))
        else:
            regions.append((lo, hi))
    spans: list[tuple[int, int]] = []
    for lo, hi in regions:
        run: list[re.Match[str]] = []
        for match in _SCHEME_ITEM_RE.finditer(text, lo, hi):
            if run and _LIST_GAP_RE.match(text, run[-1].end(), match.start()) is None:
                _close_scheme_run(text, run, spans)
                run = []
            run.append(match)
        _close_scheme_run(text, run, spans)
    return spans


def _close_scheme_run(text: str, run: list[re.Match[str]], spans: list[tuple[int, int]]) -> None:
    if len(run) < 3:
        return
    for kind in ("level", "control", "legacy"):
        values = {m.group(kind).lower().replace("_", " ") for m in run if m.group(kind)}
        if len(values) >= 3:
            start, end = run[0].start(), run[-1].end()
            if not _controls_near(text, *_near_line(text, start, end, _SCHEME_REACH)):
                spans.append((start, end))
            return


def _controls_near(text: str, lo: int, hi: int) -> bool:
    """A marking's double slash between ``lo`` and ``hi``, after its level or category ("SECRET//NOFORN",
    "CUI//SP-CTI"); a control named alone in prose ("caveats like //NOFORN") is none."""
    return any(text[pos - 1 : pos].isalnum() for pos in _find_all(text, "//", lo, hi))


def _in_spans(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    index = bisect_right(spans, (start, 1 << 62)) - 1
    return index >= 0 and spans[index][0] <= start and end <= spans[index][1]


# A configuration file's values (YAML, JSON, HCL): a marking that is, whole, one scalar of its line: a list
# item ("- SECRET", a JSON array's '"CUI//SP-CTI",'), a key's value ("conf_room_b: SECRET", 'label: "Law
# Enforcement Sensitive"'), a key ("SECRET: blue") or an item of a list in brackets. Where the lines around
# hold three different such values of one kind (levels, with company labels such as PUBLIC and INTERNAL;
# controls; legacy markings), the file enumerates a marking scheme (a label catalog, a dropdown's options,
# clearance levels mapped to badge colours), and its values mark nothing. A document's own header
# ("banner: CUI//FEDCON", "cui_category: PROPIN", "limited_dissemination_control: FEDCON") holds one level
# and its controls; a banner alone on its line is no scalar (a list item has its dash, an array's item its
# quotes or comma).
_CONFIG_LINE_RE = re.compile(
    r"[ \t#/]*(?P<dash>-[ \t]+)?"
    r"(?:(?P<key>[^:=\n\[\]{}]{1,60}?)[ \t]*(?::(?=[ \t]|\Z)|=)[ \t]*)?(?P<value>.*)"
)
_COMPANY_LABEL = r"(?P<label>public|internal|private|proprietary|general)"
_SCHEME_VALUE_RE = re.compile(
    r"(?:" + _SCHEME_ITEM_RE.pattern + "|" + _COMPANY_LABEL + r")[ _/()A-Za-z0-9-]{0,30}\Z", re.IGNORECASE
)
# Where such a value may stand: the lines read for a file's other values
_SCHEME_WORD_RE = re.compile(
    _SCHEME_ITEM_RE.pattern + r"|(?<![A-Za-z0-9])" + _COMPANY_LABEL + r"(?![A-Za-z0-9])", re.IGNORECASE
)
_SCHEME_WORD_LOWER_RE = re.compile(_SCHEME_WORD_RE.pattern)  # its words are written in lower case
_SCALAR_EDGES = " \t\"'`,;"
_FIGURE_RE = re.compile(r"[-+]?[0-9][0-9,.]*%?|[-\u2013\u2014]|n/?a", re.IGNORECASE)
_CELL_OR_LIST_RE = re.compile(r"[\t|\[]")  # a table's cells, a list in brackets
_CONFIG_LINE = 300  # characters either side of a finding its line may hold, as a configuration file's
_CONFIG_REACH = 500  # characters either side of a finding, at least, read for the other values of its file


def _config_scalars(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """The spans of the scalars of text[lo:hi], one line read as a configuration file's (see above), or a
    table's row of figures, whose label is its scalar ("Top Secret<tab>17<tab>6<tab>0" in a pivot table)."""
    row = _figures_row_label(text, lo, hi)
    if row is not None:
        return [row] if row[0] < row[1] else []
    match = _CONFIG_LINE_RE.match(text, lo, hi)
    if match is None:
        return []
    spans = [match.span("key")] if match.group("key") is not None else []
    start, end = match.span("value")
    comment = text.find(" #", start, end)
    end = comment if comment != -1 else end
    opened = text.find("[", start, end)
    value = text[start:end].strip()
    if opened != -1:  # a list in brackets: its items ("order: [PUBLIC, INTERNAL, CONFIDENTIAL]")
        closed = text.find("]", opened, end)
        at = opened + 1
        for item in text[opened + 1 : closed if closed != -1 else end].split(","):
            spans.append((at, at + len(item)))
            at += len(item) + 1
    # a key's value, a list's item, an array's item on its own line (quoted, or with its comma)
    elif match.group("key") or match.group("dash") or value[-1:] == "," or value[:1] in ('"', "'"):
        spans.append((start, end))
    return [trimmed for span in spans if (trimmed := _trimmed(text, *span))[0] < trimmed[1]]


def _figures_row_label(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The label's span of text[lo:hi] when it is a table's row whose other cells are all figures; None
    when it is no such row."""
    for delimiter in ("\t", "|", ","):
        if text.find(delimiter, lo, hi) == -1:
            continue
        cells, at = text[lo:hi].split(delimiter), lo
        if len(cells) > 1 and not cells[0].strip():  # a markdown row's outer pipe
            at += len(cells.pop(0)) + 1
        figures = [cell.strip() for cell in cells[1:] if cell.strip()]
        if figures and all(_FIGURE_RE.fullmatch(cell) for cell in figures):
            return _trimmed(text, at, at + len(cells[0]))
        return None
    return None


def _trimmed(text: str, lo: int, hi: int) -> tuple[int, int]:
    """text[lo:hi] without the blanks, quotes and separators around a scalar."""
    while lo < hi and text[lo] in _SCALAR_EDGES:
        lo += 1
    while hi > lo and text[hi - 1] in _SCALAR_EDGES:
        hi -= 1
    return lo, hi


# A list of a question's or a field's options in brackets ('"choices":["CUI","CONTROLLED//FEDONLY","FOUO",
# "SBU"]', "enum: [...]"): three items or more, each a value to choose from, none applied.
_OPTIONS_KEY_RE = re.compile(
    r"(?i:choices|options|answers|enum|allowed(?:[_ ]?values)?|values|levels|order)[\"']?"
    # (perhaps with a type: "MARKING_ORDER: Marking[] = [...]")
    r"(?:[ \t]*:[ \t]*[A-Za-z_][\w.]*(?:\[\])?)?[ \t]*[:=][ \t]*\[[^\]\n]*\Z"
)
# A note's topics in lower case ("tags: [training, security, cui]"): what it is about, not a marking.
_TOPICS_KEY_RE = re.compile(r"(?i:tags|keywords|topics)[\"']?[ \t]*[:=][ \t]*\[[^\]\n]*\Z")


def _in_option_list(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is an item of a list of options in brackets (see above)."""
    opened = text.rfind("[", max(0, start - 200), start)
    if opened == -1 or text.find("]", opened, start) != -1:
        return False
    closed = text.find("]", end, end + 200)
    if closed == -1 or text.count(",", opened, closed) < 2:
        return False
    if _OPTIONS_KEY_RE.search(text, max(0, opened - 40), start) is not None:
        return True
    return text[start:end].islower() and _TOPICS_KEY_RE.search(text, max(0, opened - 40), start) is not None


def _scheme_words(text: str, lo: int, hi: int) -> list[int]:
    """Where the words of a marking scheme's values start in text[lo:hi] (matched in lower case, four times
    as fast as in any case, where lower-casing keeps every character where it stands)."""
    piece = text[lo:hi]
    if piece.isascii():
        words = [lo + word.start() for word in _SCHEME_WORD_LOWER_RE.finditer(piece.lower())]
    else:
        words = [word.start() for word in _SCHEME_WORD_RE.finditer(text, lo, hi)]
    # the levels' abbreviations in capitals, as a table's row labels ("| C  | 4 | 1 | 88 |")
    abbreviated = [label.start(1) for label in _ABBREVIATED_ROW_LABEL_RE.finditer(text, lo, hi)]
    return sorted(words + abbreviated) if abbreviated else words


_ABBREVIATED_ROW_LABEL_RE = re.compile(r"(?m)^[ \t]*\|?[ \t]*(TS|S|C|U)[ \t]*[|\t,]")


def _scheme_value(text: str, start: int, end: int) -> tuple[str, str] | None:
    """The scalar text[start:end] as a value of a marking scheme: its kind (a level, a control, a legacy
    marking) and its text normalized; None when it is none."""
    match = _SCHEME_VALUE_RE.match(text, start, end) if end - start <= 60 else None
    if match is None:
        return None
    kind = "control" if match.group("control") else "legacy" if match.group("legacy") else "level"
    return kind, " ".join(text[start:end].lower().replace("_", " ").split())


def _config_value(text: str, start: int, end: int, memo: dict[int, int]) -> bool:
    """True when text[start:end] is, whole, a scalar of a configuration file that enumerates a marking
    scheme (see above): three different values of one kind (the region's levels, its controls or its legacy
    markings; a document's header holds one level and its controls). ``memo`` holds, per region, the most
    values of one kind the region holds."""
    line_start, line_end = _near_line(text, start, end, _CONFIG_LINE)
    if (line_start and text[line_start - 1] != "\n") or (line_end < len(text) and text[line_end] != "\n"):
        return False  # a longer line is no configuration file's
    # a file's nested line (indented, a list's item), a list in brackets or a table's row; another line at the
    # margin is a document's own ("Classification: SECRET"), whose level is its marking: not looked at further
    if text[line_start : line_start + 1] not in (" ", "\t", "-") and not _CELL_OR_LIST_RE.search(
        text, line_start, line_end
    ):
        return False
    if not any(
        lo <= start and end <= hi and _scheme_value(text, lo, hi) is not None
        for lo, hi in _config_scalars(text, line_start, line_end)
    ):
        return False
    # the region: the finding's stretch of _CONFIG_REACH characters and one either side, so the findings of a
    # stretch share one reading of it
    region = start // _CONFIG_REACH
    if region not in memo:
        # only the lines where a scheme's word stands are read as a configuration file's
        values: set[tuple[str, str]] = set()
        counts: Counter[str] = Counter()
        line_end = -1
        stretch = (max(0, (region - 1) * _CONFIG_REACH), min(len(text), (region + 2) * _CONFIG_REACH))
        for word_start in _scheme_words(text, *stretch):
            if word_start <= line_end:
                continue  # a line already read
            line_start, line_end = _near_line(text, word_start, word_start, _MAX_ROW)
            for lo, hi in _config_scalars(text, line_start, line_end):
                value = _scheme_value(text, lo, hi)
                if value is not None and value not in values:
                    values.add(value)
                    counts[value[0]] += 1
            if counts and max(counts.values()) >= 3:
                break
        memo[region] = max(counts.values(), default=0)
    return memo[region] >= 3


# A level that is a person's clearance, not the content's marking: after a clearance label on its line
# ("Security clearance: TOP SECRET/SCI eligibility", "clearance_level = Secret"), or in a column headed as a
# clearance ("clearance_eligibility" in a CSV export of staff).
_CLEARANCE_LABEL_RE = re.compile(
    r"(?i:clearance)[A-Za-z _-]{0,30}[ \t]*[:=][ \t]*[\"']?[ \t]*"
    # "Security clearance: Active TOP SECRET/SCI": the clearance's state before its level
    r"(?i:(?:active|current|interim|final|valid|eligible\s+for|requires?|required)[ \t]+)?\Z"
)
_MAX_ROW = 4096  # characters a table's row or a glossary's line may hold


def _csv_cells(line: str, delimiter: str) -> list[str]:
    """A delimited line's cells, a double-quoted cell's delimiters kept in it ("Whitaker, Dana"); split
    plainly where the csv module refuses the line (a quoted field over its size limit)."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [""]) or [""]
    except csv.Error:
        return line.split(delimiter)


_ColumnMemo = dict[tuple[int, str, int], bool]


def _is_clearance(text: str, start: int, memo: _ColumnMemo) -> bool:
    """Whether the level at ``start`` is a clearance (see above): after a clearance label, or in a column a
    cell above names."""
    found = text.rfind("\n", max(0, start - _MAX_ROW), start)
    if found == -1 and start > _MAX_ROW:  # a row this long is no table's
        return _CLEARANCE_LABEL_RE.search(text, start - 60, start) is not None
    if _CLEARANCE_LABEL_RE.search(text, max(found + 1, start - 60), start):
        return True
    return _column_above(text, start, memo, lambda cell: "clearance" in cell.lower())


# A column whose cells are not markings whatever they hold: sizes ("(S)" small), chemical formulas ("CUI",
# copper(I) iodide), answers to a question in the header ("Q1. Which portion mark ...?").
def _other_column(cell: str) -> bool:
    name = cell.strip().lower()
    return name.endswith("?") or any(word in name for word in ("size", "formula"))


# A glossary's table: its first column's header names terms ("Term | What it means | Notes", "Acronym |
# Expansion"), so every cell of its rows defines or explains a term.
_GLOSSARY_COLUMN_RE = re.compile(r"(?:terms?|acronyms?|abbreviations?)\Z")


def _glossary_column(cell: str) -> bool:
    return _GLOSSARY_COLUMN_RE.match(cell.strip().lower()) is not None


def _in_glossary_table(text: str, start: int, memo: _ColumnMemo) -> bool:
    row = text.rfind("\n", max(0, start - _MAX_ROW), start) + 1
    end = text.find("\n", start, start + _MAX_ROW)
    end = start + _MAX_ROW if end == -1 else end
    cuts = [cut for cut in (text.find(d, row, end) for d in ("|", "\t", ",")) if cut != -1]
    # no table's row, or one whose first cell is no term in capitals ("CUI", "TOP SECRET", "FOUO / SBU")
    if not cuts or not text[row : min(cuts)].isupper():
        return False
    return _column_above(text, row, memo, _glossary_column)


def _column_above(text: str, start: int, memo: _ColumnMemo, named: Callable[[str], bool]) -> bool:
    """Whether a cell above ``start``, in its column of a delimited table, is ``named``. ``memo`` (one per
    question) holds, per row, delimiter and column, what the search found from that row up: a table's rows,
    read top down, each read their header through the row above them, so a table is read once, not once per
    row."""
    found = text.rfind("\n", max(0, start - _MAX_ROW), start)
    if found == -1 and start > _MAX_ROW:  # a row this long is no table's
        return False
    line_start = found + 1
    line_end = text.find("\n", start, start + _MAX_ROW)
    for delimiter in (",", "\t", "|"):
        if text.find(delimiter, line_start, start) == -1 and (
            # the first column: the delimiter only after it
            text[line_start:start].strip() or text.find(delimiter, start, line_end) == -1
        ):
            continue
        column = len(_csv_cells(text[line_start:start], delimiter)) - 1
        visited = [(line_start, delimiter, column)]
        verdict = False
        end = line_start - 1
        while end > 0:
            begin = text.rfind("\n", max(0, end - _MAX_ROW), end) + 1
            key = (begin, delimiter, column)
            if key in memo:
                verdict = memo[key]
                break
            visited.append(key)
            if begin == 0 and end > _MAX_ROW:  # a row this long is no table's (and is not copied)
                break
            cells = _csv_cells(text[begin:end], delimiter)
            if not text[begin:end].strip() or len(cells) <= column:
                break
            if named(cells[column]):
                verdict = True
                break
            end = begin - 1
        for key in visited:
            memo[key] = verdict
        if verdict:
            return True
    return False


# A glossary's entry: a marking's or a regulation's abbreviation, then its expansion ("FOUO: For Official Use
# Only - a legacy marking", "NOFORN<tab>Not Releasable to Foreign Nationals", "ITAR: International Traffic in
# Arms Regulations"). Two or more such lines make a glossary, whose
# entries define the markings and mark nothing; one alone may be a banner written out.
_GLOSSARY_PAIRS = (
    ("fouo", "for official use only"),
    ("sbu", "sensitive but unclassified"),
    ("les", "law enforcement sensitive"),
    ("noforn", "not releasable to foreign national"),
    ("cui", "controlled unclassified information"),
    ("orcon", "originator controlled"),
    ("itar", "international traffic in arms"),
    ("ear", "export administration regulations"),
    ("usml", "u.s. munitions list"),
    ("usml", "united states munitions list"),
)
_GLOSSARY_TERMS = "|".join(dict.fromkeys(term for term, _ in _GLOSSARY_PAIRS))
_MARKING_GLOSSARY_RE = re.compile(
    # (";" opens a MediaWiki definition list's term)
    r"^[ \t*_\"'`\-\u2022;]*(?P<term>"
    + _GLOSSARY_TERMS
    # (perhaps with others: "SBU / LES - Sensitive But Unclassified / Law Enforcement Sensitive")
    + r")(?:[ \t]*/[ \t]*(?:"
    + _GLOSSARY_TERMS
    # after the term a separator, or the two spaces or more of a column layout ("ITAR   International ...")
    # or a definition list's line break and colon ("; FOUO" / ": For Official Use Only ...")
    # (perhaps its expansion in parentheses first: "FOUO (For Official Use Only) - A legacy control label")
    + r"))*[*_\"'`]*(?:[ \t]*\([^()\n]{2,60}\))?"
    + r"(?:[ \t]*(?:[:=|\t\u2013\u2014]|-{1,3})|[ ]{2,}|[ \t]*\n[ \t]*:)[ \t*_\"'`(]*"
    # a definition in words: "NOFORN: dissemination control meaning not releasable to foreign nationals",
    # "FOUO: Legacy DoD marking ...", "LES: In security usage, a legacy ... marking" (not in capitals: a
    # banner's words are)
    + r"(?:(?-i:(?P<definition>(?:[A-Z]?[a-z]+(?:\s+[a-z]+){0,3},\s+)?(?:[Aa]n?\s+|[Tt]he\s+)?"
    + r"(?:[Ll]egacy|[Oo]ld|[Ff]ormer|[Dd]issemination|[Cc]aveat|[Cc]ontrol|[Mm]arking|[Aa]bbreviation|"
    + r"[Bb]anner|[Aa]cronym|[Ss]hort\s+for|[Ss]tands\s+for)\b)[^\n]*)"
    + r"|(?P<expansion>[a-z .]{10,40}))",
    re.IGNORECASE | re.MULTILINE,
)
_GLOSSARY_EXPANSIONS = {
    term: tuple(expansion for other, expansion in _GLOSSARY_PAIRS if other == term)
    for term, _ in _GLOSSARY_PAIRS
}
_MINOR_WORDS = frozenset({"and", "of", "the", "for", "in", "to", "a", "an", "on", "by"})
# "International Traffic in Arms Regulations (22 CFR 120-130)": the expansion's citation of its rules.
_ENTRY_CITATION_RE = re.compile(
    r"[A-Za-z .,]{0,30}?\(\s*[0-9]{1,2}\s+(?:C\.?F\.?R\.?|U\.?S\.?C\.?)[^)\n]{0,30}\)"
)
_ENTRY_CFR_RE = re.compile(_CFR_RE.pattern, re.IGNORECASE)
_GLOSSARY_CATEGORIES = frozenset({"cui.banner", "cui.legacy", "export.itar", "export.ear"})
_GLOSSARY_NEIGHBOURS = 3  # lines either side of a finding's line read for more of its glossary
_DEFINITION_LINE_RE = re.compile(r"[ \t]*:[ \t]")


def _glossary_lines(text: str, findings: list[Detection]) -> list[tuple[int, int]]:
    """The (start, end) of each glossary entry's term and expansion (what follows them on the line is the
    entry's own text, read as any; a definition in words is the entry whole) on the lines of ``findings``
    and the lines around them, when there are two or more entries."""
    entries = []
    acronyms = []  # other abbreviations' entries: part of a glossary, never one alone
    defined = False  # an entry that defines its term in words ("CUI: a banner at the top ...") stands alone
    seen: set[int] = set()
    for det in findings:
        line_start = _near_line(text, det.start, det.start, _MAX_ROW)[0]
        # an entry's neighbours, which may hold no finding themselves (a definition list's ": ..." lines are
        # their terms' and not counted: "; FOUO" / ": For Official Use Only")
        counted = 0
        while counted < _GLOSSARY_NEIGHBOURS and line_start > 0:
            line_start = _near_line(text, line_start - 1, line_start - 1, _MAX_ROW)[0]
            counted += _DEFINITION_LINE_RE.match(text, line_start) is None
        counted = 0
        while counted < 2 * _GLOSSARY_NEIGHBOURS + 1:
            if line_start not in seen:
                seen.add(line_start)
                entry = _glossary_entry(text, line_start)
                if entry is not None:
                    entries.append(entry[:2])
                    defined = defined or entry[2]
                elif _ACRONYM_ENTRY_RE.match(text, line_start) is not None:
                    acronyms.append(_near_line(text, line_start, line_start, _MAX_ROW))
            counted += _DEFINITION_LINE_RE.match(text, line_start) is None
            next_line = text.find("\n", line_start)
            if next_line == -1:
                break
            line_start = next_line + 1
    return sorted(entries + acronyms) if len(entries) >= 2 or defined else []


# Another abbreviation's entry in a glossary of markings: "DDTC    Directorate of Defense Trade Controls
# (administers ITAR)", "EAR99      Designation for items subject to the EAR but not listed ..."; the whole
# line is the entry, its words about a marking a definition's.
_ACRONYM_ENTRY_RE = re.compile(
    r"[ \t*_\"'`\-\u2022;]*(?P<term>[A-Z][A-Z0-9&]{1,7})[*_\"'`]*"
    r"(?:[ \t]*[:=|\t\u2013\u2014]|[ \t]*-{1,3}|[ ]{2,})"
    r"[ \t*_\"'`]*(?P<expansion>[A-Z][A-Za-z.&'-]*(?:[ \t]+[A-Za-z.&'-]+){1,9})"
)


_PARENTHETICAL_RE = re.compile(r"[ \t]*\(([^()\n]{3,80})\)")
# or a glossary line's gloss after a dash or a colon ("LES - in military pay, Leave and Earning Statement")
_GLOSS_RE = re.compile(r"[ \t]+(?:[-:\u2013\u2014]|--)[ \t]+([^\n]{3,80})|[ \t]*:[ \t]+([^\n]{3,80})")


def _content_words(phrase: str) -> list[str]:
    """The words of a lower-case ``phrase`` an abbreviation's letters stand for (its minor words aside)."""
    return [word for word in phrase.replace(".", " ").split() if word not in _MINOR_WORDS]


def _initials(words: list[str]) -> str:
    return "".join(word[0] for word in words)


def _spelled_otherwise(low: str, start: int, end: int) -> bool:
    """True when the abbreviation at low[start:end] is spelled out after it as something else: "the
    contractor's SBU (their ground vehicles strategic business unit)"."""
    paren = _PARENTHETICAL_RE.match(low, end) or _GLOSS_RE.match(low, end)
    if paren is None:
        return False
    term = low[start:end]
    words = _content_words((paren.group(1) or paren.group(2)).replace(",", " "))
    for at in range(len(words) - len(term) + 1):
        run = words[at : at + len(term)]
        if _initials(run) == term:
            phrase = " ".join(run)
            return not any(phrase.startswith(own) for own in _GLOSSARY_EXPANSIONS.get(term, ()))
    return False


def _glossary_entry(text: str, line_start: int) -> tuple[int, int, bool] | None:
    """(start, end) of the glossary entry at ``line_start``, and whether it defines its term in words."""
    match = _MARKING_GLOSSARY_RE.match(text, line_start)
    if match is None:
        return None
    if match.group("definition") is not None:  # the line defines the term: all of it is the entry
        return match.start(), match.end(), True
    written = match.group("expansion").lower()
    term = match.group("term").lower()
    for expansion in _GLOSSARY_EXPANSIONS[term]:
        if written.startswith(expansion):
            end = match.start("expansion") + len(expansion) + 1
            cited = _ENTRY_CITATION_RE.match(text, end)  # the rules' own citation is the entry's too
            if cited is None:  # or cited later in the entry's line: "..., 22 CFR 120-130. Governs ..."
                cited = _ENTRY_CFR_RE.search(text, end, _near_line(text, end, end, _MAX_ROW)[1])
            return match.start(), cited.end() if cited else end, False
    # another expansion that spells the term: "LES - Leave and Earnings Statement", "SBU - Strategic
    # Business Unit": the abbreviation stands for something else here
    words = _content_words(written)
    if len(words) >= len(term) and _initials(words[: len(term)]) == term:
        return match.start(), match.end("expansion"), False
    return None


# A marking given as an example in running text, not applied: after "such as", "e.g.", "for example",
# "like" or "Example(s) ...:", perhaps after other examples ("portion marks such as (U) or (S)", "strings such
# as "TOP SECRET//SI//NOFORN" or "CUI//SP-EXPT""); or named as the kind of thing it is ("slides bearing TOP
# SECRET//NOFORN banners", ""SECRET//NOFORN" and "CUI" markings").
_EXAMPLE_CUE_RE = re.compile(
    r"(?i:\b(?:such\s+as|e\.\s?g\.|for\s+(?:example|instance)|like|examples?(?:\s+[a-z]+){0,4}\s*:"
    # ("examples on slide 12 were "CUI" and ...")
    r"|examples?(?:\s+[a-z0-9]+){0,4}\s+(?:were|are|include[ds]?)"
    # what a marking was typed or written as: "people typed the banner as "CUI//SP-HLTH""
    r"|(?:banners?|markings?|headers?|footers?|labels?|portion\s+marks?)\s+as"
    # the kind, then examples in parentheses: "real classification banners (SECRET, CONFIDENTIAL, etc.)"
    r"|(?:banners?|markings?|labels?|levels?|caveats?|controls?|portion\s+marks?)[ \t]*\("
    # the kind, then examples in quotes: 'Banner "CUI", or "CUI//SP-EXPT" for specified categories'
    r"|(?:banners?|markings?|labels?|portion\s+marks?)(?=[ \t]*[\"\u201c])"
    r"|the\s+(?:words?|terms?|abbreviations?|acronyms?)(?:\s+(?:is|are|of))?(?:\s+just)?"
    # a marking one may come upon: "If you see FOR OFFICIAL USE ONLY on a template, ..."
    r"|(?:if|when|whenever)\s+(?:you|they|we|someone|anyone)\s+(?:see|find|spot|notice|encounter|come\s+across)"
    # what a banner would read, how a portion would be marked: "so the banner would read CUI//SP-PRVCY"
    r"|(?:would|should|could|will|must|might)\s+(?:then\s+|also\s+)?(?:read|say|look\s+like)"
    # what a paper of some kind would carry: "a permit file with privacy data would carry "CUI//SP-PRVCY""
    r"|(?:would|could|might)\s+(?:then\s+|also\s+)?(?:carry|bear|show|get|need|display)"
    # (a hypothetical only: "this memo must be marked SECRET" says what this memo is)
    r"|(?:would|could|might)\s+(?:then\s+|also\s+)?be(?:\s+(?:marked|labell?ed|bannered|stamped)(?:\s+as)?)?))"
    r"[,:]?[ \t]*(?:[\"'`\u201c\u2018(\[]?[^\n\"'`\u201d\u2019]{1,30}?[\"'`\u201d\u2019)\]]?"
    # (the next one perhaps told apart: 'such as "CUI" or the older "FOR OFFICIAL USE ONLY"')
    r"[ \t]*(?:,[ \t]*(?:or|and)\b|,|or|and)[ \t]*(?:(?:the|an?)[ \t]+)?"
    r"(?:(?:older|old|newer|new|legacy|former|current)[ \t]+)?){0,4}"
    # the last example's opener: a quote, a bracket, or a portion mark's parenthesis ("such as (U//LES)")
    r"[\"'`\u201c\u2018(\[]?[ \t]*\Z"
)
_KIND_AFTER_RE = re.compile(
    r"[\"'\u201d\u2019]?(?:[ \t]*(?:,|and|or|/)[ \t]*[\"'\u201c\u2018]?[A-Z(][A-Z/ ,()-]*[\"'\u201d\u2019]?)*"
    # the kind's word may have wrapped onto the next line ('"FOUO"' / 'stamps from before ...')
    r"(?:[ \t]+|[ \t]*\n[ \t]*)(?:(?:portion|classification|control|page|overall)[ \t]+)?"
    r"(?:banners?|markings?|marks|headers?|footers?|labels?|stamps?|caveats?|strings?|forms?|formats?)\b"
)
_EXAMPLE_CUES = (  # literal gates of _EXAMPLE_CUE_RE
    "such", "e.g", "e. g", "example", "instance", "like", "the word", "the term", "the abbrev", "the acronym",
    "would", "should", "could", "will", "must", "might", "if ", "when",
    "banner", "marking", "header", "footer", "label", "portion", "level", "caveat", "control",
)  # fmt: skip
_FOR_BEFORE_RE = re.compile(r"\bfor\s+\Z")
# "... marked ", perhaps after other markings they bore ("documents marked TOP SECRET and SECRET//NOFORN").
_MARKED_TAIL = (
    # ("slides bearing the marking "SECRET//NOFORN"", "publications that had "FOR OFFICIAL USE ONLY" on them")
    r"\s+[\"\u201c]?(?:marked|stamped|labell?ed|bearing|(?:that\s+|which\s+)?(?:still\s+)?(?:had|carried|bore|say|said))"
    r"(?:\s+as)?"
    # ("some bearing headers marked "SECRET//NOFORN,"")
    r"(?:\s+(?:(?:the|a)\s+)?(?:marking|banner|label|stamp|header|footer|cover)s?"
    r"(?:\s+(?:marked|reading))?)?[ \t]*"
    r"(?:[\"'\u201c\u2018]?[^\n\"'\u201d\u2019]{1,40}?[\"'\u201d\u2019]?[ \t]*(?:,|and|or)[ \t]*){0,4}"
    r"[\"'\u201c\u2018]?\Z"
)
# Papers, in the plural, that an account of other papers names.
_PAPERS = (
    r"(?:documents|pages|files|papers|records|slides|e-?mails|messages|reports|folders|boxes|printouts|"
    r"publications|manuals|drawings|plans|blueprints|binders|templates|forms|maps|"
    r"copies|memos|cables|photos|images|notebooks)"
)
# Documents counted, then the marking they bore: an account of other papers ("found 14 documents marked
# SECRET//NOFORN and two marked TOP SECRET"), not a marking applied here ("The document is marked SECRET").
_COUNTED_MARKED_RE = re.compile(
    r"\b(?:(?:[0-9][0-9,]*|two|three|four|five|six|seven|eight|nine|ten|several|many|numerous|"
    # perhaps with a word or two about them ("two Army publications")
    r"(?:dozens|hundreds|thousands)\s+of|(?:a|one)\s+(?:set|stack|box|binder|pile|batch|bundle|couple)\s+of)"
    r"\s+(?:(?:other|more|additional|classified|[a-z][a-z-]*)\s+){0,2}?"
    + _PAPERS
    # a bare count standing for them: "... and two marked TOP SECRET", "pages of a schedule, some stamped
    # SECRET//NOFORN" (not a number: "Enclosures 1-3")
    + r"|two|three|four|five|six|seven|eight|nine|ten|several|dozens|hundreds|some|many|most|others)"
    # ("Some of the pages were labeled ...": not "some of these pages", which are here)
    r"(?:\s+of\s+(?:the|those|them)(?:\s+" + _PAPERS + r")?)?"
    r"(?:\s+(?:that\s+)?(?:were|was|are))?" + _MARKED_TAIL
)
# Words that place papers here, with the content: "the attached slides", "these files", "the report below".
_HERE_WORDS = r"attached|enclosed|following|these|accompanying|below|above"
# A paper a clause says was marked, in the past: "the classified annex, which for fiscal year 2025 was marked
# SECRET//NOFORN in its entirety" (not "the attached report, which was marked ...": that one is here).
_WHICH_WAS_MARKED_RE = re.compile(
    r"\b(?:which|that)\b[^.;!?\n]{0,80}?\b(?:was|were|had\s+been)\s+(?:marked|stamped|labell?ed)(?:\s+as)?"
    r"[ \t]*[\"'\u201c]?\Z"
)
_HERE_RE = re.compile(r"\b(?:this|" + _HERE_WORDS + r")\b")
# Papers of that kind bearing the marking, not these ("photos of slides marked TOP SECRET//SI//NOFORN
# circulated"); what is attached, enclosed or below is the content ("the attached slides marked SECRET").
_PLURAL_MARKED_RE = re.compile(
    r"(?:\b(?P<here>" + _HERE_WORDS + r"|our|my|your)\s+)?"
    r"\b" + _PAPERS + _MARKED_TAIL
)
# Regular-expression syntax: an inline flag, a repeated class escape, an escaped parenthesis (never a
# Windows path's "\data\secret").
_REGEX_TOKEN_RE = re.compile(r"\(\?[aiLmsux]+\)|\\[sdwSDW][+*?{]|\\[()]")
_PATTERN_REACH = 200
_ESCAPE_REACH = 40
_PLACEHOLDER_RE = re.compile(r"[A-Z/]*SP-(?:[\"'\u201d\u2019<\[{ \t]|\Z)")
# Papers or goods of that marking, named in prose: "posting TOP SECRET documents", "retaining SECRET//NOFORN
# reports", "legacy FOUO/SBU/LES products" (in capitals the words may be a banner's own: "SECRET DOCUMENTS").
_PAPERS_AFTER_RE = re.compile(
    r"(?:/{1,2}[A-Z][A-Z-]*)*[ \t]+(?:" + _PAPERS + r"|document|report|file|products?)\b"
)
_HOLDS_BEFORE_RE = re.compile(
    r"(?i:\b(?:contains?|includes?|has|have|holds?|carr(?:y|ies)|is|are)\s+(?:[a-z]+\s+)?)\Z"
)
_MARKED_VERBS = (
    "marked", "stamped", "labeled", "labelled", "bearing", "had", "carried", "bore", "say", "said",
)  # fmt: skip
_MARKING_TOKEN_RE = re.compile(r"[A-Z0-9(][A-Z0-9/ ,()-]*[A-Z0-9)]")
# A marking inside a question about markings: 'Is it "SECRET//NOFORN" or "SECRET / NOFORN"?', "Should each
# paragraph start with (S) or (S//NF)?": the question opens before the marking and its mark ends the sentence
# ("(S) Should the convoy wait?" is a portion's question).
_QUESTION_OPENS_RE = re.compile(
    # (or after a clause: "And if the report has grower names, is that CUI//SP-PRVCY or just basic CUI?")
    r"(?:\A|[.!?:][ \t]+|\n|,[ \t]+)[ \t]*(?:[0-9]{1,2}[.)][ \t]+)?"
    r"(?i:is|are|should|does|do|did|what|which|how|can|could|would|will|was|were)\b[^.!?\n]*\Z"
)
_QUESTION_ENDS_RE = re.compile(r"[^.!?\n]{0,160}\?")
# The words on a thing, quoted: a vehicle's decal, a door's sign, a sticker ('Decal text "U.S. GOVERNMENT -
# FOR OFFICIAL USE ONLY"', 'the sign on the door reads "AUTHORIZED PERSONNEL ONLY - SECRET"').
_ON_AN_OBJECT_RE = re.compile(
    r"(?:\b(?:decals?|signs?|signage|stickers?|placards?|plates?|stencils?|magnets?)"
    r"(?:\s+(?:on|for)\s+(?:the\s+)?[a-z]+)?(?:\s+(?:text|reads?|reading|says?|saying))?"
    # a thing's words painted on it: 'door stenciled "FOR OFFICIAL USE ONLY / U.S. GOVERNMENT"'
    r"|\b[a-z]+\s+(?:stencil(?:l)?ed|painted|lettered)(?:\s+with)?)\s*:?\s*"
    r"[\"\u201c][^\"\u201d\n]{0,40}\Z"
)
_OBJECT_WORDS = ("decal", "sign", "sticker", "placard", "plate", "stencil", "magnet", "painted", "lettered")
# A rule that some paper must bear the marking, not the marking itself: "the packet has to be stamped".
_REQUIRED_MARK_RE = re.compile(
    # ("it all has to come down and get marked CUI//SP-CEII")
    r"\b(?:has|have|needs?|ought)\s+to\s+(?:(?:[a-z]+\s+){1,4}and\s+)?(?:be|get)\s+(?:marked|stamped|labell?ed)"
    r"(?:\s+as)?[ \t]*[\"'\u201c]?\Z"
)
_LABEL_BEFORE_RE = re.compile(r"[A-Za-z)][ \t]*:[ \t\"'\u201c]*\Z")  # not a JSON key's ('"snippet": "')
# A marking's definition after it, in prose: "NOFORN, short for ...", "FOUO (which stands for ...)",
# "LES means ...", "NOFORN is a dissemination control", "ORCON is the originator's caveat".
_DEFINED_AFTER_RE = re.compile(
    r"[\"'\u201d\u2019]?(?:"
    # (perhaps after its abbreviation: '"FOR OFFICIAL USE ONLY" (often abbreviated FOUO) is an older label')
    r"(?:[ \t]*\([^()\n]{1,40}\))?(?:[ \t]*,[ \t]*|[ \t]+|[ \t]*\([ \t]*)"
    r"(?:(?:is[ \t]+)?short[ \t]+for|(?:which[ \t]+|that[ \t]+)?stands[ \t]+for|means|meaning"
    r"|is[ \t]+(?:an?|the)[ \t]+(?:[a-z'\u2019-]+[ \t]+){0,3}?"
    r"(?:abbreviation|acronym|marking|control|caveat|designation|classification|label)s?)\b"
    # with its other name, where it is found: '"LAW ENFORCEMENT SENSITIVE" or LES shows up on bulletins'
    r"|[ \t]+or[ \t]+[A-Z]{2,6}[ \t]+"
    r"(?:shows?[ \t]+up|appears?|is[ \t]+(?:used|found|seen))[ \t]+(?:on|in)\b)"
)
# What the content is not: "This flyer is not law enforcement sensitive", "it isn't marked FOUO".
_NEGATED_RE = re.compile(
    r"(?i:\b(?:is|are|was|were)\s+not|\b(?:isn't|aren't|wasn't|weren't))\s+(?:marked\s+(?:as\s+)?)?"
    r"[\"'\u201c]?\Z"
)
_TOKEN_HEAD_RE = re.compile(r"(?<![A-Za-z0-9/])[A-Z0-9][A-Z0-9]*//(?:[A-Z0-9-]+/{1,2})*\Z")
_MENTION_CATEGORIES = frozenset(
    {"classified.banner", "classified.portion", "cui.banner", "cui.specified", "cui.portion", "cui.legacy"}
)
_EXAMPLE_REACH = 120  # characters before a marking read for an example's cue


# A glossary's entry as a record's key and value: "term: FOUO", 'definition: "Law Enforcement Sensitive, ...'
_GLOSSARY_KEY_BEFORE_RE = re.compile(
    r"(?i:\b(?:term|acronym|abbreviation|definition|meaning|expansion|stands_for)"
    r"[\"']?[ \t]*[:=][ \t]*[\"']?)\Z"
)
_WHERE_ON_A_PAGE_AFTER_RE = re.compile(
    r"[\"'\u201d\u2019]?[ \t]+(?:at|on|in|across)[ \t]+(?:the[ \t]+)?(?:very[ \t]+)?"
    r"(?:top|bottom|cover|header|footer|front)\b"
)
_BEARS_BEFORE_RE = re.compile(
    r"(?<!\bthis )(?<!\bthese )\b(?!this\b|these\b)[a-z]+[ \t]+"
    r"(?:has|had|have|carries|carried|bears|bore|with)"
    r"[ \t]+[\"'\u201c\u2018]?\Z",
    re.IGNORECASE,
)
_SIMILAR_AFTER_RE = re.compile(r"[ \t]+(?:or|and)[ \t]+(?:similar|the[ \t]+like)\b|[ \t]*,?[ \t]*etc\b")


def _mentioned(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is a marking mentioned in a sentence rather than applied (see above)."""
    if (
        _answer_option(text, start, end)
        or _in_pattern(text, start, end)
        or _mapping_key(text, start, end)
        or _legend_entry(text, start, end)
    ):
        return True
    before = _before_marking(text, start)
    if (
        _NEGATED_RE.search(before, max(0, len(before) - 40))  # "THIS FLYER IS NOT LAW ENFORCEMENT SENSITIVE"
        or _GLOSSARY_KEY_BEFORE_RE.search(
            before, max(0, len(before) - 30)
        )  # 'definition: "Law Enforcement ...'
        or "quivalent" in before[-40:]  # a level compared: "(closest U.S. equivalent level: SECRET)"
    ):
        return True
    # the marking itself, whatever the finding's span holds after it (a banner's reaches its line's end); a
    # finding that is a statement ("The attached folder contains CUI") starts no marking
    token = _MARKING_TOKEN_RE.match(text, start, end)
    after = token.end() if token is not None else end
    if token is not None and (
        # defined right after it: "NOFORN, short for 'not releasable to foreign nationals,' is ..." (not a
        # label's value: "Classification: SECRET, meaning ...")
        (_DEFINED_AFTER_RE.match(text, after) is not None and _LABEL_BEFORE_RE.search(before) is None)
        # papers named after the marking, in prose; but "the folder contains CUI documents" is about these
        or (
            _PAPERS_AFTER_RE.match(text, after, after + 60) is not None
            and _HOLDS_BEFORE_RE.search(before, max(0, len(before) - 40)) is None
        )
        # one of its kind: "CUI//SP-PRVCY or similar -- a category added to the banner"
        or _SIMILAR_AFTER_RE.match(text, after, after + 40) is not None
        # what another paper bears where: 'if it has "LAW ENFORCEMENT SENSITIVE" at the top', 'the template
        # from the other directorate has CUI//SP-PRVCY at the top' (not "this page has ... at the top")
        or (
            _WHERE_ON_A_PAGE_AFTER_RE.match(text, after, after + 40) is not None
            and _BEARS_BEFORE_RE.search(before, max(0, len(before) - 60)) is not None
        )
    ):
        return True
    if before.upper() == before:  # nothing in lower case before it on its line: no sentence around it
        return False
    low = before.lower()
    return (
        # the words on a thing: 'door decals. Decal text "U.S. GOVERNMENT - FOR OFFICIAL USE ONLY"'
        (any(thing in low for thing in _OBJECT_WORDS) and _ON_AN_OBJECT_RE.search(low) is not None)
        or _required_of_other_papers(low)
        # "CUI//SP-", "CUI//SP-<category>", "a CUI//SP- category" in a sentence: the form alone
        or _PLACEHOLDER_RE.match(text, start, min(len(text), start + 16)) is not None
        or (
            _QUESTION_ENDS_RE.match(text, after) is not None and _QUESTION_OPENS_RE.search(before) is not None
        )
        or _example_cue(before, low)
        or _other_papers(low)
        or _KIND_AFTER_RE.match(text, after, after + 120) is not None
    )


# A legend of the marks: "(S) Secret", "(TS) Top Secret", "(CUI) Controlled Unclassified Information", each
# mark followed by its own name and nothing more on its line.
_MARK_NAMES = {
    "(U)": "unclassified", "(C)": "confidential", "(S)": "secret", "(TS)": "top secret",
    "(CUI)": "controlled unclassified information", "(FOUO)": "for official use only",
    "(SBU)": "sensitive but unclassified", "(LES)": "law enforcement sensitive",
}  # fmt: skip
_LEGEND_TAIL_RE = re.compile(r"[ \t]*[-=:\u2013\u2014]?[ \t]*(?P<name>[A-Za-z ]{3,40}?)[ \t.;,]*(?:\n|\Z)")


def _legend_entry(text: str, start: int, end: int) -> bool:
    if text[start : start + 1] != "(":
        return False
    name = _MARK_NAMES.get(text[start:end].upper())
    if name is None:
        return False
    tail = _LEGEND_TAIL_RE.match(text, end)
    return tail is not None and tail.group("name").lower() == name


_KEY_OPENS_RE = re.compile(r"[{,][ \t\n]*\Z")


def _mapping_key(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is, whole, a quoted key of a mapping in code or JSON ('{"CUI": "Same Sky"'):
    a value being renamed or looked up, not a marking."""
    quote = text[start - 1 : start]
    return (
        quote in ("'", '"')
        and text[end : end + 1] == quote
        and text[end + 1 : end + 4].lstrip(" ").startswith(":")
        and _KEY_OPENS_RE.search(text, max(0, start - 8), start - 1) is not None
    )


def _required_of_other_papers(low: str) -> bool:
    """True when ``low`` ends with a rule that some paper, not this one, must bear the marking ("our NCOIC
    says the packet has to be stamped")."""
    required = _REQUIRED_MARK_RE.search(low) if " to be " in low or " get " in low else None
    return (
        required is not None and _HERE_RE.search(low, max(0, required.start() - 60), required.start()) is None
    )


def _before_marking(text: str, start: int) -> str:
    """What stands before the marking at ``start`` on its line (up to _EXAMPLE_REACH characters), read from
    the start of the whole marking the finding is part of ("(U//LES)" for its "LES"); with the line before,
    when the marking opens a wrapped line of prose (its cue may end that line: 'some stamped' / '"SECRET//
    NOFORN," were posted')."""
    line_start = _near_line(text, start, start, _EXAMPLE_REACH)[0]
    head = _TOKEN_HEAD_RE.search(text, max(line_start, start - 40), start)
    marking_start = head.start() if head is not None else start
    before = text[line_start:marking_start]
    if not before.strip(" \t\"'\u201c") and line_start > 1 and text[line_start - 2] not in ".!?:\n":
        line_start = _near_line(text, line_start - 1, line_start - 1, _EXAMPLE_REACH)[0]
        before = text[line_start:marking_start].replace("\n", " ")
    return before


def _example_cue(before: str, low: str) -> bool:
    """True when ``before`` (``low`` lower-cased) ends with an example's cue ("such as", "for example")."""
    for cue in _EXAMPLE_CUES:  # matched from each cue's last place only: a search would try every place
        at = low.rfind(cue)
        if at == -1:
            continue
        lead = _FOR_BEFORE_RE.search(low, max(0, at - 8), at)  # "for example": the cue starts at "for"
        if _EXAMPLE_CUE_RE.match(before, lead.start() if lead else at):
            return True
    return False


def _other_papers(low: str) -> bool:
    """True when ``low`` ends with papers counted or named that bore the marking, not these."""
    if not any(verb in low for verb in _MARKED_VERBS):
        return False
    if _COUNTED_MARKED_RE.search(low):
        return True
    clause = _WHICH_WAS_MARKED_RE.search(low)
    if clause is not None and _HERE_RE.search(low, max(0, clause.start() - 60), clause.start()) is None:
        return True
    plural = _PLURAL_MARKED_RE.search(low)
    return plural is not None and plural.group("here") is None


def _in_pattern(text: str, start: int, end: int) -> bool:
    """True when the marking's line is a pattern that finds it ('\\(FOUO\\)|//FOUO\\b'), in code or a
    rule's configuration."""
    # the cheap test first: a pattern escapes right beside what it finds ("\\(FOUO\\)", "\\bSECRET\\b")
    if text.find("\\", max(0, start - _ESCAPE_REACH), end + _ESCAPE_REACH) == -1:
        return False
    line_start, line_end = _near_line(text, start, end, _PATTERN_REACH)
    return len(_REGEX_TOKEN_RE.findall(text, line_start, line_end)) >= 2


# A question's answer options that are markings ("Which mark ...?  a) (FOUO)  b) (U//FOUO)  c) (CUI)"): each
# option the marking alone, between option letters; a subparagraph's portion mark has its text after it
# ("b. (S) The convoy leaves at 0400").
_OPTION_BEFORE_RE = re.compile(r"(?:^|[ \t])\(?[a-dA-D][).][ \t]+\Z", re.MULTILINE)
_OPTION_AFTER_RE = re.compile(r"[ \t]*(?:\n|\Z|\(?[a-dA-D][).][ \t])")
_QUESTION_REACH = 300
_BLANK_RE = re.compile(r"[ \t]")


def _answer_option(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is, whole, one of a question's answer options (see above)."""
    if text.find("?", max(0, start - _QUESTION_REACH), start) == -1:  # no question before: the cheap test
        return False
    line_start, line_end = _near_line(text, start, end, _EXAMPLE_REACH)
    # the option's whole token around the finding: "(U//FOUO)" around "FOUO"
    token_start = max(text.rfind(" ", line_start, start), text.rfind("\t", line_start, start)) + 1
    token_start = max(token_start, line_start)
    blank = _BLANK_RE.search(text, end, line_end)
    token_end = blank.start() if blank else line_end
    return (
        _OPTION_BEFORE_RE.search(text, line_start, token_start) is not None
        and _OPTION_AFTER_RE.match(text, token_end) is not None
    )


# "SBU: Industrial Components      Site: Joliet DC": SBU (a strategic business unit) labelling a field
# of a form's line that holds other labelled fields, not a legacy marking's tag on the content.
_FORM_LABEL_AFTER_RE = re.compile(r"[ \t]*:[^\n]*?(?:\t| {2,})[A-Z][A-Za-z /#.-]{0,24}:")


# The clearance a job title names, in a text about clearances: "Cyber Threat Intelligence Analyst (TS/SCI)",
# "Systems Engineer (TS/SCI w/ Poly)" (a portion mark written with a single slash, after a title's words).
_CLEARANCE_MARK_RE = re.compile(
    r"\((?:TS|S)/SCI(?:[ \t]+(?:w/|with)[ \t]*(?:CI[ \t]+|FS[ \t]+|Full[ -]Scope[ \t]+)?Poly)?\)"
)


def _clearance_title(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 40) : start].rstrip(" \t")
    return _CLEARANCE_MARK_RE.fullmatch(text, start, end) is not None and before[-1:].isalnum()


def _form_label(text: str, start: int, end: int) -> bool:
    return text[start:end] == "SBU" and _FORM_LABEL_AFTER_RE.match(text, end) is not None


def _drop_non_markings(text: str, found: set[Detection]) -> set[Detection]:
    """``found`` without the level, control and legacy findings that are items of a scheme's list, without
    the levels that are someone's clearance, the markings given as examples, and a glossary's terms."""
    relevant = [det for det in found if det.category in _LISTED_CATEGORIES]
    if not relevant:
        return found
    dropped = set()
    # "clearance" in any case: two byte-speed finds instead of lower-casing the text
    clearances = text.find("learance") != -1 or text.find("LEARANCE") != -1
    schemes = _scheme_lists(text, [det for det in relevant if det.category in _SCHEME_CATEGORIES])
    headers: _ColumnMemo = {}
    others: _ColumnMemo = {}
    glossary_tables: _ColumnMemo = {}
    configs: dict[int, int] = {}
    for det in sorted(relevant, key=lambda d: d.start):  # top down: each row reads its header via the last
        in_list = det.category in _SCHEME_CATEGORIES and _in_spans(schemes, det.start, det.end)
        if (
            in_list
            or (
                clearances and det.category == "classified.banner" and _is_clearance(text, det.start, headers)
            )
            or (
                clearances
                and det.category == "classified.portion"
                and _clearance_title(text, det.start, det.end)
            )
            or (det.category == "cui.legacy" and _form_label(text, det.start, det.end))
            or (
                det.category in _MENTION_CATEGORIES
                and (
                    _mentioned(text, det.start, det.end)
                    or _config_value(text, det.start, det.end, configs)
                    or _in_option_list(text, det.start, det.end)
                    or _column_above(text, det.start, others, _other_column)
                    or (
                        det.category != "classified.portion"  # (a legend's, "(S) Secret", is told apart)
                        and _in_glossary_table(text, det.start, glossary_tables)
                    )
                )
            )
        ):
            dropped.add(det)
    defined = [det for det in relevant if det.category in _GLOSSARY_CATEGORIES]
    if defined and (glossary := _glossary_lines(text, defined)):
        dropped.update(
            det
            for det in relevant
            if det.category in _GLOSSARY_CATEGORIES
            # (a dissemination control's finding may run on to its line's end, past its entry's expansion)
            and any(lo <= det.start < hi for lo, hi in glossary)
        )
    return found - dropped if dropped else found


_LISTED_CATEGORIES = _SCHEME_CATEGORIES | _GLOSSARY_CATEGORIES | _MENTION_CATEGORIES


def scan(text: str, ascii_case: bool = False, lower: str | None = None) -> set[Detection]:
    """All built-in detections in ``text``, each reported once.

    ``ascii_case``: the caller knows that lower-casing ``text`` changes no character but ASCII letters
    (see ``Normalized.ascii_case``), so windows may lower-case it at byte speed. ``lower``: the caller's
    ``text.lower()``, when it has it (``Normalized.lower``).

    Each detector anchors its search in a window's own range and reads context from the overlap, so every
    detection is found by at least one window; the set drops the few that two windows both report.
    """
    found: set[Detection] = set()
    lo = 0
    while True:
        hi = min(len(text), lo + WINDOW)
        window = _Window(text, lo, hi, found, ascii_case=ascii_case, lower=lower)
        for detector in _DETECTORS:
            detector(window)
        if hi >= len(text):
            return _drop_non_markings(text, found)
        lo = hi
