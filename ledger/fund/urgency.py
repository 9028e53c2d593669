"""Urgent grants and their decision deadline: the pool's policy, which grants are overdue, and
how fast the fund answered.

A pool promises to decide an urgent grant within its decision deadline: ``deadline_hours``
(1 to 720, default 72) after the ``grant_proposed`` entry. Pools created with entry data
version 2 of ``pool_created`` say so in their data, with the policy ``overdue_approval``: when
true, once the deadline has passed any single active member of the custodian may approve the
grant within the pool's fast-lane cap, even when the cycle's fast-lane allowance is spent (the
lane ``overdue`` of the ``grant_decided`` entry). Pools of data version 1 have the default
deadline and no overdue approval.

The response figures of a pool's cycle (:func:`response_figures`) are computed from entry
timestamps alone, so anyone holding the log recomputes them (``lunaria audit`` does, and
checks the figures each handover states):

* an urgent grant is *counted* in cycle n when it was decided in cycle n before its deadline
  (*on time*), or when its deadline fell in cycle n (start inclusive, end exclusive) and by then
  it was neither decided nor cancelled (*late*, whether or not it is decided later); a grant
  cancelled before its deadline without a decision is not counted. Each urgent grant counts
  at most once, in the cycle where it was answered or fell due, whichever came first;
* the *median time to a decision* is over the urgent grants decided in cycle n (in any lane,
  approved or rejected): the time from the proposal's ``ts`` to the decision's ``ts`` in whole
  seconds (rounded down), the middle one, or for an even number the mean of the two middle
  ones rounded down; none without a decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from ledger.errors import RuleViolation
from ledger.fund.schema import grants, pools
from ledger.log.clock import format_ts, parse_ts

DEFAULT_DEADLINE_HOURS = 72
MIN_DEADLINE_HOURS = 1
MAX_DEADLINE_HOURS = 720
URGENT_DEADLINE = timedelta(hours=DEFAULT_DEADLINE_HOURS)
POOL_DATA_VERSION = 2
"""The ``pool_created`` data version that carries the urgency policy."""
OVERDUE_LANE = "overdue"


@dataclass(frozen=True)
class UrgencyPolicy:
    """A pool's promise for urgent grants and what happens once it is broken."""

    deadline_hours: int = DEFAULT_DEADLINE_HOURS
    overdue_approval: bool = False

    @property
    def deadline(self) -> timedelta:
        return timedelta(hours=self.deadline_hours)

    @classmethod
    def of_pool_data(cls, data: Mapping[str, Any]) -> UrgencyPolicy:
        """The policy a ``pool_created`` entry's data states (version 1: the defaults)."""
        if data.get("v") != POOL_DATA_VERSION:
            return cls()
        return checked_policy(data["urgent_deadline_hours"], data["overdue_approval"])

    def data(self) -> dict[str, Any]:
        """The members a ``pool_created`` entry of data version 2 adds."""
        return {
            "urgent_deadline_hours": self.deadline_hours,
            "overdue_approval": self.overdue_approval,
            "v": POOL_DATA_VERSION,
        }


def checked_policy(deadline_hours: Any, overdue_approval: Any) -> UrgencyPolicy:
    """A policy from untrusted values, or :class:`RuleViolation` with a stable code."""
    if (
        isinstance(deadline_hours, bool)
        or not isinstance(deadline_hours, int)
        or not MIN_DEADLINE_HOURS <= deadline_hours <= MAX_DEADLINE_HOURS
    ):
        raise RuleViolation(
            f"urgent_deadline_hours must be a whole number from {MIN_DEADLINE_HOURS} to "
            f"{MAX_DEADLINE_HOURS}",
            "invalid_deadline",
        )
    if not isinstance(overdue_approval, bool):
        raise RuleViolation("overdue_approval must be true or false", "invalid_policy")
    return UrgencyPolicy(deadline_hours, overdue_approval)


# -- overdue grants now ---------------------------------------------------------------------


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
        select(grants.c.id, grants.c.pool, grants.c.proposed_ts, pools.c.urgent_deadline_hours)
        .join(pools, pools.c.slug == grants.c.pool)
        .where(and_(grants.c.urgency == "urgent", grants.c.status == "proposed"))
        .order_by(grants.c.id)
    )
    overdue = []
    for row in rows:
        proposed = parse_ts(row.proposed_ts)
        deadline = proposed + timedelta(hours=int(row.urgent_deadline_hours))
        if deadline <= now:
            overdue.append(OverdueGrant(int(row.id), row.pool, proposed, deadline))
    return overdue


