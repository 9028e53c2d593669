"""Everything a cycle report shows, gathered once from the public log into a frozen value.

Which entries a report covers (:func:`belongs_to_cycle`): for pool P and lunar cycle N,

* the entry that opened N for P: ``pool_created`` (data.cycle.number == N) or the
  ``custody_transferred`` that closed N-1 (data.cycle.number == N; it carries the opening
  balance as the closing statement of N-1);
* every entry with ``data.pool == P`` and ``data.cycle == N`` (donations, grant proposals,
  votes, decisions, disbursements, cancellations, corrections);
* ``roster_set`` entries for P written during N;
* the ``custody_transferred`` entry that closes N (data.closed.number == N), whose
  ``data.closed.statement`` the roll-forward must equal.

Every number is computed here from the entries' canonical bytes (``entries.body``), not from
the projections: the projection tables are used only as an index (where the cycle opens and
closes, which checkpoint covers it). A closed cycle is covered by the first checkpoint whose
tree includes its closing entry; a cycle still open (or closed after the latest checkpoint)
gives an *interim* report of the entries below the latest checkpoint. Private tables
(``private_records``, ``tokens``) are never read.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, and_, bindparam, select

from exports.errors import CycleBeforePool, CycleNotStarted, InconsistentLog, InvalidCycle
from ledger.fund import cycles, load_schedule, pool_row
from ledger.log import (
    Entry,
    StoredCheckpoint,
    checkpoints,
    consistency_proof,
    decode_entry,
    entries,
    latest_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_ts,
    read_nodes,
    read_transaction,
    root_at,
)

REPORT_KINDS = (
    "pool_created",
    "roster_set",
    "custody_transferred",
    "donation_recorded",
    "grant_proposed",
    "vote_cast",
    "grant_decided",
    "grant_disbursed",
    "grant_cancelled",
    "correction",
)
GRANT_KINDS = frozenset(
    {"grant_proposed", "vote_cast", "grant_decided", "grant_disbursed", "grant_cancelled"}
)
CUSTODY_KINDS = frozenset({"pool_created", "roster_set", "custody_transferred"})
STATEMENT_FIELDS = (
    "opening",
    "donations",
    "disbursements",
    "corrections",
    "closing",
    "committed",
    "available",
)
SCAN_BATCH = 5000
DAY = timedelta(days=1)
_CYCLE = re.compile(r"-?[0-9]{1,9}\Z")


# -- the report value -------------------------------------------------------------------------


class Posting(NamedTuple):
    """A leg of the entry's double-entry postings on one of the pool's accounts."""

    account: str  # available, committed, donations or grants
    currency: str
    amount: int


class EntryRow(NamedTuple):
    """One entry of the cycle, flattened to typed columns (None where a kind has no value).

    A named tuple rather than a frozen dataclass: a cycle may hold 100,000 of them, and a
    tuple is built several times faster and is smaller.

    ``fund_change`` is the entry's signed effect on the fund (available + committed) in
    ``currency``: +amount for a donation, -amount for a disbursement, the correction's
    ``fund_change``; None for entries that move nothing in or out of the fund. Summed over a
    cycle (per currency) it is closing - opening.
    """

    seq: int
    ts: str
    kind: str
    entry_hash: str
    actor: str
    currency: str | None = None
    amount: int | None = None
    fund_change: int | None = None
    channel: str | None = None
    donor: str | None = None
    donor_name: str | None = None
    grant: int | None = None
    urgency: str | None = None
    purpose: str | None = None
    recipient: str | None = None
    member: str | None = None
    vote: str | None = None
    decision: str | None = None
    lane: str | None = None
    quorum: int | None = None
    allowance_left: int | None = None
    corrects: int | None = None
    reason: str | None = None
    custodian_from: str | None = None
    custodian_to: str | None = None
    postings: tuple[Posting, ...] = ()


@dataclass(frozen=True, slots=True)
class RollForward:
    """opening + donations - disbursements + corrections = closing = committed + available."""

    currency: str
    opening: int
    donations: int
    disbursements: int
    corrections: int
    closing: int
    committed: int
    available: int
    opening_committed: int
    opening_available: int
    fast_lane_used: int
    fast_lane_allowance: int

    def statement(self) -> dict[str, str]:
        """The shape of a handover's ``data.closed.statement[currency]``."""
        return {name: str(getattr(self, name)) for name in STATEMENT_FIELDS}


