"""Render the encodings text picks up on its way between systems, so the detectors read what a person reads.

A document pasted from a web page, an e-mail's raw source or a word processor's file carries its words in
an encoding: ``TOP&nbsp;SECRET&#47;&#47;NOFORN`` in HTML, ``FOR OFFICIAL USE ON=`` + line break + ``LY``
in a quoted-printable e-mail body, ``{\\header\\pard\\qc\\b CUI\\b0\\par}`` in RTF. Rendered here:

* escaped line breaks and tabs (``\\n``, ``\\t``, ``\\r`` in a JSON string or an iCalendar field), as the
  breaks they stand for, and a JSON string's escaped quotes (``\\"``) as quotes;
* iCalendar's and vCard's folded lines (a line break and one space or tab, RFC 5545), unfolded, in a text
  that opens a calendar or a card (``BEGIN:VCALENDAR``): ``CUI//`` + fold + ``SP-EXPT``;
* HTML and XML character references (``&nbsp;``, ``&#47;``, ``&#x2F;``, ``&amp;``), wherever a text has them;
* URL percent-encoding (``FOR%20OFFICIAL%20USE%20ONLY``, ``%0A`` a line break), in a text that holds at
  least two encoded spaces, slashes, colons, commas or line breaks (a query string, an encoded log field);
* quoted-printable soft line breaks and ``=XX`` escapes, in a text that says it is quoted-printable
  (``Content-Transfer-Encoding: quoted-printable``) or in an RFC 2047 encoded word (``=?utf-8?Q?...?=``);
* RTF: control words dropped, ``\\par`` and ``\\line`` as line breaks, ``\\tab`` as a tab, ``\\'hh`` as
  its character, group braces dropped, in a text that opens as RTF (``{\\rtf``);
* OCR's digits for letters in a marking's words: ``F0R OFFlCIAL USE 0NLY``, ``EXP0RT C0NTR0LLED``,
  ``D1STRIBUTION STATEMENT B``. A word in capitals with 0, 1, 5 or 8 (or a lower-case l) among its letters
  is read as O, I, S or B (I) only when it then spells one of the words markings are made of; a word in
  lower case (or capitalised) with 0 or 1 among its letters as o, l or i, the same way (``c0ntain CUI``,
  ``Export Administration Regu1ations``), and a form's labels too (``D0B:``); looked for in
  a text's first and last ``OCR_REACH`` characters, where a scanned page's banner, its title block and its
  distribution statement stand (reading the whole of every text cost a tenth of the classifier's time).

Each rendered character stands where the first character of its encoding stood; the rest of the encoding
is removed. The result is a ``Normalized`` whose map leads back to the text as sent, so a finding in the
rendered text redacts the encoded characters it came from. A text with none of these is not copied.
"""

from __future__ import annotations

import html
import re

from .detectors import _find_all
from .normalize import Normalized

OCR_REACH = 2_000
HEADERS_REACH = 4_096
_ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_QP_DECLARED_RE = re.compile(r"=\?[A-Za-z0-9_\-]+\?[Qq]\?")
_ENCODED_WORD_RE = re.compile(r"=\?[A-Za-z0-9_\-]+\?[Qq]\?(?P<payload>[^?\s]*)\?=")
_QP_RE = re.compile(r"=\r?\n|(?:=[0-9A-F]{2})+")
_RTF_RE = re.compile(r"\\(?:([a-z]{1,32})(-?[0-9]{1,10})? ?|'([0-9a-fA-F]{2})|([\\{}]))|[{}]|\r?\n")
_RTF_BREAKS = {"par": "\n", "line": "\n", "tab": "\t", "cell": "\t", "row": "\n"}
_PERCENT_RE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_URL_SEPARATORS_RE = re.compile(r"%(?:20|2[Ff]|3[Aa]|2[Cc]|0[Aa])")
_CALENDAR_RE = re.compile(r"BEGIN:V(?:CALENDAR|EVENT|TODO|JOURNAL|CARD)\b")
_FOLD_RE = re.compile(r"\r?\n[ \t]")

# (where an encoding starts, how long it is, what it renders as: at most as long as the encoding)
_Edit = tuple[int, int, str]


