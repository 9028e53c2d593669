"""Read models: what the API and the web pages show, read from the projections and the log.

Plain frozen dataclasses, no Flask. The public reads (pools, cycles, collectives, grants)
never touch ``private_records`` or ``tokens``. Custody is computed from the lunar schedule
and the roster for the cycle in force *now*, so a read is right even before the handover
entry for the new cycle has been appended.

The ``*_result`` functions render what a write returned, from the entries it wrote alone, so
an idempotent replay of the write renders exactly the same body. Only
:func:`donation_receipts` reads a private record: the receipt salt, for the treasurer who
recorded the donation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from ledger.errors import LedgerError, NotFound, RuleViolation
from ledger.fund.lunar import Cycle
from ledger.fund.privacy import private_salt
from ledger.fund.rules import Outcome
from ledger.fund.schema import (
    balances,
    collectives,
    cycles,
    entry_pools,
    grants,
    pools,
    pools_entries,
    votes,
)
from ledger.fund.state import (
    active_members,
    custodian_of,
    flows_of,
    grant_row,
    load_schedule,
    pool_row,
    quorum_of,
    roster_for,
)
from ledger.log.append import Log
from ledger.log.clock import format_ts
from ledger.log.db import read_transaction
from ledger.log.entry import Entry, decode_entry
from ledger.log.public import DEFAULT_LIMIT, Page, check_page, public_entry
from ledger.log.schema import entries
from ledger.log.storage import StoredCheckpoint

GRANT_STATUSES = ("proposed", "approved", "rejected", "disbursed", "cancelled")
MAX_PAGE = 200


@dataclass(frozen=True)
class CycleSpan:
    number: int
    start: str
    end: str


@dataclass(frozen=True)
class CurrencyBooks:
    """One currency of a pool; digit strings in minor units (``donations`` is net of
    corrections; ``available`` + ``committed`` is the fund held)."""

    currency: str
    donations: str
    committed: str
    disbursed: str
    available: str
    fast_lane_cap: str
    fast_lane_allowance: str
    fast_lane_left: str


@dataclass(frozen=True)
class PoolView:
    slug: str
    name: str
    currencies: tuple[str, ...]
    created_seq: int
    cycle: CycleSpan
    custodian: str | None
    next_handover: str
    roster: tuple[str, ...]
    books: tuple[CurrencyBooks, ...]


@dataclass(frozen=True)
class CycleView:
    pool: str
    number: int
    start: str
    end: str
    custodian: str | None
    opening: dict[str, str]
    flows: dict[str, dict[str, str]]
    statement: dict[str, dict[str, str]] | None
    opened_seq: int
    closed_seq: int | None


@dataclass(frozen=True)
class CollectiveView:
    slug: str
    name: str
    quorum: int
    quorum_policy: str  # "fixed" or "majority"
    members: tuple[str, ...]
    created_seq: int


@dataclass(frozen=True)
class VoteView:
    seq: int
    member: str
    collective: str
    vote: str
    note: str | None
    cycle: int
    void: bool


@dataclass(frozen=True)
class DecisionView:
    seq: int
    decision: str
    lane: str
    cycle: int
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    quorum: int | None
    allowance_left: str | None


@dataclass(frozen=True)
class GrantView:
    id: int
    pool: str
    amount: str
    currency: str
    purpose: str
    urgency: str
    recipient: str
    proposer: str
    proposed_at: str
    proposed_cycle: int
    status: str
    lane: str | None
    decided_seq: int | None
    disbursed_seq: int | None
    cancelled_seq: int | None
    approvals: int
    rejections: int
    votes: tuple[VoteView, ...] = ()
    decision: DecisionView | None = None


@dataclass(frozen=True)
class GrantPage:
    items: tuple[GrantView, ...]
    next: int | None


@dataclass(frozen=True)
class Written:
    """An entry a write appended: its envelope, hash and kind-specific data."""

    seq: int
    ts: str
    kind: str
    actor: str
    entry_hash: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Receipt:
    """A donor's receipt. ``salt`` opens ``commitment``; None once the record was erased."""

    seq: int
    receipt_id: int
    entry_hash: str
    ts: str
    pool: str
    amount: str
    currency: str
    channel: str
    cycle: int
    commitment: str
    salt: str | None
    display_name: str | None


@dataclass(frozen=True)
class VoteResult:
    """A vote as cast, and the grant as that vote left it."""

    vote: Written
    grant: int
    status: str
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    decision: DecisionView | None


# -- pools and cycles -----------------------------------------------------------------------


