"""Read models of the donors' pages that tell a story in words: one grant from proposal to
payment, one lunar cycle of a pool, one collective's custody, and what an entry is about.

They combine the reads of :mod:`ledger.fund.pool_views`, :mod:`ledger.fund.grant_views` and
:mod:`ledger.fund.entry_views` with the names of pools and collectives, so a page can say
"Colectivo Alba" where the log says ``alba``. Plain frozen dataclasses, no Flask, over public
tables only; purposes and notes come through ``public_texts`` (``[redacted]`` once redacted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, select

from ledger.errors import NotFound
from ledger.fund.entry_views import load_entries
from ledger.fund.grant_views import GrantView, grant_details
from ledger.fund.pool_views import CollectiveView, CycleView, collective_detail, cycle_view
from ledger.fund.schema import collectives, cycles, grants, pools
from ledger.fund.state import custodian_of, grant_row, load_schedule, pool_row
from ledger.fund.urgency import pool_policy
from ledger.log.clock import parse_ts
from ledger.log.db import read_transaction
from ledger.log.entry import Entry

GRANT_KINDS = frozenset(
    {"grant_proposed", "vote_cast", "grant_decided", "grant_disbursed", "grant_cancelled"}
)
COLLECTIVE_DECISIONS = 50


@dataclass(frozen=True)
class Names:
    """Display names of pools and collectives by slug (a slug stands for itself if unknown)."""

    pools: Mapping[str, str]
    collectives: Mapping[str, str]

    def pool(self, slug: str | None) -> str | None:
        return None if slug is None else self.pools.get(slug, slug)

    def collective(self, slug: str | None) -> str | None:
        return None if slug is None else self.collectives.get(slug, slug)


def read_names(conn: Connection) -> Names:
    pool_rows = conn.execute(select(pools.c.slug, pools.c.name))
    collective_rows = conn.execute(select(collectives.c.slug, collectives.c.name))
    return Names(
        pools={slug: name for slug, name in pool_rows},
        collectives={slug: name for slug, name in collective_rows},
    )


def names(engine: Engine) -> Names:
    """The display names of every pool and collective."""
    with read_transaction(engine) as conn:
        return read_names(conn)


def response_time(grant: GrantView) -> timedelta | None:
    """From the proposal to its decision; None while undecided."""
    if grant.decision is None:
        return None
    return parse_ts(grant.decision.ts) - parse_ts(grant.proposed_at)


# -- one grant ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantEvent:
    """One entry of a grant's history: its proposal, a vote, the decision, the payment."""

    seq: int
    ts: str
    kind: str
    actor: str


@dataclass(frozen=True)
class GrantStory:
    grant: GrantView
    names: Names
    events: tuple[GrantEvent, ...]
    custodian: str | None  # the collective deciding it now (or that decided it)
    deadline: datetime | None  # urgent grants: the pool's promise to decide by then
    age: timedelta  # from the proposal to its decision or cancellation, else to now
    disbursed_at: str | None

    @property
    def overdue(self) -> bool:
        """Urgent, undecided and past its deadline (as of when ``age`` was measured)."""
        grant = self.grant
        return (
            self.deadline is not None
            and grant.status == "proposed"
            and parse_ts(grant.proposed_at) + self.age > self.deadline
        )


def grant_story(engine: Engine, grant_id: int, now: datetime) -> GrantStory:
    """Grant ``grant_id`` with its votes, decision and every entry of its history."""
    with read_transaction(engine) as conn:
        grant = grant_details(conn, [grant_row(conn, grant_id)])[0]
        seqs = [grant.id, *(v.seq for v in grant.votes)]
        seqs += [s for s in (grant.decided_seq, grant.disbursed_seq, grant.cancelled_seq) if s]
        found = sorted(load_entries(conn, seqs), key=lambda e: e.seq)
        cycle = grant.decision.cycle if grant.decision else load_schedule(conn).cycle_at(now).number
        custodian = custodian_of(conn, grant.pool, cycle)
        story_names = read_names(conn)
        deadline = pool_policy(conn, grant.pool).deadline
    events = tuple(GrantEvent(e.seq, e.ts, e.kind, e.actor) for e in found)
    closed = grant.decided_seq or grant.cancelled_seq
    ended = next((parse_ts(e.ts) for e in found if e.seq == closed), now)
    proposed = parse_ts(grant.proposed_at)
    return GrantStory(
        grant=grant,
        names=story_names,
        events=events,
        custodian=custodian,
        deadline=proposed + deadline if grant.urgency == "urgent" else None,
        age=ended - proposed,
        disbursed_at=next((e.ts for e in found if e.seq == grant.disbursed_seq), None),
    )


