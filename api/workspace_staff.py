"""The workspace of treasurers and admins, and everyone's webhook settings.

Routes of the workspace blueprint (:mod:`api.workspace`: its session, CSRF, request keys,
error pages and CSP), each calling the same ``ledger.fund`` code as the JSON API:

- ``/workspace/treasury`` (treasurer, admin): record a donation (``Fund.record_donation``,
  as ``POST /api/v1/pools/{slug}/donations``, the form's request key as idempotency key) and
  import a bank statement in two steps: the upload shows the preview (the API's dry run:
  each line recorded or skipped, and why) and records nothing; "confirm" records the lines
  of that preview (``import_statement``, as ``POST /api/v1/pools/{slug}/imports``) and
  refuses when the plan changed since, so nothing but what was shown is recorded; each
  bank reference is recorded once per pool, so a second confirm records nothing.
- ``/workspace/webhooks`` (a member: their collective's; an admin: the fund's), as
  ``/api/v1/webhooks``; the signing secret is shown once, on creation.
- ``/workspace/admin`` (admin): collectives and members, invitations (create, revoke),
  revoking a member's or a staff account's access (sessions and passkeys end at once),
  staff accounts (create with an invitation, invite again), API tokens (list, revoke).

A role the ledger does not allow gets the ledger's refusal (``forbidden``, 403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from flask import abort, render_template, request
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from api import db, schemas, sessions
from api.blueprint import body_limit
from api.errors import PROBLEMS
from api.imports import STATEMENT_BODY_LIMIT
from api.notifications import delivery_settings
from api.workspace import (
    _actor,
    _back,
    _checked_post,
    _request_key,
    bp,
    invitation_url,
    role_name,
)
from ledger.errors import LedgerError, RuleViolation
from ledger.fund import (
    CHANNELS,
    EVENT_TYPES,
    NO_COLLECTIVE,
    STAFF_ROLES,
    Actor,
    ImportReport,
    Sealed,
    VaultError,
    all_invitations,
    create_invitation,
    create_staff_account,
    csv_mapping,
    import_statement,
    invite_staff,
    list_tokens,
    minor_units,
    parse_statement,
    require_role,
    revoke_invitation,
    revoke_member_access,
    revoke_staff_account,
    revoke_token,
    staff_accounts,
    staff_principal,
    views,
    webhooks,
)

DONATION_FIELDS = ("external_reference", "donor_reference", "display_name", "note")


def _role(*roles: str) -> Actor:
    actor = _actor()
    require_role(actor, *roles)
    return actor


def _post(*roles: str) -> Actor:
    actor = _checked_post()
    require_role(actor, *roles)
    return actor


# -- the treasury: donations and bank statements --------------------------------------------


def _treasury(status: int = 200, **shown: Any) -> tuple[str, int]:
    pools = views.list_pools(db.get_engine(), db.get_clock().now())
    shown.setdefault("values", {})
    page = render_template("workspace/treasury.html", pools=pools, channels=CHANNELS, **shown)
    return page, status


def _status(exc: LedgerError) -> int:
    known = PROBLEMS.get(exc.code)
    return known[0] if known is not None and known[0] < 500 else 422


@bp.route("/treasury", methods=["GET"])
def treasury() -> tuple[str, int]:
    _role("treasurer", "admin")
    return _treasury()


@bp.route("/treasury/donations", methods=["POST"])
def record_donation() -> tuple[str, int]:
    """One donation, as the API records it; the receipt (with its salt, for the donor) is
    shown this once."""
    actor = _post("treasurer", "admin")
    key = _request_key(actor)
    form = {name: request.form.get(name, "").strip() for name in ("pool", "amount", "currency")}
    values = {**form, "channel": request.form.get("channel", "")}
    values.update({name: request.form.get(name, "").strip() for name in DONATION_FIELDS})
    try:
        body = schemas.NewDonation().load(
            {
                "amount": minor_units(form["amount"], form["currency"]),
                "currency": form["currency"],
                "channel": values["channel"],
                **{name: values[name] for name in DONATION_FIELDS if values[name]},
            }
        )
        fund = db.get_fund()
        outcome = fund.record_donation(actor, form["pool"], body, key)
    except ValidationError as exc:
        return _treasury(422, values=values, error=_fields_error(exc))
    except LedgerError as exc:
        return _treasury(_status(exc), values=values, error=exc.message)
    (receipt,) = views.recorded_receipts(db.get_engine(), fund.vault, outcome, 1)
    return _treasury(201, receipt=receipt)


def _fields_error(exc: ValidationError) -> str:
    messages = exc.messages if isinstance(exc.messages, dict) else {"form": exc.messages}
    return "; ".join(f"{name}: {text}" for name, text in messages.items())


def _plan_digest(report: ImportReport) -> str:
    """What a confirm must find again: the lines to record, by number, reference, amount."""
    chosen = [f"{p.number}|{p.reference}|{p.amount}|{p.currency}" for p in report.lines]
    chosen = [c for c, p in zip(chosen, report.lines, strict=True) if p.action == "record"]
    return hashlib.sha256("\n".join(chosen).encode()).hexdigest()


def _import(actor: Actor, pool: str, raw: bytes, *, dry_run: bool) -> ImportReport:
    statement = parse_statement(raw, csv_mapping(db.get_engine(), pool))
    return import_statement(db.get_fund(), actor, pool, statement, dry_run=dry_run)


def _preview(pool: str, raw: bytes, report: ImportReport, status: int = 200, **shown: Any) -> Any:
    page = render_template(
        "workspace/import_preview.html",
        pool=pool,
        report=report,
        counts=report.to_json()["counts"],
        sealed_statement=_seal_statement(pool, raw),
        plan=_plan_digest(report),
        **shown,
    )
    return page, status


def _upload_context(pool: str) -> str:
    """What a sealed statement is bound to: this session and this pool."""
    return f"workspace-statement|{sessions.signed_in().secret_hash.hex()}|{pool}"


def _seal_statement(pool: str, raw: bytes) -> str:
    """The uploaded file for the confirm form, sealed by the vault (AES-256-GCM, bound to the
    session and pool): the page holds no IBAN or name in clear, a form taken to another
    session or pool does not open, and an erasure's key rotation voids it."""
    (sealed,) = db.get_vault().seal([(_upload_context(pool), raw)])
    parts = (sealed.key_id.encode(), sealed.wrapped_key, sealed.ciphertext)
    return ".".join(base64.urlsafe_b64encode(part).decode() for part in parts)


