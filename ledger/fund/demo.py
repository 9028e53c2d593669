"""A believable demo fund: six lunar cycles of history, so a newcomer sees a living ledger.

Only ``lunaria init --demo`` (and ``make run`` on a new database) loads it; the history is
generated with a manual clock that walks from six cycles ago up to now, so every entry keeps
a true, non-decreasing timestamp. Seeded randomness: the same seed gives the same story.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.errors import RuleViolation
from ledger.fund.commands import Fund
from ledger.fund.lunar import cycle_at
from ledger.fund.rules import Actor, member_actor
from ledger.fund.urgency import UrgencyPolicy, overdue_urgent_grants
from ledger.log.clock import ManualClock

CYCLES = 6
ADMIN = Actor("admin:demo", "admin")
TREASURER = Actor("treasurer:demo", "treasurer")
APPLICANT = Actor("applicant:demo", "applicant")
COLLECTIVES = {
    "alba": ("Colectivo Alba", ["alba-fox", "alba-heron", "alba-oak"]),
    "brisa": ("Brisa Mutual Aid", ["brisa-lynx", "brisa-reed", "brisa-wren", "brisa-elm"]),
    "cauce": ("Cauce Collective", ["cauce-otter", "cauce-sage", "cauce-moth"]),
}
POOLS = {
    "food-bank": ("Neighbourhood food bank", "EUR", "5000", "20000", ["alba", "brisa", "cauce"]),
    "legal-aid": ("Legal aid fund", "USDC", "100000000", "400000000", ["cauce", "alba", "brisa"]),
}
URGENCY = {"food-bank": UrgencyPolicy(72, True), "legal-aid": UrgencyPolicy(48, False)}
"""Each pool's promise on urgent grants: the food bank lets one member approve an overdue one."""
PURPOSES = [
    "Groceries for a family of five for two weeks",
    "Emergency rent to prevent an eviction",
    "Bus passes for school children",
    "Medicine not covered by insurance",
    "Court filing fees for an asylum appeal",
    "Winter heating bill",
]


@dataclass(frozen=True)
class DemoSummary:
    entries: int
    cycles: int


def start_of_demo(now: datetime) -> datetime:
    """A little after the new moon six cycles before ``now``."""
    instant = now
    for _ in range(CYCLES):
        instant = cycle_at(instant).start - timedelta(hours=1)
    return cycle_at(instant).start + timedelta(hours=2)


def load_demo(fund: Fund, clock: ManualClock, end: datetime, seed: int = 7) -> DemoSummary:
    """Write the demo history through the real commands, moving ``clock`` up to ``end``."""
    rng = random.Random(seed)
    first = fund.log.head().size
    for slug, (name, names) in COLLECTIVES.items():
        fund.register_collective(ADMIN, slug=slug, name=name)
        for member in names:
            fund.add_member(ADMIN, slug, member=member)
    for slug, (name, currency, cap, allowance, roster) in POOLS.items():
        fund.create_pool(
            ADMIN,
            slug=slug,
            name=name,
            currencies=[currency],
            fast_lane_cap={currency: cap},
            cycle_allowance={currency: allowance},
            urgent_deadline_hours=URGENCY[slug].deadline_hours,
            overdue_approval=URGENCY[slug].overdue_approval,
        )
        fund.set_roster(ADMIN, slug, roster)
    cycle = 0
    while clock.now() < end - timedelta(days=1):
        _one_day(fund, rng, cycle, clock)
        clock.advance(timedelta(hours=rng.randint(20, 28)))
        cycle = cycle_at(clock.now()).number
        if rng.random() < 0.03:
            _correct_latest_donation(fund)
    clock.set(end)
    fund.rotate()
    return DemoSummary(entries=fund.log.head().size - first, cycles=CYCLES)


