"""A redacted public text appears in no public output at all.

After ``lunaria init --demo``, a donor's display name, a grant's purpose, a vote's note and the
reasons of a cancellation and a correction are written with distinctive markers. The privacy
walk's crawl (every GET route, its path parameters from real ids, pages in every language,
the links they lead to, every page of every list) runs twice: before redaction each marker
must be found where it belongs (the API, the entry pages in en, es and uk, the Atom feed, the
CSV, JSON, JSONL and beancount reports, the PDF read back as text with pypdf), so the crawl
is not vacuous; after redacting every one of them (by the API and by ``lunaria redact``), none
may appear in any body or header, tiles and entry bundles included.
"""

from __future__ import annotations

import io
import random
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskCliRunner
from pypdf import PdfReader

from tests.test_api_support import Http, cli_admin_token
from tests.test_privacy_walk import (
    LANGUAGES,
    Secrets,
    Walk,
    public_ids,
    walk_every_route,
)

FIELDS = ("donor.name", "purpose", "note", "cancel reason", "correction reason")


def marker(rng: random.Random) -> str:
    """Letters only: nothing the screening of public text could take for personal data."""
    return "Qz" + "".join(rng.choice(string.ascii_letters) for _ in range(14))


@dataclass
class Written:
    """The markers by field, the entries holding them, and a token to write with."""

    markers: dict[str, str] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    admin: str = ""


def write_public_texts(app: Flask, client: Any, runner: FlaskCliRunner) -> Written:
    result = runner.invoke(args=["init", "--demo"])
    assert result.exit_code == 0 and "loaded the demo" in result.output, result.output
    http = Http(app, client)
    written = Written(admin=cli_admin_token(runner))
    rng = random.Random()
    for name in FIELDS:
        written.markers[name] = marker(rng)
    m = written.markers

    def token(role: str, **extra: str) -> str:
        body = {"role": role, "label": f"the {role}", **extra}
        issued = http.post("/tokens", body, token=written.admin, status=201).get_json()
        return str(issued["token"])

    treasurer, applicant = token("treasurer"), token("applicant")
    custodian = http.get("/pools/food-bank")["custodian"]
    voter = http.get(f"/collectives/{custodian}")["members"][0]
    member = token("member", collective=custodian, member=voter)

    def donate(**extra: str) -> int:
        body = {"amount": "1500", "currency": "EUR", "channel": "bank", **extra}
        body["external_reference"] = f"crawl-{rng.getrandbits(40):x}"
        seq: int = http.post(
            "/pools/food-bank/donations", body, token=treasurer, status=201
        ).get_json()["seq"]
        return seq

    def propose(purpose: str) -> int:
        body = {"amount": "1200", "currency": "EUR", "purpose": purpose, "recipient": "fam-a"}
        grant: int = http.post(
            "/pools/food-bank/grants", body, token=applicant, status=201
        ).get_json()["id"]
        return grant

    written.seqs["donor.name"] = donate(display_name=f"{m['donor.name']} from the bakery")
    written.seqs["purpose"] = propose(f"{m['purpose']} heating for a family")
    vote = {"vote": "approve", "note": f"{m['note']} saw the bill"}
    written.seqs["note"] = http.post(
        f"/grants/{written.seqs['purpose']}/votes", vote, token=member, status=201
    ).get_json()["seq"]
    other = propose("Bus passes for school children")
    cancel = {"reason": f"{m['cancel reason']} duplicate"}
    written.seqs["cancel reason"] = http.post(
        f"/grants/{other}/cancel", cancel, token=written.admin, status=200
    ).get_json()["seq"]
    correct = {"corrects": donate(), "reason": f"{m['correction reason']} twice"}
    written.seqs["correction reason"] = http.post(
        "/corrections", correct, token=treasurer, status=201
    ).get_json()["seq"]
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0  # receipts, reports
    return written


def output_of(url: str) -> str:
    """Which public output a URL is: api, page-<lang>, feed, report-<format>, tlog, static."""
    parts = urlsplit(url)
    path = parts.path
    if path.endswith("/feed.atom"):
        return "feed"
    if "/reports/" in path:
        return "report-" + path.rsplit(".", 1)[1]
    if path.startswith("/api/"):
        return "api"
    if path.startswith(("/tlog/", "/static/")):
        return path.split("/")[1]
    return "page-" + parse_qs(parts.query).get("lang", ["en"])[0]


@dataclass
class Crawl(Walk):
    """The privacy walk, reading PDFs as text and noting where each value was found."""

    found: dict[str, set[str]] = field(default_factory=dict)  # value -> outputs

    def inspect(self, url: str, response: Any) -> None:
        body = response.get_data()
        text = body.decode("utf-8", "replace") + str(response.headers)
        if response.mimetype == "application/pdf":
            text += pdf_text(body)
        for value in self.secrets.values:
            if value in text:
                self.leaks.append((url, value))
                self.found.setdefault(value, set()).add(output_of(url))


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def crawl(app: Flask, client: Any, secrets: Secrets) -> Crawl:
    """Every GET route with the privacy walk's parameters and queries, and what they link."""
    ids = public_ids(app, Http(app, client), secrets)
    walk = Crawl(app, client, secrets)
    walk_every_route(walk, ids)
    assert not walk.failures, f"server errors: {walk.failures[:5]}"
    return walk


EVERYWHERE = {"api", "feed", "report-csv", "report-jsonl"} | {f"page-{lang}" for lang in LANGUAGES}
EXPECTED = {  # where each text is shown (vote notes: not in the JSON report, the PDF, beancount)
    "donor.name": EVERYWHERE | {"report-json", "report-beancount", "report-pdf"},
    "purpose": EVERYWHERE | {"report-json", "report-pdf"},
    "note": EVERYWHERE,
    "cancel reason": EVERYWHERE | {"report-json", "report-pdf"},
    "correction reason": EVERYWHERE | {"report-json", "report-beancount", "report-pdf"},
}


def test_a_redacted_text_appears_in_no_public_output(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    written = write_public_texts(app, client, runner)
    secrets = Secrets(values=list(written.markers.values()), written=list(written.seqs.values()))

    before = crawl(app, client, secrets)
    for name, value in written.markers.items():
        missing = EXPECTED[name] - before.found.get(value, set())
        assert not missing, f"{name} was not found before redaction in {sorted(missing)}"
    assert not {"tlog", "static"} & set().union(*before.found.values())  # entries hold none

    http = Http(app, client)
    for name in FIELDS:
        seq = written.seqs[name]
        (commitment,) = [
            t["commitment"] for t in http.get(f"/ledger/entries/{seq}")["texts"].values()
        ]
        if name in ("purpose", "note"):
            body = {"commitment": commitment, "reason": "personal_data"}
            http.post("/redactions", body, token=written.admin, status=201)
        else:
            done = runner.invoke(args=["redact", commitment, "--reason", "safety"])
            assert done.exit_code == 0, done.output

    after = crawl(app, client, secrets)
    assert not after.leaks, f"redacted text still served: {after.leaks[:5]}"
    assert len(after.seen) >= len(before.seen)
    csv = client.get("/api/v1/pools/food-bank/reports/latest.csv").get_data(as_text=True)
    assert csv.count("[redacted]") >= len(FIELDS)
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
