"""Read models of grants: the queue, one grant with its votes and decision, recent decisions,
and what a vote returns.

Plain frozen dataclasses, no Flask, over public tables only (never ``private_records`` or
``tokens``). :func:`vote_result` renders a vote from the log's own record, so an idempotent
replay of the vote renders exactly the same body (but for a text redacted since). A purpose
or note of entry data version 2 is read from ``public_texts``; once redacted it shows as
``[redacted]`` (:data:`ledger.fund.public_text.REDACTED`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from ledger.errors import LedgerError, RuleViolation
from ledger.fund.entry_views import (
    Written,
    load_entries,
    load_entry,
    served_for,
    written_entry,
)
from ledger.fund.public_text import REDACTED, served_texts
from ledger.fund.schema import grants, votes
from ledger.fund.state import grant_row, pool_row
from ledger.fund.urgency import pool_policy
from ledger.log.clock import format_ts, parse_ts
from ledger.log.db import read_transaction
from ledger.log.entry import Entry, decode_entry
from ledger.log.schema import entries

GRANT_STATUSES = ("proposed", "approved", "rejected", "disbursed", "cancelled")
MAX_PAGE = 200


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
    ts: str  # when the decision was logged


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
    deadline: str | None = None  # urgent grants: the pool's promise to decide by then
    overdue: bool = False  # urgent, still proposed, and past its deadline (queue only)
    age_seconds: int | None = None  # since the proposal, for grants still proposed (queue only)


@dataclass(frozen=True)
class GrantPage:
    items: tuple[GrantView, ...]
    next: int | None


@dataclass(frozen=True)
class VoteResult:
    """A vote as cast, and the grant as that vote left it."""

    vote: Written
    grant: int
    status: str
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    decision: DecisionView | None


# -- grants ---------------------------------------------------------------------------------


def _queue_rank(cutoff: str) -> Any:
    """0 for overdue urgent grants (proposed at or before ``cutoff``), 1 for other urgent
    grants, 2 for the rest: the queue's order before the ids."""
    overdue = and_(
        grants.c.urgency == "urgent", grants.c.status == "proposed", grants.c.proposed_ts <= cutoff
    )
    return case((overdue, 0), (grants.c.urgency == "urgent", 1), else_=2)


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


Texts = dict[str, str | None]


def _texts(conn: Connection, commitments: Sequence[str | None]) -> Texts:
    """commitment -> text (None once redacted) of the version-2 texts among ``commitments``."""
    wanted = [c for c in commitments if c is not None]
    if not wanted:
        return {}
    return {c: served.text for c, served in served_texts(conn, wanted).items()}


def _text(text: str | None, commitment: str | None, texts: Texts) -> str | None:
    """A projected text column pair as shown: version 1's text, or version 2's from
    ``public_texts`` (REDACTED when it is not served)."""
    if commitment is None:
        return text
    served = texts.get(commitment)
    return REDACTED if served is None else served


def _grant_view(row: Any, tally: dict[str, int], texts: Texts, **extra: Any) -> GrantView:
    return GrantView(
        id=int(row.id),
        pool=row.pool,
        amount=row.amount,
        currency=row.currency,
        purpose=_text(row.purpose, row.purpose_commitment, texts) or "",
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
    now: datetime | None = None,
) -> GrantPage:
    """A pool's grants: urgent ones past the pool's decision deadline ``now`` first (with
    their age and deadline), then the other urgent ones, then the rest, oldest first within
    each; ``after`` is the last id seen. Without ``now``, no grant counts as overdue."""
    if status is not None and status not in GRANT_STATUSES:
        raise RuleViolation(f"status must be one of {GRANT_STATUSES}", "invalid_status")
    if not 1 <= limit <= MAX_PAGE:
        raise RuleViolation(f"limit must be 1 to {MAX_PAGE}", "invalid_limit")
    with read_transaction(engine) as conn:
        pool_row(conn, pool)
        deadline = pool_policy(conn, pool).deadline
        cutoff = "" if now is None else format_ts(now - deadline)
        rank_of = _queue_rank(cutoff)
        where = [grants.c.pool == pool]
        if status is not None:
            where.append(grants.c.status == status)
        if after is not None:
            rank = conn.execute(
                select(rank_of).where(and_(grants.c.id == after, grants.c.pool == pool))
            ).scalar()
            if rank is None:
                raise RuleViolation(f"after={after} is not a grant of {pool!r}", "invalid_cursor")
            where.append(or_(rank_of > rank, and_(rank_of == rank, grants.c.id > after)))
        rows = conn.execute(
            select(grants).where(and_(*where)).order_by(rank_of, grants.c.id).limit(limit + 1)
        ).all()
        page = rows[:limit]
        tallies = _tallies(conn, [int(r.id) for r in page])
        texts = _texts(conn, [r.purpose_commitment for r in page])
        items = tuple(
            _grant_view(r, tallies.get(int(r.id), {}), texts, **_urgency(r, deadline, now))
            for r in page
        )
    return GrantPage(items, next=items[-1].id if len(rows) > limit else None)