def _one_day(fund: Fund, rng: random.Random, cycle: int, clock: ManualClock) -> None:
    for slug, (_, currency, cap, _, _) in POOLS.items():
        unit = 100 if currency == "EUR" else 1_000_000
        for _ in range(rng.randint(1, 4)):
            fund.record_donation(
                TREASURER,
                slug,
                {
                    "amount": str(rng.choice([5, 10, 20, 25, 50, 100]) * unit),
                    "currency": currency,
                    "channel": "bank" if currency == "EUR" else "crypto",
                    "external_reference": f"demo-{rng.getrandbits(48):012x}",
                    "donor_reference": f"donor-{rng.randint(1, 60)}",
                    **({"display_name": "Ana from the bakery"} if rng.random() < 0.05 else {}),
                },
            )
        if rng.random() < 0.35:
            _grant_round(fund, rng, slug, currency, int(cap), unit, clock)
        _escalate_overdue(fund, slug)
        _disburse_approved(fund, slug)


def _custodian_members(fund: Fund, slug: str) -> list[Actor]:
    from ledger.fund.state import active_members, custodian_of, load_schedule

    with fund.log.engine.connect() as conn:
        number = load_schedule(conn).cycle_at(fund.log.clock.now()).number
        custodian = custodian_of(conn, slug, number)
        assert custodian is not None
        return [
            Actor(member_actor(m), "member", collective=custodian, member=m)
            for m in active_members(conn, custodian)
        ]


def _grant_round(
    fund: Fund,
    rng: random.Random,
    slug: str,
    currency: str,
    cap: int,
    unit: int,
    clock: ManualClock,
) -> None:
    urgent = rng.random() < 0.4
    amount = (
        rng.randint(cap // unit // 4, cap // unit) * unit if urgent else rng.randint(2, 8) * cap
    )
    proposal = {
        "amount": str(amount),
        "currency": currency,
        "purpose": rng.choice(PURPOSES),
        "urgency": "urgent" if urgent else "normal",
        "recipient": f"household-{rng.randint(100, 999)}",
    }
    grant = fund.propose_grant(APPLICANT, slug, proposal).seq
    clock.advance(timedelta(minutes=rng.randint(10, 600)))  # the custodian reads it later
    voters = _custodian_members(fund, slug)
    try:
        if urgent:
            if rng.random() < 0.7:  # else nobody looks at it: it waits past its deadline
                fund.cast_vote(voters[0], grant, vote="approve", fast_lane=True)
            return
        for voter in voters[: len(voters) // 2 + 1]:
            fund.cast_vote(voter, grant, vote="approve" if rng.random() < 0.85 else "reject")
    except RuleViolation:
        pass  # over the allowance or the balance: it waits for the next custodian


def _escalate_overdue(fund: Fund, slug: str) -> None:
    """Where the pool allows it, a custodian member approves each overdue urgent grant."""
    if not URGENCY[slug].overdue_approval:
        return
    with fund.log.engine.connect() as conn:
        now = fund.log.clock.now()
        overdue = [g.grant_id for g in overdue_urgent_grants(conn, now) if g.pool == slug]
    for grant in overdue:
        with contextlib.suppress(RuleViolation):  # over the cap or the balance: it waits
            fund.cast_vote(_custodian_members(fund, slug)[-1], grant, vote="approve", overdue=True)


def _disburse_approved(fund: Fund, slug: str) -> None:
    from sqlalchemy import and_, select

    from ledger.fund.schema import grants

    with fund.log.engine.connect() as conn:
        approved = conn.execute(
            select(grants.c.id).where(and_(grants.c.pool == slug, grants.c.status == "approved"))
        ).all()
    for (grant,) in approved:
        voter = _custodian_members(fund, slug)[0]
        fund.disburse(voter, grant, payment_reference=f"PAY-{grant:06d}")


def _correct_latest_donation(fund: Fund) -> None:
    from sqlalchemy import select

    from ledger.fund.schema import donations

    with fund.log.engine.connect() as conn:
        latest = conn.execute(
            select(donations.c.seq)
            .where(donations.c.corrected_seq.is_(None))
            .order_by(donations.c.seq.desc())
            .limit(1)
        ).scalar()
    if latest is not None:
        with contextlib.suppress(RuleViolation):
            fund.correct(
                TREASURER, corrects=int(latest), reason="imported twice from the bank file"
            )
