"""Gathering a cycle report: the entries read once from the public log into a frozen value.

Which entries a report covers is :func:`exports.cycle.belongs_to_cycle`; the value is
:class:`exports.report.CycleReport`, its rows built by :mod:`exports.rows`.

Every number is computed from the entries' canonical bytes (``entries.body``), not from
the projections: the projection tables are used only as an index (where the cycle opens and
closes, which checkpoint covers it). A closed cycle is covered by the first checkpoint whose
tree includes its closing entry; a cycle still open (or closed after the latest checkpoint)
gives an *interim* report of the entries below the latest checkpoint. Public text of entry
data version 2 is read from ``public_texts`` (``[redacted]`` once redacted); private tables
(``private_records``, ``tokens``) are never read.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, select, text

from exports.cycle import (
    CUSTODY_KINDS,
    REPORT_KINDS,
    RollForwardBuilder,
    belongs_to_cycle,
    check_statement,
    closes_cycle,
    closing_statement,
)
from exports.errors import CycleBeforePool, CycleNotStarted, InconsistentLog, InvalidCycle
from exports.report import Anchor, CycleReport, EntryRow, GrantRow
from exports.rows import (
    anchor_row,
    checkpoint_info,
    custodian_of,
    daily_flows,
    entry_row,
    grant_of,
    grant_row,
    handover_row,
)
from ledger.errors import NotFound
from ledger.fund import cycles, load_schedule, pool_row, public_text, views
from ledger.log import (
    Entry,
    StoredCheckpoint,
    checked_entry,
    checkpoints,
    consistency_proof,
    decode_entry,
    entries,
    latest_checkpoint,
    parse_ts,
    read_nodes,
    read_transaction,
    root_at,
)

SCAN_BATCH = 5000
_CYCLE = re.compile(r"-?[0-9]{1,9}\Z")


def gather(engine: Engine, pool: str, cycle: int | str, now: datetime) -> CycleReport:
    """The report of ``pool`` for ``cycle`` (a lunation number or ``"latest"``) as of ``now``.

    Raises NotFound (unknown pool), CycleBeforePool, CycleNotStarted, InvalidCycle, and
    InconsistentLog if the entries do not add up to the handover statement.
    """
    with read_transaction(engine) as conn:
        report = _Gatherer(conn, pool).report(cycle, now)
    return replace(report, collective_names=_custodian_names(engine, report))


def _custodian_names(engine: Engine, report: CycleReport) -> dict[str, str]:
    """The names of the collectives that held or take over custody (for the sign-off)."""
    slugs = {report.custodian} | {h.custodian_from for h in report.custody}
    slugs |= {h.custodian_to for h in report.custody}
    names = {}
    for slug in sorted(s for s in slugs if s):
        try:
            names[slug] = views.collective_detail(engine, slug).name
        except NotFound:
            names[slug] = slug  # (a log replayed without its projections)
    return names


@dataclass(frozen=True)
class ReportLocation:
    """What a report is rendered from, found without reading the cycle's entries: the cycle,
    the size of its covering checkpoint, and ``revision``, the newest entry that can change a
    report after its checkpoint (an anchor or a redaction; -1 when there is none)."""

    pool: str
    cycle: int
    checkpoint_size: int
    interim: bool
    revision: int


REVISIONS = text("kind IN ('checkpoint_anchored', 'text_redacted')")
"""The entries that change a closed cycle's report (its anchor, its public texts): literal,
the WHERE of the partial index ``ix_entries_report_revisions`` (migration 0011), which SQLite
uses only for the same terms without bound parameters."""


def locate(engine: Engine, pool: str, cycle: int | str, now: datetime) -> ReportLocation:
    """Where the report of ``pool`` / ``cycle`` stands, in a few indexed reads (for the
    cache's key); raises what :func:`gather` raises for a report that cannot be made."""
    with read_transaction(engine) as conn:
        gatherer = _Gatherer(conn, pool)
        number, _, covering, _, interim = gatherer.locate(cycle, now)
        revision = conn.execute(select(func.max(entries.c.seq)).where(REVISIONS)).scalar()
    newest = -1 if revision is None else int(revision)
    return ReportLocation(pool, number, covering.size, interim, newest)


def parse_cycle(value: int | str) -> int | str:
    """A lunation number, or ``"latest"``; raises InvalidCycle otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value == "latest":
            return value
        if _CYCLE.match(value):
            return int(value)
    raise InvalidCycle(f"cycle must be a lunation number or 'latest', got {value!r}")


class _CycleEntries:
    """One pass over the cycle's entries: compact rows, sums, and the few entries kept whole
    (custody and grant events); 100,000 decoded entries are never held at once."""

    def __init__(
        self,
        pool: str,
        number: int,
        allowances: Mapping[str, str],
        texts: Mapping[str, str | None],
    ) -> None:
        self.number = number
        self.texts = texts
        self.rows: list[EntryRow] = []
        self.roll_forward = RollForwardBuilder(pool, allowances)
        self.custody: list[Entry] = []
        self.grant_events: dict[int, list[Entry]] = defaultdict(list)

    def add(self, entry: Entry) -> None:
        self.rows.append(entry_row(entry, self.texts))
        self.roll_forward.add(entry)
        if entry.kind in CUSTODY_KINDS:
            self.custody.append(entry)
        grant = grant_of(entry)
        if grant is not None:
            self.grant_events[grant].append(entry)

    def closing(self) -> Entry:
        last = self.custody[-1] if self.custody else None
        if last is None or last.seq != self.rows[-1].seq or not closes_cycle(last, self.number):
            raise InconsistentLog(f"cycle {self.number} does not end with its handover")
        return last


class _Gatherer:
    def __init__(self, conn: Connection, pool: str) -> None:
        self.conn = conn
        self.pool = pool_row(conn, pool)
        self.slug: str = pool
        self.texts: dict[str, str | None] = {}

    def locate(
        self, cycle: int | str, now: datetime
    ) -> tuple[int, Any, StoredCheckpoint, int, bool]:
        """The cycle's number and row, its covering checkpoint, the last seq to read, and
        whether the report is interim."""
        latest = latest_checkpoint(self.conn)
        if latest is None:
            raise CycleNotStarted("the log has no signed checkpoint yet")
        number = self._resolve(parse_cycle(cycle), now, latest)
        row = self._cycle_row(number, latest)
        covering, last, interim = self._coverage(row, latest)
        return number, row, covering, last, interim

    def report(self, cycle: int | str, now: datetime) -> CycleReport:
        number, row, covering, last, interim = self.locate(cycle, now)
        allowances: dict[str, str] = json.loads(self.pool.cycle_allowance)
        self.texts = public_text.texts_between(self.conn, int(row.opened_seq), last)
        cycle_entries = _CycleEntries(self.slug, number, allowances, self.texts)
        for entry in self._scan(int(row.opened_seq), last, number):
            cycle_entries.add(entry)
        closing = None if interim else cycle_entries.closing()
        statement = None if closing is None else closing_statement(closing)
        roll_forward = cycle_entries.roll_forward.result()
        if statement is not None:
            check_statement(self.slug, number, roll_forward, statement)
        rows = tuple(cycle_entries.rows)
        return CycleReport(
            pool=self.slug,
            pool_name=str(self.pool.name),
            currencies=tuple(json.loads(self.pool.currencies)),
            cycle=number,
            starts_at=str(row.starts_at),
            ends_at=str(row.ends_at),
            custodian=custodian_of(cycle_entries.custody),
            interim=interim,
            checkpoint=checkpoint_info(covering),
            anchor=self._anchor(covering),
            opening_seq=int(row.opened_seq),
            closing_seq=None if closing is None else closing.seq,
            roll_forward=roll_forward,
            statement=statement,
            entries=rows,
            grants=self._grants(cycle_entries.grant_events, closing),
            custody=tuple(handover_row(e, number) for e in cycle_entries.custody),
            daily=daily_flows(rows, parse_ts(row.starts_at), parse_ts(row.ends_at)),
        )

    # -- which cycle, which checkpoint --------------------------------------------------------

    def _resolve(self, cycle: int | str, now: datetime, latest: StoredCheckpoint) -> int:
        if cycle == "latest":
            number = self.conn.execute(
                select(cycles.c.number)
                .where(and_(cycles.c.pool == self.slug, cycles.c.opened_seq < latest.size))
                .order_by(cycles.c.number.desc())
                .limit(1)
            ).scalar()
            if number is None:
                raise CycleNotStarted(f"no cycle of {self.slug!r} is in a checkpoint yet")
            return int(number)
        assert isinstance(cycle, int)
        created = int(self.pool.created_cycle)
        if cycle < created:
            raise CycleBeforePool(
                f"pool {self.slug!r} was created in cycle {created}; there is no cycle {cycle}"
            )
        current = load_schedule(self.conn).cycle_at(now).number
        if cycle > current:
            raise CycleNotStarted(f"cycle {cycle} has not started; the current cycle is {current}")
        return cycle

    def _cycle_row(self, number: int, latest: StoredCheckpoint) -> Any:
        row = self.conn.execute(
            select(cycles).where(and_(cycles.c.pool == self.slug, cycles.c.number == number))
        ).one_or_none()
        if row is None or int(row.opened_seq) >= latest.size:
            raise CycleNotStarted(
                f"cycle {number} of {self.slug!r} has begun, but no checkpoint covers an entry "
                f"of it yet (latest checkpoint: size {latest.size}); try again later"
            )
        return row

    def _coverage(self, row: Any, latest: StoredCheckpoint) -> tuple[StoredCheckpoint, int, bool]:
        """The covering checkpoint, the last seq to read, and whether the report is interim."""
        if row.closed_seq is not None:
            found = self.conn.execute(
                select(checkpoints)
                .where(checkpoints.c.size > row.closed_seq)
                .order_by(checkpoints.c.size)
                .limit(1)
            ).one_or_none()
            if found is not None:
                stored = StoredCheckpoint(found.size, found.root, found.ts, found.note)
                return stored, int(row.closed_seq), False
        return latest, latest.size - 1, True

    def _scan(self, first: int, last: int, number: int) -> Iterator[Entry]:
        query = (
            select(entries.c.body)
            .where(
                and_(
                    entries.c.seq >= first,
                    entries.c.seq <= last,
                    entries.c.kind.in_(REPORT_KINDS),
                )
            )
            .order_by(entries.c.seq)
        )
        result = self.conn.execution_options(yield_per=SCAN_BATCH).execute(query)
        for (body,) in result:
            entry = checked_entry(bytes(body))  # (lunaria verify checks the stored log)
            if belongs_to_cycle(entry, self.slug, number):
                yield entry

    # -- grants -------------------------------------------------------------------------------

    def _grants(
        self, events: Mapping[int, Sequence[Entry]], closing: Entry | None
    ) -> tuple[GrantRow, ...]:
        voided = set(closing.data["voided_votes"]) if closing is not None else set()
        proposals = {gid: e[0] for gid, e in events.items() if e[0].kind == "grant_proposed"}
        earlier = self._entries_at([gid for gid in events if gid not in proposals])
        proposals.update(earlier)
        texts = {**self.texts, **public_text.texts_of(self.conn, earlier.values())}
        return tuple(
            grant_row(proposals[gid], events[gid], voided, texts) for gid in sorted(events)
        )

    def _entries_at(self, seqs: Sequence[int]) -> dict[int, Entry]:
        if not seqs:
            return {}
        rows = self.conn.execute(
            select(entries.c.seq, entries.c.body).where(
                entries.c.seq.in_(bindparam("seqs", expanding=True))
            ),
            {"seqs": list(seqs)},
        )
        return {int(seq): decode_entry(bytes(body)) for seq, body in rows}

    # -- anchors ------------------------------------------------------------------------------

    def _anchor(self, covering: StoredCheckpoint) -> Anchor | None:
        """The first anchor of a tree at least as large as the checkpoint's, if any."""
        rows = self.conn.execute(
            select(entries.c.body)
            .where(and_(entries.c.kind == "checkpoint_anchored", entries.c.seq >= covering.size))
            .order_by(entries.c.seq)
        )
        for (body,) in rows:
            entry = decode_entry(bytes(body))
            anchor = self._valid_anchor(entry, covering)
            if anchor is not None:
                return anchor
        return None

    def _valid_anchor(self, entry: Entry, covering: StoredCheckpoint) -> Anchor | None:
        data = entry.data
        try:
            size = int(data["size"])
            root = str(data["root"]).lower().removeprefix("0x")
        except (KeyError, TypeError, ValueError):
            return None
        if size < covering.size or size > entry.seq:
            return None

        def read(ids: Any) -> dict[Any, bytes]:
            return read_nodes(self.conn, ids)

        if root_at(size, read).hex() != root:
            return None
        proof = consistency_proof(covering.size, size, read) if size > covering.size else []
        return anchor_row(entry, size, root, proof)


# -- reading entries --------------------------------------------------------------------------