def _urgency(row: Any, deadline: timedelta, now: datetime | None) -> dict[str, Any]:
    """A queued grant's deadline, whether it is overdue ``now``, and its age while open."""
    proposed = parse_ts(row.proposed_ts)
    due = proposed + deadline
    is_open = row.status == "proposed" and now is not None
    return {
        "deadline": format_ts(due) if row.urgency == "urgent" else None,
        "overdue": is_open and row.urgency == "urgent" and now is not None and due <= now,
        "age_seconds": (now - proposed) // timedelta(seconds=1) if is_open and now else None,
    }


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
        ts=entry.ts,
    )


def grant_detail(engine: Engine, grant_id: int) -> GrantView:
    """One grant with every vote (void ones flagged) and the decision, if any."""
    with read_transaction(engine) as conn:
        return grant_details(conn, [grant_row(conn, grant_id)])[0]


def grant_details(conn: Connection, rows: Sequence[Any]) -> list[GrantView]:
    """Grants with their votes and decisions, read with one query for each."""
    ids = [int(row.id) for row in rows]
    cast: dict[int, list[VoteView]] = {grant_id: [] for grant_id in ids}
    ballots = conn.execute(
        select(votes).where(votes.c.grant_id.in_(ids)).order_by(votes.c.seq)
    ).all()
    commitments = [row.purpose_commitment for row in rows]
    texts = _texts(conn, [*commitments, *(v.note_commitment for v in ballots)])
    for v in ballots:
        cast[int(v.grant_id)].append(
            VoteView(
                seq=int(v.seq),
                member=v.member,
                collective=v.collective,
                vote=v.vote,
                note=_text(v.note, v.note_commitment, texts),
                cycle=int(v.cycle),
                void=bool(v.void),
            )
        )
    decided = [int(row.decided_seq) for row in rows if row.decided_seq is not None]
    decisions = {entry.seq: _decision(entry) for entry in load_entries(conn, decided)}
    details = []
    for row in rows:
        grant_votes = tuple(cast[int(row.id)])
        tally = {
            "approve": sum(1 for v in grant_votes if v.vote == "approve" and not v.void),
            "reject": sum(1 for v in grant_votes if v.vote == "reject" and not v.void),
        }
        decision = None if row.decided_seq is None else decisions[int(row.decided_seq)]
        details.append(_grant_view(row, tally, texts, votes=grant_votes, decision=decision))
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
        return grant_details(conn, rows)


def vote_result(engine: Engine, seq: int) -> VoteResult:
    """The vote at ``seq`` and the grant as it left it: decided by it, or the ballots that
    counted at that moment (the log's own record, so a replay renders the same)."""
    with read_transaction(engine) as conn:
        vote = load_entry(conn, seq)
        if vote.kind != "vote_cast":
            raise LedgerError(f"entry {seq} is a {vote.kind}, not a vote")
        grant_id = int(vote.data["grant"])
        following = conn.execute(select(entries.c.body).where(entries.c.seq == seq + 1)).scalar()
        decided = None if following is None else decode_entry(bytes(following))
        if decided is not None and (
            decided.kind != "grant_decided" or decided.data["grant"] != grant_id
        ):
            decided = None
        served = served_for(conn, vote)
        if decided is not None:
            decision = _decision(decided)
            return VoteResult(
                vote=written_entry(vote, served),
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
            vote=written_entry(vote, served),
            grant=grant_id,
            status="proposed",
            approvals=tuple(sorted(m for m, v in counted if v == "approve")),
            rejections=tuple(sorted(m for m, v in counted if v == "reject")),
            decision=None,
        )
