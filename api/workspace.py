"""The collectives' workspace (``/workspace``): members signed in with a passkey see what their
collective holds, the grant queue, what waits for their vote, the requests from outside, the
members and invitations, and their own passkeys and recovery codes. Treasurers and admins sign
in the same way to staff accounts; their pages and everyone's webhook settings are
:mod:`api.workspace_staff`, routes of this blueprint.

Pages under the site's CSP (no inline script; ``static/workspace.js`` only runs the passkey
ceremonies), in en, es and uk. Every form posts a CSRF token (:mod:`api.sessions`) and a
request key, used as the ledger's idempotency key, so a form sent twice records once. Each
action calls the same ``ledger.fund`` command as the JSON API: the ledger decides who may do
what, and its refusals (a member of another collective voting: ``not_custodian``, 403) come
back as a page with the same status the API would give.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import LazyString, lazy_gettext  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from api import db, public_url, sessions, throttle
from api.errors import PROBLEMS
from api.notifications import delivery_settings
from ledger.errors import LedgerError, NotFound, RuleViolation
from ledger.fund import (
    Actor,
    InvitationRefused,
    SignInRefused,
    check_invitation,
    create_invitation,
    decline_request,
    end_all_sessions,
    end_session,
    intake_list,
    invitations_of,
    mail,
    my_queue,
    new_recovery_codes,
    passkeys_of,
    propose_request,
    recovery_codes_left,
    require_role,
    sign_in_with_recovery_code,
    staff_account,
    views,
    workspace_me,
)

bp = Blueprint("workspace", __name__, url_prefix="/workspace")
bp.before_request(sessions.redirect_to_public_host)

REQUEST_KEY_FIELD = "request_key"
_REQUEST_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")
GRANT = "/grants/<int(max=9007199254740991):grant_id>"
REQUEST = "/requests/<int(max=9007199254740991):request_id>"


# How the pages name roles and donation channels in the reader's language (one place for every
# page that shows them; the values themselves stay as they are in forms, the log and the API).
ROLE_NAMES: dict[str, LazyString] = {
    "admin": lazy_gettext("admin"),
    "treasurer": lazy_gettext("treasurer"),
    "member": lazy_gettext("member"),
    "applicant": lazy_gettext("applicant"),
}
CHANNEL_NAMES: dict[str, LazyString] = {
    "bank": lazy_gettext("bank"),
    "crypto": lazy_gettext("crypto"),
    "cash": lazy_gettext("cash"),
}


@bp.app_template_filter("role_name")
def role_name(role: str) -> str:
    """The role as the reader's language names it (the role itself if none does)."""
    name = ROLE_NAMES.get(role)
    return role if name is None else str(name)


@bp.app_template_filter("channel_name")
def channel_name(channel: str) -> str:
    """The donation channel as the reader's language names it (itself if none does)."""
    name = CHANNEL_NAMES.get(channel)
    return channel if name is None else str(name)


@bp.app_context_processor
def _form_context() -> dict[str, Any]:
    return {
        "csrf_token": sessions.csrf_token,
        "csrf_field": sessions.CSRF_FIELD,
        "new_request_key": lambda: secrets.token_urlsafe(24),
        "request_key_field": REQUEST_KEY_FIELD,
        "current_role": _current_role,
    }


def _current_role() -> str | None:
    """The signed-in role (member, treasurer, admin): which pages the navigation offers."""
    session = sessions.current_session()
    return None if session is None else session.role


@bp.after_request
def _private(response: Response) -> BaseResponse:
    """Nothing of the workspace is cached anywhere; the anonymous CSRF cookie is set."""
    response.headers["Cache-Control"] = "no-store"
    return sessions.remember_csrf_cookie(response)


@bp.errorhandler(sessions.NotSignedIn)
def _not_signed_in(exc: sessions.NotSignedIn) -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return redirect(url_for("workspace.sign_in", next=request.path), code=303)
    return render_template("workspace/error.html", status=401, detail=exc.message), 401


@bp.errorhandler(LedgerError)
def _refused(exc: LedgerError) -> tuple[str, int]:
    """A ledger refusal as a page, with the status the API gives the same code."""
    known = PROBLEMS.get(exc.code)
    if isinstance(exc, InvitationRefused):
        status = 410
    elif known is not None:
        status = known[0]
    else:
        status = 422 if isinstance(exc, RuleViolation) else 403
    if status >= 500:
        raise exc
    page = render_template("workspace/error.html", status=status, detail=exc.message, code=exc.code)
    return page, status


@bp.errorhandler(HTTPException)
def _http_refused(exc: HTTPException) -> tuple[str, int]:
    """A refused form (CSRF token, request key) or an unknown page, in the workspace's look."""
    status = exc.code or 400
    return render_template("workspace/error.html", status=status, detail=exc.description), status