@dataclass(frozen=True, slots=True)
class Event:
    """A grant's entry in the cycle: disbursement, cancellation or reversal (a correction)."""

    seq: int
    ts: str
    entry_hash: str
    kind: str
    amount: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VoteRow:
    seq: int
    ts: str
    entry_hash: str
    member: str
    collective: str
    vote: str
    fast_lane: bool
    void: bool


@dataclass(frozen=True, slots=True)
class Decision:
    seq: int
    ts: str
    entry_hash: str
    decision: str
    lane: str
    quorum: int | None
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    allowance_left: int | None


@dataclass(frozen=True, slots=True)
class GrantRow:
    """A grant with an entry in the cycle; the proposal may be from an earlier cycle."""

    id: int
    proposed_ts: str
    proposed_cycle: int
    proposal_hash: str
    amount: int
    currency: str
    purpose: str
    urgency: str
    recipient: str
    proposer: str
    proposed_in_cycle: bool
    votes: tuple[VoteRow, ...]
    decision: Decision | None
    disbursement: Event | None
    cancellation: Event | None
    reversal: Event | None


@dataclass(frozen=True, slots=True)
class Handover:
    """An entry about custody: the pool's creation, a roster, or a handover in or out.

    ``role`` is ``created``, ``roster``, ``opened`` (the handover that opened the cycle) or
    ``closed`` (the one that closed it).
    """

    seq: int
    ts: str
    entry_hash: str
    role: str
    custodian_from: str | None
    custodian_to: str | None
    roster: tuple[str, ...] = ()
    carried_over: tuple[int, ...] = ()
    committed_grants: tuple[int, ...] = ()
    voided_votes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DayFlow:
    """Donations and disbursements on day ``day`` (1-based) of the cycle, from ``start``."""

    day: int
    start: str
    donations: int
    disbursements: int


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """The signed checkpoint that covers the report (C2SP tlog-checkpoint, signed note)."""

    origin: str
    size: int
    root: bytes
    note: str
    signature_lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Anchor:
    """A ``checkpoint_anchored`` entry for the covering checkpoint or a later one.

    When the anchored tree is larger than the checkpoint, ``consistency`` proves (RFC 9162)
    that the checkpoint's tree is a prefix of the anchored one.
    """

    seq: int
    ts: str
    entry_hash: str
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    size: int
    root: str
    consistency: tuple[str, ...]


@dataclass(frozen=True)
class CycleReport:
    """What every format renders: one pool, one lunar cycle, covered by one checkpoint."""

    pool: str
    pool_name: str
    currencies: tuple[str, ...]
    cycle: int
    starts_at: str
    ends_at: str
    custodian: str | None
    interim: bool
    checkpoint: CheckpointInfo
    anchor: Anchor | None
    opening_seq: int
    closing_seq: int | None
    roll_forward: tuple[RollForward, ...]
    statement: Mapping[str, Mapping[str, str]] | None
    entries: tuple[EntryRow, ...]
    grants: tuple[GrantRow, ...]
    custody: tuple[Handover, ...]
    daily: Mapping[str, tuple[DayFlow, ...]] = field(default_factory=dict)

    @property
    def seqs(self) -> list[int]:
        return [row.seq for row in self.entries]

    @property
    def donations(self) -> Iterator[EntryRow]:
        return (row for row in self.entries if row.kind == "donation_recorded")

    @property
    def corrections(self) -> Iterator[EntryRow]:
        return (row for row in self.entries if row.kind == "correction")

    def count(self, kind: str) -> int:
        return sum(1 for row in self.entries if row.kind == kind)

    def corrected(self) -> dict[int, int]:
        """seq of a corrected entry -> seq of the correction, within the cycle."""
        return {r.corrects: r.seq for r in self.corrections if r.corrects is not None}


# -- which entries belong to a cycle --------------------------------------------------------


def load_entry(raw: bytes) -> Entry:
    """An entry from the stored bytes, without :func:`ledger.log.entry.decode_entry`'s checks.

    ``lunaria verify`` checks every stored entry (canonical form, fields, chain, tree); the
    report re-hashes the bytes it shows, and reading 100,000 entries strictly would cost more
    than rendering them. Exports of untrusted bytes (``exports.verify``) decode strictly.
    """
    obj = json.loads(raw)
    return Entry(
        seq=obj["seq"],
        ts=obj["ts"],
        kind=obj["kind"],
        prev=obj["prev"],
        actor=obj["actor"],
        data=obj["data"],
        raw=raw,
    )


