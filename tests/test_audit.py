"""Audits of a published log from the outside: a directory, HTTP, tampering, domain rules."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from api import db
from ledger import migrate
from ledger.errors import LedgerError, VerificationError
from ledger.fund.audit import audit, audit_rules, open_source
from ledger.fund.commands import Fund
from ledger.fund.demo import load_demo, start_of_demo
from ledger.fund.rules import Actor, member_actor
from ledger.log.append import Log
from ledger.log.clock import ManualClock
from ledger.log.db import make_engine
from ledger.log.entry import GENESIS_PREV, Entry, decode_entry, encode_entry
from ledger.log.notes import Checkpoint, Signer, sign_checkpoint
from ledger.log.tiles import encode_bundle, publish
from tests.conftest import ORIGIN, new_vault
from tests.test_tiles import grow

ADMIN = Actor("admin:t1", "admin")
TREASURER = Actor("treasurer:t2", "treasurer")
APPLICANT = Actor("applicant:t3", "applicant")


def fund_history(log: Log) -> None:
    """A short real history with money: donations, a fast-lane grant paid out, a correction."""
    fund = Fund(log, new_vault())
    fund.register_collective(ADMIN, slug="alba", name="Alba")
    fund.add_member(ADMIN, "alba", member="a1")
    fund.create_pool(
        ADMIN,
        slug="food",
        name="Food bank",
        currencies=["EUR"],
        fast_lane_cap={"EUR": "5000"},
        cycle_allowance={"EUR": "8000"},
    )
    fund.set_roster(ADMIN, "food", ["alba"])
    seqs = [
        fund.record_donation(
            TREASURER,
            "food",
            {"amount": "3000", "currency": "EUR", "channel": "bank", "external_reference": f"t{i}"},
        ).seq
        for i in range(3)
    ]
    proposal = {
        "amount": "4000",
        "currency": "EUR",
        "purpose": "Rent",
        "urgency": "urgent",
        "recipient": "family-7",
    }
    grant = fund.propose_grant(APPLICANT, "food", proposal).seq
    a1 = Actor(member_actor("a1"), "member", collective="alba", member="a1")
    fund.cast_vote(a1, grant, vote="approve", fast_lane=True)
    fund.disburse(a1, grant, payment_reference="PAY-1")
    fund.correct(TREASURER, corrects=seqs[2], reason="duplicate import")
    log.checkpoint_now()


def test_publish_then_audit_a_fund_history(log: Log, signer: Signer, tmp_path: Path) -> None:
    fund_history(log)
    publish(log, tmp_path / "tlog")
    report = audit(str(tmp_path / "tlog"), [signer.verifier().vkey()], origin=ORIGIN)
    size = log.head().size
    assert (report.checkpoint.size, report.checkpoint.root) == (size, log.root_at(size))
    assert report.rules.money_entries == 6  # 3 donations, approval, disbursement, correction
    assert report.rules.balances[("food:available", "EUR")] == 3000 + 3000 - 4000
    assert report.summary().startswith(f"ok: {ORIGIN} size {size} root ")


# -- tampering with what was published ------------------------------------------------------------


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Path:
    """A log of 300 entries published once: one full level-0 tile and partial ones.

    Tampering happens to files, whatever database wrote them (publishing is tested on both).
    """
    base = tmp_path_factory.mktemp("published")
    engine = make_engine(f"sqlite:///{base / 'lunaria.db'}")
    migrate.upgrade(engine)
    log = Log(engine, ORIGIN, signer=signer)
    log.create()
    grow(log, 300)
    publish(log, base / "tlog")
    engine.dispose()
    return base / "tlog"


@pytest.fixture
def published(published_once: Path, tmp_path: Path) -> Path:
    """A copy of the published directory for one test to tamper with."""
    return Path(shutil.copytree(published_once, tmp_path / "tlog"))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def other_base64_digit(path: Path, offset: int) -> None:
    """Another base64 digit at ``offset`` (flipping a bit can leave the alphabet, e.g. A→@,
    which makes the signature malformed rather than wrong, depending on the session's key)."""
    data = bytearray(path.read_bytes())
    data[offset] = ord("B") if data[offset] == ord("A") else ord("A")
    path.write_bytes(bytes(data))


def rewrite(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(change(path.read_bytes()))


def forged_checkpoint(signer: Signer) -> Callable[[Path], None]:
    """The log's own key signs a root the entries do not give (a log that lies)."""

    def forge(out: Path) -> None:
        note = sign_checkpoint(Checkpoint(ORIGIN, 300, b"\x01" * 32), [signer])
        (out / "checkpoint").write_text(note.serialise())

    return forge


TAMPERING: list[tuple[str, Callable[[Path], None], int | None, str]] = [
    (
        "tile byte",
        lambda out: flip(out / "tile/0/000", 5 * 32 + 7),
        5,
        r"tile/0/000: hash 5 is [0-9a-f]{64}, but entry 5 of tile/entries/000 hashes to",
    ),
    (
        "upper tile byte",
        lambda out: flip(out / "tile/1/000.p/1", 0),
        0,
        r"tile/1/000.p/1: hash 0 is [0-9a-f]{64}, but entries 0..255 give",
    ),
    (
        "partial tile length",
        lambda out: rewrite(out / "tile/0/001.p/44", lambda d: d[:-1]),
        256,
        r"tile/0/001.p/44: 1407 bytes, expected 1408",
    ),
    (
        "entry rewritten",
        lambda out: rewrite(out / "tile/entries/000", lambda d: d.replace(b'{"i":7}', b'{"i":8}')),
        7,
        r"tile/entries/000: its hash [0-9a-f]{64} is not the prev [0-9a-f]{64} recorded by seq 8",
    ),
    (
        "last entry of a bundle rewritten",
        lambda out: rewrite(
            out / "tile/entries/000", lambda d: d.replace(b'{"i":255}', b'{"i":256}')
        ),
        255,
        r"tile/0/000: hash 255 is [0-9a-f]{64}, but entry 255 of tile/entries/000 hashes to",
    ),
    (
        "bundle byte",
        lambda out: rewrite(out / "tile/entries/000", lambda d: d.replace(b'{"i":9}', b'["i":9}')),
        9,
        r"tile/entries/000: entry is malformed",
    ),
    (
        "bundle cut short",
        lambda out: rewrite(out / "tile/entries/001.p/44", lambda d: d[:-3]),
        299,
        r"tile/entries/001.p/44: entry 43 of the bundle claims \d+ bytes, but only",
    ),
    (
        "bundle too long",
        lambda out: rewrite(out / "tile/entries/001.p/44", lambda d: d + encode_bundle([b"{}"])),
        300,
        r"tile/entries/001.p/44: more than 44 entries",
    ),
    (
        "tile missing",
        lambda out: (out / "tile/0/001.p/44").unlink(),
        None,
        r"tile/0/001.p/44: missing from ",
    ),
    (
        "checkpoint signature",
        lambda out: other_base64_digit(
            out / "checkpoint", len((out / "checkpoint").read_bytes()) - 10
        ),
        None,
        r"checkpoint: signature by known key test.lunaria.example/log\+[0-9a-f]{8} does not verify",
    ),
]


@pytest.mark.parametrize(
    ("change", "seq", "message"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_audit_names_the_first_problem(
    published: Path,
    signer: Signer,
    change: Callable[[Path], None],
    seq: int | None,
    message: str,
) -> None:
    audit(str(published), [signer.verifier()])
    change(published)
    with pytest.raises(VerificationError) as caught:
        audit(str(published), [signer.verifier()])
    assert caught.value.seq == seq, caught.value.message
    assert re.search(message, caught.value.reason), caught.value.reason


def test_audit_refuses_a_lying_or_unknown_signer(published: Path, signer: Signer) -> None:
    with pytest.raises(VerificationError, match="checkpoint: no known key signed the note"):
        audit(str(published), [Signer.generate(ORIGIN).verifier()])
    with pytest.raises(VerificationError, match=re.escape("not the expected 'other.example/log'")):
        audit(str(published), [signer.verifier()], origin="other.example/log")
    forged_checkpoint(signer)(published)
    with pytest.raises(VerificationError, match="checkpoint: signs root 0101") as caught:
        audit(str(published), [signer.verifier()])
    assert caught.value.seq == 299


def test_audit_sources(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="neither an http"):
        open_source(str(tmp_path / "nowhere"))
    with pytest.raises(LedgerError, match="at least one trusted verifier key"):
        audit(str(tmp_path), [])
    with pytest.raises(VerificationError, match="checkpoint: missing from"):
        audit(str(tmp_path), [Signer.generate(ORIGIN).verifier()])


# -- over HTTP --------------------------------------------------------------------------------


class QuietHandler(SimpleHTTPRequestHandler):
    gzip_everything = False

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class GzipHandler(QuietHandler):
    """Compresses every file with no negotiation, as tlog-tiles lets logs do."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = gzip.compress(path.read_bytes())
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=[QuietHandler, GzipHandler], ids=["identity", "gzip"])
def server(request: pytest.FixtureRequest, log: Log, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Lunaria-like site: the tiles under <base>/tlog/, served by a stdlib HTTP server."""
    site = tmp_path / "site"
    grow(log, 300)
    publish(log, site / "tlog")
    handler = functools.partial(request.param, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", site
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_audit_over_http(server: tuple[str, Path], signer: Signer) -> None:
    base, site = server
    report = audit(base, [signer.verifier()])
    assert (report.checkpoint.size, report.bundles, report.tiles) == (300, 2, 3)
    assert report.source == base + "tlog/"
    flip(site / "tlog/tile/entries/001.p/44", 40)
    with pytest.raises(VerificationError, match=r"tile/entries/001.p/44: ") as caught:
        audit(base.rstrip("/"), [signer.verifier()])
    assert caught.value.seq is not None and 256 <= caught.value.seq < 300
    with pytest.raises(VerificationError, match="checkpoint: missing from http"):
        audit(base + "elsewhere", [signer.verifier()])


# -- domain rules ------------------------------------------------------------------------------


def money(seq: int, *legs: tuple[str, str, str]) -> Entry:
    postings = [{"account": a, "currency": c, "amount": n} for a, c, n in legs]
    data = {
        "pool": "food",
        "cycle": 300,
        "currency": legs[0][1],
        "corrected_kind": "donation_recorded",
        "fund_change": "0",
        "postings": postings,
    }
    return encode_entry(seq, "2026-01-01T00:00:00.000000Z", "correction", GENESIS_PREV, "t", data)


def plain(seq: int) -> Entry:
    return encode_entry(
        seq, "2026-01-01T00:00:00.000000Z", "checkpoint_anchored", GENESIS_PREV, "t", {}
    )


def test_audit_rules_balance_and_available() -> None:
    history = [
        plain(0),
        money(1, ("food:donations", "EUR", "-1500"), ("food:available", "EUR", "1500")),
        money(2, ("food:available", "EUR", "-1500"), ("food:committed", "EUR", "1500")),
        money(3, ("food:donations", "ETH", "-10"), ("food:available", "ETH", "10")),
    ]
    report = audit_rules(history)
    assert (report.entries, report.money_entries) == (4, 3)
    assert report.balances[("food:available", "EUR")] == 0
    assert report.summary() == "rules hold over 4 entries (3 with postings)"

    unbalanced = money(4, ("food:donations", "EUR", "-1500"), ("food:available", "EUR", "1400"))
    with pytest.raises(VerificationError, match=r"seq 4: postings do not balance: \{'EUR': '-100'"):
        audit_rules([*history, unbalanced])
    overdraw = money(4, ("food:available", "EUR", "-1"), ("food:committed", "EUR", "1"))
    with pytest.raises(VerificationError, match="seq 4: food:available goes negative: -1 EUR"):
        audit_rules([*history, overdraw])
    other_currency = money(4, ("food:available", "ETH", "-10"), ("food:grants", "ETH", "10"))
    assert audit_rules([*history, other_currency]).balances[("food:available", "ETH")] == 0


@pytest.mark.parametrize(
    ("postings", "message"),
    [
        ("not a list", "postings is not a list"),
        ([{"account": "food:available", "currency": "EUR"}], "posting 0 is not"),
        ([{"account": "food", "currency": "EUR", "amount": "1"}], "posting 0 has account"),
        ([{"account": "food:x", "currency": "EUR", "amount": "1.5"}], "is not digits"),
        ([{"account": "food:x", "currency": "EUR", "amount": "-0"}], "is not digits"),
        ([{"account": "food:x", "currency": "EUR", "amount": 1}], "is not digits"),
    ],
)
def test_audit_rules_refuse_malformed_postings(postings: Any, message: str) -> None:
    entry = encode_entry(0, "2026-01-01T00:00:00.000000Z", "correction", GENESIS_PREV, "t", {})
    entry = Entry(**{**entry.__dict__, "data": {"postings": postings}})
    with pytest.raises(VerificationError, match=message):
        audit_rules([entry])


# -- governance: custody, votes, quorum, handovers ---------------------------------------------

DEMO_END = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_history(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> list[Entry]:
    """Six cycles of the demo fund (three collectives in rotation, handovers, quorum and
    fast-lane decisions, payouts, corrections), as an auditor reads them from the log."""
    base = tmp_path_factory.mktemp("demo")
    engine = make_engine(f"sqlite:///{base / 'lunaria.db'}")
    migrate.upgrade(engine)
    clock = ManualClock(start_of_demo(DEMO_END))
    log = Log(engine, ORIGIN, signer=signer, clock=clock)
    log.create()
    load_demo(Fund(log, new_vault()), clock, DEMO_END)
    history = [decode_entry(raw) for raw in log.iter_raw()]
    engine.dispose()
    return history


def first(history: list[Entry], kind: str, where: Callable[[dict[str, Any]], bool]) -> int:
    """The position of the first entry of ``kind`` whose data satisfies ``where``."""
    return next(i for i, e in enumerate(history) if e.kind == kind and where(e.data))


def lie(history: list[Entry], at: int, **data: Any) -> list[Entry]:
    """The history with entry ``at`` saying something else (a log signs whatever it holds)."""
    told = list(history)
    told[at] = dataclasses.replace(history[at], data={**history[at].data, **data})
    return told


def refused_at(history: list[Entry], seq: int, message: str) -> None:
    with pytest.raises(VerificationError) as caught:
        audit_rules(history)
    assert caught.value.seq == seq, caught.value.message
    assert re.search(message, caught.value.reason), caught.value.reason


def test_governance_holds_over_the_demo(demo_history: list[Entry]) -> None:
    kinds = {e.kind for e in demo_history}
    assert {"custody_transferred", "vote_cast", "grant_decided", "correction"} <= kinds
    lanes = {e.data["lane"] for e in demo_history if e.kind == "grant_decided"}
    assert lanes == {"quorum", "fast_lane", "overdue"}
    assert audit_rules(demo_history).entries == len(demo_history)


def test_a_vote_by_a_stranger_or_another_collective(demo_history: list[Entry]) -> None:
    at = first(demo_history, "vote_cast", lambda d: not d["fast_lane"])
    vote = demo_history[at]
    refused_at(
        lie(demo_history, at, member="mallory"),
        vote.seq,
        f"'mallory' votes but is not an active member of {vote.data['collective']}",
    )
    other = next(c for c in ("alba", "brisa", "cauce") if c != vote.data["collective"])
    refused_at(
        lie(demo_history, at, collective=other),
        vote.seq,
        rf"votes for '{other}', but the custodian of {vote.data['pool']} in cycle "
        rf"{vote.data['cycle']} is '{vote.data['collective']}'",
    )
    refused_at(
        lie(demo_history, at, cycle=vote.data["cycle"] + 1),
        vote.seq,
        rf"vote_cast in cycle {vote.data['cycle'] + 1}, but {vote.data['pool']} is in cycle",
    )


def test_an_approval_without_quorum(demo_history: list[Entry]) -> None:
    at = first(
        demo_history,
        "grant_decided",
        lambda d: d["decision"] == "approved" and d["lane"] == "quorum",
    )
    decision = demo_history[at]
    assert len(decision.data["approvals"]) >= 2
    # The last approving ballot never happened, and the decision counts only the others.
    ballot = max(
        i
        for i, e in enumerate(demo_history[:at])
        if e.kind == "vote_cast" and e.data["grant"] == decision.data["grant"]
        if e.data["vote"] == "approve"
    )
    fewer = sorted(set(decision.data["approvals"]) - {demo_history[ballot].data["member"]})
    told = lie(demo_history, at, approvals=fewer)
    del told[ballot]
    quorum = decision.data["quorum"]
    refused_at(
        told,
        decision.seq,
        rf"grant {decision.data['grant']} approved without quorum: {len(fewer)} for, "
        rf"\d+ against, quorum {quorum} of \d+",
    )
    refused_at(
        lie(demo_history, at, quorum=quorum - 1),
        decision.seq,
        rf"decided with quorum {quorum - 1}, not {quorum}",
    )
    refused_at(
        lie(demo_history, at, approvals=fewer),
        decision.seq,
        r"decided on approvals .* but the ballots are",
    )


def test_a_fast_lane_approval_over_the_allowance(demo_history: list[Entry]) -> None:
    at = first(demo_history, "grant_decided", lambda d: d["lane"] == "fast_lane")
    decision = demo_history[at]
    refused_at(
        lie(demo_history, at, allowance_left="999999999"),
        decision.seq,
        rf"records 999999999 left, not {decision.data['allowance_left']}",
    )


def test_a_handover_statement_that_does_not_add_up(demo_history: list[Entry]) -> None:
    at = first(demo_history, "custody_transferred", lambda d: bool(d["closed"]["statement"]))
    handover = demo_history[at]
    pool, closed = handover.data["pool"], handover.data["closed"]
    currency, line = next(iter(closed["statement"].items()))

    def statement(**figures: int) -> dict[str, Any]:
        changed = {**line, **{name: str(int(line[name]) + n) for name, n in figures.items()}}
        return {**closed, "statement": {**closed["statement"], currency: changed}}

    refused_at(
        lie(demo_history, at, closed=statement(closing=1)),
        handover.seq,
        rf"the {pool} statement for cycle {closed['number']} does not add up in {currency}: "
        rf"closing {int(line['closing']) + 1}",
    )
    refused_at(
        lie(demo_history, at, closed=statement(donations=100, closing=100)),
        handover.seq,
        rf"says {currency} donations {int(line['donations']) + 100}, but the log gives "
        rf"{line['donations']}",
    )
    refused_at(
        lie(demo_history, at, to="mallory"),
        handover.seq,
        rf"names 'mallory' as custodian of cycle {closed['number'] + 1}, but the roster gives",
    )


def test_audit_names_a_forged_vote_in_a_published_log(
    log: Log, signer: Signer, tmp_path: Path
) -> None:
    """The operator signs a log holding a vote the fund would refuse: the audit names it."""
    fund_history(log)
    grant = next(e for e in log.entries(limit=1000) if e.kind == "grant_proposed")
    forged = log.append(
        "vote_cast",
        {
            "grant": grant.seq,
            "pool": "food",
            "member": "mallory",
            "collective": "alba",
            "vote": "approve",
            "fast_lane": False,
            "cycle": grant.data["cycle"],
        },
        member_actor("mallory"),
    )
    log.checkpoint_now()
    publish(log, tmp_path / "tlog")
    with pytest.raises(VerificationError) as caught:
        audit(str(tmp_path / "tlog"), [signer.verifier()])
    assert caught.value.seq == forged.seq
    assert caught.value.reason == "'mallory' votes but is not an active member of alba"


# -- the commands ------------------------------------------------------------------------------


def test_publish_and_audit_commands(runner: FlaskCliRunner, app: Flask, tmp_path: Path) -> None:
    assert runner.invoke(args=["init"]).exit_code == 0
    with app.app_context():
        fund_history(db.get_log())
        size = db.get_log().head().size
    assert size < 256
    vkey = runner.invoke(args=["vkey"]).output.strip()
    out = tmp_path / "public"
    result = runner.invoke(args=["publish", str(out)])
    assert result.exit_code == 0, result.output
    site = "site: index.html, verify.html, vkey.txt, site.css, moon.svg (open index.html)\n"
    assert result.output == (
        f"published {ORIGIN} at size {size}: 3 files written, 0 already present\n{site}"
    )
    assert runner.invoke(args=["publish", str(out)]).output.endswith(
        f": 0 files written, 3 already present\n{site}"
    )

    result = runner.invoke(args=["audit", str(out), "--vkey", vkey])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {ORIGIN} size ")
    assert "rules hold over" in result.output

    flip(out / f"tile/0/000.p/{size}", 32 * 3)
    result = runner.invoke(args=["audit", str(out), "--vkey", vkey])
    assert result.exit_code == 1
    assert result.output.startswith(f"FAILED: seq 3: tile/0/000.p/{size}: hash 3 is ")

    assert runner.invoke(args=["audit", str(out)]).exit_code == 2  # no --vkey: usage error
