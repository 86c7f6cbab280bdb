"""Checksum and numbering rules behind the PII detectors."""

from __future__ import annotations

import pytest
from xpi.domain.classification.validators import (
    aba_routing_is_valid,
    card_brand,
    card_number_is_valid,
    date_is_plausible,
    luhn_is_valid,
    nanp_is_valid,
    ssn_is_valid,
)


@pytest.mark.parametrize("digits", ["123456789", "219458832", "001010001", "665999999", "899991234"])
def test_ssn_with_valid_area_group_and_serial_is_valid(digits: str) -> None:
    assert ssn_is_valid(digits)


@pytest.mark.parametrize(
    ("digits", "rule"),
    [
        ("000123456", "area 000"),
        ("666123456", "area 666"),
        ("900123456", "area 900-999"),
        ("999123456", "area 900-999"),
        ("123004567", "group 00"),
        ("123450000", "serial 0000"),
        ("078051120", "advertised Woolworth wallet number"),
        ("12345678", "eight digits"),
        ("12345678a", "not digits"),
    ],
)
def test_ssn_breaking_a_rule_is_invalid(digits: str, rule: str) -> None:
    assert not ssn_is_valid(digits), rule


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("79927398713", True), ("79927398710", False), ("4111111111111111", True), ("4111111111111112", False)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_is_valid(digits) is valid


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
        ("1234567812345670", None),  # Luhn-valid, but no network issues numbers starting with 1
        ("411111111111111", None),  # Visa prefix, impossible length 15
    ],
)
def test_card_brand_needs_an_issued_prefix_and_length(digits: str, brand: str | None) -> None:
    assert card_brand(digits) == brand


def test_card_number_needs_both_brand_and_luhn() -> None:
    # GIVEN a number in an issued range that fails Luhn, and one outside any range that passes it
    assert luhn_is_valid("1234567812345670")
    # THEN neither is a card number; the genuine test card is
    assert not card_number_is_valid("4111111111111112")
    assert not card_number_is_valid("1234567812345670")
    assert card_number_is_valid("4111111111111111")


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("021000021", True),
        ("011000015", True),
        ("121000358", True),
        ("322271627", True),
        ("021000022", False),  # checksum
        ("123456789", False),  # checksum
        ("991000017", False),  # prefix 99 is not assigned
        ("02100002", False),  # length
    ],
)
def test_aba_routing_number(digits: str, valid: bool) -> None:
    assert aba_routing_is_valid(digits) is valid


@pytest.mark.parametrize(
    ("area", "exchange", "valid"),
    [
        ("202", "555", True),
        ("123", "456", False),
        ("202", "055", False),
        ("911", "555", False),
        ("202", "411", False),
    ],
)
def test_nanp_area_and_exchange(area: str, exchange: str, valid: bool) -> None:
    assert nanp_is_valid(area, exchange) is valid


@pytest.mark.parametrize(
    ("month", "day", "year", "valid"),
    [
        (2, 29, 2000, True),
        (2, 29, 1900, False),
        (2, 29, 2024, True),
        (4, 31, 1990, False),
        (13, 1, 1990, False),
        (12, 31, 62, True),
        (1, 1, 1850, False),
    ],
)
def test_date_is_plausible(month: int, day: int, year: int, valid: bool) -> None:
    assert date_is_plausible(month, day, year) is valid