def pool_of(entry: Entry) -> str | None:
    key = "slug" if entry.kind == "pool_created" else "pool"
    value = entry.data.get(key)
    return value if isinstance(value, str) else None


def cycle_of(entry: Entry) -> int | None:
    """The cycle an entry was written in (a handover: the cycle it opens)."""
    data = entry.data
    if entry.kind == "roster_set":
        # The first roster applies at once; any later one from the next cycle.
        effective = int(data["effective_cycle"])
        return effective if data.get("custodian_now") is not None else effective - 1
    value = data.get("cycle")
    if isinstance(value, dict):
        value = value.get("number")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def closes_cycle(entry: Entry, number: int) -> bool:
    return entry.kind == "custody_transferred" and entry.data["closed"]["number"] == number


def belongs_to_cycle(entry: Entry, pool: str, number: int) -> bool:
    """True for the entries of pool ``pool`` in cycle ``number`` (see the module docstring)."""
    if pool_of(entry) != pool:
        return False
    return cycle_of(entry) == number or closes_cycle(entry, number)


# -- gathering ------------------------------------------------------------------------------


def gather(engine: Engine, pool: str, cycle: int | str, now: datetime) -> CycleReport:
    """The report of ``pool`` for ``cycle`` (a lunation number or ``"latest"``) as of ``now``.

    Raises NotFound (unknown pool), CycleBeforePool, CycleNotStarted, InvalidCycle, and
    InconsistentLog if the entries do not add up to the handover statement.
    """
    with read_transaction(engine) as conn:
        return _Gatherer(conn, pool).report(cycle, now)


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

    def __init__(self, pool: str, number: int, allowances: Mapping[str, str]) -> None:
        self.number = number
        self.rows: list[EntryRow] = []
        self.roll_forward = RollForwardBuilder(pool, allowances)
        self.custody: list[Entry] = []
        self.grant_events: dict[int, list[Entry]] = defaultdict(list)

    def add(self, entry: Entry) -> None:
        self.rows.append(_entry_row(entry))
        self.roll_forward.add(entry)
        if entry.kind in CUSTODY_KINDS:
            self.custody.append(entry)
        grant = _grant_of(entry)
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

    def report(self, cycle: int | str, now: datetime) -> CycleReport:
        latest = latest_checkpoint(self.conn)
        if latest is None:
            raise CycleNotStarted("the log has no signed checkpoint yet")
        number = self._resolve(parse_cycle(cycle), now, latest)
        row = self._cycle_row(number, latest)
        covering, last, interim = self._coverage(row, latest)
        allowances: dict[str, str] = json.loads(self.pool.cycle_allowance)
        cycle_entries = _CycleEntries(self.slug, number, allowances)
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
            custodian=_custodian(cycle_entries.custody),
            interim=interim,
            checkpoint=_checkpoint_info(covering),
            anchor=self._anchor(covering),
            opening_seq=int(row.opened_seq),
            closing_seq=None if closing is None else closing.seq,
            roll_forward=roll_forward,
            statement=statement,
            entries=rows,
            grants=self._grants(cycle_entries.grant_events, closing),
            custody=tuple(_handover(e, number) for e in cycle_entries.custody),
            daily=_daily(rows, parse_ts(row.starts_at), parse_ts(row.ends_at)),
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
            entry = load_entry(bytes(body))
            if belongs_to_cycle(entry, self.slug, number):
                yield entry

    # -- numbers ------------------------------------------------------------------------------

    # -- grants -------------------------------------------------------------------------------

    def _grants(
        self, events: Mapping[int, Sequence[Entry]], closing: Entry | None
    ) -> tuple[GrantRow, ...]:
        voided = set(closing.data["voided_votes"]) if closing is not None else set()
        proposals = {gid: e[0] for gid, e in events.items() if e[0].kind == "grant_proposed"}
        earlier = [gid for gid in events if gid not in proposals]
        proposals.update(self._entries_at(earlier))
        return tuple(_grant_row(proposals[gid], events[gid], voided) for gid in sorted(events))

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
        return Anchor(
            seq=entry.seq,
            ts=entry.ts,
            entry_hash=entry.hash.hex(),
            chain_id=int(data["chain_id"]),
            contract=str(data["contract"]),
            tx_hash=str(data["tx_hash"]),
            block_number=int(data["block_number"]),
            size=size,
            root=root,
            consistency=tuple(h.hex() for h in proof),
        )


