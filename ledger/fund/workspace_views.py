"""What a signed-in member (or a bearer token) sees of their own place in the fund: who they
are, the pools their collective holds now and until when, and when it will next; the grant
queue of those pools and what waits for their vote. Read models, no Flask: the workspace pages
and ``GET /api/v1/me`` render the same values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, select

from ledger.fund.grant_views import GrantView, grant_queue
from ledger.fund.rules import Actor
from ledger.fund.schema import pools, votes
from ledger.fund.state import custodian_of, load_schedule, roster_for
from ledger.log.clock import format_ts
from ledger.log.db import read_transaction

QUEUE_LIMIT = 200


@dataclass(frozen=True)
class Custody:
    """One pool on the collective's roster: held now (until ``until``), and when next."""

    pool: str
    name: str
    holds_now: bool
    until: str | None  # the end of the current cycle, when held now
    next_from: str | None  # the start of the next cycle it holds, within one roster turn
    next_until: str | None


@dataclass(frozen=True)
class Me:
    actor: str
    role: str
    collective: str | None
    member: str | None
    custody: tuple[Custody, ...]


@dataclass(frozen=True)
class QueuedGrant:
    """A grant of a held pool still open, and where the member stands on it."""

    grant: GrantView
    my_vote: str | None
    waiting_for_me: bool  # proposed, not mine, and I have not voted: the vote buttons show


def _custody(conn: Connection, collective: str, now: datetime) -> list[Custody]:
    schedule = load_schedule(conn)
    current = schedule.cycle_at(now)
    found = []
    for slug, name in conn.execute(select(pools.c.slug, pools.c.name).order_by(pools.c.slug)):
        roster = roster_for(conn, slug, current.number)
        turn = [] if roster is None else json.loads(roster.collectives)
        if collective not in turn:
            continue
        holds = custodian_of(conn, slug, current.number) == collective
        upcoming = next(
            (
                schedule.cycle(n)
                for n in range(current.number + 1, current.number + len(turn) + 1)
                if custodian_of(conn, slug, n) == collective
            ),
            None,
        )
        found.append(
            Custody(
                pool=slug,
                name=name,
                holds_now=holds,
                until=format_ts(current.end) if holds else None,
                next_from=None if upcoming is None else format_ts(upcoming.start),
                next_until=None if upcoming is None else format_ts(upcoming.end),
            )
        )
    return found


def me(engine: Engine, actor: Actor, now: datetime) -> Me:
    """Who asks, and (for a member) the custody of their collective."""
    custody: list[Custody] = []
    if actor.collective is not None:
        with read_transaction(engine) as conn:
            custody = _custody(conn, actor.collective, now)
    return Me(actor.id, actor.role, actor.collective, actor.member, tuple(custody))


def _my_votes(conn: Connection, member: str, grant_ids: list[int]) -> dict[int, str]:
    if not grant_ids:
        return {}
    rows = conn.execute(
        select(votes.c.grant_id, votes.c.vote).where(
            and_(votes.c.member == member, votes.c.void == 0, votes.c.grant_id.in_(grant_ids))
        )
    )
    return {int(grant): vote for grant, vote in rows}


def my_queue(engine: Engine, actor: Actor, now: datetime) -> list[QueuedGrant]:
    """The open grants (proposed, then approved and not yet paid) of the pools the actor's
    collective holds now, each pool's queue in its order (overdue urgent first); empty for
    anyone but a member."""
    if actor.collective is None or actor.member is None:
        return []
    held = [c.pool for c in me(engine, actor, now).custody if c.holds_now]
    grants: list[GrantView] = []
    for pool in held:
        for status in ("proposed", "approved"):
            grants.extend(grant_queue(engine, pool, status, limit=QUEUE_LIMIT, now=now).items)
    with read_transaction(engine) as conn:
        mine = _my_votes(conn, actor.member, [g.id for g in grants])
    return [
        QueuedGrant(
            grant=g,
            my_vote=mine.get(g.id),
            waiting_for_me=g.status == "proposed" and g.proposer != actor.id and g.id not in mine,
        )
        for g in grants
    ]
