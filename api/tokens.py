"""API tokens: admins issue them (shown once) and revoke them; a token may revoke itself."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor, current_token, idempotency_scope, replay_headers
from api.blueprint import Blueprint
from ledger.fund import access

blp = Blueprint(
    "tokens",
    __name__,
    url_prefix="/api/v1",
    description="Bearer tokens (admin): random, shown once, stored hashed.",
)

TOKEN = "/tokens/<token_id>"


@blp.route("/tokens", methods=["POST"])
@blp.arguments(schemas.NewToken)
@blp.response(201, schemas.IssuedToken)
def issue_token(body: dict[str, Any]) -> tuple[Any, int, dict[str, str]]:
    """Issue a token (admin). Member tokens name an active member and their collective.

    A replay returns the same token id and metadata with ``token: null``: the secret is
    shown only once."""
    issued = access.issue_token(
        db.get_engine(),
        current_actor(),
        now=db.get_clock().now(),
        idempotency_scope=idempotency_scope(),
        **body,
    )
    return issued, 201, replay_headers(issued.replayed)


@blp.route(TOKEN, methods=["DELETE"])
@blp.response(204)
def delete_token(token_id: str) -> None:
    """Revoke a token (admin, or the token itself)."""
    access.revoke_token(db.get_engine(), token_id, db.get_clock().now(), by=current_token())


@blp.route(f"{TOKEN}/revoke", methods=["POST"])
@blp.response(200, schemas.Token)
def revoke_token(token_id: str) -> access.TokenInfo:
    """Revoke a token (admin, or the token itself); revoking twice changes nothing."""
    return access.revoke_token(db.get_engine(), token_id, db.get_clock().now(), by=current_token())