# -- the roll-forward, from the entries alone ------------------------------------------------


class RollForwardBuilder:
    """Adds up a cycle's entries one at a time (the first one opens the cycle)."""

    def __init__(self, pool: str, allowances: Mapping[str, str] | None = None) -> None:
        self.pool = pool
        self.allowances = allowances or {}
        self.opening: dict[str, dict[str, int]] | None = None
        self.sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, entry: Entry) -> None:
        if self.opening is None:
            self.opening = _opening(entry)
        _add_flows(entry, self.pool, self.sums)

    def result(self) -> tuple[RollForward, ...]:
        """Per currency; raises InconsistentLog if closing != committed + available."""
        opening = self.opening or {}
        return tuple(
            self._currency(currency, opening.get(currency, {}))
            for currency in sorted(set(opening) | set(self.sums))
        )

    def _currency(self, currency: str, start: Mapping[str, int]) -> RollForward:
        flow = self.sums[currency]
        opened = start.get("closing", 0)
        closing = opened + flow["donations"] - flow["disbursements"] + flow["corrections"]
        committed = start.get("committed", 0) + flow["committed"]
        available = start.get("available", 0) + flow["available"]
        if closing != committed + available:
            raise InconsistentLog(
                f"{self.pool} {currency}: the roll-forward gives {closing} but the postings "
                f"leave {committed} committed + {available} available"
            )
        return RollForward(
            currency=currency,
            opening=opened,
            donations=flow["donations"],
            disbursements=flow["disbursements"],
            corrections=flow["corrections"],
            closing=closing,
            committed=committed,
            available=available,
            opening_committed=start.get("committed", 0),
            opening_available=start.get("available", 0),
            fast_lane_used=flow["fast_lane_used"],
            fast_lane_allowance=int(self.allowances.get(currency, "0")),
        )


def compute_roll_forward(
    scanned: Iterable[Entry], pool: str, allowances: Mapping[str, str] | None = None
) -> tuple[RollForward, ...]:
    """The roll-forward of a cycle's entries, in log order (the first one opens the cycle)."""
    builder = RollForwardBuilder(pool, allowances)
    for entry in scanned:
        builder.add(entry)
    return builder.result()


def check_statement(
    pool: str,
    number: int,
    roll_forward: Sequence[RollForward],
    statement: Mapping[str, Mapping[str, str]],
) -> None:
    """Raise InconsistentLog unless the roll-forward equals the handover statement."""
    computed = {r.currency: r.statement() for r in roll_forward}
    if computed != {c: dict(v) for c, v in statement.items()}:
        raise InconsistentLog(
            f"{pool} cycle {number}: the entries give {computed}, but the handover statement "
            f"says {dict(statement)}"
        )


def closing_statement(closing: Entry) -> dict[str, dict[str, str]]:
    """``data.closed.statement`` of a handover, by currency."""
    statement: dict[str, dict[str, str]] = closing.data["closed"]["statement"]
    return {currency: dict(values) for currency, values in sorted(statement.items())}


# -- helpers over entries -------------------------------------------------------------------


def _opening(first: Entry) -> dict[str, dict[str, int]]:
    """Opening closing/committed/available per currency, from the entry that opened the cycle."""
    if first.kind == "pool_created":
        return {c: {"closing": 0, "committed": 0, "available": 0} for c in first.data["currencies"]}
    if first.kind != "custody_transferred":
        raise InconsistentLog(f"the cycle does not open with a handover: seq {first.seq}")
    statement = first.data["closed"]["statement"]
    return {
        currency: {name: int(values[name]) for name in ("closing", "committed", "available")}
        for currency, values in statement.items()
    }


_MONEY_KINDS = frozenset(
    {"donation_recorded", "grant_decided", "grant_disbursed", "grant_cancelled", "correction"}
)


def _add_flows(entry: Entry, pool: str, sums: dict[str, dict[str, int]]) -> None:
    """Add one entry's flows and its postings to ``available`` and ``committed``."""
    if entry.kind not in _MONEY_KINDS:
        return
    data = entry.data
    flow = sums[data["currency"]]
    amount = int(data["amount"])
    if entry.kind == "donation_recorded":
        flow["donations"] += amount
    elif entry.kind == "grant_disbursed":
        flow["disbursements"] += amount
    elif entry.kind == "correction":
        flow["corrections"] += int(data["fund_change"])
    elif data.get("decision") == "approved" and data.get("lane") == "fast_lane":
        flow["fast_lane_used"] += amount
    for posting in data.get("postings", ()):
        owner, _, name = str(posting["account"]).partition(":")
        if owner == pool and name in ("available", "committed"):
            sums[str(posting["currency"])][name] += int(posting["amount"])


