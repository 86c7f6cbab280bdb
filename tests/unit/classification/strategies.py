"""Hypothesis strategies for the classifier's property tests: real instances of what each detector must
find, the obfuscations and wrappers an adversary (or an ordinary export tool) puts around them, and
near-misses that must stay allowed.

A generated positive is split into ``lead``, ``core`` and ``tail``. Obfuscations change only the ``core``
(the marking, the notice, or the label and value), so that they always touch what is detected and never
merely the surrounding prose.
"""

from __future__ import annotations

import csv
import io
import json
import quopri
from collections.abc import Callable
from dataclasses import dataclass, replace

from hypothesis import strategies as st

# --- the generated cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Positive:
    category: str  # the category the classifier must report
    core: str  # what obfuscations change: the marking, or the label and the value
    lead: str = ""
    tail: str = ""
    inline: bool = True  # counts anywhere in one line (so it can sit in a table row, a CSV cell, a log line)
    value: str = ""  # for PII: the identifier itself, which a redaction must remove
    # A word of the core whose case carries meaning ("EAR" against "ear"). A marking that is one bare
    # word (or a bare portion mark) is only a marking in capitals: "Secret" or "Controlled" alone on a
    # line is a title, "(s)" a list item, "les" French; a legacy phrase ("for official use only") in a
    # sentence is prose. Markings with marking syntax (controls after "//", a "CLASSIFICATION:" label)
    # and the spelled-out CUI banner are detected in any case.
    keep_case: str = ""

    @property
    def text(self) -> str:
        return self.lead + self.core + self.tail


def _pick[T](options: list[T] | tuple[T, ...]) -> st.SearchStrategy[T]:
    return st.sampled_from(options)


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


_SENTENCES = (
    "The convoy departs at 0400.",
    "The unit moves north before dawn.",
    "Revised range estimates follow.",
    "The liaison officer will attend the briefing.",
    "Source reporting indicates a delay.",
    "The cost proposal exceeds the estimate.",
    "Gate schedule changes next week.",
    "Participant list attached.",
)
_BODIES = (
    "Deployment order attached.",
    "Annex C follows.",
    "Meeting notes for the program review.",
    "Roster and phone tree.",
    "Draft plan, do not forward.",
)

# --- classified markings --------------------------------------------------------------------------------

_LEVELS = ("TOP SECRET", "SECRET", "CONFIDENTIAL")
_CLASSIFIED_CONTROLS = (
    "NOFORN",
    "ORCON",
    "IMCON",
    "PROPIN",
    "FISA",
    "RD",
    "FRD",
    "SI",
    "TK",
    "HCS",
    "REL TO USA, FVEY",
    "REL TO USA, GBR",
    "REL TO USA, AUS, CAN",
)
_PORTION_LEVELS = ("TS", "S", "C")
_PORTION_CONTROLS = ("NF", "NOFORN", "REL", "OC", "SI", "TK", "SCI", "REL TO USA, FVEY", "ORCON")
_PARAGRAPH_LEADS = ("", "1. ", "2. ", "a. ", "- ", "  ", "SUBJECT: ")


@st.composite
def _controls(draw: st.DrawFn, options: tuple[str, ...]) -> str:
    chosen = draw(st.lists(_pick(options), min_size=1, max_size=3, unique=True))
    return "//".join(chosen)


@st.composite
def classified_banners(draw: st.DrawFn) -> Positive:
    level = draw(_pick(_LEVELS))
    body = draw(_pick(_BODIES))
    form = draw(_pick(("alone", "controls", "label")))
    if form == "alone":
        bare = " " not in level
        return Positive(
            "classified.banner", level, "", "\n" + body, inline=False, keep_case=level if bare else ""
        )
    if form == "label":
        tail = draw(_pick(("", "\n" + body)))
        # The label in any case; the level word keeps its capitals ("Classification: Confidential" is
        # also how commercial data labels read).
        return Positive(
            "classified.banner", "CLASSIFICATION: " + level, "", tail, inline=not tail, keep_case=level
        )
    controls = draw(_controls(_CLASSIFIED_CONTROLS))
    if level == "TOP SECRET" and draw(st.booleans()):
        controls = "SCI//" + controls
    return Positive("classified.banner", f"{level}//{controls}", "", draw(_pick(("", " " + body))))


