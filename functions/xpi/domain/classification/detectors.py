"""Built-in detectors: markings, export-control notices and PII, tuned for speed and for near-misses.

How it stays fast (the classifier runs on every request):

* Markings are upper-case by convention, so they are found with ``str.find`` on the original text (a C
  scan at GB/s); only the rare hits get Python-level checks (word boundaries, "alone on its line",
  "opens a paragraph").
* Case-insensitive phrases (notices, PII labels) are found with ``str.find`` on one lower-cased copy of
  the text; each detector first asks a substring gate and does nothing when it is absent.
* Digits: one character-class regex collects digit runs; the SSN, card and phone expressions then run only
  over those short runs.
* Long texts are processed in windows of ``WINDOW`` characters with ``OVERLAP`` characters of context on
  each side, so the lower-cased copy (the only per-text allocation) is bounded and memory stays flat in
  the input size. A detection belongs to the window its start falls in, so none is reported twice.

How it stays accurate: a marking only counts where markings are placed (a banner alone on its line or with
``//`` controls; a portion mark opening a paragraph), prose mentions of a marking do not, and PII numbers
must pass their checksum or numbering rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from .models import Detection
from .validators import (
    aba_routing_is_valid,
    card_number_is_valid,
    date_is_plausible,
    nanp_is_valid,
    ssn_is_valid,
)

WINDOW = 65_536
OVERLAP = 1_024
_MAX_LINE = 240  # a banner or marking line is never longer than this

_Emit = Callable[[str, int, int], None]


# --------------------------------------------------------------------------------------------------------
# Small helpers over the original text
# --------------------------------------------------------------------------------------------------------


def _find_all(haystack: str, needle: str, start: int, end: int) -> Iterator[int]:
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


def _alone_on_line(text: str, start: int, end: int) -> bool:
    bounds = _line_bounds(text, start, end)
    if bounds is None:
        return False
    return not text[bounds[0] : start].strip() and not text[end : bounds[1]].strip()


# Dissemination controls after a level: "//NOFORN", " // REL TO USA, FVEY", "//SP-PRVCY/SP-CTI//FEDCON".
_CONTROLS_RE = re.compile(r"[ \t]*//[ \t]*[A-Z0-9][A-Z0-9 ,/\-]*")


def _controls_after(text: str, end: int) -> int:
    """End of the ``//`` controls that follow a marking level at ``end``, or -1 when there are none."""
    match = _CONTROLS_RE.match(text, end, end + _MAX_LINE)
    if match is None:
        return -1
    return match.start() + len(match.group().rstrip(" ,/-"))


def _controls_before(text: str, start: int) -> bool:
    """True when ``//`` (optionally spaced) immediately precedes ``start``: the word is a control."""
    return text[max(0, start - 6) : start].rstrip(" \t").endswith("//")


# --------------------------------------------------------------------------------------------------------
# Classified markings
# --------------------------------------------------------------------------------------------------------

# Commercial data-handling labels: a level word alone on a line beside these is a list item, not a banner.
_COMMERCIAL_LABELS = frozenset(
    {"PUBLIC", "INTERNAL", "INTERNAL USE ONLY", "RESTRICTED", "PRIVATE", "PROPRIETARY", "HIGHLY CONFIDENTIAL",
     "SENSITIVE", "GENERAL", "OPEN", "HIGHLY RESTRICTED", "COMPANY CONFIDENTIAL"}
)  # fmt: skip
_CLASSIFICATION_LABEL_RE = re.compile(r"(?i:classification|classified)[ \t]*:[ \t]*\Z")


def _neighbour_lines(text: str, line_start: int, line_end: int) -> tuple[str, str]:
    prev_end = line_start - 1
    prev_start = text.rfind("\n", max(0, prev_end - _MAX_LINE), max(prev_end, 0)) + 1 if prev_end > 0 else 0
    previous = text[prev_start:prev_end].strip() if prev_end > 0 else ""
    next_start = line_end + 1
    next_end = text.find("\n", next_start, next_start + _MAX_LINE)
    following = text[next_start : next_end if next_end != -1 else next_start + _MAX_LINE].strip()
    return previous, following