def _custodian(custody: Sequence[Entry]) -> str | None:
    """The custodian from the log: the opening handover's ``to``, or the first roster's."""
    first = custody[0]
    if first.kind == "custody_transferred":
        return None if first.data["to"] is None else str(first.data["to"])
    for entry in custody:
        if entry.kind == "roster_set" and entry.data.get("custodian_now") is not None:
            return str(entry.data["custodian_now"])
    return None


def _grant_of(entry: Entry) -> int | None:
    if entry.kind == "grant_proposed":
        return entry.seq
    if entry.kind in GRANT_KINDS or (entry.kind == "correction" and "grant" in entry.data):
        return int(entry.data["grant"])
    return None


def _event(entry: Entry) -> Event:
    d = entry.data
    reason = d.get("reason")
    return Event(entry.seq, entry.ts, entry.hash.hex(), entry.kind, int(d["amount"]), reason)


def _grant_row(proposal: Entry, events: Sequence[Entry], voided: set[int]) -> GrantRow:
    d = proposal.data
    votes: list[VoteRow] = []
    decision = disbursement = cancellation = reversal = None
    for entry in events:
        if entry.kind == "vote_cast":
            votes.append(_vote_row(entry, voided))
        elif entry.kind == "grant_decided":
            decision = _decision(entry)
        elif entry.kind == "grant_disbursed":
            disbursement = _event(entry)
        elif entry.kind == "grant_cancelled":
            cancellation = _event(entry)
        elif entry.kind == "correction":
            reversal = _event(entry)
    return GrantRow(
        id=proposal.seq,
        proposed_ts=proposal.ts,
        proposed_cycle=int(d["cycle"]),
        proposal_hash=proposal.hash.hex(),
        amount=int(d["amount"]),
        currency=str(d["currency"]),
        purpose=str(d["purpose"]),
        urgency=str(d["urgency"]),
        recipient=str(d["recipient"]),
        proposer=proposal.actor,
        proposed_in_cycle=bool(events) and events[0].seq == proposal.seq,
        votes=tuple(votes),
        decision=decision,
        disbursement=disbursement,
        cancellation=cancellation,
        reversal=reversal,
    )


def _vote_row(entry: Entry, voided: set[int]) -> VoteRow:
    d = entry.data
    return VoteRow(
        seq=entry.seq,
        ts=entry.ts,
        entry_hash=entry.hash.hex(),
        member=str(d["member"]),
        collective=str(d["collective"]),
        vote=str(d["vote"]),
        fast_lane=bool(d.get("fast_lane")),
        void=entry.seq in voided,
    )


def _decision(entry: Entry) -> Decision:
    d = entry.data
    left = d.get("allowance_left")
    return Decision(
        seq=entry.seq,
        ts=entry.ts,
        entry_hash=entry.hash.hex(),
        decision=str(d["decision"]),
        lane=str(d["lane"]),
        quorum=d.get("quorum"),
        approvals=tuple(d.get("approvals", ())),
        rejections=tuple(d.get("rejections", ())),
        allowance_left=None if left is None else int(left),
    )


def _handover(entry: Entry, number: int) -> Handover:
    d = entry.data
    seq, ts, entry_hash = entry.seq, entry.ts, entry.hash.hex()
    if entry.kind == "pool_created":
        return Handover(seq, ts, entry_hash, "created", None, None)
    if entry.kind == "roster_set":
        roster = tuple(d["collectives"])
        return Handover(seq, ts, entry_hash, "roster", None, d.get("custodian_now"), roster)
    return Handover(
        seq,
        ts,
        entry_hash,
        role="closed" if closes_cycle(entry, number) else "opened",
        custodian_from=d["from"],
        custodian_to=d["to"],
        carried_over=tuple(d["carried_over"]),
        committed_grants=tuple(d["committed_grants"]),
        voided_votes=tuple(d["voided_votes"]),
    )


