"""Corrections: a mistaken donation or disbursement is reversed by a new entry, never edited."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor, idempotency_key, replay_headers
from api.blueprint import Blueprint
from ledger.fund import views

blp = Blueprint(
    "corrections",
    __name__,
    url_prefix="/api/v1",
    description="Reversing entries for mistaken donations and disbursements.",
)


@blp.route("/corrections", methods=["POST"])
@blp.arguments(schemas.NewCorrection)
@blp.response(201, schemas.CorrectionWritten)
def correct(body: dict[str, Any]) -> tuple[Any, int, dict[str, str]]:
    """Reverse a donation or disbursement by its seq (treasurer, admin)."""
    outcome = db.get_fund().correct(current_actor(), idempotency_key=idempotency_key(), **body)
    written = views.written(db.get_engine(), outcome.seq, "correction")
    return written, 201, replay_headers(outcome)
