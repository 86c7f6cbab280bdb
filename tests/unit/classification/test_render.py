"""Rendering the encodings a text picks up between systems: what is rendered, what is left, and that a
finding in the rendered text maps back to the characters that were sent."""

from __future__ import annotations

import pytest
from xpi.domain.classification import detect
from xpi.domain.classification.engine import redact
from xpi.domain.classification.render import render


def found(text: str) -> list[tuple[str, str]]:
    return [(d.category, text[d.start : d.end]) for d in detect(text)]


def test_plain_text_is_not_copied() -> None:
    assert render("Quarterly review: R&D spend rose 4% (see = sign in cell B2).") is None


@pytest.mark.parametrize(
    ("encoded", "rendered"),
    [
        ("TOP&nbsp;SECRET&#47;&#47;NOFORN", "TOP\u00a0SECRET//NOFORN"),
        ("CUI&#x2F;&#x2F;SP-PRVCY", "CUI//SP-PRVCY"),
        ("R&amp;D &lt;draft&gt;", "R&D <draft>"),
        ("&unknownentity; stays", "&unknownentity; stays"),
    ],
)
def test_character_references_are_rendered(encoded: str, rendered: str) -> None:
    result = render(encoded)
    assert (result.text if result else encoded) == rendered


def test_a_finding_in_rendered_html_redacts_the_encoded_characters() -> None:
    # GIVEN a banner and an address written with character references
    text = "<b>TOP&nbsp;SECRET&#47;&#47;NOFORN</b> mail dmorales&#64;example.com today"
    # WHEN it is classified THEN each finding spans its encoded characters in the text as sent
    assert found(text) == [
        ("classified.banner", "TOP&nbsp;SECRET&#47;&#47;NOFORN"),
        ("pii.email", "dmorales&#64;example.com"),
    ]
    assert redact(text, detect(text)) == "<b>[REDACTED:CLASSIFIED]</b> mail [REDACTED:EMAIL] today"


QP_HEAD = "Content-Transfer-Encoding: quoted-printable\n\n"


def test_quoted_printable_is_rendered_where_the_text_declares_it() -> None:
    text = (
        QP_HEAD
        + "UNCLASSIFIED//FOR OFFICIAL USE ON=\nLY\n\ncall me at 703-614-=\n2271 or r.okafor=40example.com"
    )
    assert [category for category, _ in found(text)] == ["cui.legacy", "pii.phone", "pii.email"]
    assert redact(text, detect(text)).endswith("call me at [REDACTED:PHONE] or [REDACTED:EMAIL]")


def test_quoted_printable_escapes_are_left_where_nothing_declares_them() -> None:
    # "=40" in a spreadsheet formula is not an escape
    assert render("total =40 units, margin =2F") is None


def test_a_calendar_s_folded_lines_are_unfolded() -> None:
    # GIVEN an invitation whose description's banner the calendar folded (a line break and one space)
    text = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDESCRIPTION:Agenda below.\\n\\nCUI//\r\n SP-PRVCY\\nItem 1\r\n"
        "END:VEVENT"
    )
    # WHEN it is classified THEN the banner is read whole and spans the fold in the text as sent
    assert found(text) == [("cui.specified", "CUI//\r\n SP-PRVCY")]


def test_folds_are_unfolded_only_in_a_calendar_or_a_card() -> None:
    # a line break and an indent in a plain text is the layout of two lines, not a fold
    assert render("SUMMARY:Design review\n  of the CUI//\n SP-PRVCY template") is None
    # in a calendar, an escaped break before a space is a break, not a fold
    rendered = render("BEGIN:VCALENDAR\nDESCRIPTION:Items:\\n 1. CUI training")
    assert rendered is not None and rendered.text == "BEGIN:VCALENDAR\nDESCRIPTION:Items: \n 1. CUI training"


def test_url_encoding_is_decoded_where_the_text_is_url_encoded() -> None:
    # GIVEN an analytics beacon whose query string carries a document's first line, percent-encoded
    text = "GET /collect?ev=share&title=FOR%20OFFICIAL%20USE%20ONLY%0ASubject%3A%20Closures HTTP/1.1"
    # WHEN it is classified THEN the marking is read, and its span is the encoded characters as sent
    assert found(text) == [("cui.legacy", "FOR%20OFFICIAL%20USE%20ONLY")]


def test_a_lone_percent_escape_is_left_as_written() -> None:
    # one encoded space is no URL-encoded text ("a 100%20 ratio" in a note)
    assert render("ratio 100%20 of target, up 3% on May") is None


def test_an_encoded_word_in_a_subject_declares_quoted_printable() -> None:
    text = "Subject: =?utf-8?Q?Roster_=E2=80=93_CUI=2F=2FSP-PRVCY?=\n\nsee attached"
    assert ("cui.specified", "CUI=2F=2FSP-PRVCY") in found(text)


def test_rtf_is_rendered_to_its_text() -> None:
    # GIVEN an RTF file whose header and footer hold the banner, and a designation block with \line breaks
    text = (
        "{\\rtf1\\ansi{\\fonttbl{\\f0 Times New Roman;}}\n"
        "{\\header\\pard\\qc\\b CUI\\b0\\par}\n"
        "\\pard Facility access review.\\par\n"
        "{\\pard Controlled by: DLA\\line CUI Category: PHYS\\line POC: T. Hargrove\\par}}"
    )
    categories = {category for category, _ in found(text)}
    assert categories == {"cui.banner", "cui.designation_indicator"}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("F0R OFFlCIAL USE 0NLY\nDR runbook, page 3", "cui.legacy"),
        ("D1STRIBUTION STATEMENT B. Distribution authorized to U.S. Government agencies only.", None),
        ("EXP0RT C0NTR0LLED -- ITAR\nlab notebook", "export.itar"),
        ("5ECRET//N0F0RN\nsummary", "classified.banner"),
    ],
)
def test_ocr_digits_for_letters_in_marking_words_are_read_as_letters(text: str, category: str | None) -> None:
    categories = {c for c, _ in found(text)}
    assert categories and (category is None or category in categories)


@pytest.mark.parametrize(
    "text",
    [
        "Parts A10B, F16 and B0X-1 shipped; COVID19 leave policy unchanged.",
        "SKU S0UP-11 and LOT 0A1 are in bin 5.",
        "The F1LTER module and the T0OL kit",
    ],
)
def test_ocr_reading_changes_only_words_markings_are_made_of(text: str) -> None:
    assert render(text) is None
    assert found(text) == []