def render(text: str) -> Normalized | None:
    """``text`` with its encodings rendered and the map back to ``text``; None when it has none."""
    edits: list[_Edit] = []
    source = text
    if text[:64].lstrip().startswith("{\\rtf"):
        edits.extend(_rtf(text))
    else:
        if "\\" in text:
            # JSON's and iCalendar's escaped line breaks and tabs as the breaks they stand for, and JSON's
            # escaped quotes as quotes, each escape's backslash a space: the same length, so no map is needed
            text = text.replace("\\n", " \n").replace("\\t", " \t").replace("\\r", " \r").replace('\\"', ' "')
        if source.find("BEGIN:V", 0, HEADERS_REACH) != -1 and _CALENDAR_RE.search(source, 0, HEADERS_REACH):
            # found in the text as sent: an escaped break ("\\n") before a space is no fold
            edits.extend((fold.start(), fold.end() - fold.start(), "") for fold in _FOLD_RE.finditer(source))
        if "&" in text and ";" in text:
            edits.extend(_entities(text))
        if "%" in text and _url_encoded(text):
            edits.extend(_percent_encoded(text))
        if _declares_quoted_printable(text):
            edits.extend(_quoted_printable(text))
        edits.extend(_ocr_words(text))
    edits.sort(key=lambda edit: (edit[0], -edit[1]))  # at one place, the longer edit (a whole group) first
    if edits:
        return _apply(text, edits)
    return None if text is source else Normalized(text, len(text))


def _declares_quoted_printable(text: str) -> bool:
    """A header naming the encoding, or an encoded word, among the text's first ``HEADERS_REACH`` characters
    (where a message's headers are)."""
    if text.find("=?", 0, HEADERS_REACH) != -1 and _QP_DECLARED_RE.search(text, 0, HEADERS_REACH) is not None:
        return True
    # "quoted-printable" as mail software writes it, in lower case or as "Quoted-Printable"
    return text.find("rintable", 0, HEADERS_REACH) != -1 and "-printable" in text[:HEADERS_REACH].lower()


def _entities(text: str) -> list[_Edit]:
    edits = []
    for match in _ENTITY_RE.finditer(text):
        rendered = html.unescape(match.group())
        if rendered != match.group() and len(rendered) == 1:
            edits.append((match.start(), match.end() - match.start(), rendered))
    return edits


def _url_encoded(text: str) -> bool:
    """Two encoded separators (a space, a slash, a colon, a comma, a line break) anywhere in the text."""
    first = _URL_SEPARATORS_RE.search(text)
    return first is not None and _URL_SEPARATORS_RE.search(text, first.end()) is not None


def _percent_encoded(text: str) -> list[_Edit]:
    """Each run of %XX escapes as the UTF-8 text it encodes (a run, so a character of several bytes is read
    whole), where that text is printable or a line break."""
    edits = []
    for match in _PERCENT_RE.finditer(text):
        encoded = match.group()
        decoded = bytes.fromhex(encoded.replace("%", "")).decode("utf-8", "replace")
        if all(c.isprintable() or c in "\n\t" for c in decoded):
            edits.append((match.start(), len(encoded), decoded))
    return edits


def _quoted_printable(text: str) -> list[_Edit]:
    edits = []
    # An encoded word ("=?utf-8?Q?Roster_=E2=80=93_CUI?="): its frame is removed, "_" is a space.
    for word in _ENCODED_WORD_RE.finditer(text):
        edits.append((word.start(), word.start("payload") - word.start(), ""))
        edits.append((word.end("payload"), 2, ""))
        payload = word.group("payload")
        edits.extend((word.start("payload") + i, 1, " ") for i, c in enumerate(payload) if c == "_")
    for match in _QP_RE.finditer(text):
        encoded = match.group()
        if encoded[1] in "\r\n":
            edits.append((match.start(), len(encoded), ""))  # a soft line break
            continue
        decoded = bytes.fromhex(encoded.replace("=", "")).decode("utf-8", "replace")
        if len(decoded) * 3 <= len(encoded):
            edits.append((match.start(), len(encoded), decoded))
    return edits


