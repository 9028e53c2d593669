"""Redaction of public text by an admin: the text goes, a ``text_redacted`` entry says why.

``POST /api/v1/redactions`` with ``{"commitment", "reason"}`` (admin token, Idempotency-Key)
removes the text and salt behind a commitment of entry data version 2 from every public
output and appends a ``text_redacted`` entry naming the commitment and the reason code, never
the text. Every hash and proof stays valid. ``lunaria redact`` does the same from the command
line (:mod:`api.redact_cli`).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields

from api import db
from api.auth import current_actor, idempotency_key, replay_headers
from api.blueprint import Blueprint
from ledger.fund import REASONS, views

blp = Blueprint(
    "redactions",
    __name__,
    url_prefix="/api/v1",
    description="Redacting public text (admin): the text goes, its commitment and every "
    "proof stay.",
)


class NewRedaction(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    commitment = fields.String(
        required=True,
        metadata={
            "description": "The commitment of the text, as served in an entry's texts",
            "pattern": "^[0-9a-f]{64}$",
        },
    )
    reason = fields.String(required=True, metadata={"enum": list(REASONS)})


def _data(field: fields.Field[Any], name: str) -> fields.Field[Any]:
    field.attribute = f"data.{name}"
    return field


class RedactionWritten(ma.Schema):
    seq = fields.Integer(metadata={"description": "The text_redacted entry"})
    ts = fields.String()
    entry_hash = fields.String(metadata={"description": "RFC 9162 leaf hash, hex"})
    commitment = _data(fields.String(), "commitment")
    entry = _data(fields.Integer(metadata={"description": "The entry holding it"}), "entry")
    field = _data(fields.String(metadata={"description": "Where in that entry's data"}), "field")
    pool = _data(fields.String(allow_none=True), "pool")
    reason = _data(fields.String(metadata={"enum": list(REASONS)}), "reason")


@blp.route("/redactions", methods=["POST"])
@blp.arguments(NewRedaction)
@blp.response(201, RedactionWritten)
def redact(body: dict[str, Any]) -> tuple[Any, int, dict[str, str]]:
    """Redact the public text behind a commitment (admin). 404 ``text_not_found`` for a
    commitment no text has (texts of entry data version 1 are inside their entries and
    cannot be redacted), 409 ``already_redacted``, 422 ``invalid_reason``."""
    outcome = db.get_fund().redact_text(
        current_actor(), body["commitment"], body["reason"], idempotency_key()
    )
    written = views.written(db.get_engine(), outcome.seq, "text_redacted")
    return written, 201, replay_headers(outcome)