# -- one cycle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleStory:
    pool: str
    pool_name: str
    cycle: CycleView
    names: Names
    next_custodian: str | None  # who took (or takes) custody after this cycle
    previous_custodian: str | None
    decisions: tuple[GrantView, ...]  # decided in this cycle, in order
    proposed: int  # grants proposed in this cycle
    last_cycle: int  # the pool's newest cycle so far

    @property
    def response_times(self) -> tuple[tuple[GrantView, timedelta], ...]:
        """Each decision with the time from its proposal."""
        return tuple((g, t) for g in self.decisions if (t := response_time(g)) is not None)


def cycle_story(engine: Engine, pool: str, number: int) -> CycleStory:
    """Cycle ``number`` of ``pool``: custody, the statement at its handover, its decisions."""
    with read_transaction(engine) as conn:
        row = pool_row(conn, pool)
        found = conn.execute(
            select(cycles).where(and_(cycles.c.pool == pool, cycles.c.number == number))
        ).one_or_none()
        if found is None:
            raise NotFound(f"pool {pool!r} has no cycle {number}")
        decided = conn.execute(
            select(grants)
            .where(and_(grants.c.pool == pool, grants.c.decided_cycle == number))
            .order_by(grants.c.decided_seq)
        ).all()
        proposed = conn.execute(
            select(grants.c.id).where(
                and_(grants.c.pool == pool, grants.c.proposed_cycle == number)
            )
        ).all()
        last = conn.execute(
            select(cycles.c.number)
            .where(cycles.c.pool == pool)
            .order_by(cycles.c.number.desc())
            .limit(1)
        ).scalar_one()
        return CycleStory(
            pool=pool,
            pool_name=row.name,
            cycle=cycle_view(conn, found),
            names=read_names(conn),
            next_custodian=custodian_of(conn, pool, number + 1),
            previous_custodian=custodian_of(conn, pool, number - 1),
            decisions=tuple(grant_details(conn, decided)),
            proposed=len(proposed),
            last_cycle=int(last),
        )


# -- one collective -------------------------------------------------------------------------


@dataclass(frozen=True)
class CustodySpan:
    pool: str
    cycle: int
    start: str
    end: str
    closed: bool


@dataclass(frozen=True)
class CollectiveStory:
    collective: CollectiveView
    names: Names
    custody: tuple[CustodySpan, ...]  # the cycles it held, newest first
    decisions: tuple[GrantView, ...]  # decided while it held custody, newest first


def collective_story(engine: Engine, slug: str) -> CollectiveStory:
    """A collective, the cycles it held custody of and the decisions it took in them."""
    collective = collective_detail(engine, slug)
    with read_transaction(engine) as conn:
        held = conn.execute(
            select(cycles)
            .where(cycles.c.custodian == slug)
            .order_by(cycles.c.starts_at.desc(), cycles.c.pool)
        ).all()
        decided = conn.execute(
            select(grants)
            .join(
                cycles,
                and_(cycles.c.pool == grants.c.pool, cycles.c.number == grants.c.decided_cycle),
            )
            .where(cycles.c.custodian == slug)
            .order_by(grants.c.decided_seq.desc())
            .limit(COLLECTIVE_DECISIONS)
        ).all()
        return CollectiveStory(
            collective=collective,
            names=read_names(conn),
            custody=tuple(
                CustodySpan(r.pool, int(r.number), r.starts_at, r.ends_at, r.closed_seq is not None)
                for r in held
            ),
            decisions=tuple(grant_details(conn, decided)),
        )


# -- what an entry is about -----------------------------------------------------------------


@dataclass(frozen=True)
class EntryAbout:
    """What an entry's opening sentence needs beyond the entry: the names, the grant it is
    about (with its purpose as served, or ``[redacted]``) and the collective that held the
    pool's custody in the entry's cycle."""

    names: Names
    grant: GrantView | None
    custodian: str | None


def entry_about(engine: Engine, entry: Entry) -> EntryAbout:
    data = entry.data
    with read_transaction(engine) as conn:
        grant = None
        if entry.kind in GRANT_KINDS:
            grant_id = entry.seq if entry.kind == "grant_proposed" else data["grant"]
            grant = grant_details(conn, [grant_row(conn, int(grant_id))])[0]
        custodian = None
        if isinstance(data.get("pool"), str) and isinstance(data.get("cycle"), int):
            custodian = custodian_of(conn, data["pool"], data["cycle"])
        return EntryAbout(read_names(conn), grant, custodian)
