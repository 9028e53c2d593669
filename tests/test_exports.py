"""Cycle reports: the data, CSV, JSON, JSONL, beancount, bad input, privacy and the CLI.

Each test writes a real history through the fund's commands (two lunar cycles: the first
closed by a handover, the second in progress) on SQLite and on PostgreSQL, and checks the
exports against the projections and against each other. PDF tests: test_exports_pdf.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, and_, select

from exports import errors
from exports.csv_export import CSV_FIELDS, parse_fields
from exports.data import gather
from exports.formats import FORMATS, make_options, render_report
from exports.i18n import choose_language
from exports.report import CycleReport
from exports.verify import verify_cycle_export
from ledger.errors import LedgerError, NotFound, VerificationError
from ledger.fund.commands import Fund
from ledger.fund.rules import Actor, member_actor
from ledger.fund.schema import cycle_flows, cycles, donations
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.clock import ManualClock
from ledger.log.notes import Signer
from ledger.log.schema import checkpoints

ADMIN = Actor("admin:t1", "admin")
TREASURER = Actor("treasurer:t2", "treasurer")
APPLICANT = Actor("applicant:t3", "applicant")
START = datetime(2026, 1, 1, 12, tzinfo=UTC)  # lunar cycle 321 runs 2025-12-20 to 2026-01-18
SECOND = datetime(2026, 1, 20, 12, tzinfo=UTC)  # cycle 322
NOW = datetime(2026, 1, 25, 12, tzinfo=UTC)
OPT_IN_NAME = "Ана Ωmega"  # Cyrillic and Greek: the embedded fonts must cover both

# Everything written to private fields; none of it may reach any export.
PRIVATE = (
    "IBAN-DE-SECRET-0001",
    "IBAN-DE-SECRET-0002",
    "BANK-TX-SECRET-A",
    "BANK-TX-SECRET-B",
    "BANK-TX-SECRET-C",
    "BANK-TX-SECRET-D",
    "BANK-TX-SECRET-E",
    "BANK-TX-SECRET-F",
    "CRYPTO-TX-SECRET-G",
    "PAY-SECRET-REF-1",
    "PAY-SECRET-REF-2",
    "PAY-SECRET-REF-3",
    "Calle Secreta 12, Valencia",
    "donor note kept private",
)


def member(collective: str, name: str) -> Actor:
    return Actor(member_actor(name), "member", collective=collective, member=name)


def donation(amount: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR", "channel": "bank", "external_reference": ref,
            **extra}  # fmt: skip


@dataclass(frozen=True)
class History:
    fund: Fund
    first: int  # the closed cycle
    second: int  # the cycle in progress
    corrected: int  # seq of the corrected donation
    reversed_grant: int


def build_history(fund: Fund, clock: ManualClock) -> History:
    """Two cycles of pool ``food``: donations in EUR and USDC, quorum and fast-lane grants,
    a corrected donation, a reversed disbursement, a vote voided at the handover."""
    clock.set(START)
    for slug, names in {"alba": ["a1", "a2", "a3"], "brisa": ["b1", "b2"]}.items():
        fund.register_collective(ADMIN, slug=slug, name=slug.title())
        for name in names:
            fund.add_member(ADMIN, slug, member=name)
    fund.create_pool(
        ADMIN,
        slug="food",
        name="Banco de alimentos Ωmega",
        currencies=["EUR", "USDC"],
        fast_lane_cap={"EUR": "5000"},
        cycle_allowance={"EUR": "8000"},
    )
    fund.set_roster(ADMIN, "food", ["alba", "brisa"])
    clock.advance(timedelta(hours=3))
    fund.record_donations(
        TREASURER,
        "food",
        [
            donation("25000", "BANK-TX-SECRET-A", donor_reference="IBAN-DE-SECRET-0001"),
            donation("12050", "BANK-TX-SECRET-B", donor_reference="IBAN-DE-SECRET-0002",
                     display_name=OPT_IN_NAME, note="donor note kept private"),
            donation("7000", "BANK-TX-SECRET-C"),
        ],
    )  # fmt: skip
    clock.advance(timedelta(days=1))
    fund.record_donation(
        TREASURER,
        "food",
        {"amount": "1500000", "currency": "USDC", "channel": "crypto",
         "external_reference": "CRYPTO-TX-SECRET-G"},
    )  # fmt: skip
    duplicate = fund.record_donation(TREASURER, "food", donation("3000", "BANK-TX-SECRET-D")).seq
    fund.correct(TREASURER, corrects=duplicate, reason="imported twice from the bank file")
    clock.advance(timedelta(days=2))
    g1 = _proposal(fund, "20000", "normal", details="Calle Secreta 12, Valencia")
    fund.cast_vote(member("alba", "a1"), g1, vote="approve")
    fund.cast_vote(member("alba", "a2"), g1, vote="approve")
    fund.disburse(member("alba", "a1"), g1, payment_reference="PAY-SECRET-REF-1")
    g2 = _proposal(fund, "3000", "urgent")
    fund.cast_vote(member("alba", "a3"), g2, vote="approve", fast_lane=True)
    paid = fund.disburse(member("alba", "a3"), g2, payment_reference="PAY-SECRET-REF-2").seq
    fund.correct(TREASURER, corrects=paid, reason="bank returned the transfer")
    g3 = _proposal(fund, "4000", "normal")
    fund.cast_vote(member("alba", "a1"), g3, vote="approve")  # voided at the handover
    clock.advance(timedelta(days=5))
    fund.record_donation(TREASURER, "food", donation("1000", "BANK-TX-SECRET-E"))
    clock.set(SECOND)  # the next write hands custody to brisa first
    fund.record_donation(TREASURER, "food", donation("5000", "BANK-TX-SECRET-F"))
    fund.cast_vote(member("brisa", "b1"), g3, vote="approve")
    fund.cast_vote(member("brisa", "b2"), g3, vote="approve")
    fund.disburse(member("brisa", "b1"), g2, payment_reference="PAY-SECRET-REF-3")
    clock.set(NOW)
    fund.log.checkpoint_now()
    return History(fund, 321, 322, duplicate, g2)


def _proposal(fund: Fund, amount: str, urgency: str, details: str | None = None) -> int:
    proposal: dict[str, Any] = {
        "amount": amount,
        "currency": "EUR",
        "purpose": "Winter heating bill — рахунок за опалення",
        "urgency": urgency,
        "recipient": "household-7",
    }
    if details is not None:
        proposal["recipient_details"] = details
    return fund.propose_grant(APPLICANT, "food", proposal).seq


@pytest.fixture
def history(log: Log, vault: Vault, clock: ManualClock) -> History:
    return build_history(Fund(log, vault), clock)


def render(engine: Engine, cycle: int | str, fmt: str, **options: Any) -> bytes:
    return render_report(
        engine, "food", cycle, fmt, now=NOW, options=make_options(**options)
    ).content


def projected_statement(engine: Engine, number: int) -> dict[str, dict[str, str]]:
    with engine.connect() as conn:
        text = conn.execute(
            select(cycles.c.statement).where(
                and_(cycles.c.pool == "food", cycles.c.number == number)
            )
        ).scalar_one()
    statement: dict[str, dict[str, str]] = json.loads(text)
    return statement


# -- the data -------------------------------------------------------------------------------


def test_report_equals_the_handover_statement_and_the_projections(history: History) -> None:
    engine = history.fund.log.engine
    report = gather(engine, "food", history.first, NOW)
    assert not report.interim
    assert report.custodian == "alba"
    statement = projected_statement(engine, history.first)
    assert {rf.currency: rf.statement() for rf in report.roll_forward} == statement
    assert report.statement == statement
    eur = {rf.currency: rf for rf in report.roll_forward}["EUR"]
    # 25000 + 12050 + 7000 + 3000 + 1000 donated; 3000 reversed; 20000 + 3000 paid, 3000 back.
    assert (eur.donations, eur.corrections, eur.disbursements) == (48050, 0, 23000)
    assert (eur.closing, eur.committed, eur.available, eur.fast_lane_used) == (25050, 3000, 22050,
                                                                               3000)  # fmt: skip
    with engine.connect() as conn:
        flows = {
            r.currency: r
            for r in conn.execute(
                select(cycle_flows).where(
                    and_(cycle_flows.c.pool == "food", cycle_flows.c.cycle == history.first)
                )
            )
        }
        projected = conn.execute(
            select(donations.c.seq).where(
                and_(donations.c.pool == "food", donations.c.cycle == history.first)
            )
        ).all()
        covering = conn.execute(
            select(checkpoints.c.size)
            .where(checkpoints.c.size > report.closing_seq)
            .order_by(checkpoints.c.size)
            .limit(1)
        ).scalar_one()
    assert str(eur.donations) == flows["EUR"].donations
    assert sorted(r.seq for r in report.donations) == sorted(s for (s,) in projected)
    assert report.checkpoint.size == covering
    assert report.closing_seq == report.entries[-1].seq
    corrected = report.corrected()
    assert corrected[history.corrected] == history.corrected + 1 and len(corrected) == 2


def test_grants_votes_and_decisions(history: History) -> None:
    report = gather(history.fund.log.engine, "food", history.first, NOW)
    by_id = {g.id: g for g in report.grants}
    quorum, fast, carried = sorted(by_id.values(), key=lambda g: g.id)
    assert quorum.decision is not None and quorum.decision.lane == "quorum"
    assert quorum.decision.quorum == 2 and quorum.decision.approvals == ("a1", "a2")
    assert quorum.disbursement is not None and quorum.disbursement.amount == 20000
    assert fast.decision is not None and fast.decision.lane == "fast_lane"
    assert fast.decision.allowance_left == 5000
    assert fast.reversal is not None and fast.id == history.reversed_grant
    assert [(v.member, v.void) for v in carried.votes] == [("a1", True)]
    assert carried.decision is None
    later = gather(history.fund.log.engine, "food", history.second, NOW)
    carried_later = {g.id: g for g in later.grants}[carried.id]
    assert not carried_later.proposed_in_cycle
    assert carried_later.proposed_cycle == history.first
    assert [v.member for v in carried_later.votes] == ["b1", "b2"]


def test_interim_report_covers_the_latest_checkpoint(history: History) -> None:
    engine = history.fund.log.engine
    report = gather(engine, "food", "latest", NOW)
    assert report.cycle == history.second and report.interim
    assert report.statement is None and report.closing_seq is None
    assert report.custodian == "brisa"
    latest = history.fund.log.latest_checkpoint()
    assert latest is not None and report.checkpoint.size == latest.size
    assert report.entries[-1].seq < latest.size
    # Entries after the latest checkpoint are not in the report until the next one.
    history.fund.record_donation(TREASURER, "food", donation("900", "BANK-TX-SECRET-E2"))
    again = gather(engine, "food", "latest", NOW)
    assert again.entries == report.entries
    history.fund.log.checkpoint_now()
    assert len(gather(engine, "food", "latest", NOW).entries) == len(report.entries) + 1


def test_anchor_of_the_covering_checkpoint(history: History) -> None:
    log = history.fund.log
    report = gather(log.engine, "food", history.first, NOW)
    assert report.anchor is None
    cp = report.checkpoint
    data = {
        "chain_id": 31337,
        "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "tx_hash": "0x" + "ab" * 32,
        "block_number": 7,
        "anchor_index": 0,
        "size": cp.size,
        "root": cp.root.hex(),
    }
    log.append("checkpoint_anchored", {**data, "root": "00" * 32}, "anchor")  # a bogus root
    assert gather(log.engine, "food", history.first, NOW).anchor is None
    log.append("checkpoint_anchored", data, "anchor")
    anchor = gather(log.engine, "food", history.first, NOW).anchor
    assert anchor is not None and anchor.size == cp.size and anchor.consistency == ()
    assert anchor.tx_hash == data["tx_hash"] and anchor.chain_id == 31337
    document = json.loads(render(log.engine, history.first, "json"))
    assert document["anchor"]["contract"] == data["contract"]


# -- CSV and JSON ---------------------------------------------------------------------------


def _csv_rows(content: bytes) -> list[dict[str, str]]:
    assert content.count(b"\r\n") == content.count(b"\n")  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))


def test_csv_and_json_totals_equal_the_roll_forward(history: History) -> None:
    engine = history.fund.log.engine
    for number in (history.first, history.second):
        report = gather(engine, "food", number, NOW)
        rows = _csv_rows(render(engine, number, "csv"))
        assert list(rows[0]) == list(CSV_FIELDS)
        assert [int(r["seq"]) for r in rows] == report.seqs
        document = json.loads(render(engine, number, "json"))
        totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in rows:
            if row["fund_change"]:
                totals[row["currency"]]["change"] += int(row["fund_change"])
            if row["kind"] == "donation_recorded":
                totals[row["currency"]]["donations"] += int(row["amount"])
        for rf in report.roll_forward:
            assert totals[rf.currency]["change"] == rf.closing - rf.opening
            assert totals[rf.currency]["donations"] == rf.donations
            json_rf = document["roll_forward"][rf.currency]
            assert json_rf["closing"] == str(rf.closing)
            json_donations = sum(
                int(d["amount"]) for d in document["donations"] if d["currency"] == rf.currency
            )
            assert json_donations == rf.donations
        assert document["cycle"]["status"] == ("interim" if report.interim else "closed")
    closed = json.loads(render(engine, history.first, "json"))
    assert closed["statement"] == projected_statement(engine, history.first)
    assert closed["counts"]["donation_recorded"] == 6
    assert closed["pdf"]["sha256"] == _sha256(render(engine, history.first, "pdf"))


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_csv_field_selection_and_date_range(history: History) -> None:
    engine = history.fund.log.engine
    rows = _csv_rows(render(engine, history.first, "csv", fields="amount,seq,kind"))
    assert list(rows[0]) == ["amount", "seq", "kind"]
    ranged = _csv_rows(render(engine, history.first, "csv", since="2026-01-02", until="2026-01-04"))
    assert ranged and all("2026-01-02" <= r["ts"][:10] < "2026-01-04" for r in ranged)
    assert len(ranged) < len(_csv_rows(render(engine, history.first, "csv")))


@pytest.mark.parametrize(
    "fields", ["", "seq,,ts", "seq,seq", "seq,password", " ,", "seq;ts"]
)  # fmt: skip
def test_malformed_fields_are_refused(fields: str) -> None:
    with pytest.raises(errors.InvalidFields) as caught:
        parse_fields(fields)
    assert caught.value.code == "invalid_fields"


# -- JSONL and beancount --------------------------------------------------------------------


def test_jsonl_entries_are_proven_against_the_checkpoint(history: History, signer: Signer) -> None:
    engine = history.fund.log.engine
    for number in (history.first, history.second):
        content = render(engine, number, "jsonl")
        lines = content.splitlines()
        report = gather(engine, "food", number, NOW)
        assert len(lines) == len(report.entries) + 1
        check = verify_cycle_export(lines, [signer.verifier()])
        assert check.entries == len(report.entries) and check.closed == (not report.interim)
        # The verifier knows no allowance (that is in the pool's settings, not the cycle).
        assert check.roll_forward == tuple(
            replace(rf, fast_lane_allowance=0) for rf in report.roll_forward
        )
    lines = render(engine, history.first, "jsonl").splitlines()
    tampered = [line.replace(b'"amount":"25000"', b'"amount":"25001"') for line in lines]
    assert sum(a != b for a, b in zip(tampered, lines, strict=True)) == 1
    with pytest.raises(VerificationError, match="entry_hash is not the hash"):
        verify_cycle_export(tampered, [signer.verifier()])
    with pytest.raises(LedgerError):
        verify_cycle_export(lines, [Signer.generate("test.lunaria.example/log").verifier()])


def test_jsonl_verifier_command(history: History, signer: Signer, tmp_path: Path) -> None:
    path = tmp_path / "cycle.jsonl"
    path.write_bytes(render(history.fund.log.engine, history.first, "jsonl"))
    done = subprocess.run(
        [sys.executable, "-m", "exports.verify", str(path), "--vkey", signer.verifier().vkey()],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "closing 250.50" in done.stdout and "(closed)" in done.stdout


def _bean_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "bean-check"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_beancount_passes_bean_check_and_fails_when_altered(
    history: History, tmp_path: Path
) -> None:
    engine = history.fund.log.engine
    for number in (history.first, history.second):
        path = tmp_path / f"{number}.beancount"
        path.write_bytes(render(engine, number, "beancount"))
        done = _bean_check(path)
        assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / f"{history.first}.beancount").read_text()
    assert "balance Assets:Food:EUR:Available  220.50 ~ 0 EUR" in text
    assert "balance Assets:Food:EUR:Committed  30.00 ~ 0 EUR" in text
    assert "balance Assets:Food:USDC:Available  1.500000 ~ 0 USDC" in text
    assert text.count("  seq: ") >= 10 and "  entry_hash: " in text
    donated = "  Assets:Food:EUR:Available  250.00 EUR"
    assert text.count(donated) == 1
    altered = tmp_path / "altered.beancount"
    altered.write_text(
        text.replace(donated, "  Assets:Food:EUR:Available  250.01 EUR").replace(
            "  Income:Food:EUR:Donations  -250.00 EUR", "  Income:Food:EUR:Donations  -250.01 EUR"
        )
    )
    done = _bean_check(altered)
    assert done.returncode != 0
    assert "Balance failed" in done.stdout + done.stderr


# -- bad input, privacy, languages ----------------------------------------------------------


def test_bad_input_gives_clear_errors(history: History) -> None:
    engine = history.fund.log.engine
    cases: list[tuple[dict[str, Any], str]] = [
        ({"pool": "nope"}, "not_found"),
        ({"cycle": history.second + 1}, "cycle_not_started"),
        ({"cycle": history.first - 1}, "cycle_before_pool"),
        ({"cycle": "next"}, "invalid_cycle"),
        ({"fmt": "xlsx"}, "unknown_format"),
    ]
    for change, code in cases:
        args = {"pool": "food", "cycle": history.first, "fmt": "pdf", **change}
        with pytest.raises(LedgerError) as caught:
            render_report(engine, args["pool"], args["cycle"], args["fmt"], now=NOW)
        assert caught.value.code == code, caught.value.message
    with pytest.raises(NotFound):
        gather(engine, "nope", 1, NOW)
    with pytest.raises(errors.InvalidFields):
        make_options(fields="seq,nope")
    with pytest.raises(errors.InvalidRange):
        make_options(since="yesterday")
    with pytest.raises(errors.InvalidRange):
        make_options(since="2026-01-05", until="2026-01-01")


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(content))
    metadata = " ".join(str(v) for v in (reader.metadata or {}).values())
    return metadata + "\n".join(page.extract_text() for page in reader.pages)


def test_private_values_appear_in_no_format(history: History) -> None:
    engine = history.fund.log.engine
    for number in (history.first, history.second):
        for fmt in FORMATS:
            for lang in ("en", "uk") if fmt == "pdf" else ("en",):
                content = render(engine, number, fmt, lang=lang)
                text = _pdf_text(content) if fmt == "pdf" else content.decode("utf-8")
                leaked = [value for value in PRIVATE if value in text]
                assert leaked == [], f"{fmt} of cycle {number} shows {leaked}"
    assert OPT_IN_NAME in render(engine, history.first, "csv").decode()  # opted in: public


def test_language_is_chosen_like_the_web_page() -> None:
    assert choose_language("uk") == "uk"
    assert choose_language("es-AR") == "es"
    assert choose_language("de", "de-DE,uk;q=0.8,es;q=0.5") == "uk"
    assert choose_language(None, "fr, es;q=0.9, en;q=0.8") == "es"
    assert choose_language(None, "fr") == "en"
    assert choose_language(None, None) == "en"
    assert make_options(accept_language="uk-UA,uk;q=0.9").lang == "uk"


# -- the command line -----------------------------------------------------------------------


def test_report_command(history: History, runner: FlaskCliRunner, tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    result = runner.invoke(
        args=["report", "food", str(history.first), "--format", "csv", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == render(history.fund.log.engine, history.first, "csv")
    assert "closed" in result.output and "sha256" in result.output
    result = runner.invoke(args=["report", "food", "latest", "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["cycle"]["number"] == history.second
    for args, message in (
        (["report", "food", "latest", "-f", "xml"], "unknown format 'xml'"),
        (["report", "nope", "latest"], "no pool 'nope'"),
        (["report", "food", "9999"], "has not started"),
        (["report", "food", "1"], "was created in cycle 321"),
        (["report", "food", "321", "-f", "csv", "--fields", "seq,x"], "unknown fields 'x'"),
    ):
        result = runner.invoke(args=[*args, "-o", str(tmp_path / "bad")])
        assert result.exit_code == 1
        assert message in result.output
        assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_report_of_the_demo_history(runner: FlaskCliRunner) -> None:
    """Six cycles written by ``lunaria init --demo``: every closed cycle adds up."""
    result = runner.invoke(args=["init", "--demo"])
    assert result.exit_code == 0, result.output
    from api import db

    with runner.app.app_context():
        engine = db.get_engine()
        now = db.get_clock().now()
        for pool in ("food-bank", "legal-aid"):
            latest = gather(engine, pool, "latest", now)
            reports: list[CycleReport] = [
                gather(engine, pool, n, now) for n in range(latest.cycle - 6, latest.cycle)
            ]
            assert all(not r.interim for r in reports) and latest.interim
            for before, after in itertools.pairwise(reports):
                closing = {rf.currency: rf.closing for rf in before.roll_forward}
                assert {rf.currency: rf.opening for rf in after.roll_forward} == closing