# Groups RTF does not display: the font, colour and style tables, the document's information, pictures,
# and every destination marked ignorable (``{\\*\\...}``).
_RTF_HIDDEN_RE = re.compile(r"\{\\(?:\*|fonttbl|colortbl|stylesheet|info|pict|listtable|listoverridetable)")


def _rtf_hidden_groups(text: str) -> list[_Edit]:
    edits = []
    done = 0
    for match in _RTF_HIDDEN_RE.finditer(text):
        if match.start() < done:
            continue  # inside a group already removed: each character is read once
        depth, at = 0, match.start()
        while at < len(text):
            char = text[at]
            if char == "\\":
                at += 2  # an escaped brace or backslash is not the group's
                continue
            depth += 1 if char == "{" else -1 if char == "}" else 0
            at += 1
            if depth == 0:
                break
        edits.append((match.start(), at - match.start(), ""))
        done = at
    return edits


def _rtf(text: str) -> list[_Edit]:
    edits = _rtf_hidden_groups(text)
    for match in _RTF_RE.finditer(text):
        word, _, hex_code, escaped = match.groups()
        if word is not None:
            rendered = _RTF_BREAKS.get(word, "")
        elif hex_code is not None:
            rendered = bytes.fromhex(hex_code).decode("cp1252", "replace")
        elif escaped is not None:
            rendered = escaped
        else:
            rendered = ""  # a group's brace, or a line break in the file (RTF's own breaks are \par)
        edits.append((match.start(), match.end() - match.start(), rendered))
    return edits


# Each ASCII character's class, for finding OCR's confusions at C speed: capitals "A", what OCR reads for
# a capital (the digits 0, 1, 5, 8 and a lower-case l) "0", anything else ".".
_OCR_CLASSES = bytes(
    ord("A") if 0x41 <= c <= 0x5A else ord("0") if chr(c) in "0158l" else ord(".") for c in range(256)
)
_OCR_LETTERS = str.maketrans("0158l", "OISBI")
# A confusion between two capitals, or beside two (timestamps' "T10" and "118Z" have one capital)
_OCR_NEEDLES = (b"A0A", b"AA0", b"0AA")
_MARKING_WORDS = frozenset(
    {
        "TOP",
        "SECRET",
        "CONFIDENTIAL",
        "CLASSIFIED",
        "UNCLASSIFIED",
        "NOFORN",
        "ORCON",
        "PROPIN",
        "FEDCON",
        "NOCON",
        "CONTROLLED",
        "CONTROL",
        "INFORMATION",
        "OFFICIAL",
        "USE",
        "ONLY",
        "FOR",
        "SENSITIVE",
        "BUT",
        "LAW",
        "ENFORCEMENT",
        "EXPORT",
        "DISTRIBUTION",
        "STATEMENT",
        "AUTHORIZED",
        "CUI",
        "FOUO",
        "ITAR",
        "WARNING",
        "RESTRICTED",
        "NATO",
        "COSMIC",
        "SPECIFIED",
        "BASIC",
        "LIMITED",
        "DISSEMINATION",
        # an export notice's words: "THIS D0CUMENT C0NTAINS TECHNICAL DATA ... ARMS EXP0RT C0NTROL ACT"
        "DOCUMENT",
        "CONTAINS",
        "TECHNICAL",
        "DATA",
        "ARMS",
        "ACT",
        "ADMINISTRATION",
        "REGULATIONS",
        "TRAFFIC",
        "INTERNATIONAL",
        # a form's labels for the personal data beside them ("D0B: 04/29/1957", "S0CIAL SECURITY NUMBER")
        "DOB",
        "SSN",
        "SOCIAL",
        "SECURITY",
        "BIRTH",
        "PASSPORT",
    }
)
# The same in lower case, with the words of the statements and notices written in it ("pages 2-7 c0ntain
# CUI (export contro11ed techn1cal data)", the EAR's destination control statement).
_LOWER_WORDS = frozenset(word.lower() for word in _MARKING_WORDS) | {
    "contain",
    "controlled",
    "exported",
    "technology",
    "commodities",
    "software",
    "accordance",
    "diversion",
    "prohibited",
    "regulation",
    "attached",
    "number",
}
_LONGEST_WORD = max(map(len, _MARKING_WORDS | _LOWER_WORDS))
# Each ASCII character's class for the lower-case search: letters "a", the digits OCR reads for o, l or i "0".
_OCR_LOWER_CLASSES = bytes(
    ord("a") if chr(c).isascii() and chr(c).isalpha() else ord("0") if chr(c) in "01" else ord(".")
    for c in range(256)
)
# (each with where its digit stands: inside a word, or opening it: "1aw")
_OCR_LOWER_NEEDLES = ((b"a0a", 1), (b"a00a", 1), (b"0aa", 0))
_OCR_LOWER_READINGS = (str.maketrans("01", "ol"), str.maketrans("01", "oi"))


