"""Passkeys (WebAuthn, the ``webauthn`` library): registration by invitation or from a session,
and sign-in with a discoverable credential.

Each ceremony is two JSON requests from ``static/workspace.js``: the options (a fresh challenge
kept server-side, its handle in a ``SameSite=Strict`` cookie for five minutes) and the answer,
verified against that challenge (used once), the RP ID and the origin of the public URL
(:mod:`api.sessions`). A passkey made for another origin or RP ID is refused. Attestation is
"none": we need a key bound to this site and a user-verifying authenticator, not its maker.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from api import db, sessions
from ledger.errors import LedgerError
from ledger.fund import (
    Ceremony,
    InvitationRefused,
    SignInRefused,
    begin_ceremony,
    check_invitation,
    passkey,
    passkeys_of,
    register_passkey,
    sign_in_with_passkey,
    staff_account,
    take_ceremony,
)

bp = Blueprint("passkeys", __name__, url_prefix="/workspace")
bp.before_request(sessions.redirect_to_public_host)

CEREMONY_SECONDS = 300
_REFUSED = (WebAuthnException, ValueError, KeyError, TypeError)


def _refusal(code: str, detail: str, status: int = 400) -> Response:
    response = jsonify({"code": code, "detail": detail})
    response.status_code = status
    return response


@bp.errorhandler(LedgerError)
def _ledger_error(exc: LedgerError) -> Response:
    status = 410 if isinstance(exc, InvitationRefused) else 403
    return _refusal(exc.code, exc.message, status)


def _options(options: Any, purpose: str, *, member: str | None, invitation: str | None) -> Response:
    secret = begin_ceremony(
        db.get_engine(),
        purpose,
        options.challenge,
        db.get_clock().now(),
        member=member,
        invitation=invitation,
    )
    response = Response(options_to_json(options), mimetype="application/json")
    response.set_cookie(
        sessions.CEREMONY_COOKIE,
        secret,
        max_age=CEREMONY_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=sessions.secure_cookies(),
        path="/workspace",
    )
    return response


def _registration_options(collective: str, member: str, invitation: str | None) -> Response:
    known = passkeys_of(db.get_engine(), member)
    staff = staff_account(db.get_engine(), member)  # the name stays on the person's device
    options = generate_registration_options(
        rp_id=sessions.rp_id(),
        rp_name="Lunaria",
        user_id=member.encode(),
        user_name=member,
        user_display_name=f"{member} ({collective})"
        if staff is None
        else f"{staff.name} ({staff.role})",
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=k.credential_id) for k in known],
    )
    return _options(options, "register", member=member, invitation=invitation)


@bp.route("/invite/<secret>/options", methods=["POST"])
def invitation_options(secret: str) -> Response:
    """Options to register a first passkey with an invitation (unused, unexpired)."""
    invitation = check_invitation(db.get_engine(), secret, db.get_clock().now())
    return _registration_options(invitation.collective, invitation.member, secret)


@bp.route("/passkeys/options", methods=["POST"])
def add_passkey_options() -> Response:
    """Options to add another passkey (signed in; CSRF token in the header)."""
    session = sessions.signed_in()
    sessions.require_csrf()
    return _registration_options(session.collective, session.member, None)


def _ceremony(purpose: str) -> Ceremony:
    return take_ceremony(
        db.get_engine(),
        request.cookies.get(sessions.CEREMONY_COOKIE),
        purpose,
        db.get_clock().now(),
    )


def _answer() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise SignInRefused("the answer is not a JSON object")
    return body


@bp.route("/passkeys", methods=["POST"])
def register() -> Response:
    """Verify a new passkey against the ceremony's challenge, RP ID and origin; keep it and
    sign in (after an invitation, which is then used)."""
    ceremony = _ceremony("register")
    signed = sessions.current_session()
    if ceremony.invitation_hash is None and (signed is None or signed.member != ceremony.member):
        raise SignInRefused("adding a passkey needs the member's own session")
    try:
        verified = verify_registration_response(
            credential=_answer(),
            expected_challenge=ceremony.challenge,
            expected_rp_id=sessions.rp_id(),
            expected_origin=sessions.expected_origin(),
            require_user_verification=True,
        )
    except _REFUSED as exc:
        return _refusal("passkey_refused", f"the passkey was refused: {exc}")
    opened = register_passkey(
        db.get_engine(),
        ceremony,
        verified.credential_id,
        verified.credential_public_key,
        verified.sign_count,
        db.get_clock().now(),
    )
    response = jsonify({"redirect": url_for("workspace.account", added=1)})
    response.delete_cookie(sessions.CEREMONY_COOKIE, path="/workspace")
    if opened is not None:
        sessions.start_session(response, opened[0])
    return response


@bp.route("/sign-in/options", methods=["POST"])
def sign_in_options() -> Response:
    """Options to sign in with any passkey of this site (a discoverable credential)."""
    options = generate_authentication_options(
        rp_id=sessions.rp_id(), user_verification=UserVerificationRequirement.REQUIRED
    )
    return _options(options, "sign_in", member=None, invitation=None)


@bp.route("/sign-in", methods=["POST"])
def sign_in() -> Response:
    """Verify an assertion and open a session."""
    ceremony = _ceremony("sign_in")
    answer = _answer()
    try:
        key = passkey(db.get_engine(), base64url_to_bytes(str(answer.get("rawId") or "")))
        verified = verify_authentication_response(
            credential=json.dumps(answer),
            expected_challenge=ceremony.challenge,
            expected_rp_id=sessions.rp_id(),
            expected_origin=sessions.expected_origin(),
            credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count,
            require_user_verification=True,
        )
    except _REFUSED as exc:
        return _refusal("passkey_refused", f"the passkey was refused: {exc}", 403)
    secret, _ = sign_in_with_passkey(
        db.get_engine(), key, verified.new_sign_count, db.get_clock().now()
    )
    response = jsonify({"redirect": url_for("workspace.home")})
    response.delete_cookie(sessions.CEREMONY_COOKIE, path="/workspace")
    return sessions.start_session(response, secret)
