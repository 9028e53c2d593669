"""Reports computed once, one public URL, and the CLI's bytes equal to the HTTP download.

Renders are counted through ``api.reports.report_rendered`` (a signal sent after each render),
never by timing.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from pypdf import PdfReader
from sqlalchemy import select

from api import create_app, db
from api.reports import SLOTS, report_rendered
from exports.cache import ReportKey
from exports.formats import SHA256_HEADER
from ledger.log.clock import ManualClock, parse_ts
from ledger.log.schema import checkpoints
from tests.test_api_reports import story as closed_story
from tests.test_api_support import PROBLEM, Story, donation

__all__ = ["closed_story"]  # the fixture: a pool whose first cycle is closed
EVIL = "evil.example"


@pytest.fixture
def renders(app: Flask) -> Iterator[list[ReportKey]]:
    """The keys of the reports rendered while the test runs."""
    seen: list[ReportKey] = []

    def count(sender: Flask, key: ReportKey) -> None:
        seen.append(key)

    report_rendered.connect(count, app)
    yield seen
    report_rendered.disconnect(count, app)


def closed_number(story: Story) -> int:
    (closed, _) = story.http.get("/pools/food/cycles")
    return int(closed["number"])


def test_a_report_is_rendered_once_then_served_kept(
    closed_story: Story, client: Any, renders: list[ReportKey], app: Flask, runner: FlaskCliRunner
) -> None:
    number = closed_number(closed_story)
    path = f"/api/v1/pools/food/reports/{number}.pdf"
    head = client.head(path)  # before any GET: no render, no length or SHA-256 yet
    assert head.status_code == 200 and renders == []
    assert "X-Report-SHA256" not in head.headers and head.headers["ETag"]
    first = client.get(path)
    assert first.status_code == 200 and len(renders) == 1
    second = client.get(path)
    assert second.data == first.data and len(renders) == 1
    assert second.headers["ETag"] == first.headers["ETag"] == head.headers["ETag"]
    assert {"Accept-Language", "Cookie"} <= set(first.vary)  # a shared cache keeps each language
    assert second.headers["X-Report-SHA256"] == hashlib.sha256(first.data).hexdigest()
    head = client.head(path)
    assert head.headers["X-Report-SHA256"] == first.headers["X-Report-SHA256"]
    assert head.headers["Content-Length"] == str(len(first.data)) and len(renders) == 1
    etag = first.headers["ETag"]
    unchanged = client.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b"" and len(renders) == 1
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    # Another process (another app on the same database) finds it kept: no render there.
    other = create_app(dict(app.config, CLOCK=app.config["CLOCK"]))
    other_renders: list[ReportKey] = []
    report_rendered.connect(lambda sender, key: other_renders.append(key), other, weak=False)
    try:
        assert other.test_client().get(path).data == first.data and other_renders == []
    finally:
        other.extensions["lunaria"].engine.dispose()
    # More entries and checkpoints do not change a closed cycle's report: still no render.
    closed_story.http.post(
        "/pools/food/donations", donation(), token=closed_story.treasurer, status=201
    )
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert len(renders) == 1
    # Each language and format is a report of its own, rendered once.
    client.get(path + "?lang=es")
    client.get(path + "?lang=es")
    client.get(f"/api/v1/pools/food/reports/{number}.csv")
    assert [(k.format, k.lang) for k in renders] == [("pdf", "en"), ("pdf", "es"), ("csv", "")]


def test_a_redaction_changes_a_closed_report_at_once(
    closed_story: Story, client: Any, renders: list[ReportKey]
) -> None:
    number = closed_number(closed_story)
    path = f"/api/v1/pools/food/reports/{number}.json"
    before = client.get(path)
    assert b"Rent support for a family" in before.data
    grant = before.get_json()["grants"][0]["id"]
    commitment = closed_story.http.get(f"/ledger/entries/{grant}")["texts"]["purpose"]
    body = {"commitment": commitment["commitment"], "reason": "safety"}
    closed_story.http.post("/redactions", body, token=closed_story.admin, status=201)
    after = client.get(path, headers={"If-None-Match": before.headers["ETag"]})
    # (each JSON names its PDF: the PDF is rendered, and kept, with it)
    assert after.status_code == 200 and [k.format for k in renders] == ["pdf", "json"] * 2
    assert b"Rent support for a family" not in after.data
    assert after.headers["ETag"] != before.headers["ETag"]


def test_the_json_names_the_kept_pdf_without_rendering_it_again(
    closed_story: Story, client: Any, renders: list[ReportKey]
) -> None:
    number = closed_number(closed_story)
    pdf = client.get(f"/api/v1/pools/food/reports/{number}.pdf?lang=es")
    assert [(k.format, k.lang) for k in renders] == [("pdf", "es")]
    named = client.get(f"/api/v1/pools/food/reports/{number}.json?lang=es").get_json()["pdf"]
    assert [(k.format, k.lang) for k in renders] == [("pdf", "es"), ("json", "es")]
    assert named["sha256"] == hashlib.sha256(pdf.data).hexdigest() == pdf.headers[SHA256_HEADER]
    assert named["size"] == len(pdf.data)
    # The other way round: the JSON first renders the PDF once, and keeps it for its download.
    named = client.get(f"/api/v1/pools/food/reports/{number}.json?lang=uk").get_json()["pdf"]
    pdf = client.get(f"/api/v1/pools/food/reports/{number}.pdf?lang=uk")
    assert [(k.format, k.lang) for k in renders][2:] == [("pdf", "uk"), ("json", "uk")]
    assert named["sha256"] == hashlib.sha256(pdf.data).hexdigest()


def test_renders_are_bounded_and_reads_go_on(
    closed_story: Story, client: Any, app: Flask, renders: list[ReportKey]
) -> None:
    number = closed_number(closed_story)
    kept = client.get(f"/api/v1/pools/food/reports/{number}.csv")
    app.config["REPORT_WAIT"] = 0.05
    slots = app.extensions[SLOTS]
    assert slots.acquire(blocking=False)  # the process's one slot, taken by "another render"
    try:
        busy = client.get(f"/api/v1/pools/food/reports/{number}.pdf")
        assert busy.status_code == 503 and busy.mimetype == PROBLEM
        assert busy.get_json()["code"] == "reports_busy"
        assert busy.headers["Retry-After"] == "5"
        assert client.get("/api/v1/ledger/checkpoint").status_code == 200
        again = client.get(f"/api/v1/pools/food/reports/{number}.csv")  # kept: needs no slot
        assert again.status_code == 200 and again.data == kept.data
        assert len(renders) == 1
    finally:
        slots.release()
    assert client.get(f"/api/v1/pools/food/reports/{number}.pdf").status_code == 200
    assert len(renders) == 2


def test_an_interim_report_follows_the_checkpoint(
    closed_story: Story, client: Any, renders: list[ReportKey], runner: FlaskCliRunner
) -> None:
    path = "/api/v1/pools/food/reports/latest.csv"
    first = client.get(path)
    assert client.get(path).data == first.data and len(renders) == 1
    assert first.headers["Cache-Control"] == "no-cache"
    closed_story.http.post(
        "/pools/food/donations", donation(), token=closed_story.treasurer, status=201
    )
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0
    later = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert later.status_code == 200 and len(renders) == 2 and later.data != first.data


def test_custom_csv_columns_are_rendered_not_kept(
    closed_story: Story, client: Any, renders: list[ReportKey]
) -> None:
    path = "/api/v1/pools/food/reports/latest.csv?fields=seq,kind"
    assert client.get(path).data == client.get(path).data
    assert len(renders) == 2


# -- one public URL -----------------------------------------------------------------------------


def _pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_the_host_header_reaches_no_report_feed_receipt_or_page(
    closed_story: Story, client: Any, app: Flask
) -> None:
    app.config["REPORT_CACHE"] = False  # every answer rendered for the forged request itself
    number = closed_number(closed_story)
    evil = {"Host": EVIL, "X-Forwarded-Host": EVIL}
    paths = [
        *(f"/api/v1/pools/food/reports/{number}.{f}" for f in ("csv", "json", "jsonl")),
        f"/api/v1/pools/food/reports/{number}.beancount",
        "/api/v1/pools/food/reports/latest.json",
        "/api/v1/pools/food/feed.atom",
        "/api/v1/receipts/3",
        "/api/v1/receipts/3.tlog-proof",
        "/api/v1/ledger/checkpoint",
        "/",
        "/pools/food",
        "/entries/3",
        "/verify",
    ]
    for path in paths:
        honest, forged = client.get(path), client.get(path, headers=evil)
        assert forged.status_code == honest.status_code == 200, path
        assert EVIL not in forged.get_data(as_text=True), path
        assert EVIL not in str(forged.headers), path
        if "/reports/" in path:
            assert forged.headers["X-Report-SHA256"] == honest.headers["X-Report-SHA256"], path
    pdf = f"/api/v1/pools/food/reports/{number}.pdf"
    honest, forged = client.get(pdf), client.get(pdf, headers=evil)
    assert forged.headers["X-Report-SHA256"] == honest.headers["X-Report-SHA256"]
    text = _pdf_text(forged.data)
    assert EVIL not in text and "http://localhost:8000/api/v1/ledger/checkpoints/" in text
    feed = client.get("/api/v1/pools/food/feed.atom", headers=evil).get_data(as_text=True)
    assert 'href="http://localhost:8000/pools/food"' in feed


def test_the_public_url_is_checked_and_stored_at_init(
    app: Flask, runner: FlaskCliRunner, db_url: str, tmp_path: Path
) -> None:
    bad = [
        ("ftp://lunaria.example", "must start with http:// or https://"),
        ("https://lunaria.example/path", "must have no path, query or fragment"),
        ("https://lunaria.example/?q=1", "must have no path, query or fragment"),
        ("https://lunaria.example#top", "must have no path, query or fragment"),
        ("https://user:pw@lunaria.example", "must not hold a user name or password"),
        ("https://", "names no host"),
        ("https://bad_host.example", "has an invalid host"),
        ("https://lunaria.example:99999", "cannot be read"),
        ("lunaria.example", "must start with http:// or https://"),
    ]
    for url, message in bad:
        app.config["PUBLIC_URL"] = url
        result = runner.invoke(args=["init"])
        assert result.exit_code == 1, (url, result.output)
        assert message in result.output and "LUNARIA_PUBLIC_URL" in result.output, url
        assert not (tmp_path / "keys").exists(), url  # refused before anything is made
    app.config["PUBLIC_URL"] = "HTTPS://Lunaria.Example:8443/"
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert "public URL https://lunaria.example:8443" in result.output
    app.config["PUBLIC_URL"] = "https://audit.example"
    result = runner.invoke(args=["init"])
    assert "public URL https://audit.example (was https://lunaria.example:8443)" in result.output
    app.config["PUBLIC_URL"] = None
    assert "public URL" not in runner.invoke(args=["init"]).output  # kept as stored
    # A process configured with another URL than the stored one prints neither.
    app.config["PUBLIC_URL"] = "https://elsewhere.example"
    result = runner.invoke(args=["report", "food", "latest"])
    assert result.exit_code == 1
    assert "LUNARIA_PUBLIC_URL is 'https://elsewhere.example'" in result.output
    assert "holds 'https://audit.example'" in result.output


# -- the CLI gives the HTTP download's bytes ------------------------------------------------------


def test_the_documented_command_gives_the_bytes_of_the_download(
    closed_story: Story,
    client: Any,
    runner: FlaskCliRunner,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = closed_number(closed_story)
    monkeypatch.chdir(tmp_path)
    for lang in ("en", "uk"):
        download = client.get(f"/api/v1/pools/food/reports/{number}.pdf?lang={lang}")
        text = _pdf_text(download.data)
        name = f"food-{number}-{lang}.pdf"
        command = f"lunaria report food {number} --format pdf --lang {lang} -o {name}"
        assert command in text and f"sha256sum {name}" in text  # what the PDF says to run
        clock.advance(timedelta(days=3))  # later, as an auditor would
        result = runner.invoke(args=command.split()[1:])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).read_bytes() == download.data
        assert download.headers["X-Report-SHA256"] in result.output
    json_download = client.get(f"/api/v1/pools/food/reports/{number}.json")
    result = runner.invoke(args=["report", "food", str(number), "--format", "json", "-o", "-"])
    assert result.stdout_bytes == json_download.data


def test_the_pdf_is_dated_by_its_cycle(closed_story: Story, client: Any, app: Flask) -> None:
    number = closed_number(closed_story)
    closed = client.get(f"/api/v1/pools/food/reports/{number}.json").get_json()
    assert closed["cycle"]["status"] == "closed"
    handover = next(h for h in closed["custody"] if h["role"] == "closed")
    pdf = PdfReader(io.BytesIO(client.get(f"/api/v1/pools/food/reports/{number}.pdf").data))
    meta = pdf.metadata
    assert meta is not None
    expected = parse_ts(handover["ts"]).replace(microsecond=0)
    assert meta.creation_date is not None and meta.modification_date is not None
    assert meta.creation_date.astimezone(UTC) == expected
    assert meta.modification_date.astimezone(UTC) == expected
    interim = client.get("/api/v1/pools/food/reports/latest.json").get_json()
    assert interim["cycle"]["status"] == "interim"
    interim_pdf = PdfReader(io.BytesIO(client.get("/api/v1/pools/food/reports/latest.pdf").data))
    with db.get_engine().connect() as conn:
        signed = conn.execute(
            select(checkpoints.c.ts).where(checkpoints.c.size == interim["checkpoint"]["size"])
        ).scalar_one()
    assert interim_pdf.metadata is not None and interim_pdf.metadata.creation_date is not None
    assert interim_pdf.metadata.creation_date.astimezone(UTC) == parse_ts(signed).replace(
        microsecond=0
    )


# -- the auditor's report -----------------------------------------------------------------------


def test_the_auditors_report_has_grant_histories_and_a_sign_off(
    closed_story: Story, client: Any, output_dir: Path
) -> None:
    number = closed_number(closed_story)
    pdf = client.get(f"/api/v1/pools/food/reports/{number}.pdf").data
    report = client.get(f"/api/v1/pools/food/reports/{number}.json").get_json()
    (output_dir / "auditors-report.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "70", str(output_dir / "auditors-report.pdf"),
         str(output_dir / "auditors-report")],
        check=True,
    )  # fmt: skip
    text = _pdf_text(pdf)
    (grant,) = report["grants"]
    grants = text[text.index("Grants (entries: 1)") : text.index("Corrections (entries")]
    rows = [line for line in grants.splitlines() if line.lstrip().startswith(f"{grant['id']} ")]
    assert len(rows) == 1 and "approved" in rows[0] and "urgent" in rows[0]  # one row, its state
    proposal, vote, decision = grant["proposal"], grant["votes"][0], grant["decision"]
    history = [
        f"{proposal['ts'][:10]} {proposal['ts'][11:19]}  #{grant['id']}  proposed",
        f"{vote['ts'][:10]} {vote['ts'][11:19]}  #{vote['seq']}  vote: a1 (alba): approve",
        f"{decision['ts'][:10]} {decision['ts'][11:19]}  #{decision['seq']}  decided: approved",
    ]
    flat = " ".join(grants.split())
    for event in history:
        assert " ".join(event.split()) in flat, event
    assert flat.index(history[0].split()[2]) < flat.index(f"#{decision['seq']}")
    joined = "".join(grants.split())
    assert proposal["entry_hash"] in joined  # whole, if wrapped
    closing = next(h for h in report["custody"] if h["role"] == "closed")
    sign_off = text[text.index("Sign-off") : text.index("How to verify this report")]
    for words in ("Outgoing custodian", "Incoming custodian", "Signature", "Date"):
        assert words in sign_off, words
    assert f"Alba ({closing['from']})" in sign_off or closing["from"] is None
    assert closing["entry_hash"] in "".join(sign_off.split())
    assert report["checkpoint"]["root"] in "".join(sign_off.split())
    assert sorted(output_dir.glob("auditors-report-*.png"))
