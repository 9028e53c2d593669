"""Rebuild the projections from the log and compare them with the stored ones.

The relational tables are a cache of the log: replaying every entry through
:func:`ledger.fund.projections.apply_entry` into a scratch database must give exactly the same
rows. ``lunaria replay --check`` and ``lunaria verify`` run this.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, create_engine, select
from sqlalchemy.pool import StaticPool

from ledger.errors import VerificationError
from ledger.fund.projections import apply_entry
from ledger.fund.schema import PROJECTION_TABLES
from ledger.log.entry import decode_entry
from ledger.log.schema import entries, metadata

BATCH = 5_000


@dataclass(frozen=True)
class ReplayReport:
    entries: int
    rows: dict[str, int]

    def summary(self) -> str:
        total = sum(self.rows.values())
        return f"ok: {self.entries} entries replayed; {total} projection rows match"


def scratch_engine() -> Engine:
    """An in-memory SQLite database with empty projection tables."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(engine, tables=list(PROJECTION_TABLES))
    return engine


def replay_into(live: Connection, scratch: Connection) -> int:
    """Apply every entry of the live log to the scratch projections; return the count."""
    count = 0
    result = live.execution_options(yield_per=BATCH).execute(
        select(entries.c.body).order_by(entries.c.seq)
    )
    for (body,) in result:
        entry = decode_entry(bytes(body))
        try:
            apply_entry(scratch, entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(
                entry.seq, f"{entry.kind} data does not fit its kind ({exc!r})"
            ) from exc
        count += 1
    return count


def _rows(conn: Connection, table: Table) -> list[tuple[object, ...]]:
    keys = list(table.primary_key.columns)
    return [tuple(row) for row in conn.execute(select(table).order_by(*keys))]


def check_replay(engine: Engine) -> ReplayReport:
    """Raise VerificationError naming the first table and row that differ from a replay."""
    scratch = scratch_engine()
    with engine.connect() as live, live.begin(), scratch.begin() as rebuilt:
        count = replay_into(live, rebuilt)
        sizes = {}
        for table in PROJECTION_TABLES:
            stored, expected = _rows(live, table), _rows(rebuilt, table)
            if stored != expected:
                raise VerificationError(None, _difference(table, stored, expected))
            sizes[table.name] = len(stored)
    scratch.dispose()
    return ReplayReport(count, sizes)


def _difference(
    table: Table, stored: list[tuple[object, ...]], expected: list[tuple[object, ...]]
) -> str:
    for have, want in zip(stored, expected, strict=False):
        if have != want:
            return f"projection {table.name}: stored row {have} but the log gives {want}"
    if len(stored) > len(expected):
        return f"projection {table.name}: stored row {stored[len(expected)]} is not in the log"
    return f"projection {table.name}: row {expected[len(stored)]} from the log is missing"
