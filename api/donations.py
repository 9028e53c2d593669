"""Donations: recorded once (by Idempotency-Key), answered with the donor's receipt."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor, idempotency_key, replay_headers
from api.blueprint import Blueprint, body_limit
from ledger.fund import views

# A full batch of 1,000 donations is larger than the 64 KiB every other body is held to.
BATCH_BODY_LIMIT = 1024 * 1024

blp = Blueprint(
    "donations",
    __name__,
    url_prefix="/api/v1",
    description="Donations in: one, or a batch of up to 1,000 (all or nothing).",
)

Reply = tuple[Any, int, dict[str, str]]


@blp.route("/pools/<slug:slug>/donations", methods=["POST"])
@blp.arguments(schemas.NewDonation)
@blp.response(201, schemas.Receipt)
def record_donation(body: dict[str, Any], slug: str) -> Reply:
    """Record a donation (treasurer, admin); the receipt's salt is shown to you only.

    The public log holds a commitment SHA-256(salt || donor reference); references and
    notes stay in the private, erasable table."""
    fund = db.get_fund()
    outcome = fund.record_donation(current_actor(), slug, body, idempotency_key())
    (receipt,) = views.recorded_receipts(db.get_engine(), fund.vault, outcome, 1)
    return receipt, 201, replay_headers(outcome)


@blp.route("/pools/<slug:slug>/donations:batch", methods=["POST"])
@body_limit(BATCH_BODY_LIMIT)
@blp.arguments(schemas.DonationBatch)
@blp.response(201, schemas.Receipts)
def record_donations(body: dict[str, Any], slug: str) -> Reply:
    """Record up to 1,000 donations at once, all or nothing (treasurer, admin); body up
    to 1 MiB."""
    batch = body["donations"]
    fund = db.get_fund()
    outcome = fund.record_donations(current_actor(), slug, batch, idempotency_key())
    receipts = views.recorded_receipts(db.get_engine(), fund.vault, outcome, len(batch))
    return {"receipts": receipts}, 201, replay_headers(outcome)
