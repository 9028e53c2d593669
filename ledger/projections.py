"""Projections: the relational view of the log, written by applying each entry.

:func:`apply_entry` is the only writer of the projection tables. It runs inside the append
transaction for live writes and over the whole log for ``replay``; it reads nothing but the
entry and the projections so far, so replaying the log rebuilds exactly the same tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from ledger.entry import Entry
from ledger.money import Posting
from ledger.schema import (
    balances,
    collectives,
    cycle_flows,
    cycles,
    donations,
    grants,
    members,
    pools,
    rosters,
    votes,
)

ZERO = "0"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def apply_postings(conn: Connection, pool: str, postings: list[dict[str, str]]) -> None:
    for raw in postings:
        posting = Posting.from_json(raw)
        _, name = posting.account.split(":", 1)
        key = and_(
            balances.c.pool == pool,
            balances.c.currency == posting.currency,
            balances.c.account == name,
        )
        current = conn.execute(select(balances.c.amount).where(key)).scalar()
        if current is None:
            conn.execute(
                insert(balances).values(
                    pool=pool,
                    currency=posting.currency,
                    account=name,
                    amount=str(posting.amount),
                )
            )
        else:
            conn.execute(
                update(balances).where(key).values(amount=str(int(current) + posting.amount))
            )


def add_flow(conn: Connection, pool: str, cycle: int, currency: str, **deltas: int) -> None:
    """Add to the per-cycle flows (donations, disbursements, corrections, fast_lane_used)."""
    key = and_(
        cycle_flows.c.pool == pool, cycle_flows.c.cycle == cycle, cycle_flows.c.currency == currency
    )
    row = conn.execute(select(cycle_flows).where(key)).one_or_none()
    if row is None:
        values = {"donations": 0, "disbursements": 0, "corrections": 0, "fast_lane_used": 0}
        values.update(deltas)
        conn.execute(
            insert(cycle_flows).values(
                pool=pool,
                cycle=cycle,
                currency=currency,
                **{name: str(amount) for name, amount in values.items()},
            )
        )
        return
    conn.execute(
        update(cycle_flows)
        .where(key)
        .values(**{name: str(int(getattr(row, name)) + delta) for name, delta in deltas.items()})
    )


def _pool_created(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        insert(pools).values(
            slug=d["slug"],
            name=d["name"],
            currencies=_json(d["currencies"]),
            fast_lane_cap=_json(d["fast_lane_cap"]),
            cycle_allowance=_json(d["cycle_allowance"]),
            created_seq=entry.seq,
            created_cycle=d["cycle"]["number"],
            current_cycle=d["cycle"]["number"],
        )
    )
    _open_cycle(conn, d["slug"], d["cycle"], None, entry.seq, {c: ZERO for c in d["currencies"]})


def _open_cycle(
    conn: Connection,
    pool: str,
    cycle: Mapping[str, Any],
    custodian: str | None,
    seq: int,
    opening: Mapping[str, str],
) -> None:
    conn.execute(
        insert(cycles).values(
            pool=pool,
            number=cycle["number"],
            starts_at=cycle["start"],
            ends_at=cycle["end"],
            custodian=custodian,
            opened_seq=seq,
            opening=_json(dict(opening)),
        )
    )


def _collective_registered(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        insert(collectives).values(
            slug=d["slug"], name=d["name"], quorum=d["quorum"], created_seq=entry.seq
        )
    )


def _member_added(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        insert(members).values(
            id=d["member"], collective=d["collective"], active=1, added_seq=entry.seq
        )
    )


def _member_removed(conn: Connection, entry: Entry) -> None:
    conn.execute(
        update(members)
        .where(members.c.id == entry.data["member"])
        .values(active=0, removed_seq=entry.seq)
    )


def _roster_set(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        insert(rosters).values(
            seq=entry.seq,
            pool=d["pool"],
            effective_cycle=d["effective_cycle"],
            collectives=_json(d["collectives"]),
        )
    )
    if d.get("custodian_now") is not None:  # the pool's first roster takes effect at once
        conn.execute(
            update(cycles)
            .where(and_(cycles.c.pool == d["pool"], cycles.c.number == d["effective_cycle"]))
            .values(custodian=d["custodian_now"])
        )


def _custody_transferred(conn: Connection, entry: Entry) -> None:
    d = entry.data
    pool, closed = d["pool"], d["closed"]
    conn.execute(
        update(cycles)
        .where(and_(cycles.c.pool == pool, cycles.c.number == closed["number"]))
        .values(statement=_json(closed["statement"]), closed_seq=entry.seq)
    )
    opening = {c: s["closing"] for c, s in closed["statement"].items()}
    _open_cycle(conn, pool, d["cycle"], d["to"], entry.seq, opening)
    conn.execute(
        update(pools).where(pools.c.slug == pool).values(current_cycle=d["cycle"]["number"])
    )
    if d["voided_votes"]:
        conn.execute(update(votes).where(votes.c.seq.in_(d["voided_votes"])).values(void=1))


def _donation_recorded(conn: Connection, entry: Entry) -> None:
    d = entry.data
    donor = d["donor"]
    conn.execute(
        insert(donations).values(
            seq=entry.seq,
            pool=d["pool"],
            amount=d["amount"],
            currency=d["currency"],
            channel=d["channel"],
            donor=donor["commitment"] if "commitment" in donor else f"name:{donor['name']}",
            ts=entry.ts,
            cycle=d["cycle"],
        )
    )
    apply_postings(conn, d["pool"], d["postings"])
    add_flow(conn, d["pool"], d["cycle"], d["currency"], donations=int(d["amount"]))


def _grant_proposed(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        insert(grants).values(
            id=entry.seq,
            pool=d["pool"],
            amount=d["amount"],
            currency=d["currency"],
            purpose=d["purpose"],
            urgency=d["urgency"],
            recipient=d["recipient"],
            proposer=entry.actor,
            proposed_ts=entry.ts,
            proposed_cycle=d["cycle"],
            status="proposed",
        )
    )


def _vote_cast(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        insert(votes).values(
            seq=entry.seq,
            grant_id=d["grant"],
            member=d["member"],
            collective=d["collective"],
            vote=d["vote"],
            note=d.get("note"),
            cycle=d["cycle"],
            void=0,
        )
    )


def _grant_decided(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        update(grants)
        .where(grants.c.id == d["grant"])
        .values(
            status=d["decision"], lane=d["lane"], decided_seq=entry.seq, decided_cycle=d["cycle"]
        )
    )
    if d["decision"] == "approved":
        apply_postings(conn, d["pool"], d["postings"])
        if d["lane"] == "fast_lane":
            add_flow(conn, d["pool"], d["cycle"], d["currency"], fast_lane_used=int(d["amount"]))


def _grant_disbursed(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        update(grants)
        .where(grants.c.id == d["grant"])
        .values(status="disbursed", disbursed_seq=entry.seq)
    )
    apply_postings(conn, d["pool"], d["postings"])
    add_flow(conn, d["pool"], d["cycle"], d["currency"], disbursements=int(d["amount"]))


def _grant_cancelled(conn: Connection, entry: Entry) -> None:
    d = entry.data
    conn.execute(
        update(grants)
        .where(grants.c.id == d["grant"])
        .values(status="cancelled", closed_seq=entry.seq)
    )
    apply_postings(conn, d["pool"], d["postings"])


def _correction(conn: Connection, entry: Entry) -> None:
    d = entry.data
    apply_postings(conn, d["pool"], d["postings"])
    add_flow(conn, d["pool"], d["cycle"], d["currency"], corrections=int(d["fund_change"]))
    if d["corrected_kind"] == "donation_recorded":
        conn.execute(
            update(donations)
            .where(donations.c.seq == d["corrects"])
            .values(corrected_seq=entry.seq)
        )
    else:  # a reversed disbursement: the grant is approved (committed) again
        conn.execute(
            update(grants)
            .where(grants.c.id == d["grant"])
            .values(status="approved", disbursed_seq=None)
        )


def _no_projection(conn: Connection, entry: Entry) -> None:
    """Entries that change no projection (log bookkeeping, anchors)."""


APPLIERS: Mapping[str, Callable[[Connection, Entry], None]] = {
    "log_created": _no_projection,
    "key_rotated": _no_projection,
    "checkpoint_anchored": _no_projection,
    "pool_created": _pool_created,
    "collective_registered": _collective_registered,
    "member_added": _member_added,
    "member_removed": _member_removed,
    "roster_set": _roster_set,
    "custody_transferred": _custody_transferred,
    "donation_recorded": _donation_recorded,
    "grant_proposed": _grant_proposed,
    "vote_cast": _vote_cast,
    "grant_decided": _grant_decided,
    "grant_disbursed": _grant_disbursed,
    "grant_cancelled": _grant_cancelled,
    "correction": _correction,
}


def apply_entry(conn: Connection, entry: Entry) -> None:
    APPLIERS[entry.kind](conn, entry)