@st.composite
def classified_portions(draw: st.DrawFn) -> Positive:
    level = draw(_pick(_PORTION_LEVELS))
    mark, bare = f"({level})", True
    if draw(st.booleans()):
        mark, bare = f"({level}//{draw(_controls(_PORTION_CONTROLS))})", False
    lead, tail = draw(_pick(_PARAGRAPH_LEADS)), " " + draw(_pick(_SENTENCES))
    return Positive("classified.portion", mark, lead, tail, keep_case=mark if bare else "")


@st.composite
def authority_blocks(draw: st.DrawFn) -> Positive:
    who = draw(_pick(("J. Smith, Director", "OCA 17", "R. Alvarez, J3")))
    source = draw(_pick(("SCG 12", "Multiple Sources", "USCYBERCOM SCG 2019-01")))
    date = draw(_digits(2).map(lambda d: f"2049{int(d) % 12 + 1:02d}15"))
    core = f"Classified By: {who}\nDerived From: {source}\nDeclassify On: {date}"
    return Positive("classified.authority_block", core, "", "\n" + draw(_pick(_BODIES)), inline=False)


# --- CUI --------------------------------------------------------------------------------------------------

_CUI_DISSEMINATION = ("NOFORN", "FEDCON", "NOCON", "DL ONLY", "REL TO USA, AUS", "REL TO USA, CAN, GBR")
_CUI_SPECIFIED = ("SP-CTI", "SP-EXPT", "SP-PRVCY", "SP-TAX", "SP-SSI", "SP-NNPI", "SP-PCII", "SP-ITAR")


@st.composite
def cui_banners(draw: st.DrawFn) -> Positive:
    body = draw(_pick(_BODIES))
    form = draw(_pick(("alone", "controlled", "spelled", "controls")))
    if form == "alone":
        return Positive("cui.banner", "CUI", "", "\n" + body, inline=False, keep_case="CUI")
    if form == "controlled":
        return Positive("cui.banner", "CONTROLLED", "", "\n" + body, inline=False, keep_case="CONTROLLED")
    if form == "spelled":
        return Positive("cui.banner", "CONTROLLED UNCLASSIFIED INFORMATION", "", "\n" + body, inline=False)
    return Positive(
        "cui.banner", "CUI//" + draw(_pick(_CUI_DISSEMINATION)), "", draw(_pick(("", " " + body)))
    )


@st.composite
def cui_specified(draw: st.DrawFn) -> Positive:
    categories = "/".join(draw(st.lists(_pick(_CUI_SPECIFIED), min_size=1, max_size=2, unique=True)))
    controls = draw(st.one_of(st.just(""), _pick(_CUI_DISSEMINATION).map(lambda c: "//" + c)))
    if draw(st.booleans()):
        core = f"(CUI//{categories}{controls})"
        return Positive("cui.specified", core, draw(_pick(_PARAGRAPH_LEADS)), " " + draw(_pick(_SENTENCES)))
    tail = draw(_pick(("", " " + _BODIES[0], "\n" + _BODIES[1])))
    return Positive("cui.specified", f"CUI//{categories}{controls}", "", tail, inline="\n" not in tail)


@st.composite
def cui_portions(draw: st.DrawFn) -> Positive:
    mark = draw(
        _pick(("(CUI)", "(CUI//FEDCON)", "(CUI//NOFORN)", "(CUI//REL TO USA, AUS)", "(CUI//DL ONLY)"))
    )
    return Positive("cui.portion", mark, draw(_pick(_PARAGRAPH_LEADS)), " " + draw(_pick(_SENTENCES)))


@st.composite
def cui_designation_indicators(draw: st.DrawFn) -> Positive:
    agency = draw(_pick(("DLA", "DoD CIO", "Army Contracting Command", "NAVSEA 05")))
    category = draw(_pick(("OPSEC", "PRVCY", "CTI", "PROCURE", "EXPT")))
    poc = draw(_pick(("J. Doe, procurement office", "Contracts Branch", "Program Security Officer")))
    lines = [f"Controlled by: {agency}", f"CUI Category: {category}"]
    if draw(st.booleans()):
        lines.append("Limited Dissemination Control: " + draw(_pick(_CUI_DISSEMINATION)))
    lines.append(f"POC: {poc}")
    return Positive("cui.designation_indicator", "\n".join(lines), "", "\n" + draw(_pick(_BODIES)), False)