def _classified(text: str, own_start: int, own_end: int, emit: _Emit) -> None:
    for needle in ("SECRET", "CONFIDENTIAL"):
        for pos in _find_all(text, needle, own_start, own_end):
            end = pos + len(needle)
            if not _bounded(text, pos, end):
                continue
            start = pos
            if needle == "SECRET":
                head = text[max(0, pos - 8) : pos]
                stripped = head.rstrip(" \t")
                top = pos - len(head) + len(stripped) - 3
                if stripped.endswith("TOP") and stripped != head and _bounded(text, top, top + 3):
                    start = top
            controls_end = _controls_after(text, end)
            if controls_end != -1:
                emit("classified.banner", start, controls_end)
                continue
            bounds = _line_bounds(text, start, end)
            if bounds is None or text[end : bounds[1]].strip():
                continue
            prefix = text[bounds[0] : start]
            if not prefix.strip():
                previous, following = _neighbour_lines(text, bounds[0], bounds[1])
                if previous in _COMMERCIAL_LABELS or following in _COMMERCIAL_LABELS:
                    continue
                emit("classified.banner", start, end)
            elif _CLASSIFICATION_LABEL_RE.search(prefix) and (needle == "SECRET" or "CLASSIFICATION" in prefix):
                emit("classified.banner", start, end)


_AUTHORITY_LABEL_RE = re.compile(r"[ \t]*(?:derived from|declassify on|reason|declassification date)[ \t]*:")


def _authority_block(text: str, low: str, base: int, own_start: int, own_end: int, emit: _Emit) -> None:
    if "classified by" not in low or ("declassify on" not in low and "derived from" not in low):
        return
    for rel in _find_all(low, "classified by", own_start - base, own_end - base):
        pos = rel + base
        bounds = _line_bounds(text, pos, pos)
        if bounds is None or text[bounds[0] : pos].strip():
            continue
        after = low[rel + 13 : rel + 15].lstrip(" \t")
        if not after.startswith(":"):
            continue
        # Another authority line within the next few lines.
        window_end = rel + 400
        line = low.find("\n", rel, window_end)
        while line != -1:
            if _AUTHORITY_LABEL_RE.match(low, line + 1, window_end):
                emit("classified.authority_block", pos, bounds[1])
                break
            line = low.find("\n", line + 1, window_end)


# --------------------------------------------------------------------------------------------------------
# Portion marks: (S), (TS//SCI), (CUI), (CUI//SP-CTI), (U//FOUO)
# --------------------------------------------------------------------------------------------------------

_PORTION_RE = re.compile(r"\((TS|S|C|U|CUI|FOUO|SBU|LES)((?:[ \t]*//[ \t]*[A-Z0-9][A-Z0-9 ,/\-]{0,80}?)?)\)")
# What may stand before a portion mark on its line: indentation, bullets, paragraph numbers, a subject label.
_PORTION_PREFIX_RE = re.compile(
    r"[ \t]*(?:(?:[-*\u2022>]|\d{1,3}(?:\.\d{1,3})*[.)]?|[A-Za-z][.)]|\(\d{1,3}\)|\([a-z]{1,4}\))[ \t]+)*"
    r"(?:(?i:subject|subj|title|re)[ \t]*:[ \t]*)?\Z"
)
_SENTENCE_END_RE = re.compile(r"[.!?:][\"')\]]?[ \t]+\Z")
_COPYRIGHT_TAIL_RE = re.compile(r"[^\n]{0,40}\b(?:19|20)\d\d\b|[^\n]{0,120}(?i:all rights reserved|copyright)")
_LEGACY_CONTROLS = ("FOUO", "LES", "SBU", "FOR OFFICIAL USE ONLY", "LAW ENFORCEMENT SENSITIVE")
# A letter enumerator opening a line: "(B) the term ..." - then "(C)" is the next item, not a mark.
_ENUMERATOR_RE = {
    "C": re.compile(r"(?:^|\n)[ \t]*\(B\)[ \t]"),
    "S": re.compile(r"(?:^|\n)[ \t]*\(R\)[ \t]"),
}


def _opens_paragraph(text: str, start: int, end: int) -> bool:
    """True when a bare portion mark stands where portion marks go: opening a paragraph or sentence."""
    follow = text[end : end + 3]
    if follow[:1] not in (" ", "\t") or not follow.strip():
        return False
    first = follow.strip()[0]
    if not (first.isupper() or first.isdigit() or first in "\"'(\u201c"):
        return False
    bounds = _line_bounds(text, start, end)
    if bounds is None:
        prefix = text[max(0, start - 8) : start]
        return bool(_SENTENCE_END_RE.search(prefix))
    prefix = text[bounds[0] : start]
    return bool(_PORTION_PREFIX_RE.match(prefix)) or (bool(prefix.strip()) and bool(_SENTENCE_END_RE.search(prefix)))


