"""Reads of the projections that the fund's rules (and the API) rely on: pools, grants,
rosters and custodians, members and quorums, balances, and the persisted lunar boundaries.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, select

from ledger.errors import NotFound, RuleViolation
from ledger.fund.lunar import LunarSchedule
from ledger.fund.schema import (
    balances,
    collectives,
    cycle_flows,
    grants,
    members,
    rosters,
    votes,
)
from ledger.log.clock import parse_ts
from ledger.log.db import read_sql


@lru_cache(maxsize=4096)
def _boundary_instant(text: str) -> datetime:
    """parse_ts for persisted boundaries, which every write transaction reads and never change."""
    return parse_ts(text)


def persisted_boundaries(conn: Connection) -> dict[int, datetime]:
    rows = read_sql(conn, "SELECT lunation, starts_at FROM lunar_boundaries")
    return {number: _boundary_instant(ts) for number, ts in rows}


def load_schedule(conn: Connection) -> LunarSchedule:
    return LunarSchedule(persisted_boundaries(conn))


class KnownBoundaries:
    """The persisted lunar boundaries as last read, so a write need not read them every time.

    ``lunar_boundaries`` is append-only (triggers refuse UPDATE and DELETE), so a row once read
    stays true; only rows added since can be missing, and a schedule that lacks one (it would
    compute it) reads the table again rather than trust its own computation.
    """

    def __init__(self) -> None:
        self._known: dict[int, datetime] = {}

    def _settled(self, now: datetime) -> LunarSchedule | None:
        """A schedule of the boundaries read so far, if they settle the cycle at ``now``."""
        schedule = LunarSchedule(self._known)
        schedule.cycle_at(now)
        return None if schedule.new_boundaries else schedule

    def cycle_number(self, now: datetime) -> int | None:
        """The cycle at ``now`` if the boundaries read so far settle it, else None (only a
        write transaction, which reads them, can tell)."""
        schedule = self._settled(now)
        return None if schedule is None else schedule.cycle_at(now).number

    def schedule(self, conn: Connection, now: datetime, *, reread: bool = False) -> LunarSchedule:
        """A schedule holding every persisted boundary it needs around ``now``."""
        schedule = None if reread else self._settled(now)
        if schedule is None:
            self._known = persisted_boundaries(conn)
            schedule = LunarSchedule(self._known)
        return schedule


class PoolRow(NamedTuple):
    """A row of ``pools`` (JSON columns as stored)."""

    slug: str
    name: str
    currencies: str
    fast_lane_cap: str
    cycle_allowance: str
    created_seq: int
    created_cycle: int
    current_cycle: int
    urgent_deadline_hours: int
    overdue_approval: int


_POOL = f"SELECT {', '.join(PoolRow._fields)} FROM pools WHERE slug = ?"


def pool_row(conn: Connection, slug: str) -> PoolRow:
    rows = read_sql(conn, _POOL, (slug,))
    if not rows:
        raise NotFound(f"no pool {slug!r}")
    return PoolRow(*rows[0])


def grant_row(conn: Connection, grant_id: int) -> Any:
    row = conn.execute(select(grants).where(grants.c.id == grant_id)).one_or_none()
    if row is None:
        raise NotFound(f"no grant {grant_id}")
    return row


def roster_for(conn: Connection, pool: str, cycle: int) -> Any:
    """The roster in force in ``cycle``: the latest one effective at or before it."""
    return conn.execute(
        select(rosters)
        .where(and_(rosters.c.pool == pool, rosters.c.effective_cycle <= cycle))
        .order_by(rosters.c.seq.desc())
        .limit(1)
    ).one_or_none()


def custodian_of(conn: Connection, pool: str, cycle: int) -> str | None:
    """roster[(n - first cycle of the roster) mod len(roster)], or None with no roster."""
    roster = roster_for(conn, pool, cycle)
    if roster is None:
        return None
    order: list[str] = json.loads(roster.collectives)
    return str(order[(cycle - roster.effective_cycle) % len(order)])


def active_members(conn: Connection, collective: str) -> list[str]:
    rows = conn.execute(
        select(members.c.id).where(and_(members.c.collective == collective, members.c.active == 1))
    )
    return sorted(member for (member,) in rows)


def quorum_of(conn: Connection, collective: str) -> int:
    """The collective's policy: a fixed number, or a majority of its active members."""
    fixed = conn.execute(
        select(collectives.c.quorum).where(collectives.c.slug == collective)
    ).scalar()
    return int(fixed) if fixed else len(active_members(conn, collective)) // 2 + 1


def balance(conn: Connection, pool: str, currency: str, account: str) -> int:
    amount = conn.execute(
        select(balances.c.amount).where(
            and_(
                balances.c.pool == pool,
                balances.c.currency == currency,
                balances.c.account == account,
            )
        )
    ).scalar()
    return int(amount or 0)


def flows_of(conn: Connection, pool: str, cycle: int) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        select(cycle_flows).where(and_(cycle_flows.c.pool == pool, cycle_flows.c.cycle == cycle))
    )
    return {
        r.currency: {
            "donations": int(r.donations),
            "disbursements": int(r.disbursements),
            "corrections": int(r.corrections),
            "fast_lane_used": int(r.fast_lane_used),
        }
        for r in rows
    }


def open_votes(conn: Connection, grant_id: int) -> list[Any]:
    return list(
        conn.execute(
            select(votes)
            .where(and_(votes.c.grant_id == grant_id, votes.c.void == 0))
            .order_by(votes.c.seq)
        )
    )


def require_collective(conn: Connection, slug: str, code: str = "not_found") -> None:
    if not conn.execute(select(collectives.c.slug).where(collectives.c.slug == slug)).first():
        if code == "not_found":
            raise NotFound(f"no collective {slug!r}")
        raise RuleViolation(f"no collective {slug!r}", code=code)
