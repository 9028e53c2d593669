"""Read models of how a pool keeps its promise on urgent grants: the response figures of
each cycle (:func:`ledger.fund.urgency.response_figures`) and what each handover did with the
grants still open.

Plain frozen dataclasses, no Flask, over public tables only. A closed cycle shows the figures
its handover states (data version 2; computed by the same function for older handovers); the
running cycle shows them so far (deadlines up to now).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from ledger.fund.entry_views import load_entries
from ledger.fund.schema import cycles
from ledger.fund.state import pool_row
from ledger.fund.urgency import ResponseFigures, UrgencyPolicy, cycle_response, pool_policy
from ledger.log.clock import parse_ts
from ledger.log.db import read_transaction


@dataclass(frozen=True)
class CycleResponse:
    """One cycle of a pool: its response figures and, once handed over, the grants still
    open that the handover passed on and the outgoing custodian's votes it voided."""

    pool: str
    cycle: int
    start: str
    end: str
    closed: bool
    figures: ResponseFigures
    stated: bool  # the figures are those the handover entry states
    carried_over: tuple[int, ...] = ()
    voided_votes: tuple[int, ...] = ()
    handover_seq: int | None = None


@dataclass(frozen=True)
class PoolResponses:
    policy: UrgencyPolicy
    cycles: tuple[CycleResponse, ...]  # newest first


def pool_responses(engine: Engine, pool: str, now: datetime, limit: int = 12) -> PoolResponses:
    """The pool's urgency policy and the response figures of its ``limit`` newest cycles."""
    with read_transaction(engine) as conn:
        pool_row(conn, pool)
        rows = conn.execute(
            select(cycles)
            .where(cycles.c.pool == pool)
            .order_by(cycles.c.number.desc())
            .limit(limit)
        ).all()
        handovers = {
            e.seq: e for e in load_entries(conn, [int(r.closed_seq) for r in rows if r.closed_seq])
        }
        views = []
        for row in rows:
            start, end = parse_ts(row.starts_at), parse_ts(row.ends_at)
            closed = row.closed_seq is not None
            if row.response is not None:
                figures = ResponseFigures.of_data(json.loads(row.response))
            else:
                figures = cycle_response(conn, pool, int(row.number), start, min(end, now))
            handover = handovers.get(int(row.closed_seq)) if closed else None
            views.append(
                CycleResponse(
                    pool=pool,
                    cycle=int(row.number),
                    start=row.starts_at,
                    end=row.ends_at,
                    closed=closed,
                    figures=figures,
                    stated=row.response is not None,
                    carried_over=tuple(handover.data["carried_over"]) if handover else (),
                    voided_votes=tuple(handover.data["voided_votes"]) if handover else (),
                    handover_seq=None if handover is None else handover.seq,
                )
            )
        return PoolResponses(pool_policy(conn, pool), tuple(views))