def _portion_marks(text: str, own_start: int, own_end: int, win_end: int, emit: _Emit) -> None:
    for match in _PORTION_RE.finditer(text, own_start, win_end):
        start, end = match.span()
        if start >= own_end:
            break
        level, controls = match.group(1), match.group(2)
        if controls:
            if level in ("TS", "S", "C"):
                emit("classified.portion", start, end)
            elif level == "CUI":
                emit("cui.specified" if "SP-" in controls else "cui.portion", start, end)
            elif level == "U":
                if any(word in controls for word in _LEGACY_CONTROLS):
                    emit("cui.legacy", start, end)
            else:
                emit("cui.legacy", start, end)
            continue
        if level == "U" or not _opens_paragraph(text, start, end):
            continue
        if level == "C" and _COPYRIGHT_TAIL_RE.match(text, end, end + 160):
            continue
        enumerator = _ENUMERATOR_RE.get(level)
        if enumerator is not None and enumerator.search(text, max(0, start - 5000), start):
            continue
        if level in ("TS", "S", "C"):
            emit("classified.portion", start, end)
        elif level == "CUI":
            emit("cui.portion", start, end)
        else:
            emit("cui.legacy", start, end)


# --------------------------------------------------------------------------------------------------------
# CUI banners, the designation indicator, legacy markings
# --------------------------------------------------------------------------------------------------------


def _cui_banners(text: str, own_start: int, own_end: int, emit: _Emit) -> None:
    for needle in ("CUI", "CONTROLLED"):
        for pos in _find_all(text, needle, own_start, own_end):
            end = pos + len(needle)
            if not _bounded(text, pos, end) or text[pos - 1 : pos] == "(" or text[pos - 7 : pos] == "EXPORT ":
                continue
            controls_end = _controls_after(text, end)
            if controls_end != -1:
                category = "cui.specified" if "SP-" in text[end:controls_end] else "cui.banner"
                emit(category, pos, controls_end)
            elif _alone_on_line(text, pos, end):
                emit("cui.banner", pos, end)


_LEGACY_ALONE = {
    "FOUO": frozenset({"FOUO"}),
    "SBU": frozenset({"SBU", "SBU NOFORN", "SBU-NF", "SBU - NOFORN"}),
    "LES": frozenset({"LES"}),
}


def _legacy_words(text: str, own_start: int, own_end: int, emit: _Emit) -> None:
    for needle, alone_forms in _LEGACY_ALONE.items():
        for pos in _find_all(text, needle, own_start, own_end):
            end = pos + len(needle)
            if not _bounded(text, pos, end) or text[pos - 1 : pos] == "(":
                continue
            if _controls_before(text, pos):
                controls_end = _controls_after(text, end)
                emit("cui.legacy", pos, controls_end if controls_end != -1 else end)
                continue
            if _controls_after(text, end) != -1:
                emit("cui.legacy", pos, end)
                continue
            bounds = _line_bounds(text, pos, end)
            if bounds is not None and text[bounds[0] : bounds[1]].strip() in alone_forms:
                emit("cui.legacy", pos, bounds[0] + len(text[bounds[0] : bounds[1]].rstrip()))


_LEGACY_PHRASES = ("for official use only", "sensitive but unclassified", "law enforcement sensitive")


def _legacy_phrases(text: str, low: str, base: int, own_start: int, own_end: int, emit: _Emit) -> None:
    for phrase in _LEGACY_PHRASES:
        if phrase not in low:
            continue
        for rel in _find_all(low, phrase, own_start - base, own_end - base):
            pos = rel + base
            end = pos + len(phrase)
            original = text[pos:end]
            # Upper case is how markings are written; "for official use only" in a sentence is prose.
            if original.isupper() or _alone_on_line(text, pos, end):
                emit("cui.legacy", pos, end)


_DESIGNATION_LINE_RE = re.compile(
    r"[ \t]*(?:controlled by|cui categor(?:y|ies)|(?:limited )?dissemination control|"
    r"distribution/dissemination control|ldc|poc)[ \t]*:"
)


