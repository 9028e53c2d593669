"""Grants: proposals, the custodian's queue, votes, disbursement and cancellation."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor, idempotency_key, replay_headers
from api.blueprint import Blueprint
from ledger.fund import views

blp = Blueprint(
    "grants",
    __name__,
    url_prefix="/api/v1",
    description="Grant proposals, the queue (overdue urgent first, then urgent, then oldest), "
    "votes and payouts.",
)

Reply = tuple[Any, int, dict[str, str]]
GRANT = "/grants/<int(max=9007199254740991):grant_id>"


@blp.route("/pools/<slug:slug>/grants", methods=["GET"])
@blp.arguments(schemas.GrantQuery, location="query")
@blp.response(200, schemas.GrantPage)
def grant_queue(query: dict[str, Any], slug: str) -> views.GrantPage:
    """The pool's grants: urgent ones past the pool's decision deadline first (with their
    age and deadline), then other urgent ones, then the rest, oldest first; filter by status,
    page with after."""
    return views.grant_queue(db.get_engine(), slug, **query, now=db.get_clock().now())


@blp.route("/pools/<slug:slug>/grants", methods=["POST"])
@blp.arguments(schemas.NewGrant)
@blp.response(201, schemas.GrantProposed)
def propose_grant(body: dict[str, Any], slug: str) -> Reply:
    """Propose a grant (member, applicant, admin). The recipient is a pseudonym; details
    for paying them stay private."""
    outcome = db.get_fund().propose_grant(current_actor(), slug, body, idempotency_key())
    written = views.written(db.get_engine(), outcome.seq, "grant_proposed")
    return written, 201, replay_headers(outcome)


@blp.route(GRANT, methods=["GET"])
@blp.response(200, schemas.Grant)
def get_grant(grant_id: int) -> views.GrantView:
    """One grant with every vote (void ones flagged) and its decision."""
    return views.grant_detail(db.get_engine(), grant_id)


@blp.route(f"{GRANT}/votes", methods=["POST"])
@blp.arguments(schemas.NewVote)
@blp.response(201, schemas.VoteResult)
def cast_vote(body: dict[str, Any], grant_id: int) -> Reply:
    """Vote (a member of the pool's current custodian; not the proposer; once).

    With fast_lane, one member approves an urgent grant alone, within the pool's per-grant
    cap and what is left of this cycle's allowance. With overdue, one member approves alone
    an urgent grant past the pool's decision deadline, within the cap (the allowance does not
    limit it), where the pool's policy allows it."""
    outcome = db.get_fund().cast_vote(
        current_actor(), grant_id, idempotency_key=idempotency_key(), **body
    )
    return views.vote_result(db.get_engine(), outcome.seq), 201, replay_headers(outcome)


@blp.route(f"{GRANT}/disbursements", methods=["POST"])
@blp.arguments(schemas.NewDisbursement)
@blp.response(201, schemas.GrantDisbursed)
def disburse(body: dict[str, Any], grant_id: int) -> Reply:
    """Record the payout of an approved grant (custodian member, treasurer)."""
    outcome = db.get_fund().disburse(
        current_actor(), grant_id, idempotency_key=idempotency_key(), **body
    )
    written = views.written(db.get_engine(), outcome.seq, "grant_disbursed")
    return written, 201, replay_headers(outcome)


@blp.route(f"{GRANT}/cancel", methods=["POST"])
@blp.arguments(schemas.Cancellation)
@blp.response(200, schemas.GrantCancelled)
def cancel(body: dict[str, Any], grant_id: int) -> Reply:
    """Cancel a proposed or approved grant (admin, its proposer, a custodian member); an
    approved grant's commitment returns to the available balance."""
    outcome = db.get_fund().cancel(
        current_actor(), grant_id, idempotency_key=idempotency_key(), **body
    )
    written = views.written(db.get_engine(), outcome.seq, "grant_cancelled")
    return written, 200, replay_headers(outcome)