def _actor() -> Actor:
    return sessions.signed_in().actor


def _member() -> Actor:
    """A member's page: staff (treasurers, admins) are refused as the API refuses them."""
    actor = _actor()
    require_role(actor, "member")
    return actor


def _checked_post() -> Actor:
    """A signed-in person's form: the CSRF token first, before anything is read or written;
    then it counts against the writes limit, per person as the API's counts per token."""
    actor = _actor()
    sessions.require_csrf()
    throttle.count(throttle.WRITES, f"workspace:{actor.id}")
    return actor


def _request_key(actor: Actor) -> str:
    key = request.form.get(REQUEST_KEY_FIELD, "")
    if not _REQUEST_KEY.match(key):
        abort(400, "the form has no valid request key: reload the page")
    return f"{actor.id}|web:{key}"


def _back(endpoint: str = "workspace.home", **args: Any) -> BaseResponse:
    return redirect(url_for(endpoint, **args), code=303)


# -- signing in and out ---------------------------------------------------------------------


@bp.route("/sign-in", methods=["GET"])
def sign_in() -> str:
    return render_template("workspace/sign_in.html", refused=False)


@bp.route("/recover", methods=["POST"])
def recover() -> BaseResponse | tuple[str, int]:
    """Sign in with the member's pseudonym and one recovery code (then add a passkey)."""
    sessions.require_csrf()
    address = throttle.client_address()
    throttle.refuse_if_spent(throttle.AUTH_FAILURES, address)  # as for bearer tokens
    member = request.form.get("member", "").strip()
    code = request.form.get("code", "")
    try:
        secret, _ = sign_in_with_recovery_code(db.get_engine(), member, code, db.get_clock().now())
    except SignInRefused:
        throttle.count(throttle.AUTH_FAILURES, address)
        return render_template("workspace/sign_in.html", refused=True), 403
    return sessions.start_session(_back("workspace.account", recovered=1), secret)


@bp.route("/invite/<secret>", methods=["GET"])
def invitation(secret: str) -> str:
    """The invitation's page: register a passkey for the member it names."""
    found = check_invitation(db.get_engine(), secret, db.get_clock().now())
    staff = staff_account(db.get_engine(), found.member)
    return render_template(
        "workspace/invite.html",
        invitation=found,
        secret=secret,
        role=None if staff is None else staff.role,
    )


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> BaseResponse:
    session = sessions.signed_in()
    sessions.require_csrf()
    end_session(db.get_engine(), session)
    return sessions.end_session_cookie(_back("workspace.sign_in"))


@bp.route("/sign-out-everywhere", methods=["POST"])
def sign_out_everywhere() -> BaseResponse:
    session = sessions.signed_in()
    sessions.require_csrf()
    end_all_sessions(db.get_engine(), session.member)
    return sessions.end_session_cookie(_back("workspace.sign_in"))


# -- the queue and votes --------------------------------------------------------------------


STAFF_HOME = {"treasurer": "workspace.treasury", "admin": "workspace.admin"}


@bp.route("", methods=["GET"])
def home() -> str | BaseResponse:
    actor = _actor()
    if actor.role in STAFF_HOME:  # treasurers and admins start at their own page
        return _back(STAFF_HOME[actor.role])
    now = db.get_clock().now()
    me = workspace_me(db.get_engine(), actor, now)
    queue = my_queue(db.get_engine(), actor, now)
    held = [views.pool_detail(db.get_engine(), c.pool, now) for c in me.custody if c.holds_now]
    return render_template(
        "workspace/home.html",
        me=me,
        queue=queue,
        waiting=[q for q in queue if q.waiting_for_me],
        held=held,
        done=request.args.get("done"),
        now=now,
    )


@bp.route(f"{GRANT}/vote", methods=["POST"])
def vote(grant_id: int) -> BaseResponse:
    actor = _checked_post()
    lane = request.form.get("lane", "quorum")
    note = request.form.get("note", "").strip() or None
    db.get_fund().cast_vote(
        actor,
        grant_id,
        vote=request.form.get("vote", ""),
        note=note,
        fast_lane=lane == "fast_lane",
        overdue=lane == "overdue",
        idempotency_key=_request_key(actor),
    )
    return _back(done="voted", _anchor=f"grant-{grant_id}")


@bp.route(f"{GRANT}/cancel", methods=["POST"])
def cancel(grant_id: int) -> BaseResponse:
    actor = _checked_post()
    db.get_fund().cancel(
        actor,
        grant_id,
        reason=request.form.get("reason", "").strip(),
        idempotency_key=_request_key(actor),
    )
    return _back(done="cancelled")