def _open_statement(pool: str, text: str) -> bytes:
    try:
        key_id, wrapped, ciphertext = (base64.urlsafe_b64decode(p) for p in text.split("."))
        sealed = Sealed(key_id.decode("ascii"), wrapped, ciphertext)
        return db.get_vault().open(_upload_context(pool), sealed)
    except (ValueError, binascii.Error, VaultError):  # (UnicodeDecodeError is a ValueError)
        abort(400, "the form's statement does not open here: upload the file again")


@bp.route("/treasury/imports", methods=["POST"])
@body_limit(STATEMENT_BODY_LIMIT + 64 * 1024)
def import_preview() -> Any:
    """Upload a statement: the preview (each line, recorded or skipped and why); nothing is
    recorded."""
    actor = _post("treasurer", "admin")
    pool = request.form.get("pool", "")
    upload = request.files.get("statement")
    raw = b"" if upload is None else upload.read(STATEMENT_BODY_LIMIT + 1)
    if not raw or len(raw) > STATEMENT_BODY_LIMIT:
        return _treasury(400, values={"pool": pool}, import_error=True)
    try:
        report = _import(actor, pool, raw, dry_run=True)
    except LedgerError as exc:
        return _treasury(_status(exc), values={"pool": pool}, import_error=exc.message)
    return _preview(pool, raw, report)


@bp.route("/treasury/imports/confirm", methods=["POST"])
@body_limit(2 * STATEMENT_BODY_LIMIT)  # (sealed and in base64: a third larger)
def import_confirm() -> Any:
    """Record the previewed lines, if the plan is still the one shown: a statement whose plan
    changed (another import recorded some of its lines) is shown again, to confirm anew."""
    actor = _post("treasurer", "admin")
    pool = request.form.get("pool", "")
    raw = _open_statement(pool, request.form.get("statement", ""))
    plan = _import(actor, pool, raw, dry_run=True)
    chosen = sum(1 for p in plan.lines if p.action == "record")
    if _plan_digest(plan) != request.form.get("plan", ""):
        if chosen == 0:  # confirmed twice (or imported elsewhere since): all recorded already
            return _preview(pool, raw, plan, 200, nothing_new=True)
        return _preview(pool, raw, plan, 409, changed=True)
    report = _import(actor, pool, raw, dry_run=False)
    return _preview(pool, raw, report, 201, imported=True)


# -- webhooks -------------------------------------------------------------------------------


def _webhooks(status: int = 200, **shown: Any) -> tuple[str, int]:
    actor = _role("member", "admin")
    page = render_template(
        "workspace/webhooks.html",
        endpoints=webhooks.list_endpoints(db.get_engine(), actor),
        event_types=EVENT_TYPES,
        fund_wide=actor.role == "admin",
        collective=actor.collective,
        **shown,
    )
    return page, status