def require_overdue(policy: UrgencyPolicy, proposed: datetime, now: datetime) -> datetime:
    """The deadline of a grant proposed at ``proposed``, if the overdue lane is open ``now``."""
    if not policy.overdue_approval:
        raise RuleViolation(
            "this pool's policy does not allow a single member to approve an overdue grant",
            "overdue_lane_not_allowed",
        )
    deadline = proposed + policy.deadline
    if now < deadline:
        raise RuleViolation(
            f"the grant is not overdue before its deadline {deadline.isoformat()}",
            "not_overdue",
        )
    return deadline


# -- how fast the fund answered -------------------------------------------------------------


@dataclass(frozen=True)
class UrgentCase:
    """One urgent grant as its entries tell it (timestamps of the entries)."""

    grant_id: int
    proposed: datetime
    deadline: datetime
    decided: datetime | None = None
    decided_cycle: int | None = None
    cancelled: datetime | None = None

    def answered_in_time(self) -> bool:
        return self.decided is not None and self.decided < self.deadline

    def withdrawn_in_time(self) -> bool:
        return self.cancelled is not None and self.cancelled < self.deadline


@dataclass(frozen=True)
class ResponseFigures:
    """How fast a pool answered its urgent grants in one cycle (see the module's doc)."""

    deadline_hours: int
    on_time: int
    counted: int
    decided: int
    median_seconds: int | None

    def data(self) -> dict[str, Any]:
        """As a handover statement (entry data version 2) and the cycles projection hold it."""
        return {
            "deadline_hours": self.deadline_hours,
            "on_time": self.on_time,
            "counted": self.counted,
            "decided": self.decided,
            "median_seconds": self.median_seconds,
        }

    @classmethod
    def of_data(cls, data: Mapping[str, Any]) -> ResponseFigures:
        return cls(
            int(data["deadline_hours"]),
            int(data["on_time"]),
            int(data["counted"]),
            int(data["decided"]),
            None if data["median_seconds"] is None else int(data["median_seconds"]),
        )


def response_figures(
    cases: Iterable[UrgentCase], cycle: int, start: datetime, end: datetime, deadline_hours: int
) -> ResponseFigures:
    """The response figures of ``cycle`` (``start`` to ``end``; for the running cycle, pass
    now as ``end``) over the pool's urgent grants."""
    on_time = late = 0
    waits = []
    for case in cases:
        decided_here = case.decided_cycle == cycle and case.decided is not None
        if decided_here and case.answered_in_time():
            on_time += 1
        elif (
            start <= case.deadline < end
            and not case.answered_in_time()
            and not case.withdrawn_in_time()
        ):
            late += 1
        if decided_here:
            assert case.decided is not None
            waits.append((case.decided - case.proposed) // timedelta(seconds=1))
    return ResponseFigures(deadline_hours, on_time, on_time + late, len(waits), _median(waits))


def urgent_cases(conn: Connection, pool: str, cycle: int, start: datetime) -> list[UrgentCase]:
    """The pool's urgent grants that may count in ``cycle`` (starting at ``start``): decided
    in it, or proposed late enough for their deadline to fall in it or after."""
    deadline = timedelta(hours=int(pool_policy(conn, pool).deadline_hours))
    since = format_ts(start - deadline)
    rows = conn.execute(
        select(
            grants.c.id,
            grants.c.proposed_ts,
            grants.c.decided_ts,
            grants.c.decided_cycle,
            grants.c.closed_ts,
        )
        .where(
            and_(
                grants.c.pool == pool,
                grants.c.urgency == "urgent",
                or_(grants.c.decided_cycle == cycle, grants.c.proposed_ts >= since),
            )
        )
        .order_by(grants.c.id)
    )
    return [
        UrgentCase(
            int(row.id),
            parse_ts(row.proposed_ts),
            parse_ts(row.proposed_ts) + deadline,
            None if row.decided_ts is None else parse_ts(row.decided_ts),
            None if row.decided_cycle is None else int(row.decided_cycle),
            None if row.closed_ts is None else parse_ts(row.closed_ts),
        )
        for row in rows
    ]


def pool_policy(conn: Connection, pool: str) -> UrgencyPolicy:
    """The urgency policy of a pool, from its projection row."""
    row = conn.execute(
        select(pools.c.urgent_deadline_hours, pools.c.overdue_approval).where(pools.c.slug == pool)
    ).one()
    return UrgencyPolicy(int(row.urgent_deadline_hours), bool(row.overdue_approval))


def cycle_response(
    conn: Connection, pool: str, cycle: int, start: datetime, end: datetime
) -> ResponseFigures:
    """:func:`response_figures` of a pool's cycle from the projections (``end``: the cycle's
    end once it closed, now while it runs)."""
    hours = pool_policy(conn, pool).deadline_hours
    return response_figures(urgent_cases(conn, pool, cycle, start), cycle, start, end, hours)


def _median(values: list[int]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2
