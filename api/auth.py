"""Who is asking, and under which Idempotency-Key.

Public reads need nothing. Every write (POST, PUT, PATCH, DELETE) under the API needs a bearer
token; every POST and PUT also needs an ``Idempotency-Key`` header and, when it has a body, a
JSON one. :func:`guard_writes` checks all of that before the body is read, so a refused
request never reaches the ledger. Which roles may do what is the ledger's rule, not ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from api import db, throttle
from api.errors import ApiProblem
from ledger.fund import Actor, Outcome, TokenInfo, Unauthorized, authenticate

API_PREFIX = "/api/v1/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEYED_METHODS = frozenset({"POST", "PUT"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# The ledger scopes keys by actor ("member:<64-char pseudonym>|<key>") in a 200-character
# column; 128 visible ASCII characters leave room for the longest actor id.
MAX_IDEMPOTENCY_KEY = 128
_PUBLIC = "lunaria_public_write"
F = TypeVar("F", bound=Callable[..., Any])
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}\Z")


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None without the header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must read 'Bearer <token>'")
    return token.strip()


def _idempotency_key() -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or key == "":
        raise ApiProblem(
            "idempotency_key_required",
            f"{request.method} needs an {IDEMPOTENCY_HEADER} header: a unique string per "
            "intended change, sent again unchanged on every retry",
        )
    if not _KEY.match(key):
        raise ApiProblem(
            "invalid_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters",
        )
    return key


def authenticate_request() -> TokenInfo:
    """The request's token; a client address past its failures limit is refused first, even
    with a good token, so guessing on after the limit learns nothing."""
    address = throttle.client_address()
    throttle.refuse_if_spent(throttle.AUTH_FAILURES, address)
    try:
        return authenticate(db.get_engine(), bearer_token(), db.get_clock().now())
    except Unauthorized:
        throttle.count(throttle.AUTH_FAILURES, address)
        raise


def public_write(view: F) -> F:
    """Mark an API write that needs no token and no Idempotency-Key (an anonymous pledge):
    :func:`guard_writes` then only requires a JSON body. Such a view limits itself (per client
    address, :func:`api.throttle.per_client_address`)."""
    setattr(view, _PUBLIC, True)
    return view


def _is_public_write() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _PUBLIC, False))


def guard_writes() -> None:
    """``before_request``: authenticate writes, require their key and a JSON body."""
    if (
        request.method not in WRITE_METHODS
        or request.url_rule is None
        or not request.path.startswith(API_PREFIX)
    ):
        return
    if _is_public_write():
        _require_json()
        return
    g.lunaria_token = authenticate_request()
    throttle.count(throttle.WRITES, g.lunaria_token.id)
    if request.method in KEYED_METHODS:
        g.lunaria_idempotency_key = _idempotency_key()
    _require_json()


def _require_json() -> None:
    if request.content_length and not request.is_json:
        raise ApiProblem(
            "unsupported_media_type",
            f"the body is {request.mimetype or 'untyped'}; send application/json",
        )


def current_token() -> TokenInfo:
    token: TokenInfo = g.lunaria_token
    return token


def current_actor() -> Actor:
    """The pseudonymous actor of the request's token."""
    return current_token().actor


def idempotency_key() -> str:
    key: str = g.lunaria_idempotency_key
    return key


def idempotency_scope() -> str:
    """The key as the ledger scopes it: per actor, so two clients never collide."""
    return f"{current_actor().id}|{idempotency_key()}"


def replay_headers(outcome: Outcome | bool) -> dict[str, str]:
    """``Idempotent-Replayed: true`` on a response that repeats an earlier one."""
    replayed = outcome if isinstance(outcome, bool) else outcome.replayed
    return {REPLAYED_HEADER: "true" if replayed else "false"}