def _checkpoint_info(stored: StoredCheckpoint) -> CheckpointInfo:
    note = parse_note(stored.note)
    checkpoint = parse_checkpoint(note.text)
    lines = stored.note[len(note.text) + 1 :].splitlines()
    return CheckpointInfo(
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=checkpoint.root,
        note=stored.note,
        signature_lines=tuple(line for line in lines if line),
    )


def _daily(
    rows: Iterable[EntryRow], start: datetime, end: datetime
) -> dict[str, tuple[DayFlow, ...]]:
    """Donations and disbursements per day of the cycle, per currency (days from ``start``)."""
    days = max(1, -(-(end - start) // DAY))
    totals: dict[str, list[list[int]]] = {}
    for row in rows:
        if row.kind not in ("donation_recorded", "grant_disbursed") or row.currency is None:
            continue
        per_day = totals.setdefault(row.currency, [[0, 0] for _ in range(days)])
        day = min(days - 1, max(0, (datetime.fromisoformat(row.ts) - start) // DAY))
        per_day[day][0 if row.kind == "donation_recorded" else 1] += row.amount or 0
    return {
        currency: tuple(
            DayFlow(i + 1, (start + i * DAY).strftime("%Y-%m-%d"), donated, disbursed)
            for i, (donated, disbursed) in enumerate(per_day)
        )
        for currency, per_day in sorted(totals.items())
    }


# -- one row per entry ----------------------------------------------------------------------


_ACCOUNTS = {name: name for name in ("available", "committed", "donations", "grants")}


def _entry_row(entry: Entry) -> EntryRow:
    columns: dict[str, Any] = {
        "seq": entry.seq,
        "ts": entry.ts,
        "kind": sys.intern(entry.kind),
        "entry_hash": entry.hash.hex(),
        "actor": sys.intern(entry.actor),
        "postings": tuple(_postings(entry)),
        **_columns(entry),
    }
    return EntryRow(**columns)


def _postings(entry: Entry) -> Iterator[Posting]:
    for raw in entry.data.get("postings", ()):
        _, _, name = str(raw["account"]).partition(":")
        # One string object per account name, so 100,000 rows share four.
        currency = sys.intern(str(raw["currency"]))
        yield Posting(_ACCOUNTS.get(name, name), currency, int(raw["amount"]))


def _columns(entry: Entry) -> dict[str, Any]:
    d = entry.data
    kind = entry.kind
    if kind == "donation_recorded":
        return {
            "currency": sys.intern(d["currency"]),
            "amount": int(d["amount"]),
            "fund_change": int(d["amount"]),
            "channel": sys.intern(d["channel"]),
            "donor": d["donor"]["commitment"],
            "donor_name": d["donor"].get("name"),
        }
    if kind in GRANT_KINDS:
        return _grant_columns(entry)
    if kind == "correction":
        return {
            "currency": d["currency"],
            "amount": int(d["amount"]),
            "fund_change": int(d["fund_change"]),
            "grant": d.get("grant"),
            "corrects": d["corrects"],
            "decision": d["corrected_kind"],
            "reason": d.get("reason"),
        }
    if kind == "custody_transferred":
        return {"custodian_from": d["from"], "custodian_to": d["to"]}
    if kind == "roster_set":
        return {"custodian_to": d.get("custodian_now"), "reason": ",".join(d["collectives"])}
    return {}


def _grant_columns(entry: Entry) -> dict[str, Any]:
    d = entry.data
    kind = entry.kind
    columns: dict[str, Any] = {"grant": entry.seq if kind == "grant_proposed" else d["grant"]}
    if "currency" in d:
        columns.update(currency=d["currency"], amount=int(d["amount"]))
    if kind == "grant_proposed":
        columns.update(urgency=d["urgency"], purpose=d["purpose"], recipient=d["recipient"])
    elif kind == "vote_cast":
        lane = "fast_lane" if d.get("fast_lane") else None
        columns.update(member=d["member"], vote=d["vote"], lane=lane, reason=d.get("note"))
    elif kind == "grant_decided":
        left = d.get("allowance_left")
        columns.update(
            decision=d["decision"],
            lane=d["lane"],
            quorum=d.get("quorum"),
            allowance_left=None if left is None else int(left),
        )
    elif kind == "grant_disbursed":
        columns.update(fund_change=-int(d["amount"]))
    elif kind == "grant_cancelled":
        columns.update(decision=f"cancelled:{d['was']}", reason=d.get("reason"))
    return columns