def _span(number: int, start: datetime, end: datetime) -> CycleSpan:
    return CycleSpan(number, format_ts(start), format_ts(end))


def _balances(conn: Connection, pool: str) -> dict[tuple[str, str], int]:
    """Every account of the pool by (currency, account), in one query."""
    rows = conn.execute(
        select(balances.c.currency, balances.c.account, balances.c.amount).where(
            balances.c.pool == pool
        )
    )
    return {(currency, account): int(amount) for currency, account, amount in rows}


def _pool_view(conn: Connection, row: Any, now: datetime) -> PoolView:
    current = load_schedule(conn).cycle_at(now)
    roster = roster_for(conn, row.slug, current.number)
    caps: dict[str, str] = json.loads(row.fast_lane_cap)
    allowances: dict[str, str] = json.loads(row.cycle_allowance)
    flows = flows_of(conn, row.slug, current.number)
    held = _balances(conn, row.slug)
    books = []
    for currency in json.loads(row.currencies):
        allowance = int(allowances.get(currency, "0"))
        used = flows.get(currency, {}).get("fast_lane_used", 0)
        books.append(
            CurrencyBooks(
                currency=currency,
                donations=str(-held.get((currency, "donations"), 0)),
                committed=str(held.get((currency, "committed"), 0)),
                disbursed=str(held.get((currency, "grants"), 0)),
                available=str(held.get((currency, "available"), 0)),
                fast_lane_cap=caps.get(currency, "0"),
                fast_lane_allowance=str(allowance),
                fast_lane_left=str(max(allowance - used, 0)),
            )
        )
    return PoolView(
        slug=row.slug,
        name=row.name,
        currencies=tuple(json.loads(row.currencies)),
        created_seq=int(row.created_seq),
        cycle=_span(current.number, current.start, current.end),
        custodian=custodian_of(conn, row.slug, current.number),
        next_handover=format_ts(current.end),
        roster=tuple(json.loads(roster.collectives)) if roster is not None else (),
        books=tuple(books),
    )


def list_pools(engine: Engine, now: datetime) -> list[PoolView]:
    """Every pool with its books, current cycle and custodian, by slug."""
    with read_transaction(engine) as conn:
        rows = conn.execute(select(pools).order_by(pools.c.slug)).all()
        return [_pool_view(conn, row, now) for row in rows]


def pool_detail(engine: Engine, slug: str, now: datetime) -> PoolView:
    with read_transaction(engine) as conn:
        return _pool_view(conn, pool_row(conn, slug), now)


def pool_cycles(engine: Engine, slug: str) -> list[CycleView]:
    """The pool's cycles in order, each with its flows and (once closed) its statement."""
    with read_transaction(engine) as conn:
        pool_row(conn, slug)
        rows = conn.execute(select(cycles).where(cycles.c.pool == slug).order_by(cycles.c.number))
        views = []
        for row in rows:
            flows = flows_of(conn, slug, row.number)
            views.append(
                CycleView(
                    pool=slug,
                    number=int(row.number),
                    start=row.starts_at,
                    end=row.ends_at,
                    custodian=row.custodian,
                    opening=json.loads(row.opening),
                    flows={
                        currency: {name: str(amount) for name, amount in flow.items()}
                        for currency, flow in sorted(flows.items())
                    },
                    statement=None if row.statement is None else json.loads(row.statement),
                    opened_seq=int(row.opened_seq),
                    closed_seq=None if row.closed_seq is None else int(row.closed_seq),
                )
            )
        return views


# -- collectives ----------------------------------------------------------------------------


def _collective_view(conn: Connection, row: Any) -> CollectiveView:
    return CollectiveView(
        slug=row.slug,
        name=row.name,
        quorum=quorum_of(conn, row.slug),
        quorum_policy="fixed" if row.quorum else "majority",
        members=tuple(active_members(conn, row.slug)),
        created_seq=int(row.created_seq),
    )


def list_collectives(engine: Engine) -> list[CollectiveView]:
    with read_transaction(engine) as conn:
        rows = conn.execute(select(collectives).order_by(collectives.c.slug)).all()
        return [_collective_view(conn, row) for row in rows]


def collective_detail(engine: Engine, slug: str) -> CollectiveView:
    with read_transaction(engine) as conn:
        row = conn.execute(select(collectives).where(collectives.c.slug == slug)).one_or_none()
        if row is None:
            raise NotFound(f"no collective {slug!r}")
        return _collective_view(conn, row)


