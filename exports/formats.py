"""One entry point for every format: what the CLI and the HTTP routes call.

    info = write_report(engine, "food-bank", "latest", "pdf", out, now=clock.now(), lang="uk")
    export = render_report(engine, "food-bank", 330, "csv", now=..., fields="seq,ts,amount")

Parameters are checked before the database is read (unknown_format, invalid_fields,
invalid_range); then the report is gathered once (:func:`exports.data.gather`) and rendered.
The SHA-256 of the bytes is returned for the ``X-Report-SHA256`` header; the JSON export also
names the SHA-256 of the PDF of the same report in the same language.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from exports.beancount_export import write_beancount
from exports.csv_export import parse_fields, parse_range, write_csv
from exports.data import gather, parse_cycle
from exports.errors import UnknownFormat
from exports.i18n import LANGUAGES, choose_language
from exports.json_export import PdfDigest, write_json, write_jsonl
from exports.pdf import render_pdf
from exports.report import CycleReport
from exports.sink import Sink

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8; header=present",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "beancount": "text/plain; charset=utf-8",
}
FORMATS = tuple(MEDIA_TYPES)
SHA256_HEADER = "X-Report-SHA256"


@dataclass(frozen=True)
class ReportOptions:
    """Checked parameters: language, and for CSV the columns and the time range."""

    lang: str = "en"
    fields: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class ReportInfo:
    """What was written: for the response headers and the CLI's summary."""

    format: str
    media_type: str
    filename: str
    sha256: str
    size: int
    pool: str
    cycle: int
    interim: bool
    checkpoint_size: int


@dataclass(frozen=True)
class RenderedReport:
    info: ReportInfo
    content: bytes


def check_format(fmt: str) -> str:
    if fmt not in MEDIA_TYPES:
        raise UnknownFormat(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    return fmt


def make_options(
    lang: str | None = None,
    accept_language: str | None = None,
    fields: str | Sequence[str] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    base_url: str | None = None,
) -> ReportOptions:
    """Check and normalise the parameters (raises InvalidFields, InvalidRange)."""
    start, end = parse_range(since, until)
    return ReportOptions(
        lang=choose_language(lang, accept_language),
        fields=None if fields is None else parse_fields(fields),
        since=start,
        until=end,
        base_url=base_url,
    )


class _HashingWriter:
    """Counts and hashes what passes through to ``out``."""

    def __init__(self, out: Sink) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def write_report(
    engine: Engine,
    pool: str,
    cycle: int | str,
    fmt: str,
    out: Sink,
    *,
    now: datetime,
    options: ReportOptions | None = None,
    pdf: ReportInfo | None = None,
) -> ReportInfo:
    """Gather the report of ``pool`` / ``cycle`` and write it to ``out`` in ``fmt``.

    The JSON names the SHA-256 and size of the PDF of the same report in the same language:
    ``pdf``, the info of that PDF when the caller has it (the report cache), saves rendering it
    again; it is used only if it is of the same pool, cycle and checkpoint as the report
    gathered now."""
    check_format(fmt)
    parse_cycle(cycle)
    options = options or ReportOptions()
    if options.lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}; use make_options() to choose one")
    report = gather(engine, pool, cycle, now)
    sink = _HashingWriter(out)
    _render(engine, report, fmt, sink, options, pdf)
    return ReportInfo(
        format=fmt,
        media_type=MEDIA_TYPES[fmt],
        filename=report_filename(report.pool, report.cycle, report.interim, fmt, options.lang),
        sha256=sink.digest.hexdigest(),
        size=sink.size,
        pool=report.pool,
        cycle=report.cycle,
        interim=report.interim,
        checkpoint_size=report.checkpoint.size,
    )


def _pdf_digest(report: CycleReport, options: ReportOptions, pdf: ReportInfo | None) -> PdfDigest:
    """The PDF the JSON names: ``pdf`` if it is this very report's, else rendered here."""
    this = ("pdf", report.pool, report.cycle, report.checkpoint.size)
    if pdf is not None and (pdf.format, pdf.pool, pdf.cycle, pdf.checkpoint_size) == this:
        return PdfDigest(options.lang, pdf.sha256, pdf.size)
    content = render_pdf(report, options.lang, options.base_url)
    return PdfDigest(options.lang, hashlib.sha256(content).hexdigest(), len(content))


def report_filename(pool: str, cycle: int, interim: bool, fmt: str, lang: str) -> str:
    """``food-bank-330.csv``, ``food-bank-331-interim-uk.pdf``: the language for PDFs only."""
    name = f"{pool}-{cycle}{'-interim' if interim else ''}"
    return f"{name}-{lang}.{fmt}" if fmt == "pdf" else f"{name}.{fmt}"


def render_report(
    engine: Engine,
    pool: str,
    cycle: int | str,
    fmt: str,
    *,
    now: datetime,
    options: ReportOptions | None = None,
    pdf: ReportInfo | None = None,
) -> RenderedReport:
    """Like :func:`write_report`, into memory."""
    buffer = io.BytesIO()
    info = write_report(engine, pool, cycle, fmt, buffer, now=now, options=options, pdf=pdf)
    return RenderedReport(info, buffer.getvalue())


def _render(
    engine: Engine,
    report: CycleReport,
    fmt: str,
    out: Sink,
    options: ReportOptions,
    pdf: ReportInfo | None = None,
) -> None:
    if fmt == "pdf":
        out.write(render_pdf(report, options.lang, options.base_url))
    elif fmt == "csv":
        fields = options.fields if options.fields is not None else parse_fields(None)
        write_csv(report, out, fields, options.since, options.until)
    elif fmt == "json":
        write_json(report, out, _pdf_digest(report, options, pdf), options.base_url)
    elif fmt == "jsonl":
        write_jsonl(engine, report, out)
    else:
        write_beancount(report, out)