# --- legacy markings --------------------------------------------------------------------------------------

_LEGACY_LONG = ("FOR OFFICIAL USE ONLY", "SENSITIVE BUT UNCLASSIFIED", "LAW ENFORCEMENT SENSITIVE")
_LEGACY_SHORT = ("FOUO", "SBU", "LES")


@st.composite
def legacy_markings(draw: st.DrawFn) -> Positive:
    """The forms the detector documents: controls, portion marks, long phrases, a short word alone."""
    form = draw(_pick(("control", "single_slash", "portion", "phrase", "alone")))
    if form == "control":
        control = draw(_pick(_LEGACY_LONG + _LEGACY_SHORT))
        return Positive("cui.legacy", f"UNCLASSIFIED//{control}", "", draw(_pick(("", " " + _BODIES[0]))))
    if form == "single_slash":
        return Positive("cui.legacy", "UNCLASSIFIED/FOUO", "", "")
    if form == "portion":
        mark = f"(U//{draw(_pick(_LEGACY_SHORT))})"
        return Positive("cui.legacy", mark, draw(_pick(_PARAGRAPH_LEADS)), " " + draw(_pick(_SENTENCES)))
    if form == "phrase":  # in capitals: "for official use only" in a sentence is prose
        tail = draw(_pick(("", "\n" + _BODIES[1])))
        phrase = draw(_pick(_LEGACY_LONG))
        return Positive("cui.legacy", phrase, "", tail, inline=not tail, keep_case=phrase)
    word = draw(_pick(_LEGACY_SHORT))
    return Positive("cui.legacy", word, "", "\n" + draw(_pick(_BODIES)), inline=False, keep_case=word)


@st.composite
def legacy_bracketed_or_prefixed(draw: st.DrawFn) -> Positive:
    """Legacy markings as people type them: a bracketed tag or a prefix on a subject line or a paragraph."""
    word = draw(_pick(_LEGACY_SHORT[:2] + _LEGACY_LONG[:1]))
    subject = draw(_pick(("Quarterly roster", "Gate access list", "Travel itinerary", "Budget draft")))
    form = draw(_pick(("bracket", "prefix", "subject")))
    if form == "bracket":
        return Positive("cui.legacy", f"[{word}]", "", " " + subject)
    if form == "prefix":
        return Positive("cui.legacy", f"{word}:", "", " " + draw(_pick(_SENTENCES)))
    return Positive("cui.legacy", f"[{word}]", "Subject: ", " " + subject)


# --- export control ---------------------------------------------------------------------------------------

_NOTICE_SUBJECTS = (
    ("This document", "is", "contains"),
    ("This drawing", "is", "contains"),
    ("The attached data", "is", "contains"),
    ("These specifications", "are", "contain"),
    ("These drawings", "are", "contain"),
    ("The enclosed software", "is", "contains"),
)
_ITAR_REGIMES = (
    "ITAR",
    "International Traffic in Arms Regulations",
    "Arms Export Control Act",
    "22 CFR 120-130",
    "ITAR (22 CFR 120-130)",
)
_EAR_REGIMES = ("EAR", "Export Administration Regulations", "15 CFR 730-774", "EAR (15 CFR 730-774)")


@st.composite
def _notices(draw: st.DrawFn, category: str, regimes: tuple[str, ...]) -> Positive:
    subject, be, contain = draw(_pick(_NOTICE_SUBJECTS))
    regime = draw(_pick(regimes))
    the = "" if regime[0].isdigit() else "the "
    verb = draw(
        _pick(
            (
                f"{be} subject to {the}",
                f"{be} controlled under {the}",
                f"{contain} technical data controlled by {the}",
                f"{contain} information restricted by {the}",
            )
        )
    )
    core = f"{subject} {verb}{regime}."
    return Positive(category, core, "", "", keep_case="EAR" if "EAR" in regime else "")


def itar_notices() -> st.SearchStrategy[Positive]:
    return _notices("export.itar", _ITAR_REGIMES)