def _designation_indicator(text: str, low: str, base: int, own_start: int, own_end: int, emit: _Emit) -> None:
    if "controlled by" not in low and "cui categor" not in low:
        return
    for label in ("controlled by", "cui categor"):
        for rel in _find_all(low, label, own_start - base, own_end - base):
            pos = rel + base
            bounds = _line_bounds(text, pos, pos)
            if bounds is None or text[bounds[0] : pos].strip():
                continue
            if not _DESIGNATION_LINE_RE.match(low, rel):
                continue
            if label == "cui categor":
                emit("cui.designation_indicator", pos, bounds[1])
                continue
            window_end = rel + 400
            line = low.find("\n", rel, window_end)
            while line != -1:
                if _DESIGNATION_LINE_RE.match(low, line + 1, window_end):
                    emit("cui.designation_indicator", pos, bounds[1])
                    break
                line = low.find("\n", line + 1, window_end)


# --------------------------------------------------------------------------------------------------------
# Export control
# --------------------------------------------------------------------------------------------------------

# A notice speaks about the content it sits on: "This document contains ...", "The attached drawings are
# subject to ...". Prose about the regulations ("The ITAR controls defense articles") has no such subject.
_NOUNS = (
    r"(?:documents?|data|drawings?|files?|information|materials?|reports?|presentations?|specifications?|"
    r"attachments?|e-?mails?|messages?|items?|technology|software|hardware|packages?|pages?|slides?|"
    r"contents?|diagrams?|schematics?|manuals?|models?|designs?|products?|commodit(?:y|ies)|records?)"
)
_NOTICE_SUBJECT = (
    r"\b(?:this|these|the\s+attached|the\s+enclosed|the\s+following|attached|enclosed)\s+"
    r"(?:[a-z][a-z/-]*\s+){0,3}?" + _NOUNS + r"\s+(?:(?:may|might|could|also|hereby|herein)\s+)?"
    r"(?:is|are|contains?|includes?|has\s+been|have\s+been|was|were|falls?)\b"
)
_NOTICE_BEFORE_RE = re.compile(
    r"(?:" + _NOTICE_SUBJECT + r"|\b(?:contained|included|provided|disclosed|described)\s+herein\b"
    r"|\bwhose\s+export\s+is\s+(?:restricted|controlled))(?:[^\n]|\n(?!\n)){0,160}\Z"
)
_ITAR_TERM_RE = re.compile(
    r"itar\b|international\s+traffic\s+in\s+arms|arms\s+export\s+control\s+act"
    r"|22\s*c\.?\s*f\.?\s*r\.?\s*(?:parts?\s*|\u00a7+\s*)?1[23]\d"
)
_EAR_TERM_RE = re.compile(
    r"export\s+administration\s+(?:regulations|act)|15\s*c\.?\s*f\.?\s*r\.?\s*(?:parts?\s*|\u00a7+\s*)?7[3-7]\d"
)


def _notice_before(low: str, base: int, rel_start: int) -> int:
    """Start (absolute) of a notice subject ending at the term at ``rel_start``, or -1."""
    lo = max(0, rel_start - 300)
    para = low.rfind("\n\n", lo, rel_start)
    if para != -1:
        lo = para + 2
    match = _NOTICE_BEFORE_RE.search(low, lo, rel_start)
    return -1 if match is None else match.start() + base


def _upper_line_with(text: str, pos: int, end: int, words: tuple[str, ...]) -> bool:
    bounds = _line_bounds(text, pos, end)
    if bounds is None:
        return False
    line = text[bounds[0] : bounds[1]]
    return line.isupper() and any(word in line for word in words)


