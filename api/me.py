"""Who am I: ``GET /api/v1/me`` and ``GET /api/v1/me/queue``, for a bearer token or a member's
workspace session cookie alike; and an admin's ``POST .../revoke-access``, which ends a
member's sessions and passkeys at once.

A bearer token, when the request has one, decides (a bad one is a 401 even with a good
cookie); otherwise the session cookie. The cookie is only ever read for these two GETs: every
other API write needs a bearer token (:mod:`api.auth`), so no API call can be forged from
another site with a member's cookie.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from marshmallow import fields

from api import db, schemas, sessions
from api.auth import authenticate_request, current_actor
from api.blueprint import Blueprint
from api.docs import TOKEN_READ
from ledger.fund import Actor, Unauthorized, my_queue, revoke_member_access, workspace_me

blp = Blueprint(
    "me",
    __name__,
    url_prefix="/api/v1",
    description="Who the caller is, what their collective holds, what waits for their vote.",
)


class Custody(ma.Schema):
    pool = fields.String()
    name = fields.String()
    holds_now = fields.Boolean()
    until = fields.String(allow_none=True, metadata={"description": "End of the current cycle"})
    next_from = fields.String(allow_none=True)
    next_until = fields.String(allow_none=True)


class Me(ma.Schema):
    actor = fields.String(metadata={"description": "The pseudonymous id the log records"})
    role = fields.String()
    collective = fields.String(allow_none=True)
    member = fields.String(allow_none=True)
    custody = fields.List(fields.Nested(Custody))


class QueuedGrant(ma.Schema):
    grant = fields.Nested(schemas.GrantSummary)
    my_vote = fields.String(allow_none=True)
    waiting_for_me = fields.Boolean()


class MyQueue(ma.Schema):
    items = fields.List(fields.Nested(QueuedGrant))


class AccessRevoked(ma.Schema):
    removed = fields.Integer(metadata={"description": "Sessions, passkeys, codes, invitations"})


def _caller() -> Actor:
    """The bearer token's actor if one is sent, else the member session's."""
    if "Authorization" in request.headers:
        return authenticate_request().actor
    session = sessions.current_session()
    if session is None:
        raise Unauthorized("this needs a bearer token or a workspace session")
    return session.actor


@blp.route("/me", methods=["GET"])
@blp.doc(**TOKEN_READ)
@blp.response(200, Me)
def me() -> Any:
    """Who you are: the actor, role, collective, and the pools your collective holds now
    (until when) and next."""
    return workspace_me(db.get_engine(), _caller(), db.get_clock().now())


@blp.route("/me/queue", methods=["GET"])
@blp.doc(**TOKEN_READ)
@blp.response(200, MyQueue)
def queue() -> dict[str, Any]:
    """The open grants of the pools your collective holds now, overdue urgent first; each
    says whether it waits for your vote (empty for anyone but a member)."""
    return {"items": my_queue(db.get_engine(), _caller(), db.get_clock().now())}


@blp.route("/collectives/<slug:slug>/members/<member>/revoke-access", methods=["POST"])
@blp.response(200, AccessRevoked)
def revoke_access(slug: str, member: str) -> dict[str, int]:
    """End a member's workspace access at once (admin): every session, passkey, recovery
    code and open invitation. The member stays in the collective."""
    removed = revoke_member_access(db.get_engine(), current_actor(), slug, member)
    return {"removed": removed}
