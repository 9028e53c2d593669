"""Recurring pledges on SQLite and PostgreSQL: made anonymously (API and form), matched to bank
credits by their payment reference, counted on the pool and cycle pages as aggregates only,
lapsing after a cycle without payment, ended by their secret; bad input refused whole."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from api import db
from ledger.fund import find_references, payment_reference
from ledger.fund.pledges import pledge_payments, pledges, pool_pledge_figures
from ledger.log.clock import ManualClock
from tests.statement_builder import Line, camt053
from tests.test_api_support import PROBLEM, Story, build_story

REFERENCE = re.compile(r"LUN-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}\Z")
CYCLE = timedelta(days=29, hours=13)  # a little over a synodic month: the next cycle, surely


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner, donations=1)


def _pledge(story: Story, amount: str = "1250", currency: str = "EUR") -> dict[str, Any]:
    made = story.http.post(
        "/pools/food/pledges", {"amount": amount, "currency": currency}, key="", status=201
    )
    assert made.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = made.get_json()
    return body


def _count(app: Flask, table: Any) -> int:
    with app.app_context(), db.get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _figures(app: Flask, currency: str = "EUR") -> dict[str, int]:
    with app.app_context():
        found = pool_pledge_figures(db.get_engine(), "food", db.get_clock().now())
    (figures,) = [f for f in found if f.currency == currency]
    return {
        "pledged": figures.pledged,
        "received": figures.received,
        "active": figures.active,
        "lapsed": figures.lapsed,
        "expected_next": figures.expected_next,
    }


def _import(story: Story, lines: list[Line]) -> dict[str, Any]:
    body = {"statement": camt053(lines).decode()}
    response = story.http.post("/pools/food/imports", body, token=story.treasurer, status=200)
    result: dict[str, Any] = response.get_json()
    return result


def test_references_carry_a_check_character() -> None:
    reference = payment_reference("ABCDEFGHJK", "a-secret-of-the-donor")
    assert REFERENCE.match(reference)
    code = reference.replace("LUN-", "").replace("-", "")
    # How banks and people may write it: any case, dashes dropped or spaces, O for 0, I for 1.
    for written in (
        f"Gift {reference}",
        f"gift {reference.lower()}",
        f"LUN{code}",
        f"lun {code[:4]} {code[4:]}",
        f"{reference.replace('0', 'O').replace('1', 'I')} monthly",
    ):
        assert find_references(written) == [reference], written
    for i, char in enumerate(code):  # every single wrong character is caught
        for other in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
            if other != char:
                typo = code[:i] + other + code[i + 1 :]
                assert find_references(f"LUN-{typo[:4]}-{typo[4:]}") == []
    assert find_references(f"LUN-{code[:4]}-{code[4:]}X") == []  # longer: not this reference


def test_pledge_made_seen_and_ended_by_secret(app: Flask, story: Story) -> None:
    http = story.http
    before = http.size()
    made = _pledge(story)
    assert http.size() == before  # a pledge is not in the log
    assert REFERENCE.match(made["reference"]) and made["amount"] == "1250"
    assert made["link"].endswith(f"/pledges/{made['secret']}")
    secret = made["secret"]
    seen = http.get(f"/pledges/{secret}")
    assert seen["state"] == "active" and seen["reference"] == made["reference"]
    assert seen["payments"] == [] and seen["ended"] is None
    with app.app_context(), db.get_engine().connect() as conn:
        (row,) = conn.execute(select(pledges)).all()
    stored = repr(tuple(row))
    assert secret not in stored and made["reference"] not in stored  # hashes only
    ended = http.request("DELETE", f"/pledges/{secret}", status=200).get_json()
    assert ended["state"] == "ended" and ended["ended"]
    again = http.request("DELETE", f"/pledges/{secret}", status=200).get_json()
    assert again == ended  # idempotent: the first end stands
    assert http.get(f"/pledges/{secret}")["state"] == "ended"
    assert _figures(app)["active"] == 0 and _figures(app)["pledged"] == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/pools/nowhere/pledges", {"amount": "100", "currency": "EUR"}, 404, "not_found"),
        ("/pools/food/pledges", {"amount": "100", "currency": "GBP"}, 422, "currency_not_accepted"),
        ("/pools/food/pledges", {"amount": "100", "currency": "XYZ"}, 422, "unknown_currency"),
        ("/pools/food/pledges", {"amount": "0", "currency": "EUR"}, 422, "invalid_amount"),
        ("/pools/food/pledges", {"amount": "-500", "currency": "EUR"}, 422, "invalid_amount"),
        ("/pools/food/pledges", {"amount": "12.505", "currency": "EUR"}, 422, "invalid_amount"),
        ("/pools/food/pledges", {"amount": 500, "currency": "EUR"}, 422, "invalid_request"),
        ("/pools/food/pledges", {"amount": "500"}, 422, "invalid_request"),
        (
            "/pools/food/pledges",
            {"amount": "500", "currency": "EUR", "email": "x@example.org"},
            422,
            "invalid_request",
        ),
        (
            "/pools/food/pledges",
            {"amount": "500", "currency": "EUR", "pad": "x" * 2000},
            413,
            "body_too_large",
        ),
    ],
)
def test_bad_pledges_are_refused_and_nothing_is_kept(
    app: Flask, story: Story, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    story.http.refused("POST", path, body, status, code, key="")
    assert _count(app, pledges) == 0


def test_bad_secrets_and_bodies(app: Flask, story: Story) -> None:
    http = story.http
    made = _pledge(story)
    other_end = "B" if made["secret"].endswith("A") else "A"  # (a secret may end in "A")
    for secret in ("x" * 32, made["secret"][:-1] + other_end, "short", made["secret"] + "%00"):
        for method in ("GET", "DELETE"):
            response = http.request(method, f"/pledges/{secret}")
            assert response.status_code == 404 and response.mimetype == PROBLEM, secret
            assert response.get_json()["code"] == "not_found"
    assert http.get(f"/pledges/{made['secret']}")["state"] == "active"  # not ended by those
    refused = http.request(
        "POST", "/pools/food/pledges", raw=b"amount=1", headers={"Content-Type": "text/plain"}
    )
    assert refused.status_code == 415 and refused.mimetype == PROBLEM
    broken = http.request("POST", "/pools/food/pledges", raw=b'{"amount": "1"')
    assert broken.status_code == 400 and broken.get_json()["code"] == "malformed_json"
    assert _count(app, pledges) == 1


def test_camt053_payments_match_pledges_and_count_on_the_pages(
    app: Flask, story: Story, client: Any
) -> None:
    first, second = _pledge(story, "1250"), _pledge(story, "2000")
    _pledge(story, "5000000", "USDC")
    code = first["reference"].replace("-", " ").lower()
    lines = [
        Line("12.50", "BANK-P1", remittance=f"Monthly gift {code}"),
        Line("20.00", "BANK-P2", end_to_end=second["reference"]),
        Line("20.00", "BANK-P3", remittance="LUN-0000-0000 is no reference"),
        Line("8.00", "BANK-P4", remittance=f"{second['reference']} in USD?", currency="EUR"),
    ]
    imported = _import(story, lines)
    assert imported["recorded"] == 4 and imported["pledge_payments"] == 3
    assert _count(app, pledge_payments) == 3
    again = _import(story, lines)  # the same statement: nothing recorded, nothing linked twice
    assert again["recorded"] == 0 and again["pledge_payments"] == 0
    assert _count(app, pledge_payments) == 3
    assert _figures(app) == {
        "pledged": 3250,
        "received": 1250 + 2000 + 800,
        "active": 2,
        "lapsed": 0,
        "expected_next": 3250,
    }
    usdc = _figures(app, "USDC")
    assert usdc["pledged"] == 5000000 and usdc["received"] == 0 and usdc["active"] == 1
    mine = story.http.get(f"/pledges/{second['secret']}")
    assert [p["amount"] for p in mine["payments"]] == ["2800"]
    page = client.get("/pools/food")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="pledges-heading"' in text and "40.50" in text and "32.50" in text
    assert "/pools/food/pledge" in text
    for value in (first["secret"], second["secret"], first["reference"], second["reference"]):
        assert value not in text
        for path in ("/api/v1/pools/food", "/api/v1/entries?pool=food", "/feeds/pools/food.atom"):
            assert value not in client.get(path).get_data(as_text=True)
    cycles = story.http.get("/pools/food/cycles")
    cycle_page = client.get(f"/pools/food/cycles/{cycles[-1]['number']}")
    assert cycle_page.status_code == 200 and "40.50" in cycle_page.get_data(as_text=True)


def test_the_import_command_matches_pledges(
    app: Flask, story: Story, runner: FlaskCliRunner, tmp_path: Any
) -> None:
    made = _pledge(story, "700")
    statement = tmp_path / "statement.xml"
    statement.write_bytes(camt053([Line("7.00", "CLI-P1", remittance=made["reference"])]))
    done = runner.invoke(args=["import", "bank", str(statement), "--pool", "food"])
    assert done.exit_code == 0, done.output
    assert "recorded 1 donations, 1 matched to pledges" in done.output
    assert made["reference"] not in done.output  # (the operator sees the count, not the link)
    assert _figures(app)["received"] == 700


def test_pledges_lapse_after_a_cycle_without_payment(
    app: Flask, story: Story, clock: ManualClock
) -> None:
    paying, silent = _pledge(story, "1000"), _pledge(story, "3000")
    clock.advance(CYCLE)  # the next cycle: both made in the last one, none lapsed yet
    assert _figures(app)["lapsed"] == 0 and _figures(app)["expected_next"] == 4000
    _import(story, [Line("10.00", "BANK-L1", remittance=paying["reference"])])
    clock.advance(CYCLE)  # a whole cycle has passed since they were made
    figures = _figures(app)
    assert (figures["active"], figures["lapsed"]) == (1, 1)
    assert figures["pledged"] == 4000 and figures["received"] == 0
    assert figures["expected_next"] == 1000  # the lapsed pledge is not expected
    assert story.http.get(f"/pledges/{silent['secret']}")["state"] == "lapsed"
    assert story.http.get(f"/pledges/{paying['secret']}")["state"] == "active"
    _import(story, [Line("30.00", "BANK-L2", remittance=silent["reference"])])
    assert _figures(app)["lapsed"] == 0 and _figures(app)["received"] == 3000  # revived
    clock.advance(CYCLE * 2)
    assert _figures(app)["lapsed"] == 2 and _figures(app)["expected_next"] == 0


def _form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_pledge_form_and_secret_page(app: Flask, story: Story) -> None:
    donor = app.test_client()
    form = donor.get("/pools/food/pledge")
    assert form.status_code == 200 and "<script" not in form.get_data(as_text=True)
    token = _form_token(form.get_data(as_text=True))
    refused = donor.post("/pools/food/pledge", data={"amount": "12.5", "currency": "EUR"})
    assert refused.status_code == 403  # no CSRF token
    for amount in ("0", "-3", "12.505", "lots"):
        bad = donor.post(
            "/pools/food/pledge", data={"csrf_token": token, "amount": amount, "currency": "EUR"}
        )
        assert bad.status_code == 422 and 'id="pledge-error"' in bad.get_data(as_text=True)
    wrong = donor.post(
        "/pools/food/pledge", data={"csrf_token": token, "amount": "5", "currency": "GBP"}
    )
    assert wrong.status_code == 422
    assert donor.get("/pools/nowhere/pledge").status_code == 404
    assert _count(app, pledges) == 0
    made = donor.post(
        "/pools/food/pledge", data={"csrf_token": token, "amount": "12,50", "currency": "EUR"}
    )
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    text = made.get_data(as_text=True)
    reference = re.search(r'id="pledge-reference">([^<]+)<', text)
    link = re.search(r'id="pledge-link">[^<]*(/pledges/[^<]+)<', text)
    assert reference is not None and link is not None and REFERENCE.match(reference.group(1))
    page = donor.get(link.group(1))
    assert page.status_code == 200 and reference.group(1) in page.get_data(as_text=True)
    assert 'id="pledge-state">Active.' in page.get_data(as_text=True)
    assert donor.get("/pledges/" + "x" * 32).status_code == 404
    no_token = donor.post(link.group(1) + "/end")
    assert no_token.status_code == 403
    ended = donor.post(link.group(1) + "/end", data={"csrf_token": token})
    assert ended.status_code == 303 and ended.location.endswith(link.group(1))
    again = donor.post(link.group(1) + "/end", data={"csrf_token": token})
    assert again.status_code == 303
    assert 'id="pledge-state">Ended.' in donor.get(link.group(1)).get_data(as_text=True)


@pytest.mark.parametrize(
    ("lang", "form_words", "pool_words"),
    [
        ("es", "Importe por ciclo", "Promesas periódicas"),
        ("uk", "Сума за цикл", "Регулярні обіцянки"),
    ],
)
def test_pledge_pages_in_spanish_and_ukrainian(
    app: Flask, story: Story, lang: str, form_words: str, pool_words: str
) -> None:
    # (One language per test: pytest-flask keeps one app context, and with it the catalog.)
    donor = app.test_client()
    form = donor.get(f"/pools/food/pledge?lang={lang}")
    assert form.status_code == 200 and form_words in form.get_data(as_text=True)
    assert pool_words in donor.get(f"/pools/food?lang={lang}").get_data(as_text=True)


def test_pledges_are_rate_limited_per_client_address(app: Flask, story: Story) -> None:
    app.config.update(RATE_LIMITS=True, RATE_LIMIT_PLEDGES="2 per hour")
    body = {"amount": "100", "currency": "EUR"}
    for _ in range(2):
        story.http.post("/pools/food/pledges", body, key="", status=201)
    third = story.http.post("/pools/food/pledges", body, key="")
    assert third.status_code == 429 and third.get_json()["code"] == "rate_limited"
    assert third.headers["Retry-After"]
    assert _count(app, pledges) == 2