def ear_notices() -> st.SearchStrategy[Positive]:
    return _notices("export.ear", _EAR_REGIMES)


@st.composite
def regulation_citations(draw: st.DrawFn) -> Positive:
    """Notices that cite the regulation or the licensing office without the word "export"."""
    if draw(st.booleans()):
        regime = draw(_pick(("the ITAR (22 CFR 120-130)", "22 CFR 120-130", "the ITAR")))
        office = draw(_pick(("DDTC", "the Directorate of Defense Trade Controls")))
        core = f"Subject to {regime}. Release to foreign persons requires prior approval from {office}."
        return Positive("export.itar", core)
    regime = draw(_pick(("the EAR (15 CFR 730-774)", "15 CFR 730-774", "the EAR")))
    office = draw(_pick(("BIS", "the Bureau of Industry and Security")))
    core = f"Subject to {regime}. A license from {office} is required before release to foreign nationals."
    return Positive("export.ear", core, keep_case="EAR")


@st.composite
def eccns(draw: st.DrawFn) -> Positive:
    number = draw(st.sampled_from("0123456789")) + draw(st.sampled_from("ABCDE")) + draw(_digits(3))
    number += "".join(draw(st.lists(_pick((".a", ".b", ".c", ".1", ".2", ".4")), max_size=2)))
    label = draw(_pick(("ECCN: ", "ECCN ", "Export Control Classification Number (ECCN) ", "ECCN # ")))
    return Positive("export.eccn", label + number, draw(_pick(("", "Item 4: ", "The controller is "))))


_DIST_AUDIENCES = (
    "U.S. Government agencies only",
    "U.S. Government agencies and their contractors",
    "the Department of Defense and U.S. DoD contractors only",
    "DoD Components only",
)
_DIST_REASONS = ("Proprietary Information", "Test and Evaluation", "Critical Technology", "Administrative")


@st.composite
def distribution_statements(draw: st.DrawFn) -> Positive:
    letter = draw(st.sampled_from("BCDEF"))
    if letter == "F":
        tail = "Further dissemination only as directed by the controlling office."
    else:
        tail = f"Distribution authorized to {draw(_pick(_DIST_AUDIENCES))}; {draw(_pick(_DIST_REASONS))}."
    return Positive("export.distribution_statement", f"DISTRIBUTION STATEMENT {letter}.", "", " " + tail)


@st.composite
def export_banners(draw: st.DrawFn) -> Positive:
    return Positive("export.banner", "EXPORT CONTROLLED", "", "\n" + draw(_pick(_BODIES)), inline=False)


# --- PII (values valid under validators.py's rules) ------------------------------------------------------

_KNOWN_INVALID_SSNS = frozenset({"078051120", "219099999", "457555462"})


@st.composite
def ssn_digits(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    group = draw(st.integers(1, 99))
    serial = draw(st.integers(1, 9999))
    digits = f"{area:03d}{group:02d}{serial:04d}"
    return draw(st.just(digits).filter(lambda d: d not in _KNOWN_INVALID_SSNS))


@st.composite
def ssns(draw: st.DrawFn) -> Positive:
    d = draw(ssn_digits())
    form = draw(_pick(("hyphen", "space", "labelled_plain")))
    if form == "labelled_plain":
        value = d
        label = draw(_pick(("SSN: ", "SSN ", "Social Security Number: ", "SS# ")))
    else:
        sep = "-" if form == "hyphen" else " "
        value = f"{d[:3]}{sep}{d[3:5]}{sep}{d[5:]}"
        label = draw(_pick(("SSN: ", "number ", "Social Security No. ", "")))
    return Positive("pii.ssn", label + value, draw(_pick(("", "Employee record: "))), " on file", value=d)


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass Luhn."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        value = int(char)
        if index % 2 == 0:  # doubled once the check digit is appended
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


# (prefix choices, length)
_CARD_BRANDS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("4",), 16),
    (("51", "52", "53", "54", "55"), 16),
    (("2221", "2500", "2720"), 16),
    (("34", "37"), 15),
    (("6011", "65"), 16),
)


@st.composite
def card_digits(draw: st.DrawFn, valid: bool = True) -> str:
    prefixes, length = draw(_pick(_CARD_BRANDS))
    prefix = draw(_pick(prefixes))
    body = prefix + draw(_digits(length - len(prefix) - 1))
    check = luhn_check_digit(body)
    if not valid:
        check = str((int(check) + draw(st.integers(1, 9))) % 10)
    return body + check


