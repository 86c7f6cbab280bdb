"""Checksum and rule validators for PII candidates.

Each function takes the digits (or date parts) already extracted by a detector and answers whether the
candidate is a real instance of the identifier. They are pure and cheap: they run only on the few
candidates the detectors' regular expressions produce, never over whole texts.
"""

from __future__ import annotations

# Advertising and documentation SSNs that the SSA has declared invalid in addition to the structural rules.
_KNOWN_INVALID_SSNS = frozenset({"078051120", "219099999", "457555462"})

# First two digits of an ABA routing number: 00-12 (Federal Reserve), 21-32 (thrift), 61-72
# (electronic), 80 (traveller's cheques). Anything else is not a routing number.
_ABA_PREFIXES = frozenset(
    [f"{n:02d}" for n in range(13)]
    + [str(n) for n in range(21, 33)]
    + [str(n) for n in range(61, 73)]
    + ["80"]
)

_ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


def ssn_is_valid(digits: str) -> bool:
    """A nine-digit U.S. SSN: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9":
        return False
    if group == "00" or serial == "0000":
        return False
    return digits not in _KNOWN_INVALID_SSNS


def luhn_is_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment card numbers."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_LONG = frozenset(range(16, 20))
# (network, prefix width, lowest prefix, highest prefix, valid lengths): issued IIN ranges.
_CARD_RANGES: tuple[tuple[str, int, int, int, frozenset[int]], ...] = (
    ("visa", 1, 4, 4, frozenset({13, 16, 19})),
    ("mastercard", 2, 51, 55, frozenset({16})),
    ("mastercard", 4, 2221, 2720, frozenset({16})),
    ("amex", 2, 34, 34, frozenset({15})),
    ("amex", 2, 37, 37, frozenset({15})),
    ("discover", 4, 6011, 6011, frozenset({16, 19})),
    ("discover", 2, 65, 65, frozenset({16, 19})),
    ("discover", 3, 644, 649, frozenset({16, 19})),
    ("discover", 6, 622126, 622925, frozenset({16, 19})),
    ("jcb", 4, 3528, 3589, _LONG),
    ("diners", 2, 36, 36, frozenset(range(14, 20))),
    ("diners", 2, 38, 39, frozenset(range(14, 20))),
    ("diners", 3, 300, 305, frozenset(range(14, 20))),
    ("diners", 4, 3095, 3095, frozenset(range(14, 20))),
    ("unionpay", 2, 62, 62, _LONG),
)


def card_brand(digits: str) -> str | None:
    """The card network whose IIN range and length fit ``digits``, or None.

    Restricting to issued ranges removes most Luhn-valid accidents (one random number in ten passes Luhn).
    """
    if not digits.isdigit():
        return None
    for brand, width, low, high, lengths in _CARD_RANGES:
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return brand
    return None


def card_number_is_valid(digits: str) -> bool:
    """13-19 digits in an issued IIN range that pass Luhn."""
    return 13 <= len(digits) <= 19 and card_brand(digits) is not None and luhn_is_valid(digits)


def aba_routing_is_valid(digits: str) -> bool:
    """Nine digits, a valid Federal Reserve prefix, and the 3-7-1 weighted checksum."""
    if len(digits) != 9 or not digits.isdigit() or digits[:2] not in _ABA_PREFIXES:
        return False
    return sum(w * (ord(c) - 48) for w, c in zip(_ABA_WEIGHTS, digits, strict=True)) % 10 == 0


def nanp_is_valid(area: str, exchange: str) -> bool:
    """North American Numbering Plan: area and exchange start 2-9 and are not N11 service codes."""
    if len(area) != 3 or len(exchange) != 3:
        return False
    if area[0] in "01" or exchange[0] in "01":
        return False
    return area[1:] != "11" and exchange[1:] != "11"


def date_is_plausible(month: int, day: int, year: int) -> bool:
    """A calendar date a person could have been born on (years 1900-2099, two-digit years allowed)."""
    if year < 100:
        year += 1900
    if not 1900 <= year <= 2099 or not 1 <= month <= 12 or day < 1:
        return False
    days_in_month = (
        31,
        29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    )
    return day <= days_in_month[month - 1]
