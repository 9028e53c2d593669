"""Read models of pools, their lunar cycles and the collectives that hold custody.

Plain frozen dataclasses, no Flask, over public tables only (never ``private_records`` or
``tokens``). Custody is computed from the lunar schedule and the roster for the cycle in force
*now*, so a read is right even before the handover entry for the new cycle has been appended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from ledger.errors import NotFound
from ledger.fund.lunar import Cycle
from ledger.fund.schema import balances, collectives, cycles, pools
from ledger.fund.state import (
    active_members,
    custodian_of,
    flows_of,
    load_schedule,
    pool_row,
    quorum_of,
    roster_for,
)
from ledger.log.clock import format_ts
from ledger.log.db import read_transaction


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
    next_custodian: str | None  # who takes custody at the next handover


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
        next_custodian=custodian_of(conn, row.slug, current.number + 1),
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
        return [cycle_view(conn, row) for row in rows.all()]


def cycle_view(conn: Connection, row: Any) -> CycleView:
    """A ``cycles`` row with its flows."""
    flows = flows_of(conn, row.pool, row.number)
    return CycleView(
        pool=row.pool,
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


def custodian_quorum(engine: Engine, pool: PoolView) -> int | None:
    """The quorum of the collective that holds the pool's custody now; None without one."""
    if pool.custodian is None:
        return None
    return collective_detail(engine, pool.custodian).quorum


# -- the lunar cycle now ----------------------------------------------------------------------

MOON_PHASES = (
    "new",
    "waxing_crescent",
    "first_quarter",
    "waxing_gibbous",
    "full",
    "waning_gibbous",
    "last_quarter",
    "waning_crescent",
)
"""The moon's eight phases from one new moon to the next, each an eighth of the cycle centred
on its moment (the new moon: the last sixteenth of a cycle and the first of the next)."""


@dataclass(frozen=True)
class LunarNow:
    """Where ``now`` is in the lunar cycle in force: the ``fraction`` elapsed (0 at the new
    moon that opened it, just under 1 before the next, where custody is handed over) and the
    moon's ``phase`` (one of :data:`MOON_PHASES`)."""

    cycle: Cycle
    now: datetime
    fraction: float
    phase: str

    @property
    def percent(self) -> int:
        """Whole percent of the cycle elapsed."""
        return int(self.fraction * 100)

    @property
    def until_handover(self) -> timedelta:
        return self.cycle.end - self.now


def current_cycle(engine: Engine, now: datetime) -> Cycle:
    """The lunar cycle ``now`` falls in, from the persisted schedule."""
    with read_transaction(engine) as conn:
        return load_schedule(conn).cycle_at(now)


def lunar_position(cycle: Cycle, now: datetime) -> LunarNow:
    """Where ``now`` is in ``cycle`` (new moon to new moon); clamped to the cycle."""
    fraction = (now - cycle.start) / (cycle.end - cycle.start)
    fraction = min(max(fraction, 0.0), 0.999999)
    return LunarNow(cycle, now, fraction, MOON_PHASES[int(fraction * 8 + 0.5) % 8])


def lunar_now(engine: Engine, now: datetime) -> LunarNow:
    """The lunar cycle in force at ``now``, from the persisted schedule, and the moon's phase."""
    return lunar_position(current_cycle(engine, now), now)