@bp.route(f"{GRANT}/disburse", methods=["POST"])
def disburse(grant_id: int) -> BaseResponse:
    actor = _checked_post()
    db.get_fund().disburse(
        actor,
        grant_id,
        payment_reference=request.form.get("payment_reference", "").strip(),
        idempotency_key=_request_key(actor),
    )
    return _back(done="disbursed")


# -- requests from outside ------------------------------------------------------------------


@bp.route("/requests", methods=["GET"])
def requests_page() -> str:
    actor = _member()
    waiting = intake_list(db.get_engine(), db.get_vault(), actor, db.get_clock().now())
    return render_template(
        "workspace/requests.html", waiting=waiting, done=request.args.get("done")
    )


@bp.route(f"{REQUEST}/propose", methods=["POST"])
def propose(request_id: int) -> BaseResponse:
    actor = _checked_post()
    recipient = request.form.get("recipient", "").strip()
    propose_request(db.get_fund(), actor, request_id, recipient, db.get_clock().now())
    return _back("workspace.requests_page", done="proposed")


@bp.route(f"{REQUEST}/decline", methods=["POST"])
def decline(request_id: int) -> BaseResponse:
    actor = _checked_post()
    decline_request(db.get_engine(), actor, request_id, db.get_clock().now())
    return _back("workspace.requests_page", done="declined")


# -- the collective and the account ---------------------------------------------------------


def _collective_page(actor: Actor, invited: str | None = None) -> str:
    assert actor.collective is not None
    return render_template(
        "workspace/collective.html",
        collective=views.collective_detail(db.get_engine(), actor.collective),
        invitations=invitations_of(db.get_engine(), actor.collective),
        invited=invited,
    )


@bp.route("/collective", methods=["GET"])
def collective() -> str:
    return _collective_page(_member())


@bp.route("/invitations", methods=["POST"])
def invite() -> str:
    """A member invites a fellow member of their collective; the link is shown this once."""
    actor = _checked_post()
    require_role(actor, "member")
    assert actor.collective is not None
    secret = create_invitation(
        db.get_engine(),
        actor.collective,
        request.form.get("member", "").strip(),
        by=actor.id,
        now=db.get_clock().now(),
    )
    return _collective_page(actor, invited=invitation_url(secret))


def invitation_url(secret: str) -> str:
    """The invitation's absolute link, on the public URL (where its passkey will work)."""
    return f"{public_url.get()}/workspace/invite/{secret}"


def _account_page(codes: list[str] | None = None) -> str:
    session = sessions.signed_in()
    return render_template(
        "workspace/account.html",
        member=session.member,
        passkeys=passkeys_of(db.get_engine(), session.member),
        codes_left=recovery_codes_left(db.get_engine(), session.member),
        codes=codes,
        added=request.args.get("added"),
        recovered=request.args.get("recovered"),
        mail_subscription=_mail_subscription(session.actor),
        is_member=session.role == "member",
        mail_languages=mail.LANGUAGES,
        mail_enabled=delivery_settings().smtp is not None,
        done=request.args.get("done"),
    )


def _mail_subscription(actor: Actor) -> Any:
    if actor.role != "member":  # mail is a member's (the ledger refuses staff)
        return None
    try:
        return mail.my_subscription(db.get_engine(), actor)
    except NotFound:
        return None


@bp.route("/notifications", methods=["POST"])
def mail_opt_in() -> BaseResponse:
    """Opt in to mail, or change the address or language (the address is sealed, erasable):
    the same ledger call as ``POST /api/v1/notifications/email``."""
    actor = _checked_post()
    mail.subscribe(
        db.get_log(),
        db.get_vault(),
        actor,
        address=request.form.get("email", "").strip(),
        language=request.form.get("language", ""),
        events=None,
        now=db.get_clock().now(),
        smtp=delivery_settings().smtp,
    )
    return _back("workspace.account", done="mail_on")


@bp.route("/notifications/off", methods=["POST"])
def mail_opt_out() -> BaseResponse:
    """Opt out of mail: the address is erased for good."""
    actor = _checked_post()
    mail.unsubscribe(db.get_log(), db.get_vault(), actor)
    return _back("workspace.account", done="mail_off")


@bp.route("/account", methods=["GET"])
def account() -> str:
    return _account_page()


@bp.route("/recovery-codes", methods=["POST"])
def recovery_codes() -> str:
    """Ten new recovery codes, shown this once (the old ones stop working)."""
    session = sessions.signed_in()
    sessions.require_csrf()
    return _account_page(new_recovery_codes(db.get_engine(), session.member, db.get_clock().now()))


# The pages of treasurers and admins and the webhook settings are routes of this blueprint.
from api import workspace_staff  # noqa: E402, F401
