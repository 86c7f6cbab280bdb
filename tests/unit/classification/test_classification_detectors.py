"""The built-in detectors, category by category: what they catch, what they must not, and the spans."""

from __future__ import annotations

import pytest
from xpi.domain.classification import detect
from xpi.domain.classification.detectors import OVERLAP, WINDOW, scan


def categories(text: str) -> set[str]:
    return {d.category for d in detect(text)}


def spans(text: str, category: str) -> list[str]:
    return [text[d.start : d.end] for d in detect(text) if d.category == category]


# --- positives: (text, category that must be reported) ------------------------------------------------
POSITIVES = [
    ("SECRET//NOFORN\nbody", "classified.banner"),
    ("TOP SECRET//SI//NOFORN", "classified.banner"),
    ("CONFIDENTIAL\n\nThe panel recommends award.", "classified.banner"),
    ("  SECRET  \nAnnex C", "classified.banner"),
    ("CLASSIFICATION: SECRET", "classified.banner"),
    ("the header reads SECRET // REL TO USA, FVEY here", "classified.banner"),
    ("SECRET/NOFORN", "classified.banner"),
    ('{"doc": "TOP SECRET\\nDeployment order attached."}', "classified.banner"),
    ("(S) The unit moves north.", "classified.portion"),
    ("1. (C) The liaison officer will attend.", "classified.portion"),
    ("a. (TS) Revised range estimate.", "classified.portion"),
    ("text (S//NF) mid-line with controls", "classified.portion"),
    ("(S/NF) Older single-slash style.", "classified.portion"),
    ("SUBJECT: (S) Revised posture", "classified.portion"),
    ("Translate: (C) The delegation arrives.", "classified.portion"),
    ('"(S) The battalion crosses at 0600." Is this grammatical?', "classified.portion"),
    ('{"text": "(S) The asset moves tonight."}', "classified.portion"),
    ("Classified By: J. Smith\nDerived From: SCG 12\nDeclassify On: 20491231", "classified.authority_block"),
    ("CUI\nbody", "cui.banner"),
    ("CUI//NOFORN", "cui.banner"),
    ("CUI//FEDCON", "cui.banner"),
    ("CONTROLLED\nbudget material", "cui.banner"),
    ("CONTROLLED UNCLASSIFIED INFORMATION\ncover sheet", "cui.banner"),
    ("CUI//SP-PRVCY", "cui.specified"),
    ("header CUI // SP-CTI", "cui.specified"),
    ("(CUI//SP-CTI) Interface change.", "cui.specified"),
    ("(CUI) The cost proposal exceeds the estimate.", "cui.portion"),
    ("(CUI//REL TO USA, AUS) participant list", "cui.portion"),
    ("CUI Category: OPSEC\nschedule", "cui.designation_indicator"),
    ("Controlled by: DLA\nPOC: procurement office", "cui.designation_indicator"),
    ("UNCLASSIFIED//FOR OFFICIAL USE ONLY", "cui.legacy"),
    ("UNCLASSIFIED//FOUO", "cui.legacy"),
    ("UNCLASSIFIED/FOUO", "cui.legacy"),
    ("(U//FOUO) Gate schedule changes.", "cui.legacy"),
    ("(U/FOUO) Gate schedule changes.", "cui.legacy"),
    ("(U//LES) Surveillance continues.", "cui.legacy"),
    ("FOUO\nphone tree", "cui.legacy"),
    ("For Official Use Only\ndraft plan", "cui.legacy"),
    ("SENSITIVE BUT UNCLASSIFIED", "cui.legacy"),
    ("SBU NOFORN\nstatistics", "cui.legacy"),
    ("LAW ENFORCEMENT SENSITIVE", "cui.legacy"),
    (
        "This document contains technical data whose export is restricted by the Arms Export Control Act.",
        "export.itar",
    ),
    ("This drawing contains ITAR-controlled technical data.", "export.itar"),
    (
        "These specifications are controlled under the International Traffic in Arms Regulations.",
        "export.itar",
    ),
    ("The attached data is subject to 22 CFR 120-130.", "export.itar"),
    ("ITAR CONTROLLED\nassembly instructions", "export.itar"),
    ("This document contains ITAR data.", "export.itar"),
    ("This technology is subject to the EAR.", "export.ear"),
    (
        "The information in this presentation is subject to the Export Administration Regulations.",
        "export.ear",
    ),
    ("The enclosed software is controlled under 15 CFR 774.", "export.ear"),
    ("EXPORT CONTROLLED - EAR", "export.ear"),
    ("ECCN: 3A001.b.4", "export.eccn"),
    ("Export Control Classification Number (ECCN) 9E003.a.1", "export.eccn"),
    (
        "DISTRIBUTION STATEMENT D. Distribution authorized to the Department of Defense only.",
        "export.distribution_statement",
    ),
    ("DISTRIBUTION STATEMENT F. Further dissemination only as directed.", "export.distribution_statement"),
    (
        "Distribution authorized to U.S. Government agencies only; test and evaluation.",
        "export.distribution_statement",
    ),
    ("EXPORT CONTROLLED\nprocess spec", "export.banner"),
    ("SSN: 219-45-8832", "pii.ssn"),
    ("number 531 22 8471 on file", "pii.ssn"),
    ("The applicant's SSN is 482019375.", "pii.ssn"),
    ("card 4111 1111 1111 1111 charged", "pii.credit_card"),
    ("Amex 3782 822463 10005", "pii.credit_card"),
    ('"card": "5555555555554444"', "pii.credit_card"),
    ("passport number 561234987", "pii.passport"),
    ("Passport No.: A12345678", "pii.passport"),
    ("DOB: 03/15/1985", "pii.dob"),
    ("Date of birth: July 4, 1976", "pii.dob"),
    ("born on 12 March 1990", "pii.dob"),
    ('"dob": "1988-11-02"', "pii.dob"),
    ("routing number 021000021", "pii.aba_routing"),
    ("RTN: 071000013", "pii.aba_routing"),
    ("DoD ID: 1502847731", "pii.edipi"),
    ("EDIPI 1234567890", "pii.edipi"),
    ("mail jane.doe@contoso.com today", "pii.email"),
    ("<pat.kim@fabrikam.net>", "pii.email"),
    ("call (202) 555-0173", "pii.phone"),
    ("+1 312 555 0148", "pii.phone"),
    ("1-800-555-0199", "pii.phone"),
    ("571.555.0199", "pii.phone"),
]


@pytest.mark.parametrize(("text", "category"), POSITIVES)
def test_detects(text: str, category: str) -> None:
    assert category in categories(text)