def _export_notices(text: str, low: str, base: int, own_start: int, own_end: int, win_end: int,
                    emit: _Emit) -> None:  # fmt: skip
    lo, hi, hi_win = own_start - base, own_end - base, win_end - base
    has_cfr = "c.f.r" in low or "cfr" in low
    if "itar" in low or "traffic in arms" in low or "arms export" in low or has_cfr:
        for match in _ITAR_TERM_RE.finditer(low, lo, hi_win):
            rel = match.start()
            if rel >= hi:
                break
            if rel > 0 and low[rel - 1].isalnum():
                continue  # "guitar"
            pos, end = rel + base, match.end() + base
            notice = _notice_before(low, base, rel)
            if notice != -1:
                emit("export.itar", notice, end)
            elif text[pos:end] == "ITAR" and _upper_line_with(
                text, pos, end, ("CONTROLLED", "RESTRICTED", "WARNING", "NOTICE", "TECHNICAL DATA")
            ):
                emit("export.itar", pos, end)
    if "export administration" in low or has_cfr:
        for match in _EAR_TERM_RE.finditer(low, lo, hi_win):
            rel = match.start()
            if rel >= hi:
                break
            notice = _notice_before(low, base, rel)
            if notice != -1:
                emit("export.ear", notice, match.end() + base)
    # The abbreviation "EAR" is only an abbreviation in upper case ("the inner ear" is not).
    for pos in _find_all(text, "EAR", own_start, own_end):
        end = pos + 3
        if not _bounded(text, pos, end):
            continue  # also skips EAR99, which is the designation for items that need no licence
        notice = _notice_before(low, base, pos - base)
        if notice != -1:
            emit("export.ear", notice, end)
        elif _upper_line_with(text, pos, end, ("CONTROLLED", "RESTRICTED", "WARNING", "NOTICE")):
            emit("export.ear", pos, end)
    for pos in _find_all(text, "EXPORT CONTROLLED", own_start, own_end):
        end = pos + 17
        bounds = _line_bounds(text, pos, end)
        if bounds is None:
            continue
        line = text[bounds[0] : bounds[1]]
        if line.isupper() and len(line.strip()) <= 160:
            if re.search(r"\bITAR\b", line):
                emit("export.itar", pos, end)
            elif re.search(r"\bEAR\b", line):
                emit("export.ear", pos, end)
            else:
                emit("export.banner", pos, end)


_ECCN_RE = re.compile(
    r"(?:eccn|export\s+control\s+classification\s+number)s?(?:\s*\(eccn\))?[\s:#=\-]{0,5}"
    r"(?:is\s+|of\s+|classified\s+as\s+)?(?<![a-z0-9])([0-9][a-e][0-9]{3}(?:\.[a-z0-9]{1,3}){0,4})(?![a-z0-9])"
)


def _eccn(low: str, base: int, own_start: int, own_end: int, win_end: int, emit: _Emit) -> None:
    if "eccn" not in low and "export control classification" not in low:
        return
    for match in _ECCN_RE.finditer(low, own_start - base, win_end - base):
        rel = match.start()
        if rel >= own_end - base:
            break
        if rel > 0 and low[rel - 1].isalnum():
            continue
        emit("export.eccn", rel + base, match.end() + base)


_DIST_STATEMENT_RE = re.compile(r"distribution\s+statement\s*([a-f])(?![a-z0-9])")
_DIST_AUTHORIZED_RE = re.compile(
    r"distribution\s+(?:is\s+)?authori[sz]ed\s+to\s+(?:u\.\s?s\.|us\b|the\s+u\.\s?s\.|dod\b|the\s+dod\b|"
    r"department\s+of\s+defense|the\s+department\s+of\s+defense|doe\b|nasa\b)"
)


def _distribution_statements(text: str, low: str, base: int, own_start: int, own_end: int, win_end: int,
                             emit: _Emit) -> None:  # fmt: skip
    lo, hi, hi_win = own_start - base, own_end - base, win_end - base
    if "distribution statement" in low:
        for match in _DIST_STATEMENT_RE.finditer(low, lo, hi_win):
            rel = match.start()
            if rel >= hi or match.group(1) == "a":
                continue
            pos, end = rel + base, match.end() + base
            if text[pos : pos + 22].isupper() or _DIST_AUTHORIZED_RE.search(low, match.end(), match.end() + 200):
                emit("export.distribution_statement", pos, end)
    if "authori" in low:
        for match in _DIST_AUTHORIZED_RE.finditer(low, lo, hi_win):
            if match.start() >= hi:
                break
            emit("export.distribution_statement", match.start() + base, match.end() + base)


# --------------------------------------------------------------------------------------------------------
# PII: unlabelled shapes found in digit runs (SSN, card, phone), e-mail, labelled identifiers
# --------------------------------------------------------------------------------------------------------

