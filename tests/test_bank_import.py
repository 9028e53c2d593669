"""Bank statements imported (camt.053, camt.054, MT940, CSV), over the API and the CLI, on
SQLite and PostgreSQL: credits recorded once, debits matched, bad files refused whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from lxml import etree

from api import db
from ledger.fund.privacy import private_record
from ledger.fund.reconcile import last_reconciliation
from ledger.fund.rules import MAX_BATCH
from tests.statement_builder import (
    CSV_MAPPING,
    DONOR_IBAN,
    DONOR_NAME,
    OWN_IBAN,
    XSD_FOLDER,
    Line,
    bank_csv,
    camt053,
    camt054,
    mt940,
)
from tests.test_api_support import Story, build_story, donation

IMPORTS = "/pools/food/imports"
LINES = [
    Line("12.50", "BANK-0001"),
    Line("40.00", "BANK-0002", remittance="Monthly gift", iban=None, name=None),
    Line("7.00", "BANK-0003", status="PDNG"),
    Line("30.00", "BANK-0004", credit=False, end_to_end="PAY-000001", name="Landlord"),
    Line("9.99", "BANK-0005", credit=False, remittance="bank fees", iban=None, name=None),
]


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner, donations=1)


def _import(story: Story, raw: bytes, dry_run: bool = False, status: int = 200) -> Any:
    path = IMPORTS + ("?dry_run=1" if dry_run else "")
    response = story.http.post(path, {"statement": raw.decode()}, token=story.treasurer)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _disburse(story: Story, reference: str) -> int:
    grant = story.propose("3000")
    story.vote(grant, "a1")
    story.vote(grant, "a2")
    body = {"payment_reference": reference}
    story.http.post(f"/grants/{grant}/disbursements", body, token=story.member("a1"), status=201)
    return grant


@pytest.mark.parametrize(("build", "xsd"), [(camt053, "053"), (camt054, "054")])
def test_generated_camt_documents_are_valid_iso_20022(build: Any, xsd: str) -> None:
    schema = etree.XMLSchema(etree.parse(str(XSD_FOLDER / f"camt.{xsd}.001.02.xsd")))
    document = etree.fromstring(build(LINES))
    assert schema.validate(document), schema.error_log
    broken = etree.fromstring(build(LINES).replace(b"<CdtDbtInd>CRDT", b"<CdtDbtInd>CREDIT"))
    assert not schema.validate(broken)  # (the schema is really checked)


def test_camt053_dry_run_then_import_then_again(story: Story) -> None:
    http = story.http
    grant = _disburse(story, "PAY-000001")
    before = http.size()
    preview = _import(story, camt053(LINES), dry_run=True)
    assert http.size() == before  # a dry run records nothing
    assert preview["dry_run"] is True and preview["recorded"] == 0
    actions = [(line["action"], line["reason"]) for line in preview["lines"]]
    assert actions == [
        ("record", "new_credit"),
        ("record", "new_credit"),
        ("skip", "not_booked"),
        ("matched", "disbursement"),
        ("unmatched", "no_disbursement"),
    ]
    assert preview["lines"][3]["grant"] == grant
    assert preview["statement"] == {
        "format": "camt.053",
        "id": "STMT-2026-12",
        "currency": "EUR",
        "closing": "100000",
        "closing_date": "2026-12-01",
        "lines": 5,
    }

    done = _import(story, camt053(LINES))
    assert done["recorded"] == 2 and http.size() == before + 2
    seqs = [line["seq"] for line in done["lines"][:2]]
    amounts = [http.get(f"/ledger/entries/{seq}")["entry"]["data"]["amount"] for seq in seqs]
    assert amounts == ["1250", "4000"]

    again = _import(story, camt053(LINES))
    assert again["recorded"] == 0 and http.size() == before + 2
    assert [line["reason"] for line in again["lines"][:2]] == ["recorded_already"] * 2
    assert [line["seq"] for line in again["lines"][:2]] == seqs

    # An overlapping statement (the same first line, one new one) records only the new one.
    overlapping = camt053([LINES[0], Line("5.00", "BANK-0006")], statement_id="STMT-2")
    assert _import(story, overlapping)["recorded"] == 1
    assert http.size() == before + 3


def test_imported_donations_keep_the_iban_private(story: Story, app: Flask) -> None:
    report = _import(story, camt053(LINES[:1]))
    seq = report["lines"][0]["seq"]
    entry = story.http.get(f"/ledger/entries/{seq}")["entry"]
    assert entry["data"]["channel"] == "bank"
    with app.app_context():
        raw_log = b"".join(bytes(leaf) for leaf in db.get_log().iter_raw())
        engine = db.get_engine()
        with engine.connect() as conn:
            record = private_record(conn, db.get_vault(), entry["data"]["donor"]["commitment"])
    assert record is not None and record.payload["donor_reference"] == DONOR_IBAN
    assert record.payload["external_reference"] == "BANK-0001"
    for secret in (DONOR_IBAN, DONOR_NAME, OWN_IBAN):
        assert secret.encode() not in raw_log
        assert secret not in str(report)
        assert secret not in str(entry)


def test_mt940_and_csv_import_the_same_lines(story: Story) -> None:
    first = _import(story, mt940(LINES))
    assert first["statement"]["format"] == "mt940" and first["recorded"] == 3  # (no PDNG)
    story.http.refused(
        "POST", IMPORTS, {"statement": bank_csv(LINES).decode()}, 409, "no_mapping",
        token=story.treasurer,
    )  # fmt: skip
    story.http.put(
        IMPORTS + "/csv-mapping", {"mapping": CSV_MAPPING}, token=story.treasurer, status=200
    )
    second = _import(story, bank_csv(LINES))
    assert second["statement"]["format"] == "csv"
    assert second["recorded"] == 0  # the same bank references: recorded by the MT940 import
    assert [line["reason"] for line in second["lines"][:3]] == ["recorded_already"] * 3


BAD_FILES = [
    ("truncated", camt053(LINES)[:-40], "malformed_statement"),
    ("wrong currency", camt053([Line("1.00", "G1", currency="GBP")], currency="GBP"),
     "currency_not_accepted"),
    ("mixed currencies", camt053([LINES[0], Line("1.00", "U1", currency="USD")]),
     "currency_mismatch"),
    ("duplicate entry", camt053([LINES[0], LINES[1], LINES[0]]), "duplicate_line"),
    ("too many decimals", camt053([LINES[0], Line("1.005", "D1")]), "invalid_amount"),
    ("too many decimals mt940", mt940([LINES[0], Line("1.005", "D1")]), "invalid_amount"),
    ("unknown currency", camt053([Line("1.00", "X1", currency="XXQ")]), "unknown_currency"),
    ("invalid IBAN", camt053([Line("1.00", "I1", iban="DE89370400440532013001")]),
     "invalid_iban"),
    ("entity", b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>',
     "malformed_statement"),
    ("not a statement", b"<html>camt.053</html>", "unknown_statement_format"),
    ("mt940 without closing", mt940(LINES[:1]).split(b":62F:")[0], "malformed_statement"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "code"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_statements_are_refused_whole(story: Story, name: str, raw: bytes, code: str) -> None:
    for path in (IMPORTS, IMPORTS + "?dry_run=1"):
        problem = story.http.refused(
            "POST", path, {"statement": raw.decode()}, 422, code, token=story.treasurer
        )
        assert DONOR_IBAN not in problem["detail"] and DONOR_NAME not in problem["detail"]


def test_who_may_import_and_the_limits(story: Story) -> None:
    http = story.http
    body = {"statement": camt053(LINES).decode()}
    http.refused("POST", IMPORTS, body, 403, "forbidden", token=story.applicant)
    http.refused("POST", "/pools/none/imports", body, 404, "not_found", token=story.treasurer)
    many = [Line("1.00", f"M{i}", iban=None, name=None) for i in range(MAX_BATCH + 1)]
    big = {"statement": camt053(many).decode()}
    http.refused("POST", IMPORTS, big, 422, "import_too_large", token=story.treasurer)
    mapping = {"mapping": {"date": "Day"}}
    http.refused("PUT", IMPORTS + "/csv-mapping", mapping, 422, "invalid_mapping",
                 token=story.treasurer)  # fmt: skip
    wrong = {"mapping": {**CSV_MAPPING, "amount": "Betrag"}}
    http.put(IMPORTS + "/csv-mapping", wrong, token=story.treasurer, status=200)
    refused = {"statement": bank_csv(LINES).decode()}
    http.refused("POST", IMPORTS, refused, 422, "invalid_mapping", token=story.treasurer)


def test_cli_imports_and_reports_bad_files(story: Story, runner: FlaskCliRunner,
                                           tmp_path: Path) -> None:  # fmt: skip
    statement = tmp_path / "statement.xml"
    statement.write_bytes(camt053(LINES))
    before = story.http.size()
    dry = runner.invoke(args=["import", "bank", str(statement), "--pool", "food", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would record 2 donations" in dry.output and "not_booked" in dry.output
    assert story.http.size() == before
    done = runner.invoke(args=["import", "bank", str(statement), "--pool", "food"])
    assert done.exit_code == 0, done.output
    assert "recorded 2 donations" in done.output and story.http.size() == before + 2
    for secret in (DONOR_IBAN, DONOR_NAME):
        assert secret not in dry.output + done.output

    csv_file = tmp_path / "statement.csv"
    csv_file.write_bytes(bank_csv([Line("3.00", "CSV-1")]))
    mapping = runner.invoke(args=["import", "csv-mapping", "--pool", "food", str(CSV_MAPPING)])
    assert mapping.exit_code == 1 and "not JSON" in mapping.output
    saved = runner.invoke(args=["import", "csv-mapping", "--pool", "food", json.dumps(CSV_MAPPING)])
    assert saved.exit_code == 0, saved.output
    assert (
        "recorded 1 donations"
        in runner.invoke(args=["import", "bank", str(csv_file), "--pool", "food"]).output
    )

    statement.write_bytes(camt053([LINES[0], Line("1.005", "D1")]))
    bad = runner.invoke(args=["import", "bank", str(statement), "--pool", "food"])
    assert bad.exit_code == 1
    assert "entry 2: amount '1.005' is not a number with at most the decimals of EUR" in (
        bad.output
    )
    assert story.http.size() == before + 3


def test_reconcile_against_the_last_statement(
    story: Story, app: Flask, runner: FlaskCliRunner
) -> None:
    _disburse(story, "PAY-000001")
    # The books hold 100.00 (typed in) + 12.50 + 40.00 - 30.00 paid = 122.50 EUR.
    _import(story, camt053(LINES, closing="112.51"))  # the bank also paid 9.99 of fees
    short = runner.invoke(args=["reconcile", "food"])
    assert short.exit_code == 3, short.output
    assert "EUR: ledger 122.50 EUR, bank 112.51 EUR, chain -" in short.output
    assert "difference -9.99 EUR: unexplained 0.00 EUR" in short.output
    assert "unmatched_debit -9.99 EUR: line 5 of 2026-12-01, bank reference BANK-0005" in (
        short.output
    )
    assert "USDC: ledger 0 USDC" not in short.output and "nothing outside" in short.output
    story.http.post(
        "/pools/food/donations", {**donation("500"), "channel": "cash"}, token=story.treasurer,
        status=201,
    )  # fmt: skip
    cash = runner.invoke(args=["reconcile", "food"])
    assert "cash_donation -5.00 EUR" in cash.output and "unexplained 0.00 EUR" in cash.output

    later = camt053([LINES[0]], closing="127.50", statement_id="STMT-3")
    _import(story, later)  # the bank now shows the 122.50 and the cash paid in
    balanced = runner.invoke(args=["reconcile", "food"])
    assert balanced.exit_code == 0, balanced.output
    assert "difference 0.00 EUR: balanced" in balanced.output
    with app.app_context():
        last = last_reconciliation(db.get_engine(), "food")
    assert last is not None and last[1] is True
    page = story.http.client.get("/pools/food").get_data(as_text=True)
    assert "Reconciled with the bank and the chain" in page
    assert "balanced" in page.split("Reconciled with the bank and the chain", 1)[1][:400]


def test_the_pool_page_says_when_never_reconciled(story: Story) -> None:
    page = story.http.client.get("/pools/food").get_data(as_text=True)
    after = page.split("Reconciled with the bank and the chain", 1)[1][:300]
    assert "not yet" in after
