"""Members' browser sessions: the cookie, the CSRF token of every form, and the one host name.

The session lives in the database (:mod:`ledger.fund.sign_in`); the cookie carries only its
random secret: ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (no other site's form posts
with it), ``Secure`` when the public URL is https, no ``Max-Age`` (the server ends it after 12
idle hours, or at sign-out). Every state-changing workspace form carries a CSRF token: the
session's own once signed in, before that a random one in a ``SameSite=Strict`` cookie that
the form must repeat (double submit). A missing or wrong token is refused before anything is
read or written.

Passkeys are bound to a host name (the WebAuthn RP ID) and an origin, both taken from
``LUNARIA_PUBLIC_URL`` (:mod:`api.public_url`), never from the request; a workspace request
that arrives by another host name (``127.0.0.1`` for ``localhost``) is sent to the public URL.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Response, abort, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from api import db, public_url
from ledger.errors import LedgerError
from ledger.fund import MemberSession, SignInRefused, csrf_matches, session_for

SESSION_COOKIE = "lunaria_session"
CSRF_COOKIE = "lunaria_csrf"
CEREMONY_COOKIE = "lunaria_ceremony"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
R = TypeVar("R", bound=BaseResponse)
_SESSION = "lunaria.session"  # request.environ: the session found for this request
_NEW_CSRF = "lunaria.new_csrf"  # request.environ: an anonymous CSRF token made now


def rp_id() -> str:
    """The WebAuthn relying party id: the public URL's host name."""
    return urlsplit(public_url.get()).hostname or "localhost"


def expected_origin() -> str:
    return public_url.get()


def secure_cookies() -> bool:
    return public_url.get().startswith("https://")


def redirect_to_public_host() -> BaseResponse | None:
    """``before_request`` of the workspace: the same path on the public URL's host, if the
    request came by another (a passkey made there would not work here)."""
    wanted = urlsplit(public_url.get())
    if request.host.lower() == wanted.netloc and request.scheme == wanted.scheme:
        return None
    if (
        wanted.scheme == "https"
        and request.scheme == "http"
        and request.host.lower() == wanted.netloc
    ):
        return None  # behind a TLS proxy without LUNARIA_PROXY_HOPS: the host is what counts
    return redirect(public_url.get() + request.full_path.rstrip("?"), code=303)


def current_session() -> MemberSession | None:
    """The request's member session (looked up once per request), or None."""
    if _SESSION not in request.environ:  # (per request: an app context may outlive one)
        secret = request.cookies.get(SESSION_COOKIE)
        found = None
        if secret:
            try:
                found = session_for(db.get_engine(), secret, db.get_clock().now())
            except SignInRefused:
                found = None
        request.environ[_SESSION] = found
    session: MemberSession | None = request.environ[_SESSION]
    return session


def csrf_token() -> str:
    """The token the page's forms carry: the session's, else the anonymous cookie's (made
    now if the browser has none; :func:`remember_csrf_cookie` sets it on the response)."""
    session = current_session()
    if session is not None:
        return session.csrf
    token = request.cookies.get(CSRF_COOKIE) or request.environ.get(_NEW_CSRF)
    if not token:
        token = request.environ[_NEW_CSRF] = secrets.token_urlsafe(32)
    return str(token)


def remember_csrf_cookie(response: Response) -> Response:
    new = request.environ.get(_NEW_CSRF)
    if new:
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="Strict", secure=secure_cookies()
        )
    return response


def require_csrf() -> None:
    """Refuse (403) a state-changing request without the right CSRF token."""
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    session = current_session()
    if session is not None:
        if csrf_matches(session, sent):
            return
    else:
        cookie = request.cookies.get(CSRF_COOKIE)
        if sent and cookie and hmac.compare_digest(sent.encode(), cookie.encode()):
            return
    abort(403, "the form's CSRF token is missing or wrong: reload the page and try again")


def start_session(response: R, secret: str) -> R:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(),
        path="/",
    )
    return response


def end_session_cookie(response: R) -> R:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax")
    return response


def signed_in() -> MemberSession:
    """The member session, or a 401 that the workspace turns into the sign-in page."""
    session = current_session()
    if session is None:
        raise NotSignedIn("this page needs a signed-in member")
    return session


class NotSignedIn(LedgerError):
    """The workspace needs a signed-in member."""

    code = "not_signed_in"
