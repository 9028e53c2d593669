"""Pools: their books, current cycle and custodian, cycles, and the custody roster."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor, idempotency_key, replay_headers
from api.blueprint import Blueprint
from ledger.fund import views

blp = Blueprint(
    "pools",
    __name__,
    url_prefix="/api/v1",
    description="Pools: balances per currency, the lunar cycle, custodian and next handover.",
)

Reply = tuple[Any, int, dict[str, str]]


@blp.route("/pools", methods=["GET"])
@blp.response(200, schemas.Pool(many=True))
def list_pools() -> list[views.PoolView]:
    """List pools with their books, current cycle, custodian and next handover."""
    return views.list_pools(db.get_engine(), db.get_clock().now())


@blp.route("/pools", methods=["POST"])
@blp.arguments(schemas.NewPool)
@blp.response(201, schemas.PoolCreated)
def create_pool(body: dict[str, Any]) -> Reply:
    """Create a pool (admin).

    Amounts of the fast-lane cap and cycle allowance are per currency, in minor units;
    urgent_deadline_hours (1 to 720, default 72) and overdue_approval (default false) are
    the pool's promise on urgent grants."""
    outcome = db.get_fund().create_pool(current_actor(), idempotency_key=idempotency_key(), **body)
    written = views.written(db.get_engine(), outcome.seq, "pool_created")
    return written, 201, replay_headers(outcome)


@blp.route("/pools/<slug:slug>", methods=["GET"])
@blp.response(200, schemas.Pool)
def get_pool(slug: str) -> views.PoolView:
    """One pool: books, current cycle, custodian (from the schedule), next handover."""
    return views.pool_detail(db.get_engine(), slug, db.get_clock().now())


@blp.route("/pools/<slug:slug>/roster", methods=["PUT"])
@blp.arguments(schemas.Roster)
@blp.response(200, schemas.RosterSet)
def set_roster(body: dict[str, Any], slug: str) -> Reply:
    """Set the custody order (admin); it applies from the next cycle (at once for the
    pool's first roster)."""
    outcome = db.get_fund().set_roster(
        current_actor(), slug, body["collectives"], idempotency_key=idempotency_key()
    )
    written = views.written(db.get_engine(), outcome.seq, "roster_set")
    return written, 200, replay_headers(outcome)


@blp.route("/pools/<slug:slug>/response", methods=["GET"])
@blp.response(200, schemas.PoolResponses)
def pool_response(slug: str) -> views.PoolResponses:
    """How fast the pool answers urgent grants: its decision deadline and policy, and per
    cycle (newest first) the urgent grants decided within the deadline out of those decided
    or due, the median time to a decision, and what each handover passed on."""
    return views.pool_responses(db.get_engine(), slug, db.get_clock().now())


@blp.route("/pools/<slug:slug>/cycles", methods=["GET"])
@blp.response(200, schemas.Cycle(many=True))
def list_cycles(slug: str) -> list[views.CycleView]:
    """The pool's lunar cycles, each with its flows and, once handed over, its statement."""
    return views.pool_cycles(db.get_engine(), slug)