def group_card(digits: str, sep: str) -> str:
    if len(digits) == 15:
        return sep.join((digits[:4], digits[4:10], digits[10:]))
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


@st.composite
def cards(draw: st.DrawFn) -> Positive:
    d = draw(card_digits())
    sep = draw(_pick(("", " ", "-")))
    label = draw(_pick(("card ", "Card number: ", "charged to ", "")))
    return Positive("pii.credit_card", label + group_card(d, sep), "Payment: ", " approved", value=d)


def _nanp_code() -> st.SearchStrategy[str]:
    return st.integers(200, 999).map(str).filter(lambda c: c[1:] != "11")


@st.composite
def phones(draw: st.DrawFn) -> Positive:
    area, exchange, line = draw(_nanp_code()), draw(_nanp_code()), draw(_digits(4))
    form = draw(_pick(("paren", "hyphen", "dot", "intl")))
    value = {
        "paren": f"({area}) {exchange}-{line}",
        "hyphen": f"{area}-{exchange}-{line}",
        "dot": f"{area}.{exchange}.{line}",
        "intl": f"+1 {area} {exchange} {line}",
    }[form]
    label = draw(_pick(("call ", "Phone: ", "tel. ", "")))
    return Positive("pii.phone", label + value, "", " after 5 pm", value=area + exchange + line)


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)


@st.composite
def emails(draw: st.DrawFn) -> Positive:
    local = draw(_NAME) + draw(st.one_of(st.just(""), _NAME.map(lambda s: "." + s)))
    domain = draw(_NAME) + "." + draw(_pick(("com", "net", "org", "gov", "mil", "us", "io")))
    value = f"{local}@{domain}"
    label = draw(_pick(("mail ", "Contact: ", "reply to ", "")))
    return Positive("pii.email", label + value, "", " today", value=value)


