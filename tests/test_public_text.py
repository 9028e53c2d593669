"""Public text is committed to in the log and served beside it, so it can be redacted.

Every free-text field that becomes public (a donor's display name, a grant's purpose, a vote's
note, a cancellation's and a correction's reason) enters the log as a salted commitment (entry
data version 2); the text and salt are served beside the entry and recompute it, checked here
with hashlib alone. Redaction refuses what it must, writing nothing, and leaves ``verify``,
``audit`` and ``replay --check`` passing. Version-1 entries (text inline) still read everywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from pypdf import PdfReader

from api import db
from exports.verify import verify_cycle_export
from ledger.errors import VerificationError
from ledger.fund.audit import audit_rules
from ledger.fund.grants import _reversal
from ledger.fund.public_text import REDACTED, check_texts
from ledger.log.entry import GENESIS_PREV, Entry, encode_entry
from ledger.log.notes import Verifier
from tests.test_api_support import Http, Story, build_story, donation, proposal

DOMAIN = b"lunaria/public-text/v1"


def commit(salt_hex: str, text: str) -> str:
    """The commitment as docs/formats.md defines it, computed here without Lunaria's code."""
    return hashlib.sha256(DOMAIN + b"\x00" + bytes.fromhex(salt_hex) + text.encode()).hexdigest()


