"""Recurring pledges, anonymously: the JSON API (``POST /api/v1/pools/{slug}/pledges``,
``GET``/``DELETE /api/v1/pledges/{secret}``, no account) and the web pages (the form
``/pools/<slug>/pledge``, the donor's secret link ``/pledges/<secret>`` and its end button).

A pledge takes a currency and an amount per cycle, nothing personal; the answer gives the
pledge's secret link and its payment reference, once. Posts (API and form) count against
``LUNARIA_RATE_LIMIT_PLEDGES`` per client address (:mod:`api.throttle`) and are limited to
1 KiB; the forms carry a CSRF token (:mod:`api.sessions`). Every answer that names a secret or
a reference is ``Cache-Control: no-store``. The ledger's side is :mod:`ledger.fund.pledges`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint as PageBlueprint
from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from api import db, public_url, schemas, sessions, throttle, web
from api.auth import public_write
from api.blueprint import Blueprint, body_limit
from api.docs import PUBLIC_WRITE
from ledger.errors import EncodingError, NotFound, RuleViolation
from ledger.fund import (
    PledgeStatus,
    create_pledge,
    cycle_pledge_figures,
    end_pledge,
    minor_units,
    pledge_status,
    pool_pledge_figures,
    views,
)

PLEDGE_BODY_LIMIT = 1024

blp = Blueprint(
    "pledges",
    __name__,
    url_prefix="/api/v1",
    description="Recurring pledges: no account, a secret link, a payment reference.",
)
bp = PageBlueprint("pledge_pages", __name__)


def _link(secret: str) -> str:
    return public_url.get() + url_for("pledge_pages.status", secret=secret)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


blp.after_request(_no_store)


# -- the API --------------------------------------------------------------------------------


@blp.route("/pools/<slug:slug>/pledges", methods=["POST"])
@public_write
@blp.doc(**PUBLIC_WRITE)
@body_limit(PLEDGE_BODY_LIMIT)
@throttle.per_client_address(throttle.PLEDGES)
@blp.arguments(schemas.NewPledge)
@blp.response(201, schemas.PledgeMade)
def make_pledge(body: dict[str, Any], slug: str) -> dict[str, Any]:
    """Pledge an amount (minor units) of a currency per lunar cycle to a pool; no account,
    no token. The answer (shown once) holds the secret link and the payment reference to put
    in every transfer. Nothing personal is asked or kept."""
    made = create_pledge(db.get_fund(), slug, body["currency"], body["amount"])
    return dict(made.__dict__, link=_link(made.secret))


@blp.route("/pledges/<secret>", methods=["GET"])
@blp.response(200, schemas.PledgeStatus)
def get_pledge(secret: str) -> Any:
    """The pledge behind a secret: amount, state (active, lapsed, ended), payments per cycle."""
    return _status_json(pledge_status(db.get_fund(), secret))


@blp.route("/pledges/<secret>", methods=["DELETE"])
@public_write
@blp.doc(**PUBLIC_WRITE)
@blp.response(200, schemas.PledgeStatus)
def delete_pledge(secret: str) -> Any:
    """End the pledge behind a secret; ending it again changes nothing (idempotent)."""
    return _status_json(end_pledge(db.get_fund(), secret))


def _status_json(status: PledgeStatus) -> dict[str, Any]:
    payments = [{"cycle": cycle, "amount": amount} for cycle, amount in status.payments]
    return dict(status.__dict__, payments=payments)


# -- the pages ------------------------------------------------------------------------------


@bp.after_request
def _private(response: Response) -> Response:
    return sessions.remember_csrf_cookie(_no_store(response))


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response | tuple[str, int]:
    return web.error_page(404) or ("not found", 404)


@bp.app_context_processor
def _figures() -> dict[str, Any]:
    """``pledge_figures(slug)`` and ``cycle_pledge_figures(slug, number)`` for the pool and
    cycle pages: aggregates only."""

    def now_figures(slug: str) -> Any:
        return pool_pledge_figures(db.get_engine(), slug, db.get_clock().now())

    def of_cycle(slug: str, number: int) -> Any:
        return cycle_pledge_figures(db.get_engine(), slug, number)

    return {"pledge_figures": now_figures, "cycle_pledge_figures": of_cycle}


def _form(slug: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    pool = views.pool_detail(db.get_engine(), slug, db.get_clock().now())
    return render_template("web/pledge.html", pool=pool, **extra), status


@bp.route("/pools/<slug>/pledge", methods=["GET"])
def pledge_form(slug: str) -> tuple[str, int]:
    return _form(slug, values={})


@bp.route("/pools/<slug>/pledge", methods=["POST"])
@body_limit(PLEDGE_BODY_LIMIT)
@throttle.per_client_address(throttle.PLEDGES)
def pledge_sent(slug: str) -> tuple[str, int]:
    """Keep the pledge; answer with its secret link and payment reference (shown this once)."""
    sessions.require_csrf()
    values = {name: request.form.get(name, "").strip() for name in ("amount", "currency")}
    try:
        amount = minor_units(values["amount"], values["currency"])
        made = create_pledge(db.get_fund(), slug, values["currency"], amount)
    except (RuleViolation, EncodingError) as exc:
        return _form(slug, 422, values=values, error=exc)
    page = render_template("web/pledge_made.html", made=made, link=_link(made.secret))
    return page, 201


@bp.route("/pledges/<secret>", methods=["GET"])
def status(secret: str) -> str:
    """The donor's own page: the pledge, its reference, its payments, and an end button."""
    found = pledge_status(db.get_fund(), secret)
    pool = views.pool_detail(db.get_engine(), found.pool, db.get_clock().now())
    return render_template("web/pledge_status.html", found=found, pool=pool, secret=secret)


@bp.route("/pledges/<secret>/end", methods=["POST"])
@body_limit(PLEDGE_BODY_LIMIT)
def end(secret: str) -> BaseResponse:
    """End the pledge (idempotent) and show its page again."""
    sessions.require_csrf()
    end_pledge(db.get_fund(), secret)
    return redirect(url_for("pledge_pages.status", secret=secret), 303)