_DIGIT_RUN_RE = re.compile(r"[0-9][0-9 ().\-]{7,}[0-9]")
_SSN_RE = re.compile(r"(?<![\w\-])([0-9]{3})([\- ])([0-9]{2})\2([0-9]{4})(?![\w\-]|\.[0-9])")
_CARD_RE = re.compile(
    r"(?<![\w\-])(?:[0-9]{4}([ \-])[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}(?:\1[0-9]{1,3})?"
    r"|[0-9]{4}([ \-])[0-9]{6}\2[0-9]{4,5}|[0-9]{15,16})(?![\w\-]|\.[0-9])"
)
_PHONE_RE = re.compile(
    r"(?<![\w.+\-])(?:\+?1[ .\-]?)?(?:\(([0-9]{3})\)[ ]?|([0-9]{3})([ .\-]))([0-9]{3})(?(3)\3|[ .\-])([0-9]{4})"
    r"(?![\w\-]|\.[0-9])"
)


def _digit_shapes(text: str, own_start: int, own_end: int, win_end: int, emit: _Emit) -> None:
    n = len(text)
    for run in _DIGIT_RUN_RE.finditer(text, max(0, own_start - 32), win_end):
        run_start, run_end = run.span()
        if run_start >= own_end:
            break
        if run_end < own_start:
            continue
        lo, hi = max(0, run_start - 4), min(n, run_end + 2)
        for m in _SSN_RE.finditer(text, lo, hi):
            if ssn_is_valid(m.group(1) + m.group(3) + m.group(4)):
                emit("pii.ssn", m.start(), m.end())
        for m in _CARD_RE.finditer(text, lo, hi):
            digits = m.group().replace(" ", "").replace("-", "")
            if card_number_is_valid(digits):
                emit("pii.credit_card", m.start(), m.end())
        for m in _PHONE_RE.finditer(text, lo, hi):
            area = m.group(1) or m.group(2)
            if nanp_is_valid(area, m.group(4)):
                emit("pii.phone", m.start(), m.end())


_EMAIL_DOMAIN_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![A-Za-z0-9\-])")
_EMAIL_LOCAL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
_NOT_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "heic", "avif"})


def _emails(text: str, own_start: int, own_end: int, emit: _Emit) -> None:
    for at in _find_all(text, "@", own_start, own_end):
        domain = _EMAIL_DOMAIN_RE.match(text, at + 1, at + 256)
        if domain is None or domain.group(1).lower() in _NOT_TLDS:
            continue
        local = _EMAIL_LOCAL_RE.search(text, max(0, at - 64), at)
        if local is None:
            continue
        start = local.start()
        while start < at and text[start] in ".-":
            start += 1
        if start == at:
            continue
        after = text[domain.end() : domain.end() + 2]
        if after[:1] == ":" and after[1:2] not in ("", " ", "\n") and not after[1:2].isdigit():
            continue  # scp-style "git@github.com:org/repo.git" is a host address, not a mailbox
        emit("pii.email", start, domain.end())


_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_MONTH_NUMBER = {name: index + 1 for index, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}  # fmt: skip
_DOB_TAIL_RE = re.compile(
    r"[^0-9a-z\n]{0,6}(?:(?:is|was|on|of)[^0-9a-z\n]{1,4}){0,2}(?<![0-9])(?:"
    r"(?P<a>[0-9]{1,2})[/.\-](?P<b>[0-9]{1,2})[/.\-](?P<y1>[0-9]{4}|[0-9]{2})"
    r"|(?P<y2>[0-9]{4})-(?P<m2>[0-9]{1,2})-(?P<d2>[0-9]{1,2})"
    r"|(?P<mn3>" + _MONTHS + r")\s+(?P<d3>[0-9]{1,2})(?:st|nd|rd|th)?,?\s+(?P<y3>[0-9]{4})"
    r"|(?P<d4>[0-9]{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mn4>" + _MONTHS + r"),?\s+(?P<y4>[0-9]{4})"
    r")(?![0-9])"
)


def _dob_is_valid(match: re.Match[str]) -> bool:
    if match.group("a"):
        a, b, y = int(match.group("a")), int(match.group("b")), int(match.group("y1"))
        return date_is_plausible(a, b, y) or date_is_plausible(b, a, y)
    if match.group("y2"):
        return date_is_plausible(int(match.group("m2")), int(match.group("d2")), int(match.group("y2")))
    if match.group("mn3"):
        month = _MONTH_NUMBER[match.group("mn3")[:3]]
        return date_is_plausible(month, int(match.group("d3")), int(match.group("y3")))
    month = _MONTH_NUMBER[match.group("mn4")[:3]]
    return date_is_plausible(month, int(match.group("d4")), int(match.group("y4")))


