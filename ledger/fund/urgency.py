"""Urgent grants and their decision deadline: which are overdue now.

A pool promises to decide an urgent grant within its decision deadline (``URGENT_DEADLINE``
unless the pool says otherwise). The worker escalates a grant still open past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, select

from ledger.fund.schema import grants
from ledger.log.clock import parse_ts

URGENT_DEADLINE = timedelta(hours=72)


@dataclass(frozen=True)
class OverdueGrant:
    """An urgent grant still open after its pool's decision deadline."""

    grant_id: int
    pool: str
    proposed_at: datetime
    deadline: datetime


def overdue_urgent_grants(conn: Connection, now: datetime) -> list[OverdueGrant]:
    """Every urgent grant still proposed (undecided, not cancelled) whose deadline passed."""
    rows = conn.execute(
        select(grants.c.id, grants.c.pool, grants.c.proposed_ts)
        .where(and_(grants.c.urgency == "urgent", grants.c.status == "proposed"))
        .order_by(grants.c.id)
    )
    overdue = []
    for row in rows:
        proposed = parse_ts(row.proposed_ts)
        deadline = proposed + URGENT_DEADLINE
        if deadline <= now:
            overdue.append(OverdueGrant(int(row.id), row.pool, proposed, deadline))
    return overdue
