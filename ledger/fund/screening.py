"""Screening of public text: what a person types must not pin anyone into the permanent log.

Public text (names of pools and collectives, a donor's display name, a grant's purpose, vote
notes, cancellation and correction reasons) is refused when it holds something that looks like
personal data: an email address, a phone number (``phonenumbers``), an IBAN (``schwifty``) or a
payment card number (Luhn). The refusal names the field and the kind of data, never the value,
so the value is not echoed into logs or screens either.

It is also refused when it holds characters that make text lie about itself: bidirectional
controls (a name that reads backwards), zero-width characters (two names that look the same),
C0 and C1 control characters and, in one-line fields, line breaks.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from ledger.errors import RuleViolation

# Numbers written with a country code are found whatever the region; these regions add the
# national formats of the fund's languages and neighbours. VALID leniency with is_valid_number
# keeps amounts, years and invoice numbers from passing for phone numbers.
PHONE_REGIONS: tuple[str | None, ...] = (None, "ES", "UA", "DE", "FR", "GB", "IT", "PL", "PT")

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}", re.UNICODE)
# An IBAN candidate: a country code, two check digits and 10-30 more characters, grouped or not.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){10,30}")
# A card number candidate: 13-19 digits, grouped by spaces or dashes.
_CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")


def refused_characters(*, one_line: bool) -> str:
    """The characters public text may not hold, as the body of a regular-expression character
    class that Python and JSON Schema read alike (the API's OpenAPI patterns): C0 and C1
    controls (a line feed is allowed where ``one_line`` is false), the other line breaks, the
    bidirectional controls and the zero-width characters. Personal data cannot be a pattern:
    :func:`find_personal_data` alone finds it."""
    controls = r"\x00-\x1f\x7f-\x9f" if one_line else r"\x00-\x09\x0b-\x1f\x7f-\x9f"
    others = sorted((_BIDI | _ZERO_WIDTH | _LINE_BREAKS) - set("\n\r\x0b\x0c\x85"))
    return controls + "".join(f"\\u{ord(char):04x}" for char in others)


class PersonalDataSuspected(RuleViolation):
    """Public text that holds what looks like personal data (422 ``personal_data_suspected``)."""

    def __init__(self, field: str, kind: str) -> None:
        super().__init__(
            f"{field} looks like it holds {kind}; public text is in the permanent log, so it "
            f"must not name or reach a person (put contact details in the private fields)",
            code="personal_data_suspected",
        )
        self.field = field
        self.kind = kind


@dataclass(frozen=True)
class Finding:
    """What kind of personal data a text seems to hold (never the value itself)."""

    kind: str


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _has_iban(text: str) -> bool:
    for match in _IBAN.finditer(text):
        compact = re.sub(r"[ -]", "", match.group(0)).upper()
        # The candidate may run into the next word: try every length the pattern allows.
        for end in range(len(compact), 14, -1):
            try:
                IBAN(compact[:end], validate_bban=True)
            except SchwiftyException:
                continue
            return True
    return False


def _has_card(text: str) -> bool:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        if _luhn(digits) and len(set(digits)) > 1:
            return True
    return False


def _has_phone(text: str) -> bool:
    for region in PHONE_REGIONS:
        for match in PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
            if phonenumbers.is_valid_number(match.number):
                return True
    return False


def find_personal_data(text: str) -> Finding | None:
    """The first kind of personal data ``text`` seems to hold, or None."""
    if _EMAIL.search(text):
        return Finding("an email address")
    if _has_iban(text):
        return Finding("an IBAN")
    if _has_card(text):
        return Finding("a payment card number")
    if _has_phone(text):
        return Finding("a phone number")
    return None


def _misleading_character(text: str, one_line: bool) -> str | None:
    for char in text:
        if char in _BIDI:
            return "a bidirectional control character"
        if char in _ZERO_WIDTH:
            return "a zero-width character"
        if char in _LINE_BREAKS:
            if one_line or char not in "\n":
                return "a line break"
            continue
        if unicodedata.category(char) == "Cc":
            return "a control character"
    return None


def screen_public_text(value: str, field: str, *, one_line: bool) -> str:
    """``value`` if it may enter the public log; else RuleViolation (``invalid_text``) or
    :class:`PersonalDataSuspected`, naming ``field`` and never echoing the value."""
    character = _misleading_character(value, one_line)
    if character is not None:
        raise RuleViolation(f"{field} contains {character}", code="invalid_text")
    finding = find_personal_data(value)
    if finding is not None:
        raise PersonalDataSuspected(field, finding.kind)
    return value
