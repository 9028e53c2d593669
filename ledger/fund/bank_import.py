"""Bank statements into the books: credits become donations, debits are matched to
disbursements, and each line not recorded says why.

An import is planned first (:func:`plan_import`, also the dry run), then recorded in one batch
of donations (:meth:`~ledger.fund.donations.DonationCommands.record_donations`: all or
nothing). The bank's reference of each line is the donation's external reference, private and
unique per pool (:func:`~ledger.fund.privacy.reference_digest`), so importing the same
statement again, or one that overlaps, records nothing twice. A donor's IBAN is sealed with
the donation as its donor reference; neither it nor the name is in the log, the plan or the
statements table. The statement's closing balance is kept for reconciliation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, Engine, Integer, String, Table, Text, insert, select

from ledger.fund.commands import Fund
from ledger.fund.donations import recorded_references
from ledger.fund.pledges import match_payments
from ledger.fund.privacy import private_record
from ledger.fund.rules import MAX_BATCH, Actor, require_role
from ledger.fund.schema import grants, private_records
from ledger.fund.state import pool_row
from ledger.fund.statements import CsvMapping, Statement, StatementError, StatementLine
from ledger.log.clock import format_ts
from ledger.log.db import write_transaction
from ledger.log.schema import metadata

bank_statements = Table(
    "bank_statements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pool", String(64), nullable=False, index=True),
    Column("format", String(16), nullable=False),
    Column("statement", String(200), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("closing", String(40), nullable=True),
    Column("closing_date", String(10), nullable=True),
    Column("lines", Integer, nullable=False),
    Column("recorded", Integer, nullable=False),
    Column("first_seq", Integer, nullable=True),
    Column("imported_ts", String(27), nullable=False),
    Column("exceptions", Text, nullable=True),
)

bank_csv_mappings = Table(
    "bank_csv_mappings",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("mapping", Text, nullable=False),
    Column("updated_ts", String(27), nullable=False),
)


@dataclass(frozen=True)
class PlannedLine:
    """What an import does with one line: ``record`` (a new donation), ``skip`` (with the
    reason), ``matched`` (a debit paying grant ``grant``) or ``unmatched`` (a debit the books
    do not know). No IBAN, no name."""

    number: int
    direction: str
    amount: str
    currency: str
    reference: str
    booked: str
    action: str
    reason: str
    detail: str
    grant: int | None = None
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportReport:
    """The plan of an import, and after recording, what it wrote."""

    pool: str
    statement: Statement
    lines: list[PlannedLine]
    dry_run: bool = True
    recorded: int = 0
    first_seq: int | None = None
    written: list[int] = field(default_factory=list)
    pledge_payments: int = 0  # donations matched to pledges (ledger.fund.pledges); no link shown

    def to_json(self) -> dict[str, Any]:
        s = self.statement
        counts: dict[str, int] = {}
        for line in self.lines:
            counts[line.action] = counts.get(line.action, 0) + 1
        return {
            "pool": self.pool,
            "dry_run": self.dry_run,
            "statement": {
                "format": s.format,
                "id": s.identifier,
                "currency": s.currency,
                "closing": None if s.closing is None else str(s.closing),
                "closing_date": s.closing_date,
                "lines": len(s.lines),
            },
            "counts": counts,
            "recorded": self.recorded,
            "pledge_payments": self.pledge_payments,
            "lines": [line.to_json() for line in self.lines],
        }


def plan_import(fund: Fund, pool: str, statement: Statement) -> ImportReport:
    """What importing ``statement`` into ``pool`` would record, and why each other line is not
    (the dry run); refuses a statement in a currency the pool does not take."""
    engine = fund.log.engine
    with engine.connect() as conn:
        accepted = json.loads(pool_row(conn, pool).currencies)
        if statement.currency not in accepted:
            raise StatementError(
                f"the statement is in {statement.currency}; pool {pool!r} takes "
                f"{', '.join(accepted)}",
                "currency_not_accepted",
            )
        references = [line.reference for line in statement.lines]
        recorded = recorded_references(conn, fund.log.fingerprint_key, pool, references)
        payments = _payments(conn, fund, pool) if any(not x.credit for x in statement.lines) else {}
    planned = [_plan_line(line, recorded, payments) for line in statement.lines]
    to_record = sum(1 for line in planned if line.action == "record")
    if to_record > MAX_BATCH:
        raise StatementError(
            f"the statement has {to_record} new credits; an import records at most "
            f"{MAX_BATCH}: split the file by date",
            "import_too_large",
        )
    return ImportReport(pool, statement, planned)


def import_statement(
    fund: Fund, actor: Actor, pool: str, statement: Statement, *, dry_run: bool = False
) -> ImportReport:
    """Plan the import and, unless ``dry_run``, record its donations in one batch (all or
    nothing) and remember the statement (its closing balance) for reconciliation."""
    require_role(actor, "treasurer", "admin")
    report = plan_import(fund, pool, statement)
    if dry_run:
        return report
    lines = {line.number: line for line in statement.lines}
    chosen = [p for p in report.lines if p.action == "record"]
    if chosen:
        batch = [_donation(lines[p.number]) for p in chosen]
        outcome = fund.record_donations(actor, pool, batch)
        seqs = [entry.seq for entry in outcome.written]
        by_number = dict(zip((c.number for c in chosen), seqs, strict=True))
        report.lines = [_with_seq(p, by_number) for p in report.lines]
        report.written = seqs
        report.recorded = len(seqs)
        report.first_seq = seqs[0]
    _remember(fund.log.engine, report, fund.log.clock.now())
    report.dry_run = False
    report.pledge_payments = match_payments(fund, pool, _paid(report, lines))
    return report


def _paid(report: ImportReport, lines: Mapping[int, StatementLine]) -> list[tuple[int, str]]:
    """Each credit now in the books (recorded by this import or an earlier one: matching is
    idempotent, so a re-import completes an interrupted one) with what its payer wrote."""
    return [
        (p.seq, f"{lines[p.number].remittance} {lines[p.number].end_to_end}")
        for p in report.lines
        if p.seq is not None and p.direction == "credit"
    ]


def _with_seq(planned: PlannedLine, seqs: Mapping[int, int]) -> PlannedLine:
    if planned.number not in seqs:
        return planned
    return PlannedLine(**{**planned.__dict__, "seq": seqs[planned.number], "detail": "recorded"})


def _donation(line: StatementLine) -> dict[str, Any]:
    """The donation a credit line becomes: the bank's reference, the IBAN as the (private)
    donor reference; no name, no note."""
    return {
        "amount": str(line.amount),
        "currency": line.currency,
        "channel": "bank",
        "external_reference": line.reference,
        "donor_reference": line.iban,
    }


def _plan_line(
    line: StatementLine, recorded: Mapping[str, int], payments: Mapping[str, int]
) -> PlannedLine:
    def planned(action: str, reason: str, detail: str, **extra: Any) -> PlannedLine:
        return PlannedLine(
            line.number,
            "credit" if line.credit else "debit",
            str(line.amount),
            line.currency,
            line.reference,
            line.booked,
            action,
            reason,
            detail,
            **extra,
        )

    if line.status != "BOOK":
        return planned("skip", "not_booked", f"the bank has not booked it ({line.status})")
    if line.credit:
        if line.reference in recorded:
            seq = recorded[line.reference]
            return planned("skip", "recorded_already", f"the donation at seq {seq}", seq=seq)
        return planned("record", "new_credit", "a new donation")
    grant = _matching_grant(line, payments)
    if grant is None:
        return planned("unmatched", "no_disbursement", "no disbursement has this reference")
    return planned("matched", "disbursement", f"pays grant {grant}", grant=grant)


def _matching_grant(line: StatementLine, payments: Mapping[str, int]) -> int | None:
    """The grant whose payment reference is the line's end-to-end id, or a word (or all) of
    what the remittance says."""
    candidates = [line.end_to_end, line.remittance.strip(), *line.remittance.split()]
    for candidate in candidates:
        if candidate and candidate in payments:
            return payments[candidate]
    return None


def _payments(conn: Connection, fund: Fund, pool: str) -> dict[str, int]:
    """The pool's disbursements by payment reference (opened from the private records)."""
    query = (
        select(private_records.c.commitment, grants.c.id)
        .join(grants, grants.c.disbursed_seq == private_records.c.seq)
        .where(private_records.c.kind == "payment", grants.c.pool == pool)
    )
    payments: dict[str, int] = {}
    for key, grant in conn.execute(query).all():
        record = private_record(conn, fund.vault, key)
        if record is not None:  # (erased: its reference can no longer be matched)
            payments[str(record.payload["payment_reference"])] = int(grant)
    return payments


