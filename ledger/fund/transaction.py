"""The fund's write transaction and the runner every command goes through.

Every command runs in one write transaction on the log: first any handover that is due (so
custody is always current), then the rule checks against the projections, then the entry,
applied to the projections by :func:`ledger.fund.projections.apply_entry`. A broken rule raises
:class:`RuleViolation` with a stable code, and nothing is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ledger.fund.handover import apply_due_handovers, due_handovers_read
from ledger.fund.projections import apply_entries, apply_entry
from ledger.fund.rules import Actor, Outcome
from ledger.fund.state import KnownBoundaries, persisted_boundaries
from ledger.fund.vault import Vault
from ledger.log.append import Log, LogWriter
from ledger.log.clock import format_ts
from ledger.log.db import Read, write_sql
from ledger.log.entry import CanonicalData, Entry


class FundTransaction:
    """A log write transaction that also keeps the projections and lunar custody current."""

    def __init__(self, writer: LogWriter, boundaries: KnownBoundaries, vault: Vault) -> None:
        self.writer = writer
        self.vault = vault
        self.conn = writer.conn
        self.now: datetime = writer.now
        self.boundaries = boundaries
        self.schedule = boundaries.schedule(self.conn, self.now)
        self.cycle = self.schedule.cycle_at(self.now)
        self.prefetched: list[list[Any]] = []  # the rows of the reads it was opened with

    def emit(self, kind: str, data: dict[str, Any], actor: str) -> Entry:
        entry = self.writer.append(kind, data, actor)
        apply_entry(self.conn, entry)
        return entry

    def emit_all(
        self, kind: str, items: Iterable[dict[str, Any] | CanonicalData], actor: str
    ) -> list[Entry]:
        """Append one entry per item, in order, then apply them to the projections together
        (a batch writes each projection row once). An item that fails to check or encode
        stops it, with nothing written, as emitting them one by one would."""
        append = self.writer.append
        entries = [append(kind, data, actor) for data in items]
        apply_entries(self.conn, entries)
        return entries

    def persist_schedule(self) -> None:
        """Freeze newly computed new-moon boundaries: a later ephem must never move them."""
        computed = self.schedule.new_boundaries
        if not computed:
            return
        known = set(persisted_boundaries(self.conn))
        fresh = [(n, format_ts(start)) for n, start in computed.items() if n not in known]
        if fresh:
            write_sql(
                self.conn,
                "INSERT INTO lunar_boundaries (lunation, starts_at) VALUES (?, ?)",
                fresh,
                many=True,
            )


def scoped_key(actor: Actor, idempotency_key: str | None) -> str | None:
    """Keys are per caller; hashed so any client key fits the column."""
    if not idempotency_key:
        return None
    return hashlib.sha256(f"{actor.id}|{idempotency_key}".encode()).hexdigest()


class FundCommands:
    """The commands' shared core: the log, the known lunar boundaries, and :meth:`_run`."""

    def __init__(self, log: Log, vault: Vault) -> None:
        self.log = log
        self.vault = vault
        self.boundaries = KnownBoundaries()

    @contextmanager
    def transaction(self, reads: Sequence[Read] = ()) -> Iterator[FundTransaction]:
        """A write transaction; ``reads`` are read first (their rows are ``tx.prefetched``),
        on PostgreSQL in one round trip with the head and the pools due a handover."""
        cycle = self.boundaries.cycle_number(self.log.clock.now())
        due = [] if cycle is None else [due_handovers_read(cycle)]
        with self.log.writer([*due, *reads]) as writer:
            tx = FundTransaction(writer, self.boundaries, self.vault)
            tx.prefetched = writer.prefetched[len(due) :]
            apply_due_handovers(tx, None if cycle is None else (cycle, writer.prefetched[0]))
            yield tx
            tx.persist_schedule()

    def _run(
        self,
        actor: Actor,
        idempotency_key: str | None,
        request: Mapping[str, Any],
        command: Callable[[FundTransaction], Entry],
    ) -> Outcome:
        scoped = scoped_key(actor, idempotency_key)
        with self.transaction() as tx:
            if scoped is not None:
                seq = tx.writer.find_idempotent(scoped, request)
                if seq is not None:
                    return Outcome(seq, replayed=True)
            entry = command(tx)
            if scoped is not None:
                tx.writer.remember(scoped, request, entry.seq)
            return Outcome(entry.seq, replayed=False)
