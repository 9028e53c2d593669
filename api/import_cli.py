"""``lunaria import bank FILE --pool SLUG [--dry-run]`` and ``lunaria import csv-mapping``:
bank statements into a pool from the shell, as the operator (an admin), exactly as
``POST /api/v1/pools/{slug}/imports`` does it. Each line is printed with what the import did
with it (or would do, with ``--dry-run``) and why; never an IBAN or a name."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from api import db
from api.command_errors import fail, reports_ledger_errors
from ledger.fund import (
    OPERATOR,
    csv_mapping,
    format_major,
    import_statement,
    parse_statement,
    save_csv_mapping,
)


@click.group("import")
def import_group() -> None:
    """Import money that arrived: bank statements (camt.053/054, MT940, CSV)."""


@import_group.command("bank")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pool", "pool", required=True, help="The pool the account belongs to.")
@click.option("--dry-run", is_flag=True, help="Show what would be recorded; record nothing.")
@with_appcontext
@reports_ledger_errors
def import_bank_command(file: Path, pool: str, dry_run: bool) -> None:
    """Import a bank statement FILE into POOL: new credits become donations (all or none)."""
    statement = parse_statement(file.read_bytes(), csv_mapping(db.get_engine(), pool))
    report = import_statement(db.get_fund(), OPERATOR, pool, statement, dry_run=dry_run)
    for line in report.lines:
        amount = format_major(int(line.amount), line.currency)
        seq = f" seq {line.seq}" if line.seq is not None and line.action == "record" else ""
        click.echo(
            f"{line.number:>5} {line.booked} {line.direction:<6} {amount:>14} {line.currency} "
            f"{line.action:<9} {line.reason}: {line.detail}{seq}"
        )
    verb = "would record" if dry_run else "recorded"
    new = sum(1 for line in report.lines if line.action == "record")
    click.echo(
        f"{statement.format} {statement.identifier or '(no id)'}: {len(report.lines)} lines, "
        f"{verb} {new if dry_run else report.recorded} donations"
        + ("" if dry_run else f", {report.pledge_payments} matched to pledges")
    )


@import_group.command("csv-mapping")
@click.option("--pool", "pool", required=True)
@click.argument("mapping")
@with_appcontext
@reports_ledger_errors
def csv_mapping_command(pool: str, mapping: str) -> None:
    """Save POOL's CSV column MAPPING (a JSON object: date, amount, reference, ...)."""
    try:
        data = json.loads(mapping)
    except ValueError as exc:
        fail(f"error: the mapping is not JSON: {exc}")
    if not isinstance(data, dict):
        fail("error: the mapping is a JSON object")
    save_csv_mapping(db.get_engine(), OPERATOR, pool, data, db.get_clock().now())
    click.echo(f"saved the CSV mapping of {pool}")


COMMANDS: tuple[click.Command, ...] = (import_group,)
