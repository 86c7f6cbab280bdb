"""The finding categories: stable dotted names, what each means, and its redaction placeholder."""

from __future__ import annotations

from typing import NamedTuple


class CategoryInfo(NamedTuple):
    description: str
    placeholder: str


CATEGORIES: dict[str, CategoryInfo] = {
    # Classified national-security information (EO 13526, CAPCO).
    "classified.banner": CategoryInfo(
        "A classification banner line (TOP SECRET, SECRET, CONFIDENTIAL, alone on a line or with '//' "
        "controls anywhere, e.g. SECRET//NOFORN), and NATO's levels (NATO SECRET, COSMIC TOP SECRET) as a "
        "banner or stated of the content ('This briefing is NATO RESTRICTED'), and a level spelled with "
        "spaces between its letters standing as a banner (S E C R E T // N O F O R N).",
        "CLASSIFIED",
    ),
    "classified.portion": CategoryInfo(
        "A classified portion mark: (TS), (S), (C) opening a paragraph, or with controls anywhere, "
        "e.g. (S//NF), (TS//SCI).",
        "CLASSIFIED",
    ),
    "classified.authority_block": CategoryInfo(
        "A classification authority block: 'Classified By:' with 'Derived From:' or 'Declassify On:', "
        "or a derivative one of 'Derived From:' and 'Declassify On:' lines.",
        "CLASSIFIED",
    ),
    # Controlled Unclassified Information (32 CFR 2002, NARA CUI Marking Handbook, DoDI 5200.48).
    "cui.banner": CategoryInfo(
        "A CUI Basic banner: CUI or CONTROLLED alone on a line, CUI//<dissemination control> such as "
        "CUI//NOFORN, UNCLASSIFIED//CUI, a limited dissemination control alone or as a labelled value "
        "('Distro: NOFORN'), or a sentence saying the content is CUI ('This email contains CUI').",
        "CUI",
    ),
    "cui.specified": CategoryInfo(
        "A CUI Specified banner or portion mark (a category prefixed SP-), e.g. CUI//SP-PRVCY, "
        "(CUI//SP-CTI).",
        "CUI",
    ),
    "cui.portion": CategoryInfo("A CUI Basic portion mark: (CUI) opening a paragraph, or (CUI//...).", "CUI"),
    "cui.designation_indicator": CategoryInfo(
        "The CUI designation indicator block ('Controlled by:' lines with 'CUI Category:', "
        "'Limited Dissemination Control:' or 'POC:').",
        "CUI",
    ),
    "cui.legacy": CategoryInfo(
        "A legacy marking: FOR OFFICIAL USE ONLY / FOUO, SENSITIVE BUT UNCLASSIFIED / SBU, "
        "LAW ENFORCEMENT SENSITIVE / LES, as a banner, a control (//FOUO, UNCLASSIFIED/FOUO) or a "
        "portion mark such as (U//FOUO).",
        "CUI",
    ),
    # Export control (ITAR 22 CFR 120-130, EAR 15 CFR 730-774, DoDI 5230.24 distribution statements).
    "export.itar": CategoryInfo(
        "An ITAR / Arms Export Control Act notice on the content (e.g. 'This document contains technical "
        "data whose export is restricted by the Arms Export Control Act').",
        "EXPORT_CONTROLLED",
    ),
    "export.ear": CategoryInfo(
        "An EAR / Export Administration Act notice on the content (e.g. 'This technology is subject to the "
        "Export Administration Regulations').",
        "EXPORT_CONTROLLED",
    ),
    "export.eccn": CategoryInfo(
        "An Export Control Classification Number given as one (ECCN 3A001.a.2); EAR99 is not reported.",
        "EXPORT_CONTROLLED",
    ),
    "export.distribution_statement": CategoryInfo(
        "A DoD distribution statement B-F ('Distribution authorized to U.S. Government agencies only'). "
        "Statement A (public release) is not reported.",
        "EXPORT_CONTROLLED",
    ),
    "export.banner": CategoryInfo(
        "An upper-case EXPORT CONTROLLED banner line that names no regime.", "EXPORT_CONTROLLED"
    ),
    # Personally identifiable information, validated where a rule exists.
    "pii.ssn": CategoryInfo(
        "A U.S. Social Security number (ddd-dd-dddd anywhere, nine digits when labelled) with a valid "
        "area, group and serial.",
        "SSN",
    ),
    "pii.credit_card": CategoryInfo(
        "A payment card number in an issued IIN range that passes Luhn.", "CREDIT_CARD"
    ),
    "pii.passport": CategoryInfo("A passport number next to a 'passport' label.", "PASSPORT"),
    "pii.dob": CategoryInfo(
        "A valid date next to a date-of-birth label (DOB, date of birth, born on).", "DOB"
    ),
    "pii.aba_routing": CategoryInfo(
        "A labelled ABA routing number with a valid prefix and checksum.", "ABA_ROUTING"
    ),
    "pii.edipi": CategoryInfo("A ten-digit DoD ID (EDIPI) next to its label.", "EDIPI"),
    "pii.bank_account": CategoryInfo(
        "A bank account number (6-17 digits) in a table column headed 'Account number', 'Bank account' or "
        "'Account' beside a routing column.",
        "BANK_ACCOUNT",
    ),
    "pii.email": CategoryInfo("An e-mail address.", "EMAIL"),
    "pii.phone": CategoryInfo(
        "A U.S. (NANP) phone number with separators and valid area/exchange codes.", "PHONE"
    ),
    # Content the classifier cannot read.
    "content.uninspectable": CategoryInfo(
        "A segment without inspectable text (image, document or binary content).", "UNINSPECTABLE"
    ),
}

# Comprehend entity types that duplicate a built-in category map onto it; the rest become
# pii.comprehend.<type>.
COMPREHEND_CATEGORY: dict[str, str] = {
    "SSN": "pii.ssn",
    "CREDIT_DEBIT_NUMBER": "pii.credit_card",
    "EMAIL": "pii.email",
    "PHONE": "pii.phone",
    "PASSPORT_NUMBER": "pii.passport",
    "BANK_ROUTING": "pii.aba_routing",
}


def comprehend_category(entity_type: str) -> str:
    """The finding category for a Comprehend PII entity type."""
    return COMPREHEND_CATEGORY.get(entity_type, "pii.comprehend." + entity_type.lower())


def placeholder(category: str) -> str:
    """The typed placeholder that replaces a redacted span, e.g. ``[REDACTED:SSN]``."""
    info = CATEGORIES.get(category)
    if info is not None:
        label = info.placeholder
    elif category.startswith("pii."):
        label = category.rsplit(".", 1)[-1].upper()
    else:
        label = category.upper().replace(".", "_")
    return f"[REDACTED:{label}]"