def _value_tail(value: str) -> re.Pattern[str]:
    return re.compile(r"[^0-9\n]{0,24}?(?<![0-9a-z])(" + value + r")(?![0-9a-z])")


_Validator = Callable[[re.Match[str]], bool]


def _digits_of(match: re.Match[str]) -> str:
    return "".join(ch for ch in match.group(1) if ch.isdigit())


# category, labels (lower case), the value expression after the label, the value check
_LABELLED: tuple[tuple[str, tuple[str, ...], re.Pattern[str], _Validator], ...] = (
    ("pii.ssn", ("ssn", "social security", "ss#", "soc sec", "soc. sec"),
     _value_tail(r"[0-9]{3}[\- ]?[0-9]{2}[\- ]?[0-9]{4}"), lambda m: ssn_is_valid(_digits_of(m))),
    ("pii.passport", ("passport",), _value_tail(r"[a-z]{0,2}[0-9]{6,9}"), lambda m: True),
    ("pii.aba_routing", ("routing", "aba", "rtn"), _value_tail(r"[0-9]{9}"),
     lambda m: aba_routing_is_valid(m.group(1))),
    ("pii.edipi", ("edipi", "edi-pi", "dod id", "dodid", "dod identification"), _value_tail(r"[0-9]{10}"),
     lambda m: True),
    ("pii.dob", ("date of birth", "birth date", "birthdate", "dob", "d.o.b", "born"), _DOB_TAIL_RE, _dob_is_valid),
)  # fmt: skip


def _labelled(low: str, base: int, own_start: int, own_end: int, emit: _Emit) -> None:
    lo, hi = own_start - base, own_end - base
    for category, labels, tail, valid in _LABELLED:
        for label in labels:
            if label not in low:
                continue
            for rel in _find_all(low, label, lo, hi):
                end = rel + len(label)
                if (rel > 0 and low[rel - 1].isalnum()) or low[end : end + 1].isalpha():
                    continue
                match = tail.match(low, end, end + 120)
                if match is None or not valid(match):
                    continue
                span = _dob_span(match) if category == "pii.dob" else match.span(1)
                emit(category, span[0] + base, span[1] + base)


def _dob_span(match: re.Match[str]) -> tuple[int, int]:
    for name in ("a", "y2", "mn3", "d4"):
        if match.group(name):
            return match.start(name), match.end()
    return match.span()


# --------------------------------------------------------------------------------------------------------
# The scan
# --------------------------------------------------------------------------------------------------------


def _lower(window: str) -> str:
    low = window.lower()
    if len(low) != len(window):  # only U+0130 lower-cases to two characters
        low = window.replace("\u0130", "i").lower()
    return low


def scan(text: str) -> set[Detection]:
    """All built-in detections in ``text``, each reported once.

    Each detector anchors its search in the window's own range and reads context from the overlap, so
    every detection is found by at least one window; the set drops the few found by two.
    """
    found: set[Detection] = set()
    n = len(text)
    own_start = 0
    while True:
        own_end = min(n, own_start + WINDOW)
        win_start, win_end = max(0, own_start - OVERLAP), min(n, own_end + OVERLAP)
        _scan_window(text, win_start, own_start, own_end, win_end, found)
        if own_end >= n:
            return found
        own_start = own_end


def _scan_window(text: str, win_start: int, own_start: int, own_end: int, win_end: int,
                 found: set[Detection]) -> None:  # fmt: skip
    def emit(category: str, start: int, end: int) -> None:
        found.add(Detection(category, start, end))

    low = _lower(text[win_start:win_end] if win_start or win_end != len(text) else text)
    base = win_start
    _classified(text, own_start, own_end, emit)
    _cui_banners(text, own_start, own_end, emit)
    _legacy_words(text, own_start, own_end, emit)
    _portion_marks(text, own_start, own_end, win_end, emit)
    _authority_block(text, low, base, own_start, own_end, emit)
    _legacy_phrases(text, low, base, own_start, own_end, emit)
    _designation_indicator(text, low, base, own_start, own_end, emit)
    _export_notices(text, low, base, own_start, own_end, win_end, emit)
    _eccn(low, base, own_start, own_end, win_end, emit)
    _distribution_statements(text, low, base, own_start, own_end, win_end, emit)
    _digit_shapes(text, own_start, own_end, win_end, emit)
    _emails(text, own_start, own_end, emit)
    _labelled(low, base, own_start, own_end, emit)
