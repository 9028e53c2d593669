"""The PDF report, read back with pypdf and rendered with pdftoppm, on both databases."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, and_, func, select

from exports.data import gather
from exports.pdf import render_pdf
from ledger.fund.money import format_major
from ledger.fund.schema import cycles, donations
from ledger.log.schema import checkpoints
from tests.test_exports import (
    NOW,
    TREASURER,
    History,
    history,
    projected_statement,
    render,
)

__all__ = ["history"]  # the fixture, shared with test_exports.py

ROW = re.compile(r"^\s*(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+[\d.]+\s+(EUR|USDC)\s", re.M)


def pages_text(content: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


def _after(lines: list[str], label: str, count: int) -> list[str]:
    """The ``count`` lines after the line ``label`` (pypdf puts table cells on lines)."""
    index = [line.strip() for line in lines].index(label)
    return [line.strip() for line in lines[index + 1 : index + 1 + count]]


def test_pdf_shows_the_projections_numbers_counts_and_checkpoint(history: History) -> None:
    engine = history.fund.log.engine
    content = render(engine, history.first, "pdf")
    reader = PdfReader(io.BytesIO(content))
    pages = pages_text(content)
    total = len(pages)
    for number, text in enumerate(pages, 1):
        assert f"Page {number} of {total}" in text.replace(" of \n", " of ")
    cover = pages[0].splitlines()
    statement = projected_statement(engine, history.first)
    currencies = sorted(statement)
    assert _after(cover, "Currency", len(currencies)) == currencies
    for label, key in (
        ("Opening", "opening"),
        ("+ Donations", "donations"),
        ("− Disbursements", "disbursements"),
        ("± Corrections", "corrections"),
        ("= Closing", "closing"),
        ("Committed", "committed"),
        ("Available", "available"),
    ):
        shown = _after(cover, label, len(currencies))
        assert shown == [format_major(int(statement[c][key]), c) for c in currencies], label
    with engine.connect() as conn:
        closed_seq = conn.execute(
            select(cycles.c.closed_seq).where(
                and_(cycles.c.pool == "food", cycles.c.number == history.first)
            )
        ).scalar_one()
        covering = conn.execute(
            select(checkpoints).where(checkpoints.c.size > closed_seq).order_by(checkpoints.c.size)
        ).first()
        donated = conn.execute(
            select(func.count()).where(
                and_(donations.c.pool == "food", donations.c.cycle == history.first)
            )
        ).scalar_one()
    assert covering is not None
    whole = "\n".join(pages)
    signature = covering.note.rstrip("\n").rsplit("\n", 1)[1]
    assert f"Tree size\n{covering.size}\n" in pages[0]
    assert covering.root.hex()[:40] in pages[0].replace("\n", "")
    assert signature.replace(" ", "") in pages[0].replace("\n", "").replace(" ", "")
    assert f"Donations (entries: {donated})" in whole
    assert len(ROW.findall(whole)) == donated
    assert "Equal to the handover statement" in pages[0]
    metadata = reader.metadata
    assert (
        metadata is not None
        and metadata.title == "Lunaria: Banco de alimentos Ωmega, lunar cycle 321"
    )
    assert metadata.subject is not None and f"checkpoint {covering.size}" in metadata.subject
    assert "checkpoint" in str(metadata.get("/Keywords"))


def test_pdf_fonts_are_embedded_and_cover_cyrillic_and_greek(history: History) -> None:
    content = render(history.fund.log.engine, history.first, "pdf", lang="uk")
    reader = PdfReader(io.BytesIO(content))
    fonts: dict[str, Any] = {}
    for page in reader.pages:
        resources: Any = page["/Resources"]
        for reference in resources["/Font"].values():
            font = reference.get_object()
            fonts[str(font["/BaseFont"])] = font
    assert fonts and all("/FontFile2" in _descriptor(f) for f in fonts.values()), list(fonts)
    text = "\n".join(pages_text(content))
    assert "Звіт за цикл" in text and "Ана Ωmega" in text and "Banco de alimentos Ωmega" in text
    catalog: Any = reader.trailer["/Root"]
    assert catalog["/Lang"] == "uk"
    spanish = "\n".join(pages_text(render(history.fund.log.engine, history.first, "pdf",
                                          lang="es")))  # fmt: skip
    assert "Informe del ciclo" in spanish and "Página 1 de" in spanish


def _descriptor(font: Any) -> dict[str, Any]:
    if "/DescendantFonts" in font:
        font = font["/DescendantFonts"][0].get_object()
    return dict(font["/FontDescriptor"].get_object())


def test_interim_pdf_is_marked(history: History) -> None:
    text = "\n".join(pages_text(render(history.fund.log.engine, "latest", "pdf")))
    assert "Cycle report — INTERIM" in text and "INTERIM" in text.splitlines()[1]
    assert "No handover statement yet" in text


def test_pdf_shows_the_anchor(history: History) -> None:
    log = history.fund.log
    cp = gather(log.engine, "food", history.first, NOW).checkpoint
    log.append(
        "checkpoint_anchored",
        {
            "chain_id": 31337,
            "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "tx_hash": "0x" + "cd" * 32,
            "block_number": 42,
            "anchor_index": 0,
            "size": cp.size,
            "root": cp.root.hex(),
        },
        "anchor",
    )
    text = pages_text(render(log.engine, history.first, "pdf"))[0].replace("\n", "")
    assert "Chain id31337" in text and "0x5FbDB2315678afecb367f032d93F642f64180aa3" in text
    assert "0x" + "cd" * 20 in text and "Block42" in text


def _sha(engine: Engine, cycle: int, lang: str) -> str:
    return hashlib.sha256(render(engine, cycle, "pdf", lang=lang)).hexdigest()


def test_pdf_is_deterministic_across_runs_and_processes(history: History, db_url: str) -> None:
    engine = history.fund.log.engine
    first = _sha(engine, history.first, "uk")
    assert _sha(engine, history.first, "uk") == first
    assert _sha(engine, history.first, "en") != first
    script = (
        "import sys, hashlib\n"
        "from datetime import datetime\n"
        "from ledger.log.db import make_engine\n"
        "from exports.formats import render_report, make_options\n"
        "engine = make_engine(sys.argv[1])\n"
        "report = render_report(engine, 'food', int(sys.argv[2]), 'pdf',\n"
        "    now=datetime.fromisoformat(sys.argv[3]), options=make_options('uk'))\n"
        "print(hashlib.sha256(report.content).hexdigest(), report.info.sha256)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, db_url, str(history.first), NOW.isoformat()],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    assert done.stdout.split() == [first, first]


def test_closed_cycle_report_does_not_change_as_the_log_grows(history: History) -> None:
    """A closed cycle is covered by a fixed checkpoint: later entries change nothing."""
    engine = history.fund.log.engine
    before = {fmt: render(engine, history.first, fmt) for fmt in ("pdf", "csv", "jsonl")}
    interim = render(engine, history.second, "csv")
    history.fund.record_donation(
        TREASURER, "food", {"amount": "700", "currency": "EUR", "channel": "cash",
                            "external_reference": "BANK-TX-LATER"}
    )  # fmt: skip
    history.fund.log.checkpoint_now()
    assert {fmt: render(engine, history.first, fmt) for fmt in before} == before
    assert render(engine, history.second, "csv") != interim  # the interim one grew


def test_every_page_renders_with_pdftoppm(
    history: History, tmp_path: Path, output_dir: Path, db_url: str
) -> None:
    if shutil.which("pdftoppm") is None:
        message = "pdftoppm is missing: `make test` installs poppler-utils"
        if os.environ.get("LUNARIA_FORBID_SKIPS") == "1":
            pytest.fail(message)  # in CI a missing tool is a failure, never a skip
        pytest.skip(message)
    engine = history.fund.log.engine
    for cycle, lang in ((history.first, "en"), (history.first, "uk"), ("latest", "es")):
        content = render(engine, cycle, "pdf", lang=lang)
        pdf = tmp_path / f"report-{cycle}-{lang}.pdf"
        pdf.write_bytes(content)
        done = subprocess.run(
            ["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / f"page-{cycle}-{lang}")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        pngs = sorted(tmp_path.glob(f"page-{cycle}-{lang}*.png"))
        assert len(pngs) == len(PdfReader(io.BytesIO(content)).pages)
    engine_name = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    first_page = output_dir / f"report-first-page-{engine_name}.png"
    subprocess.run(
        ["pdftoppm", "-r", "110", "-png", "-f", "1", "-singlefile",
         str(tmp_path / f"report-{history.first}-uk.pdf"), str(first_page.with_suffix(""))],
        check=True,
    )  # fmt: skip
    assert first_page.stat().st_size > 10_000


def test_many_rows_paginate_with_repeated_headers(history: History) -> None:
    """Rows beyond one page: every donations page repeats the header; no row is lost."""
    report = gather(history.fund.log.engine, "food", history.first, NOW)
    donated = [r for r in report.entries if r.kind == "donation_recorded"]
    many = (*report.entries, *(row._replace(seq=100_000 + i) for i, row in
                               enumerate(donated * 60)))  # fmt: skip
    bigger = type(report)(**{**report.__dict__, "entries": many})
    pages = pages_text(render_pdf(bigger, "en"))
    donation_pages = [p for p in pages if ROW.search(p)]
    assert len(donation_pages) >= 3
    assert all("seq  time (UTC)" in p or "seq time (UTC)" in p for p in donation_pages)
    assert sum(len(ROW.findall(p)) for p in pages) == sum(
        1 for r in many if r.kind == "donation_recorded"
    )