def at(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for step in path.split("."):
        value = value[step]
    return value


def write_texts(story: Story) -> dict[int, tuple[str, str]]:
    """One text of each field, through the API: seq -> (field, text)."""
    http = story.http
    texts: dict[int, tuple[str, str]] = {}
    name = "Ana from the bakery ☀"
    gift = http.post(
        "/pools/food/donations", donation(display_name=name), token=story.treasurer, status=201
    ).get_json()
    assert gift["display_name"] == name
    texts[gift["seq"]] = ("donor.name", name)
    purpose = "Rent support for a family, ünïcode ✓"
    grant = http.post(
        "/pools/food/grants", proposal(purpose=purpose), token=story.applicant, status=201
    ).get_json()
    assert grant["purpose"] == purpose and set(grant["texts"]) == {"purpose"}
    texts[grant["id"]] = ("purpose", purpose)
    note = "Checked the lease with them"
    vote = story.vote(grant["id"], "a1", note=note)
    assert vote["note"] == note and vote["texts"]["note"]["text"] == note
    texts[vote["seq"]] = ("note", note)
    reason = "A duplicate of another proposal"
    cancelled = http.post(
        f"/grants/{grant['id']}/cancel", {"reason": reason}, token=story.admin, status=200
    ).get_json()
    assert cancelled["reason"] == reason
    texts[cancelled["seq"]] = ("reason", reason)
    why = "Recorded twice from the bank file"
    corrected = http.post(
        "/corrections", {"corrects": gift["seq"], "reason": why}, token=story.treasurer, status=201
    ).get_json()
    assert corrected["reason"] == why
    texts[corrected["seq"]] = ("reason", why)
    return texts


def served(http: Http, seq: int) -> dict[str, Any]:
    found: dict[str, Any] = http.get(f"/ledger/entries/{seq}")
    return found


def test_each_field_commits_to_the_text_served_beside_it(
    app: Flask, client: Any, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    story = build_story(app, client, runner)
    http = story.http
    texts = write_texts(story)
    listed = {item["seq"]: item for item in http.get("/ledger/entries?limit=1000")["items"]}
    for seq, (field, text) in texts.items():
        one = served(http, seq)
        entry, beside = one["entry"], one["texts"]
        assert entry["data"]["v"] == 2
        commitment = at(entry["data"], field)["commitment"]
        assert at(entry["data"], field) == {"commitment": commitment}
        assert set(beside) == {field}
        assert beside[field]["text"] == text and beside[field]["commitment"] == commitment
        assert beside[field]["redacted_seq"] is None
        assert commit(beside[field]["salt"], text) == commitment
        assert text not in json.dumps(entry, ensure_ascii=False)  # only beside, never inside
        assert listed[seq] == one
    grant = next(seq for seq, (field, _) in texts.items() if field == "purpose")
    detail = http.get(f"/grants/{grant}")
    assert detail["purpose"] == texts[grant][1]
    assert [v["note"] for v in detail["votes"]] == ["Checked the lease with them"]

    # Receipts carry the texts; verify-receipt (and /verify) recompute them.
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    vkey = runner.invoke(args=["vkey"]).output.strip()
    for seq, (field, text) in texts.items():
        receipt = http.get(f"/receipts/{seq}")
        assert receipt["texts"] == served(http, seq)["texts"]
        printed = runner.invoke(args=["receipt", str(seq)])
        assert json.loads(printed.output)["texts"] == receipt["texts"]
        path = tmp_path / f"{seq}.json"
        path.write_text(printed.output, encoding="utf-8")
        checked = runner.invoke(args=["verify-receipt", str(path), "--vkey", vkey])
        assert checked.exit_code == 0, checked.output
        assert f"{field}: the text served matches commitment" in checked.output
        forged = json.loads(printed.output)
        forged["texts"][field]["text"] = text + "!"
        path.write_text(json.dumps(forged), encoding="utf-8")
        refused = runner.invoke(args=["verify-receipt", str(path), "--vkey", vkey])
        assert refused.exit_code == 1 and "does not match its commitment" in refused.output
    plain = http.get("/receipts/1")
    assert "texts" not in plain  # a receipt without public text is JSON receipt version 1


def test_check_texts_names_what_does_not_match() -> None:
    salt = "ab" * 32
    data = {"purpose": {"commitment": commit(salt, "Rent")}, "v": 2}
    good = {"purpose": {"commitment": commit(salt, "Rent"), "text": "Rent", "salt": salt}}
    (checked,) = check_texts(7, "grant_proposed", data, good)
    assert (checked.field, checked.text) == ("purpose", "Rent")
    redacted = {"purpose": {"commitment": commit(salt, "Rent"), "text": None, "salt": None}}
    assert check_texts(7, "grant_proposed", data, redacted)[0].text is None
    wrong = [
        ({"purpose": {**good["purpose"], "text": "Rant"}}, "does not match its commitment"),
        ({"purpose": {**good["purpose"], "salt": "cd" * 32}}, "does not match its commitment"),
        ({"purpose": {**good["purpose"], "salt": "cd"}}, "has no valid salt"),
        ({"purpose": {**good["purpose"], "commitment": "0" * 64}}, "names another commitment"),
        ({"note": good["purpose"]}, "does not commit to"),
    ]
    for texts, message in wrong:
        with pytest.raises(VerificationError, match=message):
            check_texts(7, "grant_proposed", data, texts)


# -- redaction --------------------------------------------------------------------------------


def test_redaction_refusals_write_nothing_and_every_proof_holds_after(
    app: Flask, client: Any, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    story = build_story(app, client, runner)
    http, admin = story.http, story.admin
    texts = write_texts(story)
    seqs = {field: seq for seq, (field, _) in texts.items()}
    purpose = served(http, seqs["purpose"])["texts"]["purpose"]["commitment"]
    name = served(http, seqs["donor.name"])["texts"]["donor.name"]["commitment"]

    body = {"commitment": purpose, "reason": "safety"}
    http.refused(
        "POST", "/redactions", {**body, "reason": "spite"}, 422, "invalid_reason", token=admin
    )
    http.refused(
        "POST", "/redactions", {**body, "reason": None}, 422, "invalid_request", token=admin
    )
    http.refused(
        "POST", "/redactions", {**body, "commitment": "f" * 64}, 404, "text_not_found", token=admin
    )
    http.refused(
        "POST",
        "/redactions",
        {**body, "commitment": "F" * 64},
        422,
        "invalid_commitment",
        token=admin,
    )
    http.refused("POST", "/redactions", {**body, "extra": 1}, 422, "invalid_request", token=admin)
    http.refused("POST", "/redactions", body, 403, "forbidden", token=story.treasurer)
    http.refused("POST", "/redactions", body, 403, "forbidden", token=story.member("a2"))
    http.refused("POST", "/redactions", body, 401, "unauthorized")
    http.refused("POST", "/redactions", body, 400, "idempotency_key_required", token=admin, key="")
    assert served(http, seqs["purpose"])["texts"]["purpose"]["text"] == texts[seqs["purpose"]][1]

    done = http.post("/redactions", body, token=admin, key="redact-1", status=201)
    redaction = done.get_json()
    assert done.headers["Idempotent-Replayed"] == "false"
    assert {k: redaction[k] for k in ("commitment", "entry", "field", "pool", "reason")} == {
        "commitment": purpose,
        "entry": seqs["purpose"],
        "field": "purpose",
        "pool": "food",
        "reason": "safety",
    }
    again = http.post("/redactions", body, token=admin, key="redact-1", status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["seq"] == redaction["seq"]
    http.refused("POST", "/redactions", body, 409, "already_redacted", token=admin)
    logged = served(http, redaction["seq"])["entry"]
    assert (logged["kind"], logged["actor"].split(":")[0]) == ("text_redacted", "admin")
    assert logged["data"] == {
        "commitment": purpose,
        "entry": seqs["purpose"],
        "field": "purpose",
        "pool": "food",
        "reason": "safety",
    }

    size = http.size()
    twice = runner.invoke(args=["redact", purpose, "--reason", "safety"])
    assert twice.exit_code == 1 and "redacted already" in twice.output
    unknown = runner.invoke(args=["redact", "e" * 64, "--reason", "legal"])
    assert unknown.exit_code == 1 and "no public text" in unknown.output
    assert runner.invoke(args=["redact", name, "--reason", "bogus"]).exit_code == 2
    assert http.size() == size
    by_cli = runner.invoke(args=["redact", name, "--reason", "subject_request"])
    assert by_cli.exit_code == 0, by_cli.output
    assert f"text_redacted at seq {size}" in by_cli.output
    assert served(http, size)["entry"]["actor"] == "operator"

    for seq, field in ((seqs["purpose"], "purpose"), (seqs["donor.name"], "donor.name")):
        beside = served(http, seq)["texts"][field]
        assert (beside["text"], beside["salt"]) == (None, None)
        assert beside["redacted_seq"] in (redaction["seq"], size)
    assert http.get(f"/grants/{seqs['purpose']}")["purpose"] == REDACTED

    # Every hash, proof and replay holds.
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0 and "projection rows match" in verified.output, verified.output
    assert runner.invoke(args=["replay", "--check"]).exit_code == 0
    vkey = runner.invoke(args=["vkey"]).output.strip()
    published = runner.invoke(args=["publish", str(tmp_path / "tlog")])
    assert published.exit_code == 0, published.output
    audited = runner.invoke(args=["audit", str(tmp_path / "tlog"), "--vkey", vkey])
    assert audited.exit_code == 0 and "rules hold" in audited.output, audited.output
    receipt = runner.invoke(args=["receipt", str(seqs["purpose"])]).output
    (tmp_path / "r.json").write_text(receipt, encoding="utf-8")
    checked = runner.invoke(args=["verify-receipt", str(tmp_path / "r.json"), "--vkey", vkey])
    assert checked.exit_code == 0 and "purpose: not served (redacted)" in checked.output


def pdf_words(data: bytes) -> str:
    """A PDF's text, whitespace collapsed (pypdf, as a reader would copy it)."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def wanted_in_pdf(texts: Mapping[int, str]) -> list[str]:
    return [t for t in texts.values() if t != "Old note V1"]  # (the PDF has no vote notes)


def _entry(seq: int, kind: str, data: dict[str, Any], actor: str = "admin:t") -> Entry:
    return encode_entry(seq, "2026-01-01T00:00:00.000000Z", kind, GENESIS_PREV, actor, data)


def test_the_audit_checks_text_fields_and_redactions() -> None:
    c = commit("ab" * 32, "Rent")
    redacted = {"commitment": c, "entry": 0, "field": "donor.name", "reason": "safety"}

    def replay(*entries: Entry) -> None:
        rules = audit_rules(entries)  # (only the text rules apply: no pool is ever created)
        assert rules.entries == len(entries)

    cases = [
        ([_entry(0, "grant_cancelled", {"reason": "Rent", "v": 2})], 'is not {"commitment"'),
        ([_entry(0, "grant_cancelled", {"reason": {"commitment": c}})], "that is no text"),
        ([_entry(0, "grant_cancelled", {"reason": "x", "v": 3})], "version 3 is not 1 or 2"),
        ([_entry(0, "text_redacted", redacted)], "which no earlier entry commits to"),
    ]
    for entries, message in cases:
        with pytest.raises(VerificationError, match=re.escape(message)):
            replay(*entries)

    donor = {"commitment": "cd" * 32, "name": {"commitment": c}}
    gift = {"pool": "p", "cycle": 1, "currency": "EUR", "amount": "1", "donor": donor, "v": 2}
    first = _entry(0, "donation_recorded", gift)
    replay(first, _entry(1, "text_redacted", {**redacted, "pool": "p"}))
    replay(first, _entry(1, "text_redacted", {**redacted, "pool": "p"}, "operator"))
    bad = [
        ({**redacted, "reason": "spite"}, "admin:t", "reason 'spite' is unknown"),
        ({**redacted, "field": "note"}, "admin:t", "but it is donor.name of entry 0"),
        ({**redacted, "entry": 5}, "admin:t", "but it is donor.name of entry 0"),
        (redacted, "admin:t", "(pool None), but it is donor.name of entry 0 (pool p)"),
        ({**redacted, "pool": "p"}, "treasurer:t", "is no admin"),
    ]
    for data, actor, message in bad:
        with pytest.raises(VerificationError, match=re.escape(message)):
            replay(first, _entry(1, "text_redacted", data, actor))
    once = _entry(1, "text_redacted", {**redacted, "pool": "p"})
    with pytest.raises(VerificationError, match="a second time"):
        replay(first, once, _entry(2, "text_redacted", {**redacted, "pool": "p"}))
    with pytest.raises(VerificationError, match="which entry 0 holds already"):
        replay(first, _entry(1, "donation_recorded", gift))


@pytest.fixture
def v1_story(app: Flask, client: Any, runner: FlaskCliRunner) -> tuple[Story, dict[int, str]]:
    """The story, then texts of every field written the way version 1 wrote them: inline."""
    story = build_story(app, client, runner)
    gift = story.http.post(
        "/pools/food/donations", donation(), token=story.treasurer, status=201
    ).get_json()
    texts: dict[int, str] = {}
    with app.app_context():
        fund = db.get_fund()
        with fund.transaction() as tx:
            base = {"pool": "food", "cycle": tx.cycle.number}
            grant = tx.emit(
                "grant_proposed",
                {
                    **base,
                    "amount": "20000",
                    "currency": "EUR",
                    "purpose": "Old purpose V1",
                    "urgency": "normal",
                    "recipient": "family-7",
                },
                "applicant:0123456789abcdef",
            )
            texts[grant.seq] = "Old purpose V1"
            vote = tx.emit(
                "vote_cast",
                {
                    **base,
                    "grant": grant.seq,
                    "member": "a1",
                    "collective": "alba",
                    "vote": "approve",
                    "fast_lane": False,
                    "note": "Old note V1",
                },
                "member:a1",
            )
            texts[vote.seq] = "Old note V1"
            cancel = tx.emit(
                "grant_cancelled",
                {
                    **base,
                    "grant": grant.seq,
                    "amount": "20000",
                    "currency": "EUR",
                    "reason": "Old cancel V1",
                    "was": "proposed",
                    "postings": [],
                },
                "admin:0123456789abcdef",
            )
            texts[cancel.seq] = "Old cancel V1"
            target = fund.log.entry(gift["seq"], conn=tx.conn)
            correction = tx.emit(
                "correction",
                {**_reversal(tx, target), "reason": "Old correction V1"},
                "treasurer:0123456789abcdef",
            )
            texts[correction.seq] = "Old correction V1"
    return story, texts


def test_version_1_entries_read_everywhere(
    v1_story: tuple[Story, dict[int, str]], runner: FlaskCliRunner, client: Any, tmp_path: Path
) -> None:
    story, texts = v1_story
    http = story.http
    for seq, text in texts.items():
        one = served(http, seq)
        assert "v" not in one["entry"]["data"] and one["texts"] == {}
        assert text in json.dumps(one["entry"], ensure_ascii=False)
        page = client.get(f"/entries/{seq}").get_data(as_text=True)
        assert text in page
    grant = min(texts)
    detail = http.get(f"/grants/{grant}")
    assert detail["purpose"] == "Old purpose V1"
    assert [v["note"] for v in detail["votes"]] == ["Old note V1"]
    feed = client.get("/api/v1/pools/food/feed.atom").get_data(as_text=True)
    for text in texts.values():
        assert text in feed
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    shown = {  # (JSON and the PDF have no vote notes; beancount only money)
        "csv": texts.values(),
        "jsonl": texts.values(),
        "json": ["Old purpose V1", "Old cancel V1", "Old correction V1"],
        "beancount": ["Old correction V1"],
    }
    for fmt, wanted in shown.items():
        report = client.get(f"/api/v1/pools/food/reports/latest.{fmt}")
        assert report.status_code == 200, report.get_data(as_text=True)
        body = report.get_data(as_text=True)
        assert all(text in body for text in wanted), fmt
    pdf = client.get("/api/v1/pools/food/reports/latest.pdf")
    assert pdf.status_code == 200
    pdf_text = pdf_words(pdf.get_data())
    assert all(text in pdf_text for text in wanted_in_pdf(texts)), pdf_text[:2000]
    refused = runner.invoke(args=["redact", "0" * 64, "--reason", "other"])
    assert refused.exit_code == 1

    # v1 and v2 together: the audit and the replay take both.
    write_texts(story)
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    assert runner.invoke(args=["verify"]).exit_code == 0
    vkey = runner.invoke(args=["vkey"]).output.strip()
    assert runner.invoke(args=["publish", str(tmp_path / "tlog")]).exit_code == 0
    audited = runner.invoke(args=["audit", str(tmp_path / "tlog"), "--vkey", vkey])
    assert audited.exit_code == 0, audited.output


def test_erase_says_public_text_stays_until_redacted(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    story = build_story(app, client, runner)
    http = story.http
    gift = http.post(
        "/pools/food/donations", donation(display_name="Ana"), token=story.treasurer, status=201
    ).get_json()
    name = served(http, gift["seq"])["texts"]["donor.name"]["commitment"]
    erased = runner.invoke(args=["erase", gift["commitment"]])
    assert erased.exit_code == 0, erased.output
    assert f"erased the private record of {gift['commitment']} (private data only)" in (
        erased.output
    )
    assert f"still shows a public donor.name (commitment {name})" in erased.output
    assert f"lunaria redact {name} --reason subject_request" in erased.output
    assert served(http, gift["seq"])["texts"]["donor.name"]["text"] == "Ana"  # still public
    redacted = runner.invoke(args=["redact", name, "--reason", "subject_request"])
    assert redacted.exit_code == 0, redacted.output
    assert served(http, gift["seq"])["texts"]["donor.name"]["text"] is None
    plain = http.post(
        "/pools/food/donations", donation(), token=story.treasurer, status=201
    ).get_json()
    quiet = runner.invoke(args=["erase", plain["commitment"]])
    assert quiet.exit_code == 0 and "still shows" not in quiet.output


def test_the_worked_example_in_docs_formats_md_is_real() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
    section = doc.split("## Public text (entry data version 2)", 1)[1].split("\n## ", 1)[0]
    line = next(x for x in section.splitlines() if x.startswith('{"actor":"applicant:'))
    salt = hashlib.sha256(b"lunaria documentation example salt; never use").hexdigest()
    commitment = commit(salt, "Winter heating bill")
    entry = json.loads(line)
    assert entry["data"]["purpose"] == {"commitment": commitment} and entry["data"]["v"] == 2
    entry_hash = hashlib.sha256(b"\x00" + line.encode()).hexdigest()
    for value in (salt, commitment, entry_hash):
        assert value in section
    assert check_texts(
        3,
        "grant_proposed",
        entry["data"],
        {"purpose": {"commitment": commitment, "text": "Winter heating bill", "salt": salt}},
    )


def test_the_jsonl_report_carries_the_texts_and_its_offline_check_recomputes_them(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    story = build_story(app, client, runner)
    write_texts(story)
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    verifiers = [Verifier.from_vkey(runner.invoke(args=["vkey"]).output.strip())]
    lines = client.get("/api/v1/pools/food/reports/latest.jsonl").get_data().splitlines()
    assert json.loads(lines[0])["format"] == "lunaria-cycle-entries/2"
    assert verify_cycle_export(lines, verifiers).texts == 5
    at_text = next(i for i, raw in enumerate(lines) if i and json.loads(raw)["texts"])
    forged = json.loads(lines[at_text])
    (field,) = forged["texts"]
    forged["texts"][field]["text"] += "!"
    lines[at_text] = json.dumps(forged).encode()
    with pytest.raises(VerificationError, match="does not match its commitment"):
        verify_cycle_export(lines, verifiers)