@st.composite
def passports(draw: st.DrawFn) -> Positive:
    number = draw(_pick(("", "A", "C", "E", "X"))) + draw(_digits(8))
    if not number[0].isalpha():
        number += draw(_digits(1))
    label = draw(_pick(("Passport No.: ", "passport number ", "Passport: ")))
    return Positive("pii.passport", label + number, "Traveller ", "", value=number)


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@st.composite
def dobs(draw: st.DrawFn) -> Positive:
    year, month, day = draw(st.integers(1930, 2005)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
    form = draw(_pick(("us", "iso", "long", "born")))
    if form == "us":
        value, label = f"{month:02d}/{day:02d}/{year}", "DOB: "
    elif form == "iso":
        value, label = f"{year}-{month:02d}-{day:02d}", "Date of birth: "
    elif form == "long":
        value, label = f"{_MONTHS[month - 1]} {day}, {year}", "Date of birth: "
    else:
        value, label = f"{day} {_MONTHS[month - 1]} {year}", "born on "
    return Positive("pii.dob", label + value, "Applicant ", "", value=value)


@st.composite
def edipis(draw: st.DrawFn) -> Positive:
    number = str(draw(st.integers(1_000_000_000, 9_999_999_999)))
    label = draw(_pick(("DoD ID: ", "EDIPI ", "DoD ID number ", "EDIPI: ")))
    return Positive("pii.edipi", label + number, "Member ", "", value=number)


_ABA_PREFIXES = tuple([f"{n:02d}" for n in range(13)] + [str(n) for n in range(21, 33)] + ["61", "80"])


@st.composite
def aba_numbers(draw: st.DrawFn) -> Positive:
    partial = draw(_pick(_ABA_PREFIXES)) + draw(_digits(6))
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    check = (-sum(w * int(c) for w, c in zip(weights, partial, strict=True))) % 10
    value = partial + str(check)
    label = draw(_pick(("routing number ", "RTN: ", "ABA ")))
    return Positive("pii.aba_routing", label + value, "Bank ", "", value=value)


@st.composite
def column_labelled(draw: st.DrawFn) -> Positive:
    """Identifiers that only a column header labels (CSV, TSV, markdown table)."""
    kind = draw(_pick(("ssn", "dob", "passport", "edipi")))
    if kind == "ssn":
        header, value, category = "SSN", draw(ssn_digits()), "pii.ssn"
    elif kind == "dob":
        y, m, d = draw(st.integers(1930, 2005)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
        header, value, category = "DOB", f"{m:02d}/{d:02d}/{y}", "pii.dob"
    elif kind == "passport":
        header, value, category = "Passport", draw(_digits(9)), "pii.passport"
    else:
        header, value, category = "EDIPI", str(draw(st.integers(1_000_000_000, 9_999_999_999))), "pii.edipi"
    name = draw(_pick(("Jane Doe", "R. Alvarez", "Kim Park")))
    layout = draw(_pick(("csv", "tsv", "markdown")))
    if layout == "csv":
        lead, tail = f"name,unit,{header}\n{name},HQ,", "\n"
    elif layout == "tsv":
        lead, tail = f"name\tunit\t{header}\n{name}\tHQ\t", "\n"
    else:
        lead, tail = f"| name | unit | {header} |\n|---|---|---|\n| {name} | HQ | ", " |\n"
    return Positive(category, value, lead, tail, inline=False, value=value.replace("/", ""))


# --- families ---------------------------------------------------------------------------------------------

FAMILIES: dict[str, st.SearchStrategy[Positive]] = {
    "ssn": ssns(),
    "credit_card": cards(),
    "phone": phones(),
    "email": emails(),
    "passport": passports(),
    "dob": dobs(),
    "edipi": edipis(),
    "aba_routing": aba_numbers(),
    "column_labelled_pii": column_labelled(),
    "classified_banner": classified_banners(),
    "classified_portion": classified_portions(),
    "authority_block": authority_blocks(),
    "cui_banner": cui_banners(),
    "cui_specified": cui_specified(),
    "cui_portion": cui_portions(),
    "cui_designation_indicator": cui_designation_indicators(),
    "legacy_marking": legacy_markings(),
    "legacy_bracketed_or_prefixed": legacy_bracketed_or_prefixed(),
    "itar_notice": itar_notices(),
    "ear_notice": ear_notices(),
    "regulation_citation": regulation_citations(),
    "eccn": eccns(),
    "distribution_statement": distribution_statements(),
    "export_banner": export_banners(),
}

# --- obfuscations (each changes the core of a positive) ---------------------------------------------------

ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
UNICODE_DASHES = ("\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\ufe63", "\uff0d")
UNICODE_SPACES = ("\u00a0", "\u2007", "\u2009", "\u202f", "\u3000", "\u2002")
# Latin letter -> Cyrillic and Greek letters drawn the same (Unicode TR39 confusables).
CONFUSABLES: dict[str, tuple[str, ...]] = {
    "A": ("\u0410", "\u0391"),
    "B": ("\u0412", "\u0392"),
    "C": ("\u0421",),
    "E": ("\u0415", "\u0395"),
    "H": ("\u041d", "\u0397"),
    "I": ("\u0406", "\u0399"),
    "J": ("\u0408",),
    "K": ("\u041a", "\u039a"),
    "M": ("\u041c", "\u039c"),
    "N": ("\u039d",),
    "O": ("\u041e", "\u039f"),
    "P": ("\u0420", "\u03a1"),
    "S": ("\u0405",),
    "T": ("\u0422", "\u03a4"),
    "X": ("\u0425", "\u03a7"),
    "Y": ("\u03a5",),
    "Z": ("\u0396",),
    "a": ("\u0430",),
    "c": ("\u0441",),
    "e": ("\u0435",),
    "i": ("\u0456",),
    "j": ("\u0458",),
    "o": ("\u043e", "\u03bf"),
    "p": ("\u0440",),
    "s": ("\u0455",),
    "x": ("\u0445",),
    "y": ("\u0443",),
}

Obfuscation = Callable[[st.DataObject, Positive], Positive]


def _with_core(positive: Positive, core: str) -> Positive:
    return replace(positive, core=core)


def random_case(data: st.DataObject, p: Positive) -> Positive:
    mode = data.draw(_pick(("lower", "title", "random")), label="case mode")
    keep = p.keep_case
    pieces = p.core.split(keep) if keep else [p.core]
    changed = []
    for piece in pieces:
        if mode == "lower":
            changed.append(piece.lower())
        elif mode == "title":
            changed.append(piece.title())
        else:
            flips = data.draw(
                st.lists(st.booleans(), min_size=len(piece), max_size=len(piece)), label="flips"
            )
            changed.append("".join(c.swapcase() if f else c for c, f in zip(piece, flips, strict=True)))
    return _with_core(p, keep.join(changed))


def _fullwidth_char(c: str) -> str:
    if c == " ":
        return "\u3000"
    if "!" <= c <= "~":
        return chr(ord(c) + 0xFEE0)
    return c


def fullwidth(data: st.DataObject, p: Positive) -> Positive:
    """Fullwidth forms for all of the core, or for a random non-empty part of it."""
    if data.draw(st.booleans(), label="whole core"):
        return _with_core(p, "".join(map(_fullwidth_char, p.core)))
    chosen = set(data.draw(st.lists(st.integers(0, len(p.core) - 1), min_size=1), label="positions"))
    return _with_core(p, "".join(_fullwidth_char(c) if i in chosen else c for i, c in enumerate(p.core)))


def zero_width(data: st.DataObject, p: Positive) -> Positive:
    """One or more format characters between characters of the core."""
    gaps = data.draw(st.lists(st.integers(1, len(p.core) - 1), min_size=1, max_size=6), label="gaps")
    chars = list(p.core)
    for gap in sorted(set(gaps), reverse=True):
        chars.insert(gap, data.draw(_pick(ZERO_WIDTH), label="format char"))
    return _with_core(p, "".join(chars))


def confusable(data: st.DataObject, p: Positive) -> Positive:
    """One Latin letter of the core replaced by a Cyrillic or Greek look-alike (none when it has no such
    letter: a bare number)."""
    positions = [i for i, c in enumerate(p.core) if c in CONFUSABLES]
    if not positions:
        return p
    i = data.draw(_pick(positions), label="letter")
    glyph = data.draw(_pick(CONFUSABLES[p.core[i]]), label="look-alike")
    return _with_core(p, p.core[:i] + glyph + p.core[i + 1 :])


def unicode_separators(data: st.DataObject, p: Positive) -> Positive:
    """Hyphens replaced by Unicode dashes and spaces by Unicode spaces (at least one when there is one)."""
    positions = [i for i, c in enumerate(p.core) if c in "- "]
    if not positions:
        return p
    chosen = set(data.draw(st.lists(_pick(positions), min_size=1), label="separators"))
    out = []
    for i, char in enumerate(p.core):
        if i in chosen:
            out.append(data.draw(_pick(UNICODE_DASHES if char == "-" else UNICODE_SPACES), label="separator"))
        else:
            out.append(char)
    return _with_core(p, "".join(out))


def html_entities(data: st.DataObject, p: Positive) -> Positive:
    """Characters of the core written as HTML character references, as a web page's source has them:
    spaces as ``&nbsp;``, others as ``&#NN;`` or ``&#xHH;`` (at least one)."""
    chosen = set(data.draw(st.lists(st.integers(0, len(p.core) - 1), min_size=1), label="positions"))
    hexadecimal = data.draw(st.booleans(), label="hexadecimal")

    def reference(c: str) -> str:
        if c == " ":
            return "&nbsp;"
        return f"&#x{ord(c):X};" if hexadecimal else f"&#{ord(c)};"

    return _with_core(p, "".join(reference(c) if i in chosen else c for i, c in enumerate(p.core)))


OBFUSCATIONS: dict[str, Obfuscation] = {
    "case": random_case,
    "html_entities": html_entities,
    "fullwidth": fullwidth,
    "zero_width": zero_width,
    "confusable": confusable,
    "unicode_separators": unicode_separators,
}
# What a normalizer must undo without inventing anything: near-misses stay allowed under these.
NORMALIZATION_OBFUSCATIONS = {k: v for k, v in OBFUSCATIONS.items() if k != "case"}

# --- wrappers (the whole text placed where exports and tools put it) -------------------------------------


def markdown_row(text: str) -> str:
    return f"| # | owner | note |\n|---|---|---|\n| 7 | ops | {text} |\n"


def csv_cell(text: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "owner", "note"])
    writer.writerow(["7", "ops", text])
    return out.getvalue()


def log_line(text: str) -> str:
    return f"2026-03-14T09:26:53.412Z INFO  [worker-3] request accepted: {text}\n"


def json_string(text: str) -> str:
    return '{"id": 7, "note": ' + json.dumps(text) + "}"


def json_after_line_break(text: str) -> str:
    """The text on a JSON string's second line: right after an escaped line break (``\\n``)."""
    return '{"id": 7, "note": ' + json.dumps("Notes from the call:\n" + text) + "}"


def json_string_unescaped(text: str) -> str:
    """A JSON string as written with ``ensure_ascii=False``: non-ASCII characters left as they are."""
    return '{"id": 7, "note": ' + json.dumps(text, ensure_ascii=False) + "}"


def quoted_printable_mail(text: str) -> str:
    """The text as a quoted-printable e-mail body: long lines broken with soft line breaks, "=" and
    non-ASCII characters escaped."""
    body = quopri.encodestring(text.encode("utf-8")).decode("ascii")
    return f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n{body}"


WRAPPERS: dict[str, Callable[[str], str]] = {
    "quoted_printable_mail": quoted_printable_mail,
    "markdown_row": markdown_row,
    "csv_cell": csv_cell,
    "log_line": log_line,
    "json_string": json_string,
    "json_after_line_break": json_after_line_break,
}

# --- near-misses --------------------------------------------------------------------------------------


@st.composite
def invalid_ssns(draw: st.DrawFn) -> str:
    """ddd-dd-dddd numbers the SSA never issues: area 000, 666 or 9xx, group 00 or serial 0000."""
    area = draw(
        st.sampled_from(["000", "666"])
        | st.integers(900, 999).map(str)
        | st.integers(1, 899).map(lambda a: f"{a:03d}")
    )
    group = draw(st.integers(1, 99).map(lambda g: f"{g:02d}"))
    serial = draw(st.integers(1, 9999).map(lambda s: f"{s:04d}"))
    broken = draw(_pick(("area", "group", "serial"))) if area not in ("000", "666") and area[0] != "9" else ""
    if broken == "area":
        area = draw(st.sampled_from(["000", "666"]) | st.integers(900, 999).map(str))
    elif broken == "group":
        group = "00"
    elif broken == "serial":
        serial = "0000"
    label = draw(_pick(("SSN: ", "SSN ", "number ", "")))
    return f"Record {label}{area}-{group}-{serial} was rejected."


@st.composite
def luhn_invalid_cards(draw: st.DrawFn) -> str:
    digits = draw(card_digits(valid=False).filter(lambda d: len(d) == 16))
    sep = draw(_pick(("", " ", "-")))
    return f"Order {group_card(digits, sep)} failed its checksum."


_PROSE = (
    "The secret to a good {thing} is patience.",
    "Please keep the surprise party secret from {name}.",
    "{name} shared a confidential tip about the {thing}.",
    "All salary discussions remain confidential between you and {name}.",
    "We export {thing} to three countries every quarter.",
    "Click Export to save the {thing} as a spreadsheet.",
    "The export function writes the {thing} to disk.",
    "Export the {thing} before Friday, {name}.",
    "Her classified ad for the {thing} ran on Sunday.",
    "The greenhouse is climate controlled for the {thing}.",
    "Secret Santa gifts for the {thing} team are due Friday.",
    "The top secret recipe for the {thing} stays in the family.",
    "{name} kept the {thing} a secret until the reunion.",
    "Sensitive skin needs a gentle {thing}.",
)


@st.composite
def ordinary_prose(draw: st.DrawFn) -> str:
    template = draw(_pick(_PROSE))
    thing = draw(_pick(("chili", "quarterly report", "garden", "soup", "bicycle", "photo album", "lemonade")))
    name = draw(_pick(("Maria", "Dev", "Grandma", "Tom", "the neighbours")))
    sentence = template.format(thing=thing, name=name)
    return sentence[0].upper() + sentence[1:]


NEAR_MISSES: dict[str, st.SearchStrategy[str]] = {
    "invalid_ssn": invalid_ssns(),
    "luhn_invalid_card": luhn_invalid_cards(),
    "ordinary_prose": ordinary_prose(),
}