@bp.route("/webhooks", methods=["GET"])
def webhook_settings() -> tuple[str, int]:
    return _webhooks(done=request.args.get("done"))


@bp.route("/webhooks", methods=["POST"])
def create_webhook() -> tuple[str, int]:
    """Subscribe a URL; the signing secret is on the answer page, this once."""
    actor = _post("member", "admin")
    url = request.form.get("url", "").strip()
    chosen = request.form.getlist("events")
    try:
        created = webhooks.create_endpoint(
            db.get_engine(),
            db.get_vault(),
            actor,
            url=url,
            events=chosen or None,
            now=db.get_clock().now(),
            allow_private=delivery_settings().allow_private,
            idempotency_scope=_request_key(actor),
        )
    except RuleViolation as exc:
        return _webhooks(_status(exc), error=exc.message, url=url)
    return _webhooks(201, created=created)


@bp.route("/webhooks/<endpoint_id>/delete", methods=["POST"])
def delete_webhook(endpoint_id: str) -> BaseResponse:
    actor = _post("member", "admin")
    webhooks.delete_endpoint(db.get_engine(), actor, endpoint_id)
    return _back("workspace.webhook_settings", done="deleted")


# -- the admin page -------------------------------------------------------------------------


def _admin(status: int = 200, **shown: Any) -> tuple[str, int]:
    actor = _role("admin")
    engine = db.get_engine()
    collectives = views.list_collectives(engine)
    staff = staff_accounts(engine)
    staff_ids = {a.id for a in staff}
    page = render_template(
        "workspace/admin.html",
        me=actor,
        collectives=collectives,
        invitations=all_invitations(engine, actor),
        staff=staff,
        staff_names={staff_principal(a.id): f"{a.name} ({role_name(a.role)})" for a in staff},
        staff_roles=STAFF_ROLES,
        no_collective=NO_COLLECTIVE,
        tokens=[t for t in list_tokens(engine) if t.id not in staff_ids],
        done=request.args.get("done"),
        **shown,
    )
    return page, status


@bp.route("/admin", methods=["GET"])
def admin() -> tuple[str, int]:
    return _admin()


@bp.route("/admin/invitations", methods=["POST"])
def admin_invite() -> tuple[str, int]:
    """An invitation for a member of any collective (``collective/member``); shown once."""
    actor = _post("admin")
    collective, _, member = request.form.get("member", "").partition("/")
    secret = create_invitation(
        db.get_engine(), collective, member, by=actor.id, now=db.get_clock().now()
    )
    return _admin(201, invited=invitation_url(secret))


@bp.route("/admin/invitations/<invitation_id>/revoke", methods=["POST"])
def admin_revoke_invitation(invitation_id: str) -> BaseResponse:
    actor = _post("admin")
    revoke_invitation(db.get_engine(), actor, invitation_id)
    return _back("workspace.admin", done="invitation_revoked")


@bp.route("/admin/members/<collective>/<member>/revoke", methods=["POST"])
def admin_revoke_member(collective: str, member: str) -> BaseResponse:
    """End a member's sessions, passkeys, recovery codes and open invitations at once."""
    actor = _post("admin")
    revoke_member_access(db.get_engine(), actor, collective, member)
    return _back("workspace.admin", done="member_revoked")


@bp.route("/admin/staff", methods=["POST"])
def admin_new_staff() -> tuple[str, int]:
    """A new treasurer or admin account and its invitation link (shown once)."""
    actor = _post("admin")
    account, secret = create_staff_account(
        db.get_engine(),
        actor,
        request.form.get("role", ""),
        request.form.get("name", "").strip(),
        db.get_clock().now(),
    )
    return _admin(201, invited=invitation_url(secret), invited_staff=account)


@bp.route("/admin/staff/<account_id>/invite", methods=["POST"])
def admin_invite_staff(account_id: str) -> tuple[str, int]:
    actor = _post("admin")
    secret = invite_staff(db.get_engine(), actor, account_id, db.get_clock().now())
    return _admin(201, invited=invitation_url(secret))


@bp.route("/admin/staff/<account_id>/revoke", methods=["POST"])
def admin_revoke_staff(account_id: str) -> BaseResponse:
    actor = _post("admin")
    revoke_staff_account(db.get_engine(), actor, account_id, db.get_clock().now())
    return _back("workspace.admin", done="staff_revoked")


@bp.route("/admin/tokens/<token_id>/revoke", methods=["POST"])
def admin_revoke_token(token_id: str) -> BaseResponse:
    _post("admin")  # (by=None: the role is checked here, as for the operator's shell)
    revoke_token(db.get_engine(), token_id, db.get_clock().now(), by=None)
    return _back("workspace.admin", done="token_revoked")
