"""Screening of public text: personal data and misleading characters never reach the log.

The unit tests check the detectors; the API tests put emails, phone numbers, IBANs, card
numbers and bidi, zero-width and control characters into every public text field of every
write endpoint, on both databases: always 422, the field named, the value never echoed, and
nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import phonenumbers
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import RuleViolation
from ledger.fund.screening import find_personal_data, screen_public_text
from tests.test_api_support import Story, build_story, donation, proposal

# Valid IBANs of several countries (the examples of their national registries).
IBANS = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "ES9121000418450200051332",
    "FR1420041010050500013M02606",
    "UA213223130000026007233566001",
    "PL61109010140000071219812874",
]
CARDS = ["4111111111111111", "5500005555555559", "340000000000009", "6011000990139424"]
REGIONS = ["DE", "ES", "UA", "GB", "FR", "PL"]
MISLEADING = ["\u202e", "\u200b", "\u2066", "\u200f", "\ufeff", "\x07", "\x85", "\u2028"]


def _card(digits: str, grouping: str) -> str:
    return grouping.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _iban(iban: str, grouped: bool) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if grouped else iban


def _phone(region: str) -> str:
    number = phonenumbers.example_number(region)
    assert number is not None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


emails = st.builds(
    "{}.{}@{}.{}".format,
    st.from_regex(r"[a-z]{2,8}", fullmatch=True),
    st.from_regex(r"[a-z]{2,8}", fullmatch=True),
    st.from_regex(r"[a-z]{3,10}", fullmatch=True),
    st.sampled_from(["org", "com", "es", "ua", "net"]),
)
personal_data = st.one_of(
    emails,
    st.builds(_iban, st.sampled_from(IBANS), st.booleans()),
    st.builds(_card, st.sampled_from(CARDS), st.sampled_from(["", " ", "-"])),
    st.builds(_phone, st.sampled_from(REGIONS)),
)
words = st.sampled_from(["Rent for", "Help", "Ayuda para", "Допомога", "Food", "Roof"])
pinned_text = st.builds("{} {} now".format, words, personal_data)
misleading_text = st.builds("{}{}family".format, words, st.sampled_from(MISLEADING))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("maria.lopez@example.org", "an email address"),
        ("Rent for Olena Petrenko, DE89370400440532013000", "an IBAN"),
        ("pay to GB82 WEST 1234 5698 7654 32 please", "an IBAN"),
        ("card 4111 1111 1111 1111", "a payment card number"),
        ("call +49 30 12345678", "a phone number"),
        ("llamar al 612 345 678", "a phone number"),
    ],
)
def test_personal_data_is_found(text: str, kind: str) -> None:
    finding = find_personal_data(text)
    assert finding is not None and finding.kind == kind


@pytest.mark.parametrize(
    "text",
    [
        "Rent for March 2026, 3 months",
        "Food for 120 families in 2026, budget 1500000",
        "Invoice 2026-0012345",
        "Школа №5, ремонт даху 2026",
        "Ayuda urgente: alquiler de marzo",
        "Transfer ref 20261207 123456",
        "1111 1111 1111 1111",  # passes Luhn, but no card is all one digit
    ],
)
def test_ordinary_text_passes(text: str) -> None:
    assert find_personal_data(text) is None
    assert screen_public_text(text, "purpose", one_line=True) == text


def test_refusals_name_the_field_and_kind_never_the_value() -> None:
    secret = "DE89370400440532013000"
    with pytest.raises(RuleViolation) as refused:
        screen_public_text(f"for {secret}", "purpose", one_line=False)
    assert refused.value.code == "personal_data_suspected"
    assert "purpose" in str(refused.value) and "IBAN" in str(refused.value)
    assert secret not in str(refused.value)


@pytest.mark.parametrize("char", MISLEADING)
def test_misleading_characters_are_refused(char: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        screen_public_text(f"Alba{char}Collective", "name", one_line=False)
    assert refused.value.code == "invalid_text"


def test_line_breaks_only_in_multi_line_text() -> None:
    assert screen_public_text("Rent\nand food", "purpose", one_line=False) == "Rent\nand food"
    for text in ["Rent\nand food", "Rent\r\nand food"]:
        with pytest.raises(RuleViolation):
            screen_public_text(text, "name", one_line=True)
    with pytest.raises(RuleViolation):
        screen_public_text("Rent\r\nand food", "purpose", one_line=False)


# -- every public text field of every write endpoint ----------------------------------------

Send = Callable[[Story, str], tuple[str, str, Any, str | None]]
"""Builds (method, path, body, token) that carries ``text`` in one public field."""


def _grant(story: Story) -> int:
    return story.propose("1000")


def _last_donation(story: Story) -> int:
    page = story.http.get("/ledger/entries?kind=donation_recorded&limit=1000")
    return int(page["items"][-1]["seq"])


PUBLIC_FIELDS: dict[str, Send] = {
    "pool name": lambda s, t: (
        "POST",
        "/pools",
        {"slug": "p1", "name": t, "currencies": ["EUR"]},
        s.admin,
    ),
    "collective name": lambda s, t: ("POST", "/collectives", {"slug": "c1", "name": t}, s.admin),
    "display_name": lambda s, t: (
        "POST",
        "/pools/food/donations",
        donation(display_name=t),
        s.treasurer,
    ),
    "batch display_name": lambda s, t: (
        "POST",
        "/pools/food/donations:batch",
        {"donations": [donation(), donation(display_name=t)]},
        s.treasurer,
    ),
    "purpose": lambda s, t: ("POST", "/pools/food/grants", proposal(purpose=t), s.applicant),
    "vote note": lambda s, t: (
        "POST",
        f"/grants/{_grant(s)}/votes",
        {"vote": "approve", "note": t},
        s.member("a1"),
    ),
    "cancellation reason": lambda s, t: (
        "POST",
        f"/grants/{_grant(s)}/cancel",
        {"reason": t},
        s.admin,
    ),
    "correction reason": lambda s, t: (
        "POST",
        "/corrections",
        {"corrects": _last_donation(s), "reason": t},
        s.admin,
    ),
}


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner)


@pytest.mark.parametrize("field", sorted(PUBLIC_FIELDS))
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(pinned_text, misleading_text))
def test_public_fields_refuse_personal_data(story: Story, field: str, text: str) -> None:
    method, path, body, token = PUBLIC_FIELDS[field](story, text)
    code = "personal_data_suspected" if find_personal_data(text) else "invalid_text"
    problem = story.http.refused(method, path, body, 422, code, token=token)
    assert text not in problem["detail"]
    assert not any(text in str(value) for value in problem.get("errors", {}).values())


def test_the_same_fields_take_ordinary_text(story: Story) -> None:
    """The refusals above are about the text: the same requests with plain words succeed."""
    for field, send in sorted(PUBLIC_FIELDS.items()):
        method, path, body, token = send(story, "Rent and food for March")
        response = story.http.request(method, path, body, token=token)
        assert response.status_code in (200, 201), (field, response.get_json())