# -- grants ---------------------------------------------------------------------------------

urgency_rank = case((grants.c.urgency == "urgent", 0), else_=1)  # urgent sorts first


def _tallies(conn: Connection, grant_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    if not grant_ids:
        return {}
    rows = conn.execute(
        select(votes.c.grant_id, votes.c.vote, func.count())
        .where(and_(votes.c.grant_id.in_(grant_ids), votes.c.void == 0))
        .group_by(votes.c.grant_id, votes.c.vote)
    )
    tallies: dict[int, dict[str, int]] = {}
    for grant_id, vote, count in rows:
        tallies.setdefault(int(grant_id), {})[vote] = int(count)
    return tallies


def _grant_view(row: Any, tally: dict[str, int], **extra: Any) -> GrantView:
    return GrantView(
        id=int(row.id),
        pool=row.pool,
        amount=row.amount,
        currency=row.currency,
        purpose=row.purpose,
        urgency=row.urgency,
        recipient=row.recipient,
        proposer=row.proposer,
        proposed_at=row.proposed_ts,
        proposed_cycle=int(row.proposed_cycle),
        status=row.status,
        lane=row.lane,
        decided_seq=None if row.decided_seq is None else int(row.decided_seq),
        disbursed_seq=None if row.disbursed_seq is None else int(row.disbursed_seq),
        cancelled_seq=None if row.closed_seq is None else int(row.closed_seq),
        approvals=tally.get("approve", 0),
        rejections=tally.get("reject", 0),
        **extra,
    )


def grant_queue(
    engine: Engine,
    pool: str,
    status: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> GrantPage:
    """A pool's grants, urgent first, then oldest first; ``after`` is the last id seen."""
    if status is not None and status not in GRANT_STATUSES:
        raise RuleViolation(f"status must be one of {GRANT_STATUSES}", "invalid_status")
    if not 1 <= limit <= MAX_PAGE:
        raise RuleViolation(f"limit must be 1 to {MAX_PAGE}", "invalid_limit")
    with read_transaction(engine) as conn:
        pool_row(conn, pool)
        where = [grants.c.pool == pool]
        if status is not None:
            where.append(grants.c.status == status)
        if after is not None:
            cursor = conn.execute(
                select(grants.c.urgency).where(and_(grants.c.id == after, grants.c.pool == pool))
            ).scalar()
            if cursor is None:
                raise RuleViolation(f"after={after} is not a grant of {pool!r}", "invalid_cursor")
            rank = 0 if cursor == "urgent" else 1
            where.append(or_(urgency_rank > rank, and_(urgency_rank == rank, grants.c.id > after)))
        rows = conn.execute(
            select(grants).where(and_(*where)).order_by(urgency_rank, grants.c.id).limit(limit + 1)
        ).all()
        page = rows[:limit]
        tallies = _tallies(conn, [int(r.id) for r in page])
        items = tuple(_grant_view(r, tallies.get(int(r.id), {})) for r in page)
    return GrantPage(items, next=items[-1].id if len(rows) > limit else None)


def _entries(conn: Connection, seqs: Sequence[int]) -> list[Entry]:
    if not seqs:
        return []
    rows = conn.execute(select(entries.c.body).where(entries.c.seq.in_(seqs)))
    return [decode_entry(bytes(body)) for (body,) in rows]


def _entry(conn: Connection, seq: int) -> Entry:
    body = conn.execute(select(entries.c.body).where(entries.c.seq == seq)).scalar()
    if body is None:
        raise NotFound(f"no entry with seq {seq}")
    return decode_entry(bytes(body))


def _decision(entry: Entry) -> DecisionView:
    d = entry.data
    return DecisionView(
        seq=entry.seq,
        decision=d["decision"],
        lane=d["lane"],
        cycle=int(d["cycle"]),
        approvals=tuple(d.get("approvals", ())),
        rejections=tuple(d.get("rejections", ())),
        quorum=d.get("quorum"),
        allowance_left=d.get("allowance_left"),
    )


def grant_detail(engine: Engine, grant_id: int) -> GrantView:
    """One grant with every vote (void ones flagged) and the decision, if any."""
    with read_transaction(engine) as conn:
        return _grant_details(conn, [grant_row(conn, grant_id)])[0]


def _grant_details(conn: Connection, rows: Sequence[Any]) -> list[GrantView]:
    """Grants with their votes and decisions, read with one query for each."""
    ids = [int(row.id) for row in rows]
    cast: dict[int, list[VoteView]] = {grant_id: [] for grant_id in ids}
    ballots = conn.execute(select(votes).where(votes.c.grant_id.in_(ids)).order_by(votes.c.seq))
    for v in ballots:
        cast[int(v.grant_id)].append(
            VoteView(
                seq=int(v.seq),
                member=v.member,
                collective=v.collective,
                vote=v.vote,
                note=v.note,
                cycle=int(v.cycle),
                void=bool(v.void),
            )
        )
    decided = [int(row.decided_seq) for row in rows if row.decided_seq is not None]
    decisions = {entry.seq: _decision(entry) for entry in _entries(conn, decided)}
    details = []
    for row in rows:
        grant_votes = tuple(cast[int(row.id)])
        tally = {
            "approve": sum(1 for v in grant_votes if v.vote == "approve" and not v.void),
            "reject": sum(1 for v in grant_votes if v.vote == "reject" and not v.void),
        }
        decision = None if row.decided_seq is None else decisions[int(row.decided_seq)]
        details.append(_grant_view(row, tally, votes=grant_votes, decision=decision))
    return details


def recent_decisions(engine: Engine, pool: str, limit: int = 20) -> list[GrantView]:
    """The pool's last decided grants, newest decision first, with votes and decision."""
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(grants)
            .where(and_(grants.c.pool == pool, grants.c.decided_seq.is_not(None)))
            .order_by(grants.c.decided_seq.desc())
            .limit(limit)
        ).all()
        return _grant_details(conn, rows)


# -- the log, for the web pages -------------------------------------------------------------


@dataclass(frozen=True)
class EntryPlace:
    """One entry and its place in the chain and the tree."""

    entry: Entry
    entry_hash: str
    log_size: int
    next_seq: int | None
    checkpoint: StoredCheckpoint | None  # the latest checkpoint that covers the entry
    proof: tuple[str, ...]  # inclusion proof of the entry in that checkpoint's tree


def current_cycle(engine: Engine, now: datetime) -> Cycle:
    """The lunar cycle ``now`` falls in, from the persisted schedule."""
    with read_transaction(engine) as conn:
        return load_schedule(conn).cycle_at(now)


def pool_entries(engine: Engine, pool: str, limit: int = 20) -> list[Entry]:
    """The pool's newest entries, newest first."""
    with read_transaction(engine) as conn:
        return newest_pool_entries(conn, pool, limit)


def newest_pool_entries(conn: Connection, pool: str, limit: int) -> list[Entry]:
    """The pool's newest ``limit`` entries (``entry_pools``), newest first."""
    rows = conn.execute(
        select(entries.c.body)
        .select_from(pools_entries)
        .where(entry_pools.c.pool == pool)
        .order_by(entry_pools.c.seq.desc())
        .limit(limit)
    )
    return [decode_entry(bytes(body)) for (body,) in rows]


def entry_place(log: Log, seq: int) -> EntryPlace:
    """Entry ``seq``, its hash, its neighbours and its inclusion proof in the latest
    checkpoint (none when no checkpoint covers it yet)."""
    entry = log.entry(seq)
    size = log.head().size
    checkpoint = log.latest_checkpoint()
    proof: tuple[str, ...] = ()
    if checkpoint is not None and seq < checkpoint.size:
        proof = tuple(h.hex() for h in log.inclusion_proof(seq, checkpoint.size))
    else:
        checkpoint = None
    return EntryPlace(
        entry=entry,
        entry_hash=entry.hash.hex(),
        log_size=size,
        next_seq=seq + 1 if seq + 1 < size else None,
        checkpoint=checkpoint,
        proof=proof,
    )


# -- what writes return ---------------------------------------------------------------------


def _written(entry: Entry) -> Written:
    return Written(
        seq=entry.seq,
        ts=entry.ts,
        kind=entry.kind,
        actor=entry.actor,
        entry_hash=entry.hash.hex(),
        data=entry.data,
    )


def written(engine: Engine, seq: int, kind: str) -> Written:
    """The entry a write appended at ``seq`` (which must be of ``kind``)."""
    with read_transaction(engine) as conn:
        entry = _entry(conn, seq)
    if entry.kind != kind:
        raise LedgerError(f"entry {seq} is a {entry.kind}, not the {kind} that was written")
    return _written(entry)


def donation_receipts(engine: Engine, first: int, count: int) -> list[Receipt]:
    """Receipts for the ``count`` donations written from ``first`` on, with their salts.

    Only for the response to the treasurer who recorded them (or their idempotent retry)."""
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(entries.c.body)
            .where(and_(entries.c.seq >= first, entries.c.seq < first + count))
            .order_by(entries.c.seq)
        )
        found = [decode_entry(bytes(body)) for (body,) in rows]
        if len(found) != count or any(e.kind != "donation_recorded" for e in found):
            raise LedgerError(f"entries {first}..{first + count - 1} are not the donations")
        return [
            donation_receipt(entry, private_salt(conn, entry.data["donor"]["commitment"]))
            for entry in found
        ]


