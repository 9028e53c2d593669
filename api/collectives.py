"""Collectives and their members (each new member gets a token, shown once)."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor, idempotency_key, idempotency_scope, replay_headers
from api.blueprint import Blueprint
from ledger.fund import access, views

blp = Blueprint(
    "collectives",
    __name__,
    url_prefix="/api/v1",
    description="Collectives that take custody in turn, their members and quorum.",
)

Reply = tuple[Any, int, dict[str, str]]


@blp.route("/collectives", methods=["GET"])
@blp.response(200, schemas.Collective(many=True))
def list_collectives() -> list[views.CollectiveView]:
    """List collectives with their active members (pseudonyms) and quorum."""
    return views.list_collectives(db.get_engine())


@blp.route("/collectives", methods=["POST"])
@blp.arguments(schemas.NewCollective)
@blp.response(201, schemas.CollectiveRegistered)
def register_collective(body: dict[str, Any]) -> Reply:
    """Register a collective (admin); quorum defaults to a majority of active members."""
    fund = db.get_fund()
    outcome = fund.register_collective(current_actor(), idempotency_key=idempotency_key(), **body)
    written = views.written(db.get_engine(), outcome.seq, "collective_registered")
    return written, 201, replay_headers(outcome)


@blp.route("/collectives/<slug:slug>", methods=["GET"])
@blp.response(200, schemas.Collective)
def get_collective(slug: str) -> views.CollectiveView:
    """One collective with its active members and quorum."""
    return views.collective_detail(db.get_engine(), slug)


@blp.route("/collectives/<slug:slug>/members", methods=["POST"])
@blp.arguments(schemas.NewMember)
@blp.response(201, schemas.MemberAdded)
def add_member(body: dict[str, Any], slug: str) -> Reply:
    """Add a member by pseudonym (admin) and issue the member's token, shown once.

    A replay (same Idempotency-Key and body) returns the same member and token id, but
    never the token itself again: it is stored only as a hash."""
    actor, member = current_actor(), body["member"]
    outcome = db.get_fund().add_member(
        actor, slug, member=member, idempotency_key=idempotency_key()
    )
    engine = db.get_engine()
    token = access.issue_token(
        engine,
        actor,
        role="member",
        collective=slug,
        member=member,
        label=f"member {member} of {slug}",
        now=db.get_clock().now(),
        idempotency_scope=f"{idempotency_scope()}|member-token",
    )
    entry = views.written(engine, outcome.seq, "member_added")
    return {"entry": entry, "token": token}, 201, replay_headers(outcome)
