"""Asking for a grant from outside: the public form ``/pools/<slug>/ask`` and the requester's
secret status link ``/requests/<secret>``.

No account: the form takes the amount, currency, urgency (with a short reason), a public purpose
(screened as all public text is, so an email address, phone number or IBAN there is refused)
and private contact details, which go sealed to the private, erasable store
(:mod:`ledger.fund.intake`). Nothing enters the log until a custodian member proposes the
request. Posts are limited per client address (``LUNARIA_RATE_LIMIT_GRANT_REQUESTS``,
:mod:`api.throttle`) and to 8 KiB, and carry a CSRF token (:mod:`api.sessions`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request, url_for

from api import db, public_url, sessions, throttle, web
from api.blueprint import body_limit
from ledger.errors import NotFound, RuleViolation
from ledger.fund import URGENCIES, minor_units, request_status, submit_request, views

bp = Blueprint("asks", __name__)

ASK_BODY_LIMIT = 8 * 1024
FIELDS = ("currency", "amount", "urgency", "urgency_reason", "purpose", "contact")


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return sessions.remember_csrf_cookie(response)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response | tuple[str, int]:
    return web.error_page(404) or ("not found", 404)


def _form(slug: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    pool = views.pool_detail(db.get_engine(), slug, db.get_clock().now())
    page = render_template("web/ask.html", pool=pool, urgencies=URGENCIES, **extra)
    return page, status


@bp.route("/pools/<slug>/ask", methods=["GET"])
def ask(slug: str) -> tuple[str, int]:
    return _form(slug, values={})


@bp.route("/pools/<slug>/ask", methods=["POST"])
@body_limit(ASK_BODY_LIMIT)
@throttle.per_client_address(throttle.GRANT_REQUESTS)
def send(slug: str) -> tuple[str, int]:
    """Keep the request; answer with its secret status link (shown this once)."""
    sessions.require_csrf()
    values = {name: request.form.get(name, "").strip() for name in FIELDS}
    try:
        ask = dict(values, amount=minor_units(values["amount"], values["currency"]))
        _, secret = submit_request(db.get_log(), db.get_vault(), slug, ask, db.get_clock().now())
    except RuleViolation as exc:
        return _form(slug, 422, values=values, error=exc)
    link = public_url.get() + url_for("asks.status", secret=secret)
    return render_template("web/ask_sent.html", link=link), 201


@bp.route("/requests/<secret>", methods=["GET"])
def status(secret: str) -> str:
    """Where the request stands: received, proposed, decided (approved or rejected), paid."""
    found = request_status(db.get_engine(), secret)
    return render_template("web/ask_status.html", found=found)