# --- near-misses: nothing may be reported ---------------------------------------------------------------
NEAR_MISSES = [
    "the secret ingredient is cocoa",
    "Confidential: this e-mail is intended only for the addressee.",
    "CONFIDENTIALITY NOTICE: contents are privileged.",
    "Upload the file(s) to the shared drive.",
    "(c) 2024 Acme Corporation. All rights reserved.",
    "(C) 2023 Acme Widgets, Inc.",
    "Controlled Unclassified Information (CUI) is a government-wide program.",
    "See Section (S) of the contract.",
    "(A) mitochondria\n(B) nucleus\n(C) ribosome",
    "Sizes:\n(S) Small\n(M) Medium\n(L) Large",
    "(S)-ibuprofen is the active enantiomer.",
    "Secure/Multipurpose Internet Mail Extensions (S/MIME) signs mail.",
    "SECRET_KEY = settings.get('SECRET_KEY')",
    "UNCLASSIFIED\n(U) The commissary extends its hours.\nUNCLASSIFIED",
    "Levels:\n- PUBLIC\n- INTERNAL\n- CONFIDENTIAL",
    "PUBLIC\nINTERNAL\nCONFIDENTIAL\nRESTRICTED",
    "PRIVATE & CONFIDENTIAL",
    "The candidate must obtain a SECRET clearance.",
    "Active TS/SCI clearance required.",
    "TypeScript (TS) compiles to JavaScript.",
    "What is the difference between ITAR and EAR?",
    "This document is a summary of the ITAR training.",
    "I tabbed out the guitar file; this file contains the chords.",
    "This report covers the inner ear.",
    "ECCN: EAR99",
    "This product is classified EAR99.",
    "DISTRIBUTION STATEMENT A. Approved for public release; distribution is unlimited.",
    "Distribution Statement C applies when release is limited.",
    "Check your LES at the end of the month.",
    "Each SBU reports quarterly results.",
    "The legacy FOUO marking is no longer used.",
    "This parking area is for official use only.",
    "The valve is controlled by: the PLC.",
    "Classified by: size and color.",
    "Invalid on purpose: 000-12-3456, 666-45-1234, 912-34-5678, 123-00-4567, 123-45-0000.",
    "Order 4111 1111 1111 1112 failed its checksum.",
    "123-456-7890 is not a real number; neither is 555-0100.",
    "lodash@4.17.21 and @types/node",
    "logo@2x.png",
    "git clone git@github.com:acme/infra.git",
    "Server 192.168.100.200 and 10.20.30.40",
    "ISBN 978-0-306-40615-7",
    "UUID 550e8400-e29b-41d4-a716-446655440000",
    "birthday party on 06/15/2024; she was born in 2016",
    "Passport photos are 2 x 2 inches; renewal costs $130.",
    "routing number 123456789 fails the checksum",
    "ABA therapy offers 20 hours per week.",
    "DoD ID card holders can use the gym.",
    '{"classification_levels": ["UNCLASSIFIED", "CONFIDENTIAL", "SECRET", "TOP SECRET"]}',
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_miss_is_not_detected(text: str) -> None:
    assert categories(text) == set()


# --- spans -----------------------------------------------------------------------------------------------


def test_banner_span_covers_level_and_controls() -> None:
    text = "header\nTOP SECRET//SI//NOFORN\nbody"
    assert spans(text, "classified.banner") == ["TOP SECRET//SI//NOFORN"]


def test_portion_span_is_the_mark() -> None:
    assert spans("2. (S//NF) The source reports.", "classified.portion") == ["(S//NF)"]


def test_pii_spans_are_the_values_not_the_labels() -> None:
    text = "SSN: 219-45-8832, DOB: 03/15/1985, routing number 021000021, mail a.b@example.com"
    assert spans(text, "pii.ssn") == ["219-45-8832"]
    assert spans(text, "pii.dob") == ["03/15/1985"]
    assert spans(text, "pii.aba_routing") == ["021000021"]
    assert spans(text, "pii.email") == ["a.b@example.com"]


def test_phone_span_includes_country_code_and_parentheses() -> None:
    assert spans("call +1 (202) 555-0173 now", "pii.phone") == ["+1 (202) 555-0173"]


def test_overlapping_detections_of_one_category_merge() -> None:
    # GIVEN an SSN found both by its shape and after its label
    text = "social security number 531 22 8471"
    # THEN one finding remains
    assert spans(text, "pii.ssn") == ["531 22 8471"]


def test_designation_indicator_block_is_one_finding() -> None:
    text = "Controlled by: Army\nControlled by: G-1\nCUI Category: PRVCY\nPOC: Maj. Whitfield\n\nbody"
    assert len([d for d in detect(text) if d.category == "cui.designation_indicator"]) == 1


# --- windows: long texts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [WINDOW - 8, WINDOW - 3, WINDOW, WINDOW + 5, 2 * WINDOW - 11])
def test_detection_straddling_a_window_boundary_is_found_once(offset: int) -> None:
    # GIVEN a long text with a marking and an SSN placed across a window boundary
    filler = "lorem ipsum dolor sit amet " * (3 * WINDOW // 27)
    text = filler[:offset] + "\nSECRET//NOFORN\n" + filler[offset:]
    text = text[: offset + 40] + " SSN 219-45-8832 " + text[offset + 40 :]
    # WHEN scanned
    found = scan(text)
    # THEN each is reported exactly once, at its real position
    banners = [d for d in found if d.category == "classified.banner"]
    ssns = [d for d in found if d.category == "pii.ssn"]
    assert [text[d.start : d.end] for d in banners] == ["SECRET//NOFORN"]
    assert [text[d.start : d.end] for d in ssns] == ["219-45-8832"]


def test_label_context_reaches_across_a_window_boundary() -> None:
    # GIVEN a labelled routing number whose label ends a window and whose value starts the next
    text = "x" * (WINDOW - 20) + " routing number: " + "021000021" + " y" * 100
    assert [text[d.start : d.end] for d in scan(text) if d.category == "pii.aba_routing"] == ["021000021"]


def test_overlap_is_larger_than_any_context_a_detector_reads() -> None:
    assert OVERLAP >= 1000  # notices look back 300 characters, designation blocks forward 400


def test_non_ascii_text_keeps_offsets() -> None:
    # GIVEN characters whose lower case changes length (U+0130) before a finding
    text = "\u0130stanbul ofisi \u0130\u0130 - SSN: 219-45-8832"
    assert spans(text, "pii.ssn") == ["219-45-8832"]


def test_a_sentences_own_subject_makes_the_notice() -> None:
    # GIVEN a description sentence followed closely by a notice sentence about the same regime
    text = "This guide is about ITAR basics. This drawing contains ITAR-controlled data."
    # THEN the notice found is the second sentence, not a span starting at the first
    assert spans(text, "export.itar") == ["This drawing contains ITAR"]


# --- markings anywhere in a line, in any case, and labelled columns ----------------------------------
PLACED_POSITIVES = [
    # portion marks opening a table cell, a CSV cell, a log message, a JSON string
    ("| 1 | (CUI) Contract ceiling | $4M |", "cui.portion"),
    ("1,(CUI) Vendor pricing,approved", "cui.portion"),
    ("2025-03-04T10:15:22Z INFO sync-agent (S) Convoy departs at 0400", "classified.portion"),
    ('ts=1 level=info msg="(CUI) Payroll file rotated"', "cui.portion"),
    ('{"body": "- (TS) Collection gap persists."}', "classified.portion"),
    ("(Cui) The cost proposal is attached.", "cui.portion"),
    ("(s//nf) lower-case controls anywhere", "classified.portion"),
    # banners in cells, fields, brackets and in any case with controls
    ("| Ops order 12 | SECRET | J3 |", "classified.banner"),
    ("A-113,Range survey,SECRET,J2", "classified.banner"),
    ('{"classification": "SECRET", "pages": 4}', "classified.banner"),
    ("[SECRET] convoy route summary", "classified.banner"),
    ('{"classification": "Secret//NoForn"}', "classified.banner"),
    ("Top Secret//SI//NoForn", "classified.banner"),
    ("marked secret//noforn in the log", "classified.banner"),
    ("Classification: Top Secret", "classified.banner"),
    ("top secret\nDeployment order", "classified.banner"),
    ("cui//sp-prvcy", "cui.specified"),
    ("Cui//Fedcon\nchecklist", "cui.banner"),
    ("Name,Marking\nroster,CUI//SP-PRVCY", "cui.specified"),
    # legacy tags and dissemination controls standing alone
    ("Subject: [FOUO] Updated recall roster", "cui.legacy"),
    ("FOUO: badge office hours change", "cui.legacy"),
    ("Subject: [LIMDIS] Ambassador's schedule", "cui.legacy"),
    ("[fouo] lower-case tag", "cui.legacy"),
    ("SBU\n\nposture review", "cui.legacy"),
    ("unclassified/fouo", "cui.legacy"),
    ("NOFORN\nLiaison contact list", "cui.banner"),
    ("REL TO USA, GBR\nschedule", "cui.banner"),
    ("CUI/PRVCY", "cui.banner"),
    ("CUI//LEI/CTI//FED ONLY", "cui.banner"),
    ('{"note": "EXPORT CONTROLLED\\nDrawing set 4"}', "export.banner"),
    # export notices that never say "export"
    ("The technical data in this package is controlled under the ITAR (22 CFR 120-130).", "export.itar"),
    ("Jurisdiction: USML Category XI(a)(3). Not releasable to foreign persons.", "export.itar"),
    ("Per 22 C.F.R. parts 120-130, these may not be transferred to a foreign national.", "export.itar"),
    ("Transfer to a foreign person requires prior written approval from DDTC.", "export.itar"),
    ("Subject to 15 C.F.R. 730-774; reexport requires a BIS license.", "export.ear"),
    ("Controlled under the EAR; not to be shipped abroad without a license.", "export.ear"),
    ("The FPGA is classified as 3A001.a.1 under the Commerce Control List.", "export.eccn"),
    ("Item 5A002 is listed on the CCL.", "export.eccn"),
    (
        "Distribution Statement F. Further dissemination only as directed by the controlling office.",
        "export.distribution_statement",
    ),
    # identifiers labelled by a column header
    ("employee_id,name,SSN\n1001,Ana Ruiz,219458832", "pii.ssn"),
    ("| Name | Social Security Number |\n| --- | --- |\n| D. Park | 523 81 4410 |", "pii.ssn"),
    ("name\trank\tEDIPI\nLee, Sam\tSSG\t1234567890", "pii.edipi"),
    ("| Traveler | DOB |\n|---|---|\n| K. Osei | 1984-07-19 |", "pii.dob"),
    ("traveler,Passport\nK. Osei,567123984", "pii.passport"),
    ("vendor,routing,account\nAcme,021000021,4401928374", "pii.aba_routing"),
    ("vendor,routing,account\nAcme,021000021,4401928374", "pii.bank_account"),
    ("part,eccn\nPX-200,5A002", "export.eccn"),
    ('{"csv": "name,SSN\\nAl,219-45-8832\\n"}', "pii.ssn"),
]


@pytest.mark.parametrize(("text", "category"), PLACED_POSITIVES)
def test_detects_markings_anywhere_and_labelled_columns(text: str, category: str) -> None:
    assert category in categories(text)


PLACED_NEAR_MISSES = [
    "| Chili | the secret ingredient is cocoa |\n| Cake | top secret recipe |",
    "name,type\ndb_password,secret\napi_token,Secret",
    "2025-03-04T10:15:22Z INFO auth loaded client secret from the vault",
    '{"title": "Secret", "genre": "mystery"}',
    "Secret\nA novel. Chapter one begins on a foggy morning.",
    "| Level | Meaning |\n|---|---|\n| PUBLIC | anyone |\n| CONFIDENTIAL | staff only |",
    "result = (total_s // 2) + (s // n)",
    'url = "https://example.com/secret//path"',
    "Glossary:\nFOUO: For Official Use Only\nNOFORN: Not Releasable to Foreign Nationals",
    "The CUI program replaced FOUO; DDTC administers the ITAR and BIS the EAR.",
    "USML Category XI covers military electronics.",
    "Order part 5A002 in blue; the 3A001 hose fits.",
    "What does an ECCN like 5A002 mean?",
    "Distribution Statement C applies when the controlling office limits release to contractors.",
    "(c) The contractor shall deliver the report.",
    "Controlled Unclassified Information (CUI) is a program.",
    "name,SSN\nAl,000-12-3456\nBo,666-45-1234",
    "| Account | Region |\n|---|---|\n| 123456789012 | us-gov-west-1 |",
    "Les Miserables opens in June.",
]


@pytest.mark.parametrize("text", PLACED_NEAR_MISSES)
def test_placed_near_misses_report_nothing(text: str) -> None:
    assert categories(text) == set()


def test_column_values_span_only_the_cell() -> None:
    text = "employee_id,name,SSN\n1001,Ana Ruiz,219458832\n1002,Bo Chen,000-12-3456\n"
    assert spans(text, "pii.ssn") == ["219458832"]


# --- derivative authority blocks, NATO levels, CUI under an unclassified level, statements that the
# content is CUI, dissemination controls given as a labelled value ------------------------------------
MORE_POSITIVES = [
    ("Derived From: Multiple Sources\nDeclassify On: 25X1", "classified.authority_block"),
    ('{"header": "Derived From: SCG 4\\nDeclassify On: 20501231"}', "classified.authority_block"),
    ("NATO SECRET\nAnnex A", "classified.banner"),
    ("COSMIC TOP SECRET", "classified.banner"),
    ("Classification: NATO CONFIDENTIAL", "classified.banner"),
    ("NATO RESTRICTED//REL TO USA, GBR", "classified.banner"),
    ("This briefing is NATO RESTRICTED and stays with the staff.", "classified.banner"),
    ("UNCLASSIFIED//CUI\nVendor pricing.", "cui.banner"),
    ("Unclassified//CUI", "cui.banner"),
    ("(U//CUI) The schedule follows.", "cui.portion"),
    ("This email contains Controlled Unclassified Information (CUI). Handle accordingly.", "cui.banner"),
    ("The attached spreadsheet is CUI.", "cui.banner"),
    ("These slides contain CUI and PII.", "cui.banner"),
    ("Distro: NOFORN. Do not forward.", "cui.banner"),
    ("Dissemination: FEDCON", "cui.banner"),
    ('{"handling": "REL TO USA, GBR"}', "cui.banner"),
    ("SBU - Sensitive But Unclassified\nRotation plan.", "cui.legacy"),
    ("FOUO \u2013 For Official Use Only\nRoster.", "cui.legacy"),
    ("S E C R E T // N O F O R N\nBriefing.", "classified.banner"),
    ("C O N F I D E N T I A L", "classified.banner"),
    ("T O P  S E C R E T\nAnnex", "classified.banner"),
    ("Classification: S E C R E T", "classified.banner"),
    ("# CUI\n\n## Vendor evaluation", "cui.banner"),
    ("**SECRET**\nTalking points.", "classified.banner"),
    ("**CONTROLLED UNCLASSIFIED INFORMATION**\n\nPricing.", "cui.banner"),
    ("classification: CUI\nowner: logistics", "cui.banner"),
    ("<marking>CUI</marking>", "cui.banner"),
    ("<classification>TOP SECRET</classification><body>orbit data</body>", "classified.banner"),
    ("DISTRIBUTION B: U.S. Government agencies only; proprietary.", "export.distribution_statement"),
    ("Technical data subject to the ITAR. Do not export.", "export.itar"),
    ("The drawing below is ITAR controlled.", "export.itar"),
    ("The data below is subject to the EAR.", "export.ear"),
    ("--- CUI ---\nVendor quotes.", "cui.banner"),
    ("=== SECRET ===\nConvoy timings.", "classified.banner"),
    ("~~ CUI ~~", "cui.banner"),
    ("<<CUI>>\nOption year pricing.", "cui.banner"),
    ("Subject: [SECRET] weekly update", "classified.banner"),
    ("Wire it to routing 021000021, account 4400123456.", "pii.bank_account"),
    ("Acct #: 000123456789 (ABA 026009593)", "pii.bank_account"),
    ("DOB: 1990.07.14", "pii.dob"),
    ("Date of birth 1990/07/14", "pii.dob"),
    ("SECRET    Page 3 of 12\nOperations summary.", "classified.banner"),
    ("[Page 1 of 3]  SECRET  [Page 1 of 3]", "classified.banner"),
    ("CUI   - 4 -\nRoster.", "cui.banner"),
    ("Declassify On: 20341231\nDerived From: SCG 3, 3 Jan 2022", "classified.authority_block"),
    ("This message contains Law Enforcement Sensitive information.", "cui.legacy"),
    ("The attached files are Sensitive But Unclassified.", "cui.legacy"),
    ("id,level,owner\nA-1,Top Secret,J2", "classified.banner"),
    ("Classification: TS//SCI\nBriefing for the J2.", "classified.banner"),
    ("S//NF\nLiaison notes.", "classified.banner"),
    ("ORCON\nSource description.", "cui.banner"),
    ("PROPIN\nLabor rates in exhibit B.", "cui.banner"),
    ("Dissemination: RELIDO", "cui.banner"),
    ("Unclassified//Controlled Unclassified Information\nBid list.", "cui.banner"),
    ("USML Category XI(d) technical data: antenna dimensions.", "export.itar"),
    ("Classified under USML Cat. XV(e)(3).", "export.itar"),
    ("The following paragraph is classified SECRET: the battalion moves at dawn.", "classified.banner"),
    ("This briefing is classified TOP SECRET and stays in the SCIF.", "classified.banner"),
    ("These files are classified at the Confidential level.", "classified.banner"),
    ("Footer: CUI | Page 4 | Controlled by: Army Contracting Command", "cui.banner"),
    ("Header: SECRET\nDeployment order.", "classified.banner"),
    ("Analyst note: the S//REL TO USA, FVEY summary is attached.", "classified.banner"),
    ("pasting the S//NF cable here", "classified.banner"),
    ("ITAR-controlled: do not share outside the program.", "export.itar"),
    ("EAR-Controlled\nFigures follow.", "export.ear"),
    ("Export Controlled Information (ECI) - handle per procedure 4.2.", "export.banner"),
    ("- ITAR Controlled Data - thermal model inputs", "export.itar"),
    ("Note: technical data, USML XII(d), thermal imaging cores.", "export.itar"),
    ("Her date-of-birth is 2/9/1961.", "pii.dob"),
    ("Lesson learned report 24-07\nHandling: FOUO\nObservation: spacing collapsed.", "cui.legacy"),
    ("Caveat: LES.", "cui.legacy"),
    ("This draft is CUI until the program office releases it.", "cui.banner"),
    ("Reminder: everything in this folder is CUI.", "cui.banner"),
    ("CUI: Proposal evaluation notes, offeror B", "cui.banner"),
    ("Subject: CUI - updated roster", "cui.banner"),
    ("FOUO - shift roster attached", "cui.legacy"),
    ("The content below is Controlled Unclassified Information (CUI).", "cui.banner"),
    ("CUI Basic\nFacility security plan.", "cui.banner"),
    ("CUI SPECIFIED\nTest results.", "cui.specified"),
    ('<p class="banner">CUI</p><p>Staffing plan.</p>', "cui.banner"),
    ("% CUI\n\\section{Results}", "cui.banner"),
    ("// SECRET\nint main(void);", "classified.banner"),
    ("<!-- CUI -->\n<p>Roster</p>", "cui.banner"),
    ("SECRET: Updated target list attached.", "classified.banner"),
    ("Subject: SECRET - revised movement table", "classified.banner"),
    ("TOP SECRET - EYES ONLY\nThe minister's briefing.", "classified.banner"),
    ("Level: SECRET\nOwner: J3", "classified.banner"),
    ("SECRET REL TO USA, AUS, CAN, GBR, NZL\nExercise notes.", "classified.banner"),
    ("SECRET NOFORN", "classified.banner"),
    ("The following is Top Secret: the launch window is 0400Z.", "classified.banner"),
    ("These slides are SECRET and stay in the vault.", "classified.banner"),
    ("DOB: 31-Jan-1970", "pii.dob"),
    ("DOB Jan-31-1970", "pii.dob"),
    ("Date of Birth (MM/DD/YYYY): 01/31/1970", "pii.dob"),
    ("Sensitivity: Secret\nOwner: J2", "classified.banner"),
    ("[TS//SCI] Weekly summary", "classified.banner"),
    ("CONTROLLED UNCLASSIFIED INFORMATION//BASIC\nRoster.", "cui.banner"),
    ("SECRET / NOFORN\nOperations update.", "classified.banner"),
    ("Export Control: ITAR\nThermal data.", "export.itar"),
    ("Export classification: EAR, license required", "export.ear"),
    ("S.E.C.R.E.T. // NOFORN\nOps.", "classified.banner"),
    ("S-E-C-R-E-T\nOps.", "classified.banner"),
    ("ITAR technical data: not releasable to foreign nationals. Is the annex ready?", "export.itar"),
    ("S\u2013E\u2013C\u2013R\u2013E\u2013T\nOps.", "classified.banner"),
    # a legacy abbreviation said of the content, in any case for FOUO
    ("This report is FOUO.", "cui.legacy"),
    ("NOTE: output bundle is fouo - do not mirror it", "cui.legacy"),
    ("heads up it's fouo, keep it in the channel", "cui.legacy"),
    ("This email contains FOUO information.", "cui.legacy"),
    ("The attached slides are SBU.", "cui.legacy"),
    ("*** F.O.U.O. ***\nTraining roster", "cui.legacy"),
    ("== FOUO ==\nTraining roster", "cui.legacy"),
    # more of the content's own nouns
    ("This deliverable contains CUI and must be stored on approved systems.", "cui.banner"),
    ("Please note: this roster is Controlled Unclassified Information (CUI).", "cui.banner"),
    # a distribution statement typed by hand: lower case, spaces before its colon, "dist" for distribution
    ("distribution statement  e  :  dist authorized to dod components only", "export.distribution_statement"),
    # labels as field names, and in the languages of the forms an agency receives
    ('{"person": {"dod_id": "1402837561"}}', "pii.edipi"),
    ('{"date_of_birth": "1972-05-19"}', "pii.dob"),
    ("dateOfBirth=1972-05-19", "pii.dob"),
    ('"social_security_number": "523-81-4460"', "pii.ssn"),
    ("Fecha de nacimiento: 14/09/1991", "pii.dob"),
    ("Date de naissance : 14/09/1991", "pii.dob"),
    ("Geburtsdatum: 14.09.1991", "pii.dob"),
    ("Número de pasaporte: G48213977", "pii.passport"),
    ("Numéro de passeport : 18AV01234", "pii.passport"),
    # a value aligned far from its label, separators as copied from a scanned form
    ("   Date of birth:          07/22/1989", "pii.dob"),
    ("SSN: 523-81-  4460", "pii.ssn"),
    # columns: snake_case headers, an SQL INSERT's column list, columns aligned with spaces
    ("id,bank_routing,account_number\n1,121000358,3378120945", "pii.bank_account"),
    (
        "INSERT INTO payout (vendor_id, routing_number, account_number)\nVALUES\n"
        "  (3102, '021000021', '483920017745'),\n  (3107, '071000013', '000118842290');",
        "pii.bank_account",
    ),
    (
        "Name                 Grade   DoD ID (EDIPI)   Score\n"
        "---------------------------------------------------\n"
        "Blackwood, Teresa    GS-11   1247390581       96\n"
        "Castellanos, Rafael  Capt    1398264017       88",
        "pii.edipi",
    ),
    # the content placed by a line, or named by more nouns
    ("Everything below the dashed line is classified secret, keep it on the high side.", "classified.banner"),
    ("heads up, everything below this line is CUI (privacy). do not forward", "cui.banner"),
    ("Note this excerpt is classified SECRET, so keep it here.", "classified.banner"),
    ("Marking: cui (basic) -- keep on the internal wiki", "cui.banner"),
    # a typed double dash sets off a tag as a dash does
    ("EXPORT CONTROLLED  --  ITAR   do not copy to the shared drive", "export.itar"),
    # a legacy phrase wrapped onto the next line
    ("UNCLASSIFIED//FOR OFFICIAL USE\nONLY\n\nMeeting notes", "cui.legacy"),
    # XML: the intelligence community's markings, an export attribute
    ('<ism:Document ism:classification="S" ism:ownerProducer="USA">', "classified.banner"),
    ('<Compliance exportJurisdiction="ITAR" usmlCategory="IV"/>', "export.itar"),
    # an ECCN with its sub-paragraphs, export words near it; an ECCN after a dot leader; beside EAR99
    ("Classification came back: the mill is 2B001.b.2, so the order needs a BIS license.", "export.eccn"),
    ("Q2. Provide ECCN per part number:\n  VM-LNA-2640  ..........  3A001.b.4.a", "export.eccn"),
    ("  ECCN .......................  6A001.a.2.b", "export.eccn"),
    ("vendor paperwork says 3A001.a.7 on the board, not EAR99", "export.eccn"),
    ("Export classification per sponsor: 5E001.a", "export.eccn"),
    # a double-slash legacy marking in lower case
    ("u//fouo - merci de ne pas diffuser en dehors de la cellule.", "cui.legacy"),
    # the content the writer hands over
    ("fyi the intake packet I'm pasting is CUI (privacy/health), keep it here", "cui.banner"),
    # a regime's name wrapped onto the next line of a notice
    (
        "WARNING - This file contains technical data whose export is restricted by the Arms\n"
        "Export Control Act (Title 22, U.S.C., Sec 2751, et seq.).",
        "export.itar",
    ),
    # columns named in other languages, and a printout's columns under names parted by one space
    ("Nome | Data de nascimento | Passaporte\nBruno Alves | 17/02/1991 | FX284061", "pii.passport"),
    (
        "         full_name passport_no nationality    birth_dt\n"
        "14   Marcus Feldman   583920174         USA  1975-10-14",
        "pii.dob",
    ),
    (
        "          mrn          pt_name         dob sex  last_visit\n"
        "812  00412288   Greer, Lucille  1948-03-30   F  2024-01-22",
        "pii.dob",
    ),
    # after a JSON string's escaped line break, or in an iCalendar field
    ('{"note": "Notes from the call:\\nTOP SECRET\\nDeployment order attached."}', "classified.banner"),
    ('{"note": "call:\\nSSN: 219-45-8832 on file"}', "pii.ssn"),
    ("DESCRIPTION:Join by phone\\n(571) 372-0198\\nConference ID: 448 210", "pii.phone"),
    # "(C)" with a year after it, among paragraphs that open with "(U)"
    (
        "(U) Scholars debated the statute.\n\n(C) The 2011 arrangement was never sent to Congress.",
        "classified.portion",
    ),
    # "This <thing> is classified CONFIDENTIAL", whatever the thing
    ("1. This ECP is classified CONFIDENTIAL in its entirety.", "classified.banner"),
    # the spelled-out words wrapped onto the next line of a statement
    ("The contents of this record are Controlled\nUnclassified Information (CUI).", "cui.banner"),
    # spaced letters with spaced slashes
    ("S E C R E T  / /  N O F O R N\nproofread this", "classified.banner"),
]
MORE_NEAR_MISSES = [
    "The figures were derived from: the census.\nWe declassify on: request, as the policy says.",
    "NATO uses four levels: COSMIC TOP SECRET, NATO SECRET, NATO CONFIDENTIAL and NATO RESTRICTED.",
    "NATO secret talks resumed in Brussels.",
    "Does this document contain CUI? Ask the records officer.",
    "Check whether these files contain CUI before sharing.",
    "This software is CUI compliant.",
    "These notes are CUI-free.",
    "This course includes CUI training for new hires.",
    "This document contains no CUI.",
    "Distribution: all staff. The NOFORN caveat is explained in chapter 2.",
    "use u//cui as the marking when told to",
    "Acronyms:\nFOUO - For Official Use Only\nSBU - Sensitive But Unclassified",
    "It is a S E C R E T, she whispered.",
    "# Confidential computing with Nitro Enclaves",
    "## The secret of good soup",
    "classification: public\nowner: web team",
    "<h1>Secret Garden Tours</h1>",
    "The distribution B: plan covers the east coast warehouses.",
    "What counts as technical data subject to the ITAR?",
    "The table below lists the ITAR categories.",
    "Our platform does not accept technical data subject to the ITAR.",
    "--- Secret Santa ---\nDraw names by Friday.",
    "[database]\nhost = db\n[secret]\npath = /etc/keys",
    "password: [SECRET]",
    "client_secret = [SECRET]\napi_key: [SECRET]",
    'curl -H "Authorization: Bearer [SECRET]" https://example.com',
    "AWS account 123456789012 owns the bucket.",
    "Account 4400123456 is overdue; the routing of the notice is by mail.",
    "Released 1990.07.14, the album sold well.",
    "Secret page 3\nThe novel continues.",
    "Chapter 3 of 12    Secret",
    "We declassify on: request.\nThe figures were derived from: the census.",
    "Does this message contain law enforcement sensitive information?",
    "This parking area is for official use only.",
    "It describes three levels, Top Secret, Secret and Confidential, and who may assign each of them.",
    "TS//SCI clearance required for this role.",
    "x = a // b\nS // 2",
    "Orcon is an internet provider in New Zealand.",
    "The USML Category XI covers military electronics.",
    "This section explains how documents are classified secret or top secret.",
    "This e-mail is marked confidential.",
    "Is this document classified secret?",
    "rows = n//nf\ncols = m//nc",
    "Header: Secret Santa sign-up",
    "Export controlled: No\nWeight: 4 kg",
    "ITAR-controlled items: a primer for new staff",
    "We discussed whether the part is export controlled.",
    "Handling: FOUO documents go in the gray bin, see policy 4.",
    "CUI: An overview for new staff",
    "CUI - what you need to know",
    "// secret\nconst key = process.env.KEY;",
    "<h1>CUI Program</h1>",
    "Is the attached file CUI? Please check before I send it.",
    "CONFIDENTIAL: Q3 results for the board, do not forward.",
    "Level: Secret (an achievement in the game after 50 hours).",
    "This e-mail is CONFIDENTIAL and intended only for the addressee.",
    "This recipe is secret, said the chef.",
    "Date of birth (MM/DD/YYYY): leave blank if unknown.",
    "The policy floor (classified, CUI: always blocked) applies first.",
    "Levels, in order: TOP SECRET, SECRET: both need a cleared courier.",
    "Sensitivity: Confidential\nQ3 plan",
    "Export Control: None (EAR99)\nShipping label attached.",
    "Export classification: EAR99",
    "The S.E.C.R.E.T. society meets on Friday.",
    "Is it legal to send ITAR technical data to a foreign national? Answer briefly.",
    # legacy abbreviations named, asked about or in other words, not said of the content
    "What is FOUO? The marking was replaced by CUI in 2016.",
    "The old marking is FOUO; the new one is CUI.",
    "Is the report FOUO? Ask the security manager.",
    "The LES office is closed on Friday; les documents sont prêts.",
    "The F.O.U.O. marking is retired.",
    # an aligned table whose bare Account column holds AWS accounts, with no routing column
    "Service        Account         Region          Owner\n"
    "billing        123456789012    us-gov-west-1   ops\n"
    "audit          210987654321    us-gov-east-1   sec",
    # lower-case "cui" among the values a tag may take
    "Tag DataClassification missing. Allowed values: public | internal | sensitive | cui",
    # a line that merely talks about a line
    "Everything below the fold loads lazily.",
    # ECCN-shaped catalogue codes with no export words near them
    "Catalogue: drawer 3A001.b holds the M3 washers; drawer 2B991 the hex keys.",
    # an attribute naming no level
    '<title ism:classification="U">Annex D</title>',
    # legacy markings named in a sentence's list
    "Agencies had their own labels: For Official Use Only, Sensitive But Unclassified, and dozens more.",
    # a sentence holding header words, a number on the next line
    "Bring your passport and dob papers to the desk\n123456789 is the ticket number",
    # "(C)" before a year where no paragraph carries a portion mark: a copyright
    "(C) 2019 Harborline Freight, all rights reserved.\n\nShipping terms follow.",
    # "this <thing> is classified" with no level after it
    "This ticket is classified as low priority.",
    # a printout whose dob column holds no dates
    "name dob city\nAnn unknown Reno",
    # an aligned table of part numbers and quantities
    "Part            Qty    Lot         Date\nHousing, IMU    4      2024-117    2024-05-02",
]


@pytest.mark.parametrize(("text", "category"), MORE_POSITIVES)
def test_more_markings_are_reported(text: str, category: str) -> None:
    assert category in categories(text)


@pytest.mark.parametrize("text", MORE_NEAR_MISSES)
def test_more_near_misses_report_nothing(text: str) -> None:
    assert categories(text) == set()


def test_an_inline_abbreviated_marking_spans_its_controls_only() -> None:
    # GIVEN an abbreviated level with a dissemination control inside a sentence
    text = "Analyst note - classification S//REL TO USA, FVEY - do not paste it."
    # WHEN it is scanned THEN the finding is the marking, not the rest of the sentence
    spans = [text[d.start : d.end] for d in scan(text) if d.category == "classified.banner"]
    assert spans == ["S//REL TO USA, FVEY"]


def test_a_bank_account_in_prose_spans_only_its_digits() -> None:
    # GIVEN an account number beside a routing number in a sentence
    text = "Send the refund to routing 021000021, account number is 4400123456, by Friday."
    # WHEN it is scanned THEN the account's digits are the finding, not its label
    spans = {(d.start, d.end) for d in scan(text) if d.category == "pii.bank_account"}
    assert spans == {(text.index("4400123456"), text.index("4400123456") + 10)}


def test_a_bank_account_far_from_any_routing_number_is_not_reported() -> None:
    # GIVEN a routing number, then an account number several sentences away
    text = "Routing 021000021 is the bank's. " + "Other notes follow here. " * 8 + "Account 4400123456."
    # WHEN it is scanned THEN only the routing number is reported
    assert categories(text) == {"pii.aba_routing"}


def test_a_designation_indicator_line_is_reported_once_as_the_block() -> None:
    # GIVEN a designation indicator whose dissemination line is also a labelled control
    text = "CUI\nControlled by: DLA\nCUI Category: EXPT\nLimited Dissemination Control: FEDCON\nPOC: office"
    # THEN the block reports it, not the labelled-control rule a second time
    assert categories(text) == {"cui.banner", "cui.designation_indicator"}
    assert spans(text, "cui.banner") == ["CUI"]


def test_a_cui_statement_spans_the_sentence_up_to_cui() -> None:
    text = "Hello. This email contains CUI. Thanks"
    assert spans(text, "cui.banner") == ["This email contains CUI"]


# What is attached or enclosed is the content, whatever it is called; a level that is a person's clearance,
# the values of a scheme listed as its options, and a glossary of markings mark nothing.
LISTED_AND_ATTACHED_POSITIVES = [
    ("fyi the attached contains CUI, keep it inside the panel", "cui.banner"),
    ("NOTE: the attached xlsx contains CUI (physical security details).", "cui.banner"),
    ("The enclosed paper contains Controlled Unclassified Information about staffing.", "cui.banner"),
    ("The enclosed binder is FOUO until the review ends.", "cui.legacy"),
    # a portion mark after a code comment's or a heading's leader
    ("# (CUI) Degradation coefficients below come from the qualification series.\nK1 = 0.004", "cui.portion"),
    # one level under a marking column, beside a clearance column
    ("clearance,document_marking\nTop Secret,SECRET", "classified.banner"),
    # a level after a label that is not a clearance's
    ("Classification: SECRET", "classified.banner"),
    # a list of three controls inside a marking's double slash stays a marking
    ("SECRET//NOFORN, ORCON, PROPIN", "classified.banner"),
    # a real notice written after a glossary's entry is still reported
    (
        "ITAR: International Traffic in Arms Regulations. This drawing is ITAR controlled.\n"
        "EAR: Export Administration Regulations.",
        "export.itar",
    ),
    # two levels and a control set apart by commas: a sloppy banner, not a scheme's list
    ("SECRET, NOFORN, ORCON", "classified.banner"),
]
LISTED_AND_ATTACHED_POSITIVES += [
    # a labelled part of the content, and the attachment named by what it is for
    (
        "Heads up - Annex B contains CUI (contractor pricing), keep it off the commercial channel.",
        "cui.banner",
    ),
    ("Page 4 contains CUI.", "cui.banner"),
    ("Tony - the attached load plan for the Yermo move contains CUI, so pls use DoD SAFE.", "cui.banner"),
    (
        "Note: Appendix C of this report (squib drawings and firing-circuit schematic) is\n"
        "ITAR-controlled technical data. Strip Appendix C before release.",
        "export.itar",
    ),
    # a marking applied in a sentence, neither an example nor named as a kind of thing
    ("The document is marked SECRET//NOFORN.", "classified.banner"),
    ("e.g. nothing here\n(S) The convoy leaves at 0400.", "classified.portion"),
    # SBU as a tag on the content, not a form's field label
    ("SBU: the budget figures below are not for release.", "cui.legacy"),
    # a printout whose column name holds a comma
    (
        "No  Family name, given names   Rank    Date of birth  Passport No.\n"
        "1   SOKOLOV, Andrei            Master  1971-03-22     752218840",
        "pii.passport",
    ),
]
LISTED_AND_ATTACHED_POSITIVES += [
    # what "this" holds, whatever it is called, with contains / includes
    ("This answer key contains CUI. Keep it in the locked drawer.", "cui.banner"),
    # a portion mark of two letters or more opening a chat line's message, in lower case after it
    ("Kayla: got it\nLt Park: (CUI) pax manifest for the 14th rotator: 32 pax\nMike: ty", "cui.portion"),
    # "it's" typed without its apostrophe
    ("here's the alert roster (its FOUO so dont screenshot it)", "cui.legacy"),
    # an ECCN down to its sub-paragraph beside "NLR" (no licence required)
    ("the crypto module is 5A992.c mass market so it's NLR for the UK sites", "export.eccn"),
    # a line that says what a dissemination control is, alone: still a banner's word
    ("NOFORN: dissemination control applies.\nSECRET//NOFORN", "classified.banner"),
    # the destination control statements on shipping papers: the EAR's, and the ITAR's, which names no rule
    (
        "These commodities, technology, or software were exported from the United States in accordance\n"
        "with the Export Administration Regulations. Diversion contrary to U.S. law is prohibited.",
        "export.ear",
    ),
    (
        "These items are controlled by the U.S. Government and authorized for export only to the country of\n"
        "ultimate destination for use by the end-user herein identified.",
        "export.itar",
    ),
    # a bare specified banner opening a document is still one
    ("CUI//SP-\nRoster of the office", "cui.banner"),
    # enclosures numbered, not counted, and slides that are attached: the content
    ("Enclosures 1-3 marked SECRET//NOFORN are attached.", "classified.banner"),
    ("Please review the attached slides marked SECRET//NOFORN before Friday.", "classified.banner"),
    # what is attached, named at length, then its level
    (
        "SGM - the attached CONOP for the GRANITE SHIELD demo is classified SECRET, pull it off NIPR.",
        "classified.banner",
    ),
    # the writer's instruction for the content
    ("team - pls treat this roster as fouo, it has home addresses", "cui.legacy"),
    ("Please handle the attached as CUI until the review ends.", "cui.banner"),
    ("Treat this email as Law Enforcement Sensitive.", "cui.legacy"),
    # the statement in the other languages of the forms' labels
    (
        "bitte beachtet: Der Anhang enthält CUI (Controlled Unclassified Information) vom Kunden.",
        "cui.banner",
    ),
    (
        "O Anexo B desta ata (listas de peças) contém CUI e deve ser manuseado conforme a cláusula.",
        "cui.banner",
    ),
    ("Este documento contiene CUI.", "cui.banner"),
    ("La pièce jointe contient des CUI du client américain.", "cui.banner"),
    (
        "Ces données sont soumises à l'ITAR (22 CFR 120-130). Toute cession à une personne étrangère est "
        "interdite.",
        "export.itar",
    ),
    # a subparagraph's portion mark after its letter, with its text after it
    ("b. (S) The convoy leaves at 0400.", "classified.portion"),
    # the attachment by that name, and an attachment named with a parenthetical
    ("Reminder: the attachment contains CUI (privacy), so keep it on the HR share.", "cui.banner"),
    (
        'The attached white paper from the ONR project ("Hull Acoustic Signature Modeling") contains CUI.',
        "cui.banner",
    ),
    # "it's" said of the content just given
    ("here's the para from our SSP, technically it's CUI but whatever", "cui.banner"),
    # work kept to U.S. persons beside the munitions list's category
    (
        "The radar front end is a defense article under USML\nCategory XI(a)(3). Task 3 will be done only "
        "by U.S. persons in the registered facility.",
        "export.itar",
    ),
    # an SSN written with spaces, alone
    ("SSN 482 03 5510 on file", "pii.ssn"),
    # the content the reader handed over, in a thread
    ("heads up, that plan output you pasted is CUI under our SSP. can you delete it", "cui.banner"),
    # what this memo must be marked is what it is
    ("This memo must be marked SECRET//NOFORN.", "classified.banner"),
    # what is attached, named with a longer phrase about it
    ("The attached intake list for Sites 4 and 5 contains CUI (names and medical needs).", "cui.banner"),
    # what the writer put in a channel, in the past
    ("fyi the badge roster I just posted in the team chat is CUI, keep it there", "cui.banner"),
    ("the roster we posted in the channel is CUI", "cui.banner"),
    # papers named after the marking, in a statement about these: still the content's
    ("The attached folder contains CUI documents.", "cui.banner"),
    ("These files contain SECRET//NOFORN documents.", "classified.banner"),
    # a document's own header as a configuration file writes it: one level and its controls
    (
        'document:\n  banner: "CUI//FEDCON"\n  category: "PROPIN"\n  dissemination: "FEDCON"\n'
        "body: |\n  Test data",
        "cui.banner",
    ),
    ("classification: SECRET\ntitle: Route survey\nbody: The convoy leaves at 0400.", "classified.banner"),
    # a label with a parenthetical about its value
    ("Bank routing no. (ABA, 9 digits): 021000021", "pii.aba_routing"),
    # a portion mark opening a timeline's entry after its date and time
    ("11/02 0930  (U) ticket opened\n11/02 1015  (CUI) vendor sent the test cell wiring list", "cui.portion"),
    ("2024/03/09 14:22  (S//NF) source reports the convoy moved north", "classified.portion"),
    ("0330 (CUI) Received the tasking change from the task force.\n0400 Watch relieved.", "cui.portion"),
    # the paper a clause says was marked, when it is this one
    ("The attached report, which was marked SECRET//NOFORN, is in the safe.", "classified.banner"),
    # a mark in a message's subject line, in any case
    ("Subject: week 6 quiz key (fouo) - do not post to the LMS", "cui.legacy"),
    ("Subj: rollout dates (CUI) for the field offices", "cui.portion"),
    # a URL-encoded marking in a query string
    (
        "GET /collect?ev=share&title=FOR%20OFFICIAL%20USE%20ONLY%0ASubject%3A%20RIF%20plan HTTP/1.1",
        "cui.legacy",
    ),
    # a record's USML category field
    ('{"item":"T/R module","jurisdiction":"ITAR","usml_category":"XI(c)(1)"}', "export.itar"),
    # a date of birth as Chinese and Japanese write it
    ("出生日期 Date of Birth: 1988年11月23日", "pii.dob"),
    # what is attached, named with an ampersand
    ("The attached SAR and POA&M contain CUI. Use the agency link only.", "cui.banner"),
    # a form's marking for what is written on it
    (
        "RECORD OF EMERGENCY DATA                              CUI (when filled in)\n1. NAME: DOE, J",
        "cui.banner",
    ),
    ("FOR OFFICIAL USE ONLY (When Filled In)\nEmployee: R. Diaz", "cui.legacy"),
    # a GEDCOM file's birth date
    ("0 @I3@ INDI\n1 NAME Frank /Novak/\n1 BIRT\n2 DATE 27 MAR 1914\n2 PLAC Iowa", "pii.dob"),
    # a portion's own question
    ("(S) Should the convoy wait for the escort at the border?", "classified.portion"),
    # papers that had the marking, when they are these
    ('The attached drawings had "FOR OFFICIAL USE ONLY" on them.', "cui.legacy"),
    # a banner under a line of text that ends with no cue
    ("Convoy plan for Thursday\nSECRET//NOFORN\nThe convoy leaves at 0400.", "classified.banner"),
    # an item's USML category in a table's column
    ("Qty\tItem\tUSML Cat.\n6\tThermal weapon sight\tXII(c)\n2\tLaser rangefinder\tXII(b)(2)", "export.itar"),
    ("Line  Item                      USML\n1     Rifle scope mount         Cat I(e)\n", "export.itar"),
    # an iCalendar field's banner folded across two lines
    (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Design review\r\n"
        "DESCRIPTION:Read-ahead below.\\n\\nCUI//\r\n"
        " SP-CTI\\n\\nThe harness drawings follow.\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "cui.specified",
    ),
    # an item's place on the munitions list written the other way round
    ("The gimbal is described in Category XII(e) of the U.S. Munitions List.", "export.itar"),
    ("Each seeker head is a defense article in Category IV(h)(3) of the USML.", "export.itar"),
    # the content named, then why: "... because it contains"
    (
        "We ask that this exhibit stay under seal because it contains Law Enforcement Sensitive details.",
        "cui.legacy",
    ),
    # a legacy abbreviation said of what the subject is for, named by a date
    ("the attached load plan for 11/03 is FOUO, keep it off the group chat", "cui.legacy"),
    # DOE's and NRC's legacy banner, without "FOR"
    ("OFFICIAL USE ONLY - EXEMPTION 2\n\nSite access review, Building 9204", "cui.legacy"),
    ("Inspection summary follows.\n\nOFFICIAL USE ONLY\n", "cui.legacy"),
    # a passport column in an aligned printout whose first header cell spans two of the rows' cells
    (
        "No. Traveler             Role          Passport No.   Visa\n"
        "7   MBEKI, Thandiwe      Logistician   X48210937      yes\n",
        "pii.passport",
    ),
    # a note without its subject
    ('Shared folder note: "Contains CUI (PRVCY). Open on GFE only."', "cui.banner"),
    ("Contains FOUO - keep it off the shared drive", "cui.legacy"),
    # what the writer sent someone, and what for
    (
        "the pricing sheet I sent you for the Dayton recompete is For Official Use Only, so keep it in",
        "cui.legacy",
    ),
    # "it" or "the <content>" after a handover
    ("Uploading the floor plan for Suite 210 now. It contains CUI so keep it internal.", "cui.banner"),
    ("pasting the ratings below. heads up the ratings sheet and the notes are CUI", "cui.banner"),
    ("The harness drawings are attached. It's ITAR controlled, so US share only.", "export.itar"),
    # a bare portion mark opening a long quoted paragraph
    (
        'Client text:\n\n"(CUI) The contractor shall ' + "provide support to the program office " * 8 + '."',
        "cui.portion",
    ),
    # the State Department's SBU banner
    ("Official - SBU\nUNCLASSIFIED\n\nSubject: arrest notification", "cui.legacy"),
    # the content and more of it, in speech
    (
        "3\n00:00:05,100 --> 00:00:08,900\n"
        "before we begin, this recording and its captions are for official use only,",
        "cui.legacy",
    ),
    (
        "quick reminder, this meeting and the notes that the bot writes up are CUI, so keep them internal",
        "cui.banner",
    ),
    # files named by where they are
    ("Note: the csv files under `exports/2024/` contain CUI, so keep them on the enclave.", "cui.banner"),
    # a label asked and answered in a transcript
    ("AGENT: And the passport number?\nCALLER: 561204938, expires 2030.", "pii.passport"),
    ("AGENT: What's your date of birth?\nCALLER: July 4th, 1971.", "pii.dob"),
    # a psql result's columns, under its rule
    (
        "   edipi    | grade | course\n------------+-------+--------\n 1287345590 | E-6   | CYB-101\n",
        "pii.edipi",
    ),
    # an authority block in a source file's comment
    (
        "/*\n * Classified By: J. Ruiz, Program Engineer\n * Derived From: XR SCG, 20230101\n"
        " * Declassify On: 20480101\n */",
        "classified.authority_block",
    ),
    # the attached, named with a number
    ("Jen, the attached chapter 7 contains CUI, so hold it until the office signs off.", "cui.banner"),
    # an inventory's export classification column; a quoted CSV cell holding a comma
    (
        "Room,Chemical,CAS,Export Class\nB2,Acetone,67-64-1,EAR99\nB2,Triethanolamine,102-71-6,1C350\n",
        "export.eccn",
    ),
    ('Item,NSN,USML Category,Qty\n"Sight, thermal, medium",5855-01-592-9011,XII(c)(2),3\n', "export.itar"),
    # a form's field names and values: a PDF form's dump, XFDF
    ("FieldName: RoutingNumber\nFieldValue: 256074974\n---\nFieldName: Bank", "pii.aba_routing"),
    ('<field name="DateOfBirth"><value>08/14/1986</value></field>', "pii.dob"),
    ('<field name="MostRecentPassportBookNumber"><value>561847392</value></field>', "pii.passport"),
    # a card number after its label, from a store's own issuer
    ("Card: MILITARY STAR 6019 4410 5533 8729\nRefund never posted.", "pii.credit_card"),
    # what stands below, whatever it is called; a part of "these" minutes; a phrase with an apostrophe
    (
        "heads up - the glider tracks and the CTD profiles below are CUI, keep them off the public channel",
        "cui.banner",
    ),
    (
        "Appendix C to these minutes (the data-sharing agreement) contains CUI. Do not forward it.",
        "cui.banner",
    ),
    (
        "heads up, the attached flight log bundle from yesterday's sorties is CUI, use the enclave share",
        "cui.banner",
    ),
    # the content after a handover, said to contain it; a log's key and value
    (
        "Attached is the Q2 workbook. Heads up: the workbook contains CUI, so keep it on the enclave.",
        "cui.banner",
    ),
    ('field=dob label="Date of Birth" value=1979-02-11 result=ACCEPT', "pii.dob"),
]
LISTED_AND_ATTACHED_NEAR_MISSES = [
    "    enum: [UNCLASSIFIED, CUI, CONFIDENTIAL, SECRET, TOP SECRET]",
    "caveats:\n  allowed: [NOFORN, REL TO, FEDONLY, NOCON]",
    "legacy_marking:\n  allowed: [NONE, FOUO, SBU, LES]",
    "Kofi: classification is an enum, like UNCLASSIFIED, CONFIDENTIAL, SECRET, TOP_SECRET, plus caveats",
    "Level | UNCLASSIFIED | CONFIDENTIAL | SECRET | TOP SECRET",
    "Security clearance: TOP SECRET/SCI eligibility (verify before arrival)",
    "employee_id,name,clearance_eligibility,start_date\n"
    'E1,"Whitaker, Dana",Top Secret,2018-05-07\nE2,"Ibrahim, Yusuf",Secret,2021-09-13',
    "Term\tExpansion\tNotes\nFOUO\tFor Official Use Only\tLegacy, replaced by CUI\n"
    "SBU\tSensitive But Unclassified\tLegacy State term\nNOFORN\tNot Releasable to Foreign Nationals\tIn use",
    "NOFORN: Not releasable to foreign nationals.\nFOUO: For Official Use Only - a legacy marking.\n"
    "ITAR: International Traffic in Arms Regulations.\nEAR: Export Administration Regulations.",
    "Name\tShirt\tSession\nAisha\tS\t(A) Intro to GIS\nTom\tXL\t(C) Drone photogrammetry\nBen\tL\t(B) LiDAR",
    "The attached are examples of CUI categories for the training.",
    "Section 3 is about CUI basics.",
    "Appendix A is a glossary of CUI terms.",
    # markings given as examples, or named as the kind of thing they are
    "Many images showed banners such as TOP SECRET//SI//NOFORN and SECRET//REL TO USA, FVEY.",
    'We overlaid banner strings such as "TOP SECRET//SI//NOFORN" or "CUI//SP-EXPT" on the pages.',
    "A report carries a banner line (e.g. SECRET//NOFORN) and portion marks such as (U) or (S).",
    '- Example format you will see: "SECRET//NOFORN", level first, then the controls',
    "Prosecutors say he photographed slides bearing TOP SECRET//SI//NOFORN banners and posted them.",
    'Some bore "TOP SECRET//SI//NOFORN" and "SECRET//NOFORN" banners, the papers reported.',
    "If a packing list arrives bearing a marking such as FOR OFFICIAL USE ONLY, hand it to the lead.",
    "Does this answer key contain CUI?",
    "This course includes CUI training.",
    "Size: (S) small\nits FOUO marking was dropped in 2020",
    # a glossary whose entries define the terms in words
    "NOFORN: dissemination control meaning not releasable to foreign nationals.\n"
    'FOUO: "For Official Use Only," the old DoD marking.\nSBU: Sensitive But Unclassified',
    # a detector's keyword list: the legacy markings spelled out and abbreviated
    '    keywords: ["FOR OFFICIAL USE ONLY", "FOUO", "LAW ENFORCEMENT SENSITIVE", "SBU"]',
    # SBU as a strategic business unit's label among a form's fields
    "Weekly KPIs\nSBU: Industrial Components      Site: Joliet DC\nOrders shipped   4,812",
    "Does the attached contain CUI?",
    # "for example" and "for instance" before a quoted or bare marking
    'Specified categories follow a double slash, for example "CUI//SP-PRVCY" for privacy information.',
    "A banner names the level first, for instance SECRET//NOFORN, then its controls.",
    # the term named as a word, and a banner's form with no category in it
    'For basic CUI the banner is just the word "CUI"; specified CUI is "CUI//SP-" plus the category.',
    "Use CUI//SP-<category> on the first line.",
    # documents counted, then the marking they bore: an account of other papers
    "Agents found 14 documents marked SECRET//NOFORN and two marked TOP SECRET in the garage.",
    # a glossary in aligned columns, each expansion with the rules' citation
    "ITAR   International Traffic in Arms Regulations (22 CFR 120-130)\n"
    "USML   U.S. Munitions List (22 CFR 121)\nFOUO   For Official Use Only - legacy marking",
    # papers of that kind bearing a marking, in an account of them
    "After the leak, photos of slides marked TOP SECRET//SI//NOFORN circulated on a Discord server.",
    # a pattern that finds the marking, in a rule's configuration
    "  pattern: '(?i)\\bfor\\s+official\\s+use\\s+only\\b|\\(FOUO\\)|//FOUO\\b'",
    # questions: the verb before a word that is no subject, or a question word and a pronoun
    "Does it need a CUI banner? And is FOUO even still a thing?",
    "Should I treat this as CUI?",
    "Do we treat these slides as FOUO?",
    "¿El documento contiene CUI?",
    "El curso incluye CUI básico para todos.",
    # a question's answer options that are markings
    "Which mark goes before a paragraph of legacy FOUO information?   a) (FOUO)   b) (U//FOUO)   c) (CUI)",
    "Which banner does a basic CUI memo carry?\na) SECRET//NOFORN\nb) CUI//SP-PRVCY\nc) TOP SECRET",
    # a clearance in its state, and abbreviations that spell other things
    "Security clearance: Active TOP SECRET/SCI with Full Scope Poly required.",
    "LES  - Leave and Earnings Statement\nSBU  - Strategic Business Unit (4 divisions)\nPP   - Pay Period",
    # glossaries: a capitalised definition, a double dash
    "FOUO: Legacy DoD marking, replaced by CUI.\nSBU: Legacy State Department term.",
    'CUI -- Controlled Unclassified Information.\nFOUO -- "For Official Use Only." A legacy DoD marking.',
    # what a banner would read
    "If the info is privacy data, the banner would read CUI//SP-PRVCY.",
    # three groups of a longer spaced number
    "Auto shipment: tracking 1Z 9W4 482 03 5510 7721",
    # how a portion would be marked; documents marked with several markings; a kind's word wrapped
    "A Secret portion that cannot be released to foreign nationals would be marked S//NF in parentheses.",
    "He was charged after photos of documents marked TOP SECRET and SECRET//NOFORN appeared online.",
    'Older drawings still carry "FOR OFFICIAL USE ONLY" or "FOUO"\nstamps from before 2020.',
    # a hyphenated foreign person is prose, not a restriction beside the regulation
    "Topics: defense articles under the ITAR\n  - Deemed exports and foreign-person visitors",
    # a configuration file enumerating a marking scheme: list items, keys, values, flow lists; a table of
    # figures
    'options:\n  - "CUI"\n  - "CUI//SP-PRVCY"\n  - "CUI//SP-PROPIN"\n  - "CUI//SP-EXPT"',
    "tiers:\n  UNCLASSIFIED: green\n  CONFIDENTIAL: blue\n  SECRET: red\n  TOP SECRET: orange",
    '- code: LES\n  label: "Law Enforcement Sensitive"\n'
    '- code: FOUO\n  label: "For Official Use Only (legacy)"\n'
    '- code: SBU\n  label: "Sensitive But Unclassified"',
    "retention_labels: [PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED]",
    "Clearance\tStaff\tContractors\nConfidential\t4\t1\nSecret\t52\t9\nTop Secret\t18\t3",
    # a MediaWiki definition list of the terms
    "; FOUO\n: For Official Use Only. A legacy DoD designation.\n; LES\n: Law Enforcement Sensitive, still "
    "seen on DHS products.\n\n; CUI\n: Controlled Unclassified Information, per 32 CFR 2002.",
    # a portion mark given as an example; a marking one may come upon
    "Portion marks such as (U//FOUO) go at the start of each paragraph.",
    "If you see FOR OFFICIAL USE ONLY on an old form, send it to records for re-marking.",
    # what the content is not
    "*** THIS BULLETIN IS NOT LAW ENFORCEMENT SENSITIVE - SHARE WITH THE PUBLIC ***",
    # papers and goods named with their marking in prose; a placeholder with a space after it
    "A contractor admitted retaining SECRET//NOFORN reports at home.",
    "No legacy FOUO/SBU products and nothing carrying a CUI//SP- category on the list, please.",
    # documents bearing the marking, named as a marking
    'Photos of briefing slides bearing the marking "SECRET//NOFORN" circulated online, officials said.',
    # papers some of which bore the marking; a paper a clause says was marked
    'Images of pages from a ship\'s schedule, some stamped "SECRET//NOFORN," were posted to a forum.',
    "The annex, which for fiscal year 2024 was marked SECRET//NOFORN in full, held unclassified tables.",
    # the cue ending the line before, in wrapped prose
    'Photos of a frigate\'s schedules, some stamped\n"SECRET//NOFORN," were posted to a forum.',
    # other papers that had the marking; letters of a legend set apart by middle dots; a list of options
    'My paper cites two Army publications that had "FOR OFFICIAL USE ONLY" on the cover.',
    "(S) Slim fit \u00b7 (R) Regular fit \u00b7 (L) Loose fit",
    '{"question":"Which banner fits basic CUI?","choices":["CUI","CONTROLLED//FEDONLY","FOUO","SBU"]}',
    "Subject: migrated the build to TypeScript (TS) today",
    # markings inside a question about them; a marking named as a footer in lower case
    'For my novel: is the top banner "SECRET//NOFORN" or "SECRET / NOFORN"? Does each paragraph start with '
    "(S) or (S//NF)?",
    'Our print template still has the old "for official use only (when filled in)" footer from 2012.',
    # "it" as a preposition's object is no subject
    "I don't think anything in it is CUI, but who decides?",
    # an ECCN given as an example, after a preposition
    'Reading an ECCN: e.g. in 3A001, "3" is the category; we decode a few from the public CCL.',
    # a glossary entry citing its rules later in its line
    "ITAR - International Traffic in Arms Regulations, 22 CFR 120-130. Governs direct commercial sales.\n"
    "NOFORN - Not Releasable to Foreign Nationals. A dissemination control.",
    # other abbreviations' entries in a glossary of markings, their words about a marking a definition's
    "BIS     Bureau of Industry and Security (administers the EAR)\n"
    "DDTC    Directorate of Defense Trade Controls (runs ITAR licensing)\n"
    "EAR     Export Administration Regulations (15 CFR 730-774)\n"
    "NOFORN  Not Releasable to Foreign Nationals\n"
    "ITAR    International Traffic in Arms Regulations (22 CFR 120-130)",
    # a marking defined right after it
    'NOFORN, short for "not releasable to foreign nationals", is added after the level.',
    '{"snippet": "NOFORN, which stands for not releasable to foreign nationals, limits release."}',
    # a JSON string's escaped quotes around an example
    '{"answer": "the banner would then read something like \\"CUI//SP-EXPT\\" on every page"}',
    # a systemd unit's instance name
    "sudo systemctl restart telemetry@gs2.service && systemctl status backup@nightly.timer",
    # what a paper of some kind would carry; what other papers still say; papers counted as a set
    'A grant file with applicant privacy data would carry "CUI//SP-PRVCY" at the top.',
    'Older county templates still say "FOR OFFICIAL USE ONLY" in the footer; replace them.',
    "The defendant kept two binders marked SECRET and a set of site plans stamped FOR OFFICIAL USE ONLY.",
    # a question after a clause; markings named as portion markings
    "And if the form lists home addresses, is that CUI//SP-PRVCY or just basic CUI?",
    "The exhibit carried SECRET and TOP SECRET//SCI portion markings, the indictment says.",
    # a job title's clearance
    '{"title": "Cyber Threat Analyst (TS/SCI)", "clearance": "TS/SCI", "location": "Chantilly"}',
    # a position's access to controlled data, in a posting
    "This role requires access to technical data controlled under the ITAR. Applicants must be U.S. "
    "persons as defined in 22 CFR 120.62.",
    # a rule that some paper must bear the marking; the words on a vehicle's decal
    'My supervisor says the mishap packet has to be stamped "FOR OFFICIAL USE ONLY" but is that still a rule',
    'Replace the door decals. Decal text "U.S. GOVERNMENT - FOR OFFICIAL USE ONLY" has faded.',
    # a single entry that defines its term in words; an entry with its expansion in parentheses
    "- CUI: a banner at the top and bottom of each page from the agency, sometimes with a category.",
    "FOUO (For Official Use Only) - A legacy control label used before the CUI program.\n"
    "NOFORN - A dissemination control meaning not releasable to foreign nationals.",
    # what a paragraph would be; a marking typed as something; markings shown in code
    "If one paragraph would be SECRET//NOFORN and the rest is unclassified, who marks the page?",
    'A common mistake: people typed the banner as "CUI//SP-HLTH", but health data is basic CUI.',
    "- banner example from the slides: `CUI//SP-PRVCY` goes top and bottom",
    'examples on slide 12 were "CUI" and "CUI//SP-CTI"',
    "how to handle legacy FOUO / SBU stamps on files being reviewed for release",
    # papers of others, quoted, some of them
    'Most stories describe photos of pages "marked TOP SECRET//NOFORN" or "stamped SECRET".',
    'Some slides bore headers marked "SECRET//NOFORN," officials said.',
    'Some of the pages were labeled "FOR OFFICIAL USE ONLY," the filing says.',
    # a marking defined with its abbreviation; named with its other name
    '"FOR OFFICIAL USE ONLY" (often abbreviated FOUO) is an older federal label.',
    '"LAW ENFORCEMENT SENSITIVE" or LES shows up on bulletins from fusion centers.',
    # restriction told of a past case; a rule under a condition
    "Prosecutors said the data was controlled under the International Traffic in Arms Regulations.",
    "MIKE: If you're creating it now, it's CUI or it's nothing.",
    # a mapping's key; a note's topics
    'parts["mfr"] = parts["mfr"].replace({"CUI": "Same Sky", "CUI Devices": "Same Sky"})',
    "---\ntags: [training, security, cui]\n---\n# notes on the refresher",
    # columns that are not markings: sizes, chemical formulas, answers to the header's question
    "Name\tItem\tSize\tQty\nLupe R\tTee\t(S)\t3\nJon V\tHoodie\tXL\t1",
    "ITEM|DESCRIPTION|FORMULA|GRADE\n100482|COPPER(I) IODIDE|CUI|98%\n100483|TIN(II) CHLORIDE|SNCL2|98%",
    "Name\tQ1. Which portion mark fits a Confidential paragraph?\tScore\nB. Ostrowski\t(C)\t4",
    # a legend of the marks; a kind, then its examples in parentheses; a glossary line a control's finding
    # runs past; a rule under a condition after a bullet
    "Portion marks go first, in parentheses:\n  (U) Unclassified\n  (C) Confidential\n  (S) Secret\n"
    "  (TS) Top Secret",
    "Do NOT put real classification banners (SECRET, CONFIDENTIAL, etc.) on scenario material.",
    'FOUO -- "For Official Use Only," a pre-2010 handling caveat.\n'
    'NOFORN -- "Not Releasable to Foreign Nationals," a dissemination control used on classified material.',
    "- If the report includes SSNs or home addresses, it is CUI under the Privacy category.",
    # a SIM card's ICCID after "card"; a name in capitals that begins with a label's letters
    "SIM card ICCID: 8901 2604 0000 1234 567",
    "DOBSON: 04/11/1975 start date, Building 4",
    # a typed list of the levels in code; an abbreviation spelled otherwise; a glossary of several kinds
    'export const MARKING_ORDER: Marking[] = ["U", "CUI", "C", "S", "TS"];',
    "The brief from the contractor's SBU (their ground vehicles strategic business unit) moved to 1300.",
    "CUI        Controlled Unclassified Information\n"
    "EAR99      Designation for items subject to the EAR but not on the Commerce Control List\n"
    "FOUO       For Official Use Only (legacy)\n"
    "NOFORN     Not Releasable to Foreign Nationals",
    'CUI - Controlled Unclassified Information. Banner is "CUI" plus category.\n'
    "FOUO - For Official Use Only. Legacy DoD label, replaced by CUI.\n"
    "SBU / LES - Sensitive But Unclassified / Law Enforcement Sensitive. Legacy labels used by State.\n"
    "RI / SP - Reserved Instance / Savings Plan.",
]


@pytest.mark.parametrize(("text", "category"), LISTED_AND_ATTACHED_POSITIVES)
def test_attached_content_and_markings_among_lists_are_reported(text: str, category: str) -> None:
    assert category in categories(text)


@pytest.mark.parametrize("text", LISTED_AND_ATTACHED_NEAR_MISSES)
def test_scheme_lists_clearances_and_glossaries_report_nothing(text: str) -> None:
    assert categories(text) == set()


def test_a_row_the_csv_module_refuses_is_still_read() -> None:
    # GIVEN a cell under a marking column, after a quoted field longer than the csv module's limit
    text = 'clearance,notes,marking\nx,"' + "y" * 140_000 + " ,SECRET\nz,short,SECRET"

    # WHEN / THEN the clearance check reads the row without the csv module's error
    assert "classified.banner" in categories(text)


def test_an_export_notice_read_through_ocr_digits_is_reported() -> None:
    # GIVEN a scanned drawing's notice with OCR's zeros for the letter O
    text = (
        "NOTES:\n1. BREAK ALL SHARP EDGES.\n\nWARNING - THIS D0CUMENT C0NTAINS TECHNICAL DATA WHOSE "
        "EXP0RT IS RESTRICTED BY THE ARMS EXP0RT C0NTROL ACT (TITLE 22, U.S.C., SEC 2751, ET SEQ.)."
    )

    # WHEN / THEN the notice's words are read as written
    assert "export.itar" in categories(text)


# Held-out documents' forms (the twelfth probe): each case that shows a rule fails on the engine before it.
HELD_OUT_POSITIVES = [
    # an ECCN down to its sub-paragraph, said to be what the item is classified, with its end use
    (
        "AGENT: those cores are classified 6A003.b.4.b, so the end-use statement has to come back first",
        "export.eccn",
    ),
    # a keyed field's value opening with the mark, no space after the colon (iCalendar)
    ("BEGIN:VEVENT\nSUMMARY:(CUI) Debrief - unsuccessful offeror\nEND:VEVENT", "cui.portion"),
    # what this holds, said with "has" and "in it"
    (
        "fyi this tab has CUI in it so pls dont share the link\nLabor Cat\tRate\nEngineer III\t$58.40",
        "cui.banner",
    ),
    # a derivative classifier's lines after a chat line's "Classified By:"
    (
        "[6/3/25, 7:48 AM] SSgt Hale: Classified By: J. Reyes, J3\nDerived From: SCG 2021-04\n"
        "Declassify On: 20500101",
        "classified.authority_block",
    ),
    # things just handed over, said to be controlled
    (
        "[12/5/24, 8:41 AM] Wade: drawings coming, these are ITAR controlled tech data so do not forward\n"
        "[12/5/24, 8:41 AM] Wade: <attached: 3 images>",
        "export.itar",
    ),
    # OCR's digits in lower-case words: a statement, the EAR's destination control statement, a form's label
    ("Note: pages 2-7 c0ntain CUI (export contro11ed techn1cal data). P1ease route direct1y.", "cui.banner"),
    (
        "These commodities, techno1ogy, or software were exported from the United States in accordance with "
        "the Export Administration Regu1ations. Diversion contrary to U.S. 1aw is prohibited.",
        "export.ear",
    ),
    ("PATIENT: DEL ROSARIO, A.      D0B: 04/29/1957      SEX: F", "pii.dob"),
    # the older codewords after a level, on a quoted page's header
    ("The page header and footer read:\n\nTOP SECRET UMBRA\n\nand the paragraph is:", "classified.banner"),
    # "it's" typed without its apostrophe, after a handover, the marking ending its clause
    (
        "Pasting the weekly report below. fyi its CUI so pls dont post it in the general channel.",
        "cui.banner",
    ),
    # an item's munitions-list category after a comma
    (
        "Per the vendor, the MWIR payload is a defense article on the USML, Category XII(c), and only "
        "U.S. persons may handle it.",
        "export.itar",
    ),
    # a handover by forwarding, then "the package contains CUI"
    (
        "Forwarding the request below. Heads up, the package contains CUI so keep it off the shared drive.",
        "cui.banner",
    ),
    # a naval message's classification line
    ("R 141530Z MAR 24\nFM NAVSTA MAYPORT FL\nBT\nUNCLAS FOUO\nSUBJ/OIL SPILL REPORT//", "cui.legacy"),
    # "this" and two words, said to be classified
    ("NOTE TO INSTRUCTORS: This lesson guide is classified SECRET in its entirety.", "classified.banner"),
    # the munitions list in words, then the category
    (
        "Export note: AN/PVS-14 is a defense article on the U.S. Munitions List, Category XII(c).",
        "export.itar",
    ),
    # "has ... in it" said of the attached thing
    ("heads up team - the attached applicant tracker has CUI in it so do not post it", "cui.banner"),
    # what stands below, without its article
    ("14:01:58 D4  ** LES ** info below is Law Enforcement Sensitive per Det. Kowalski", "cui.legacy"),
    # the authority block on one line, between separators
    (
        "2023-11-02 SANLOG host=s-fs03 | Classified By: SSO, 70 ISRW | Derived From: SCG 2019-04 | "
        "Declassify On: 20481231",
        "classified.authority_block",
    ),
]

HELD_OUT_NEAR_MISSES = [
    # a text that writes "(C)" for its copyright means that by its other bare "(C)"s too
    "Winter clothing drive\n(C) We need:\nKids' jackets, gloves, hats\n"
    "(C) 2024 Parish of St. Joseph - copy freely.",
    # a glossary's table: its first column names terms, so its rows define them
    "Term | What it means | Notes\nTOP SECRET | Exceptionally grave damage | Banner and (TS)\n"
    "CUI | Controlled Unclassified Information | Replaced FOUO / SBU",
    # the commas of a sentence's enumeration, not a CSV row's
    "The PI confirmed that no classified information, CUI, or export-controlled technical data will be used.",
    # a glossary line's gloss spells the abbreviation as something else
    "FTI - Federal Tax Information\n"
    "LES - in military pay, Leave and Earning Statement (the monthly pay stub)",
    # a legend that gives a letter another meaning
    "Legend: (I) = interviewer, (S) = student participant.\n[00:00:09] (S) Fall of 2019, so half remote.",
    # examples told apart: 'such as "CUI" or the older "..."'
    '- A stamp such as "CUI" or the older "FOR OFFICIAL USE ONLY" at the top of a page '
    "means the agency controls it.",
    # the marking named as a form
    "a banner that spells out the specified category (the CUI//SP-CEII form).",
    # the levels listed in prose, a control named alone beside them
    "  * Appear at top and bottom of each page: CONFIDENTIAL, SECRET, TOP SECRET, "
    "often with caveats like //NOFORN",
    # the kind, then examples in quotes
    '  * Banner "CUI", or "CUI//SP-EXPT" for specified categories',
    # sizes as parenthesised letters separated by spaces
    "Retreat shirts -- circle one: (S) (M) (L) (XL) (2XL)",
    # one of its kind
    "You might see these:\n  * CUI//SP-PRVCY or similar -- a category added to the banner",
    # a glossary's record, its key and value
    '+- term: LES\n+  definition: "Law Enforcement Sensitive, or Leave and Earnings Statement, depending."',
    # a possessive before LES, the pay statement
    "- Spouses with POA can bring the member's LES and orders.",
    # the levels' abbreviations as a confusion matrix's labels
    "| true \\ pred | U | CUI | C | S |\n|---|---|---|---|---|\n| U | 1812 | 41 | 3 | 9 |\n"
    "| CUI | 57 | 640 | 2 | 11 |\n| C | 4 | 1 | 88 | 19 |\n| S | 6 | 3 | 12 | 402 |",
    # under a condition
    "Someone asked if every page needs a banner, since the API returns data that is CUI when it's real.",
    # a thing's words painted on it
    'Found fluid under the box truck (door stenciled "FOR OFFICIAL USE ONLY / U.S. GOVERNMENT"). '
    "Swept it up.",
    # a rule that the plan must get marked, asked in a forum
    "New manager says it all has to come down and get marked CUI//SP-CEII or maybe just basic.",
    # a level compared across schemes
    'sekretno - "secret" (closest U.S. equivalent level: SECRET)',
    # a quoted level that is a word of a dish's name
    'Wings: buffalo, garlic parm, "top secret" honey-habanero',
    # what another paper bears where
    'if the sheriff gives us a 213 and it has "LAW ENFORCEMENT SENSITIVE" at the top, we refuse it.',
    "the template from the other directorate has CUI//SP-PRVCY at the top and I don't want to copy it.",
]


@pytest.mark.parametrize(("text", "category"), HELD_OUT_POSITIVES)
def test_held_out_forms_of_markings_statements_and_labels_are_reported(text: str, category: str) -> None:
    assert category in categories(text)


@pytest.mark.parametrize("text", HELD_OUT_NEAR_MISSES)
def test_held_out_mentions_legends_glossaries_and_collisions_report_nothing(text: str) -> None:
    assert categories(text) == set()