def donation_receipt(entry: Entry, salt: bytes | None) -> Receipt:
    d = entry.data
    return Receipt(
        seq=entry.seq,
        receipt_id=entry.seq,
        entry_hash=entry.hash.hex(),
        ts=entry.ts,
        pool=d["pool"],
        amount=d["amount"],
        currency=d["currency"],
        channel=d["channel"],
        cycle=int(d["cycle"]),
        commitment=d["donor"]["commitment"],
        salt=None if salt is None else salt.hex(),
        display_name=d["donor"].get("name"),
    )


def recorded_receipts(engine: Engine, outcome: Outcome, count: int) -> list[Receipt]:
    """Receipts for the ``count`` donations a command recorded: from what it just wrote, or
    (an idempotent retry wrote nothing) read back from the log."""
    if outcome.replayed:
        return donation_receipts(engine, outcome.seq, count)
    return [donation_receipt(entry, outcome.salts[entry.seq]) for entry in outcome.written]


def vote_result(engine: Engine, seq: int) -> VoteResult:
    """The vote at ``seq`` and the grant as it left it: decided by it, or the ballots that
    counted at that moment (the log's own record, so a replay renders the same)."""
    with read_transaction(engine) as conn:
        vote = _entry(conn, seq)
        if vote.kind != "vote_cast":
            raise LedgerError(f"entry {seq} is a {vote.kind}, not a vote")
        grant_id = int(vote.data["grant"])
        following = conn.execute(select(entries.c.body).where(entries.c.seq == seq + 1)).scalar()
        decided = None if following is None else decode_entry(bytes(following))
        if decided is not None and (
            decided.kind != "grant_decided" or decided.data["grant"] != grant_id
        ):
            decided = None
        if decided is not None:
            decision = _decision(decided)
            return VoteResult(
                vote=_written(vote),
                grant=grant_id,
                status=decision.decision,
                approvals=decision.approvals,
                rejections=decision.rejections,
                decision=decision,
            )
        # Ballots cast up to this vote, less those voided by a handover before it.
        voided: set[int] = set()
        handovers = conn.execute(
            select(entries.c.body).where(
                and_(
                    entries.c.kind == "custody_transferred",
                    entries.c.seq > grant_id,
                    entries.c.seq < seq,
                )
            )
        )
        for (body,) in handovers:
            voided.update(decode_entry(bytes(body)).data["voided_votes"])
        ballots = conn.execute(
            select(votes.c.seq, votes.c.member, votes.c.vote).where(
                and_(votes.c.grant_id == grant_id, votes.c.seq <= seq)
            )
        ).all()
        counted = [(member, choice) for s, member, choice in ballots if s not in voided]
        return VoteResult(
            vote=_written(vote),
            grant=grant_id,
            status="proposed",
            approvals=tuple(sorted(m for m, v in counted if v == "approve")),
            rejections=tuple(sorted(m for m, v in counted if v == "reject")),
            decision=None,
        )


def pool_entry_page(
    engine: Engine,
    pool: str,
    after: int = -1,
    limit: int = DEFAULT_LIMIT,
    kind: str | None = None,
) -> Page:
    """A page of the pool's entries (of ``kind``) after seq ``after``, read by key
    (``entry_pools``), so it is full; one that is full can never change."""
    check_page(after, limit)
    with read_transaction(engine) as conn:
        pool_row(conn, pool)
        return _pool_page(conn, pool, after, limit, kind)


def _pool_page(conn: Connection, pool: str, after: int, limit: int, kind: str | None) -> Page:
    query = (
        select(entries.c.seq, entries.c.hash, entries.c.body)
        .select_from(pools_entries)
        .where(entry_pools.c.pool == pool, entry_pools.c.seq > after)
        .order_by(entry_pools.c.seq)
        .limit(limit)
    )
    if kind is not None:
        query = query.where(entries.c.kind == kind)
    rows = conn.execute(query).all()
    full = len(rows) == limit
    return Page(
        tuple(public_entry(*row) for row in rows), int(rows[-1].seq) if full else None, full
    )