def _remember(engine: Engine, report: ImportReport, now: Any) -> None:
    s = report.statement
    with write_transaction(engine) as conn:
        conn.execute(
            insert(bank_statements).values(
                pool=report.pool,
                format=s.format,
                statement=s.identifier[:200],
                currency=s.currency,
                closing=None if s.closing is None else str(s.closing),
                closing_date=s.closing_date,
                lines=len(s.lines),
                recorded=report.recorded,
                first_seq=report.first_seq,
                imported_ts=format_ts(now),
                exceptions=json.dumps(
                    [
                        p.to_json()
                        for p in report.lines
                        if p.action in ("unmatched", "skip") and p.reason != "recorded_already"
                    ]
                ),
            )
        )


def save_csv_mapping(
    engine: Engine, actor: Actor, pool: str, data: Mapping[str, Any], now: Any
) -> CsvMapping:
    """Check and keep the pool's CSV column mapping (replacing the previous one)."""
    require_role(actor, "treasurer", "admin")
    mapping = CsvMapping.from_json(data)
    with write_transaction(engine) as conn:
        pool_row(conn, pool)
        conn.execute(bank_csv_mappings.delete().where(bank_csv_mappings.c.pool == pool))
        conn.execute(
            insert(bank_csv_mappings).values(
                pool=pool, mapping=mapping.to_json(), updated_ts=format_ts(now)
            )
        )
    return mapping


def csv_mapping(engine: Engine, pool: str) -> CsvMapping | None:
    """The pool's saved CSV column mapping, if any."""
    with engine.connect() as conn:
        text = conn.execute(
            select(bank_csv_mappings.c.mapping).where(bank_csv_mappings.c.pool == pool)
        ).scalar_one_or_none()
    return None if text is None else CsvMapping.from_json(json.loads(text))


def last_statements(engine: Engine, pool: str) -> dict[str, Any]:
    """The pool's last imported statement with a closing balance, per currency."""
    query = (
        select(bank_statements)
        .where(bank_statements.c.pool == pool, bank_statements.c.closing.is_not(None))
        .order_by(bank_statements.c.id)
    )
    with engine.connect() as conn:
        return {row.currency: row for row in conn.execute(query)}