# (the capitals' needles, each with where its confusion stands in it)
_OCR_UPPER_NEEDLES = tuple((needle, 1) for needle in _OCR_NEEDLES)


def _ocr_words(text: str) -> list[_Edit]:
    # the text's head and tail as one piece, a line break between: one projection per case, three searches
    tail_at = max(OCR_REACH, len(text) - OCR_REACH)
    piece = (
        text
        if tail_at == OCR_REACH and len(text) <= 2 * OCR_REACH
        else text[:OCR_REACH] + "\n" + text[tail_at:]
    )
    ascii_piece = piece.encode("ascii", "replace")  # one byte per character
    edits: list[_Edit] = []
    for start, end in _confused_words(
        text, piece, tail_at, ascii_piece.translate(_OCR_CLASSES), _OCR_UPPER_NEEDLES
    ):
        word = text[start:end]
        read = word.translate(_OCR_LETTERS)
        if read != word and read in _MARKING_WORDS:
            edits.append((start, end - start, read))
    taken = {edit[0] for edit in edits}
    # lower-case and capitalised words with OCR's 0 or 1 among their letters, read as o, l or i (a word in
    # capitals is read as capitals, above)
    lower = ascii_piece.translate(_OCR_LOWER_CLASSES)
    for start, end in _confused_words(text, piece, tail_at, lower, _OCR_LOWER_NEEDLES):
        word = text[start:end]
        if start in taken or word.isupper():
            continue
        for reading in _OCR_LOWER_READINGS:
            read = word.translate(reading)
            if read.lower() in _LOWER_WORDS:
                edits.append((start, end - start, read))
                break
    return edits


def _confused_words(
    text: str, piece: str, tail_at: int, projected: bytes, needles: tuple[tuple[bytes, int], ...]
) -> list[tuple[int, int]]:
    """(start, end) in ``text`` of each word, at most _LONGEST_WORD long, where a needle stands in the
    projection of ``piece`` (the text's head and tail)."""
    hits = sorted(
        pos + at if piece is text or pos < OCR_REACH else tail_at + pos + at - OCR_REACH
        for needle, at in needles
        for pos in _find_all(projected, needle, 0, len(projected))
    )
    words: list[tuple[int, int]] = []
    done = 0
    for hit in hits:
        if hit < done:
            continue  # inside the word just read
        start, end = hit, hit + 1
        while start > 0 and text[start - 1].isalnum():
            start -= 1
        while end < len(text) and text[end].isalnum():
            end += 1
        done = end
        if end - start <= _LONGEST_WORD:
            words.append((start, end))
    return words


def _apply(text: str, edits: list[_Edit]) -> Normalized:
    """The text with each edit made; each rendered character at its encoding's first characters, the rest
    of the encoding removed (an entry of width 0 in the map)."""
    pieces: list[str] = []
    removed: list[tuple[int, tuple[tuple[int, int], ...]]] = []
    at = 0
    for start, length, rendered in edits:
        if start < at:
            continue  # inside an encoding already rendered
        pieces.append(text[at:start])
        pieces.append(rendered)
        removed.extend((index, ((0, 0),)) for index in range(start + len(rendered), start + length))
        at = start + length
    pieces.append(text[at:])
    return Normalized("".join(pieces), len(text), _irregular=tuple(removed))
