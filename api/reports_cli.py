"""``lunaria report POOL CYCLE``: an auditor's report of one pool and lunar cycle.

    lunaria report food-bank 330 --format pdf --lang uk -o report.pdf
    lunaria report food-bank latest --format csv --fields seq,ts,kind,amount --since 2026-10-01

CYCLE is a lunation number or ``latest``. Formats: pdf, csv, json, jsonl, beancount. The file
is written whole or not at all; the summary (size, SHA-256, closed or interim) goes to stderr.
The URLs a report prints are the stored public URL's (:mod:`api.public_url`), so the file is
byte for byte the HTTP download of the same report in the same language.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from api import db, public_url
from api.command_errors import reports_ledger_errors
from exports.formats import FORMATS, ReportInfo, make_options, write_report


@click.command("report")
@click.argument("pool")
@click.argument("cycle")
@click.option(
    "--format", "-f", "fmt", default="pdf", show_default=True, help=f"One of {', '.join(FORMATS)}."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write ('-' for stdout); default: the report's own name, here.",
)
@click.option("--lang", default="en", show_default=True, help="Language of the PDF: en, es, uk.")
@click.option("--fields", help="CSV: the columns to write, comma-separated, in order.")
@click.option("--since", help="CSV: entries at or after this date or RFC 3339 time (UTC).")
@click.option("--until", help="CSV: entries before this date or RFC 3339 time (UTC).")
@with_appcontext
def report_command(
    pool: str,
    cycle: str,
    fmt: str,
    output: Path | None,
    lang: str,
    fields: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Write the report of POOL for lunar CYCLE (a number, or 'latest')."""
    reports_ledger_errors(_write)(pool, cycle, fmt, output, lang, fields, since, until)


def _write(
    pool: str,
    cycle: str,
    fmt: str,
    output: Path | None,
    lang: str,
    fields: str | None,
    since: str | None,
    until: str | None,
) -> None:
    base_url = public_url.get()
    options = make_options(lang=lang, fields=fields, since=since, until=until, base_url=base_url)
    engine, now = db.get_engine(), db.get_clock().now()
    if output is not None and str(output) == "-":
        stdout = sys.stdout.buffer
        info = write_report(engine, pool, cycle, fmt, stdout, now=now, options=options)
        stdout.flush()
        _summary(info, "stdout")
        return
    partial = Path(f"{output or 'report'}.{os.getpid()}.part")
    try:
        with partial.open("wb") as out:
            info = write_report(engine, pool, cycle, fmt, out, now=now, options=options)
        target = output or Path(info.filename)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _summary(info, str(target))


def _summary(info: ReportInfo, where: str) -> None:
    status = (
        f"interim, up to checkpoint size {info.checkpoint_size}"
        if info.interim
        else f"closed, checkpoint size {info.checkpoint_size}"
    )
    click.echo(
        f"wrote {where}: {info.pool} cycle {info.cycle} ({status}), {info.format}, "
        f"{info.size} bytes, sha256 {info.sha256}",
        err=True,
    )
    sys.stderr.flush()
