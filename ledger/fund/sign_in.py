"""Members' access to the workspace: invitations, passkeys, recovery codes and sessions.

None of this is in the log, and none of it is public: the tables below (migration 0013) hold
only hashes of secrets, WebAuthn public keys and instants. The WebAuthn ceremonies themselves
(the ``webauthn`` library) run in ``api``; this module keeps what they need between two
requests and what they leave behind.

- An invitation is a random secret bound to one active member, used once, for 72 hours.
- A ceremony is a WebAuthn challenge kept server-side for 5 minutes and taken once.
- A passkey (credential) belongs to one member; its sign count only grows.
- Ten recovery codes per member, hashed, each usable once; new ones replace the old.
- A session is a random secret (the cookie), hashed here; it ends after 12 idle hours, at
  sign-out, when its member signs out everywhere, is revoked or leaves the collective.

Every secret is 32 random bytes (recovery codes 80 bits) and stored as its SHA-256: a leaked
table gives no usable secret, and with that much entropy a slow hash would add nothing.

Staff (treasurers and admins) sign in by the same machinery. A staff account is a row of the
``tokens`` table (:mod:`ledger.fund.access`) with the role ``treasurer`` or ``admin`` and the
collective ``""`` (which marks it: an API token of those roles has none), whose bearer secret
was never shown to anyone: its id gives the log's actor id ``<role>:<id>``, as for any token of
that role, and revoking it ends the account. In the tables here its
principal is ``staff:<id>`` with the collective ``""``: a member pseudonym never holds a
``:``, so the two kinds of principal cannot be confused. An account is active while its
token is neither revoked nor expired; a session, passkey or invitation of an inactive
account lets no one in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    LargeBinary,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)

from ledger.errors import LedgerError, NotFound, RuleViolation
from ledger.fund.access import create_account_token, list_tokens, revoke_token
from ledger.fund.rules import Actor, check_text, member_actor, require_role
from ledger.fund.schema import members, tokens
from ledger.log.clock import format_ts, parse_ts
from ledger.log.db import write_transaction
from ledger.log.schema import metadata

INVITATION_LIFETIME = timedelta(hours=72)
CEREMONY_LIFETIME = timedelta(minutes=5)
SESSION_IDLE = timedelta(hours=12)
RECOVERY_CODES = 10
CEREMONIES = ("register", "sign_in")
STAFF_ROLES = ("treasurer", "admin")
STAFF_PREFIX = "staff:"
NO_COLLECTIVE = ""  # the collective column of a staff principal's rows
OPERATOR_CLI = "operator:cli"

member_invitations = Table(
    "member_invitations",
    metadata,
    Column("secret_hash", LargeBinary(32), primary_key=True),
    Column("collective", String(64), nullable=False),
    Column("member", String(64), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("expires_ts", String(27), nullable=False),
    Column("used_ts", String(27), nullable=True),
)
member_credentials = Table(
    "member_credentials",
    metadata,
    Column("credential_id", LargeBinary, primary_key=True),
    Column("collective", String(64), nullable=False),
    Column("member", String(64), nullable=False, index=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("used_ts", String(27), nullable=True),
)
member_sessions = Table(
    "member_sessions",
    metadata,
    Column("secret_hash", LargeBinary(32), primary_key=True),
    Column("collective", String(64), nullable=False),
    Column("member", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("seen_ts", String(27), nullable=False),
)
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("code_hash", LargeBinary(32), primary_key=True),
    Column("member", String(64), nullable=False, index=True),
    Column("created_ts", String(27), nullable=False),
    Column("used_ts", String(27), nullable=True),
)
webauthn_ceremonies = Table(
    "webauthn_ceremonies",
    metadata,
    Column("secret_hash", LargeBinary(32), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("challenge", LargeBinary, nullable=False),
    Column("member", String(64), nullable=True),  # registration: whose passkey
    Column("invitation_hash", LargeBinary(32), nullable=True),  # registration by invitation
    Column("expires_ts", String(27), nullable=False),
)


class InvitationRefused(LedgerError):
    """The invitation is unknown, used already or expired (one answer for all three)."""

    code = "invitation_refused"


class SignInRefused(LedgerError):
    """A passkey, ceremony, recovery code or session that does not let anyone in."""

    code = "sign_in_refused"


@dataclass(frozen=True)
class Invitation:
    collective: str  # "" for a staff account
    member: str  # a member pseudonym, or staff:<id>
    expires: str

    @property
    def staff(self) -> bool:
        return self.member.startswith(STAFF_PREFIX)


@dataclass(frozen=True)
class Ceremony:
    purpose: str
    challenge: bytes
    member: str | None
    invitation_hash: bytes | None


@dataclass(frozen=True)
class Passkey:
    credential_id: bytes
    collective: str
    member: str
    public_key: bytes
    sign_count: int
    created: str
    used: str | None


@dataclass(frozen=True)
class MemberSession:
    """A signed-in member: who, and the session's CSRF token (never the cookie's secret)."""

    secret_hash: bytes
    collective: str
    member: str  # a member pseudonym, or staff:<id>
    csrf: str
    role: str = "member"

    @property
    def actor(self) -> Actor:
        if self.role != "member":
            return Actor(id=f"{self.role}:{staff_id(self.member)}", role=self.role)
        return Actor(
            id=member_actor(self.member),
            role="member",
            collective=self.collective,
            member=self.member,
        )


@dataclass(frozen=True)
class InvitationRow:
    member: str
    created: str
    expires: str
    used: str | None
    id: str = ""  # the hex SHA-256 of the secret: names an invitation to revoke, opens nothing
    collective: str = ""


@dataclass(frozen=True)
class StaffAccount:
    """A treasurer's or admin's workspace account (its name is private: never in the log)."""

    id: str
    role: str
    name: str
    created: str
    revoked: str | None
    passkeys: int


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def staff_principal(account_id: str) -> str:
    return f"{STAFF_PREFIX}{account_id}"


def staff_id(principal: str) -> str:
    assert principal.startswith(STAFF_PREFIX)
    return principal[len(STAFF_PREFIX) :]


def _active_principal(conn: Connection, principal: str) -> tuple[str, str] | None:
    """``(collective, role)`` of an active principal: a member's collective and ``member``,
        or ``("", role)`` for a staff account whose token is not revoked (staff tokens never
    expire)."""
    if principal.startswith(STAFF_PREFIX):
        row = conn.execute(
            select(tokens.c.role).where(
                and_(
                    tokens.c.id == staff_id(principal),
                    tokens.c.collective == NO_COLLECTIVE,  # a staff account, not an API token
                    tokens.c.revoked_ts.is_(None),
                    tokens.c.expires_ts.is_(None),
                    tokens.c.role.in_(STAFF_ROLES),
                )
            )
        ).first()
        return None if row is None else (NO_COLLECTIVE, str(row.role))
    found = conn.execute(
        select(members.c.collective).where(and_(members.c.id == principal, members.c.active == 1))
    ).first()
    return None if found is None else (str(found[0]), "member")


def _active_member(conn: Connection, member: str) -> str | None:
    """The collective of an active principal (``""`` for staff), else None."""
    found = _active_principal(conn, member)
    return None if found is None else found[0]


# -- invitations ------------------------------------------------------------------------------


def create_invitation(
    engine: Engine, collective: str, member: str, *, by: str, now: datetime
) -> str:
    """A one-time invitation for an active ``member`` of ``collective``: its secret, which
    is shown once (the link) and stored only as a hash."""
    with write_transaction(engine) as conn:
        if _active_member(conn, member) != collective:
            raise NotFound(f"{member!r} is not an active member of {collective!r}")
        secret = _new_secret()
        conn.execute(
            insert(member_invitations).values(
                secret_hash=digest(secret),
                collective=collective,
                member=member,
                created_by=by,
                created_ts=format_ts(now),
                expires_ts=format_ts(now + INVITATION_LIFETIME),
                used_ts=None,
            )
        )
    return secret


def open_invitation(conn: Connection, secret: str, now: datetime) -> Invitation:
    """The unused, unexpired invitation of ``secret`` for a member still active."""
    row = conn.execute(
        select(member_invitations).where(member_invitations.c.secret_hash == digest(secret))
    ).first()
    if (
        row is None
        or row.used_ts is not None
        or parse_ts(row.expires_ts) <= now
        or _active_member(conn, row.member) != row.collective
    ):
        raise InvitationRefused("this invitation is unknown, used already or expired")
    return Invitation(row.collective, row.member, row.expires_ts)


def check_invitation(engine: Engine, secret: str, now: datetime) -> Invitation:
    with engine.connect() as conn:
        return open_invitation(conn, secret, now)


def use_invitation(conn: Connection, secret_hash: bytes, now: datetime) -> None:
    """Mark the invitation used, once: of two registrations racing, one wins."""
    done = conn.execute(
        update(member_invitations)
        .where(
            and_(
                member_invitations.c.secret_hash == secret_hash,
                member_invitations.c.used_ts.is_(None),
                member_invitations.c.expires_ts > format_ts(now),
            )
        )
        .values(used_ts=format_ts(now))
    )
    if done.rowcount != 1:
        raise InvitationRefused("this invitation is unknown, used already or expired")


def invitations_of(engine: Engine, collective: str) -> list[InvitationRow]:
    """The collective's invitations, newest first (for its members; never public)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(member_invitations)
            .where(member_invitations.c.collective == collective)
            .order_by(member_invitations.c.created_ts.desc())
        ).all()
    return [_invitation_row(r) for r in rows]


def _invitation_row(r: Any) -> InvitationRow:
    return InvitationRow(
        r.member, r.created_ts, r.expires_ts, r.used_ts, bytes(r.secret_hash).hex(), r.collective
    )


def all_invitations(engine: Engine, actor: Actor) -> list[InvitationRow]:
    """Every invitation, members' and staff's, newest first (admins only)."""
    require_role(actor, "admin")
    with engine.connect() as conn:
        rows = conn.execute(
            select(member_invitations).order_by(member_invitations.c.created_ts.desc())
        ).all()
    return [_invitation_row(r) for r in rows]


def revoke_invitation(engine: Engine, actor: Actor, invitation_id: str) -> None:
    """An admin withdraws an unused invitation (named by the hex hash of its secret): its
    link then opens nothing. A used or unknown one is NotFound."""
    require_role(actor, "admin")
    try:
        hashed = bytes.fromhex(invitation_id)
    except ValueError:
        hashed = b""
    with write_transaction(engine) as conn:
        done = conn.execute(
            delete(member_invitations).where(
                and_(
                    member_invitations.c.secret_hash == hashed,
                    member_invitations.c.used_ts.is_(None),
                )
            )
        )
    if len(hashed) != 32 or done.rowcount != 1:
        raise NotFound(f"no open invitation {invitation_id!r}")


# -- WebAuthn ceremonies ------------------------------------------------------------------------


def begin_ceremony(
    engine: Engine,
    purpose: str,
    challenge: bytes,
    now: datetime,
    *,
    member: str | None = None,
    invitation: str | None = None,
) -> str:
    """Keep a challenge for one ceremony; its secret goes to the browser (a cookie)."""
    assert purpose in CEREMONIES
    secret = _new_secret()
    with write_transaction(engine) as conn:
        conn.execute(
            delete(webauthn_ceremonies).where(webauthn_ceremonies.c.expires_ts <= format_ts(now))
        )
        conn.execute(
            insert(webauthn_ceremonies).values(
                secret_hash=digest(secret),
                purpose=purpose,
                challenge=challenge,
                member=member,
                invitation_hash=None if invitation is None else digest(invitation),
                expires_ts=format_ts(now + CEREMONY_LIFETIME),
            )
        )
    return secret


def take_ceremony(engine: Engine, secret: str | None, purpose: str, now: datetime) -> Ceremony:
    """The ceremony's challenge, removed so it can be answered once."""
    if not secret:
        raise SignInRefused("no ceremony under way: start again")
    with write_transaction(engine) as conn:
        row = conn.execute(
            delete(webauthn_ceremonies)
            .where(webauthn_ceremonies.c.secret_hash == digest(secret))
            .returning(*webauthn_ceremonies.c)
        ).first()
    if row is None or row.purpose != purpose or parse_ts(row.expires_ts) <= now:
        raise SignInRefused("this ceremony is unknown, used or expired: start again")
    invitation = None if row.invitation_hash is None else bytes(row.invitation_hash)
    return Ceremony(row.purpose, bytes(row.challenge), row.member, invitation)


# -- passkeys -------------------------------------------------------------------------------


def add_passkey(
    conn: Connection,
    collective: str,
    member: str,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    now: datetime,
) -> None:
    conn.execute(
        insert(member_credentials).values(
            credential_id=credential_id,
            collective=collective,
            member=member,
            public_key=public_key,
            sign_count=sign_count,
            created_ts=format_ts(now),
            used_ts=None,
        )
    )


def register_passkey(
    engine: Engine,
    ceremony: Ceremony,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    now: datetime,
) -> tuple[str, str] | None:
    """Store a verified passkey for the ceremony's member in one transaction; after an
    invitation (used now) also open a session, ``(session secret, csrf)``. A passkey added
    from a session opens none."""
    assert ceremony.member is not None
    with write_transaction(engine) as conn:
        collective = _active_member(conn, ceremony.member)
        if collective is None:
            raise SignInRefused(f"{ceremony.member!r} is not an active member")
        if ceremony.invitation_hash is not None:
            use_invitation(conn, ceremony.invitation_hash, now)
        known = conn.execute(
            select(member_credentials.c.member).where(
                member_credentials.c.credential_id == credential_id
            )
        ).first()
        if known is not None:
            raise SignInRefused("this passkey is registered already")
        add_passkey(conn, collective, ceremony.member, credential_id, public_key, sign_count, now)
        if ceremony.invitation_hash is None:
            return None
        return _open_session(conn, collective, ceremony.member, now)


def passkey(engine: Engine, credential_id: bytes) -> Passkey:
    """A registered passkey of a member still active."""
    with engine.connect() as conn:
        row = conn.execute(
            select(member_credentials).where(member_credentials.c.credential_id == credential_id)
        ).first()
        if row is None or _active_member(conn, row.member) != row.collective:
            raise SignInRefused("this passkey is not registered here")
    return Passkey(
        bytes(row.credential_id),
        row.collective,
        row.member,
        bytes(row.public_key),
        int(row.sign_count),
        row.created_ts,
        row.used_ts,
    )


def passkeys_of(engine: Engine, member: str) -> list[Passkey]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(member_credentials)
            .where(member_credentials.c.member == member)
            .order_by(member_credentials.c.created_ts)
        ).all()
    return [
        Passkey(
            bytes(r.credential_id),
            r.collective,
            r.member,
            bytes(r.public_key),
            int(r.sign_count),
            r.created_ts,
            r.used_ts,
        )
        for r in rows
    ]


def sign_in_with_passkey(
    engine: Engine, key: Passkey, new_sign_count: int, now: datetime
) -> tuple[str, str]:
    """After a verified assertion: record the sign count (which must not go back, unless the
    authenticator keeps none) and open a session ``(secret, csrf)``."""
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(member_credentials)
            .where(
                and_(
                    member_credentials.c.credential_id == key.credential_id,
                    member_credentials.c.sign_count == key.sign_count,
                )
            )
            .values(sign_count=new_sign_count, used_ts=format_ts(now))
        )
        if done.rowcount != 1:
            raise SignInRefused("this passkey was used at the same moment elsewhere")
        return _open_session(conn, key.collective, key.member, now)


# -- recovery codes -------------------------------------------------------------------------


def _code_hash(member: str, code: str) -> bytes:
    normal = code.replace("-", "").replace(" ", "").lower()
    return hashlib.sha256(f"{member}\x00{normal}".encode()).digest()


def new_recovery_codes(engine: Engine, member: str, now: datetime) -> list[str]:
    """Ten new one-time codes for ``member`` (shown once), replacing any older ones."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits, 16 chars
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    with write_transaction(engine) as conn:
        conn.execute(delete(recovery_codes).where(recovery_codes.c.member == member))
        conn.execute(
            insert(recovery_codes),
            [
                {"code_hash": _code_hash(member, c), "member": member, "created_ts": format_ts(now)}
                for c in codes
            ],
        )
    return codes


def recovery_codes_left(engine: Engine, member: str) -> int:
    with engine.connect() as conn:
        rows = conn.execute(
            select(recovery_codes.c.code_hash).where(
                and_(recovery_codes.c.member == member, recovery_codes.c.used_ts.is_(None))
            )
        ).all()
    return len(rows)


def sign_in_with_recovery_code(
    engine: Engine, member: str, code: str, now: datetime
) -> tuple[str, str]:
    """Use one recovery code of an active member (once) and open a session."""
    with write_transaction(engine) as conn:
        collective = _active_member(conn, member)
        done = conn.execute(
            update(recovery_codes)
            .where(
                and_(
                    recovery_codes.c.code_hash == _code_hash(member, code),
                    recovery_codes.c.used_ts.is_(None),
                )
            )
            .values(used_ts=format_ts(now))
        )
        if collective is None or done.rowcount != 1:
            raise SignInRefused("this member and recovery code do not sign anyone in")
        return _open_session(conn, collective, member, now)


# -- sessions -------------------------------------------------------------------------------


def _open_session(conn: Connection, collective: str, member: str, now: datetime) -> tuple[str, str]:
    secret, csrf = _new_secret(), secrets.token_urlsafe(32)
    conn.execute(
        insert(member_sessions).values(
            secret_hash=digest(secret),
            collective=collective,
            member=member,
            csrf=csrf,
            created_ts=format_ts(now),
            seen_ts=format_ts(now),
        )
    )
    return secret, csrf


def session_for(engine: Engine, secret: str, now: datetime) -> MemberSession:
    """The session of a cookie's secret, if its member is still active and it has not been
    idle for 12 hours; seen now (the idle time starts again)."""
    hashed = digest(secret)
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(member_sessions).where(member_sessions.c.secret_hash == hashed)
        ).first()
        if row is None:
            raise SignInRefused("not signed in")
        active = _active_principal(conn, row.member)
        if (
            parse_ts(row.seen_ts) + SESSION_IDLE <= now
            or active is None
            or active[0] != row.collective
        ):
            conn.execute(delete(member_sessions).where(member_sessions.c.secret_hash == hashed))
            raise SignInRefused("the session has ended")
        conn.execute(
            update(member_sessions)
            .where(member_sessions.c.secret_hash == hashed)
            .values(seen_ts=format_ts(now))
        )
    return MemberSession(hashed, row.collective, row.member, row.csrf, role=active[1])


def csrf_matches(session: MemberSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())


def end_session(engine: Engine, session: MemberSession) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            delete(member_sessions).where(member_sessions.c.secret_hash == session.secret_hash)
        )


def end_all_sessions(engine: Engine, member: str) -> int:
    """Sign ``member`` out everywhere; the number of sessions ended."""
    with write_transaction(engine) as conn:
        return conn.execute(
            delete(member_sessions).where(member_sessions.c.member == member)
        ).rowcount


def revoke_member_access(engine: Engine, actor: Actor, collective: str, member: str) -> int:
    """An admin ends a member's access at once: sessions, passkeys, recovery codes and open
    invitations go (the member stays in the collective; ``member_removed`` is the log's
    matter). The number of rows removed."""
    require_role(actor, "admin")
    removed = 0
    with write_transaction(engine) as conn:
        if not conn.execute(
            select(members.c.id).where(
                and_(members.c.id == member, members.c.collective == collective)
            )
        ).first():
            raise NotFound(f"no member {member!r} in {collective!r}")
        removed = _end_access(conn, member)
    return removed


def _end_access(conn: Connection, principal: str) -> int:
    removed = 0
    for table in (member_sessions, member_credentials, recovery_codes):
        removed += conn.execute(delete(table).where(table.c.member == principal)).rowcount
    removed += conn.execute(
        delete(member_invitations).where(
            and_(member_invitations.c.member == principal, member_invitations.c.used_ts.is_(None))
        )
    ).rowcount
    return removed


# -- staff accounts -------------------------------------------------------------------------


def create_staff_account(
    engine: Engine, actor: Actor | None, role: str, name: str, now: datetime
) -> tuple[StaffAccount, str]:
    """A new treasurer or admin account and its first invitation's secret (shown once).

    ``actor`` is an admin, or None for the operator's shell (``lunaria invite --role``). The
    account is a token of ``role`` whose bearer secret is thrown away here: only a passkey
    registered by the invitation lets its holder act, as ``<role>:<id>`` in the log. ``name``
    (who holds it) stays private, like a token's label."""
    if actor is not None:
        require_role(actor, "admin")
    if role not in STAFF_ROLES:
        raise RuleViolation(f"a staff role is treasurer or admin, not {role!r}", "invalid_role")
    check_text(name, "name", 200)
    with write_transaction(engine) as conn:
        account_id = create_account_token(conn, role, name, now)
    by = OPERATOR_CLI if actor is None else actor.id
    secret = create_invitation(engine, NO_COLLECTIVE, staff_principal(account_id), by=by, now=now)
    (account,) = [a for a in staff_accounts(engine) if a.id == account_id]
    return account, secret


def invite_staff(engine: Engine, actor: Actor | None, account_id: str, now: datetime) -> str:
    """Another invitation for an active staff account (a lost passkey): its secret."""
    if actor is not None:
        require_role(actor, "admin")
    by = OPERATOR_CLI if actor is None else actor.id
    return create_invitation(engine, NO_COLLECTIVE, staff_principal(account_id), by=by, now=now)


def staff_accounts(engine: Engine) -> list[StaffAccount]:
    """Every staff account (a treasurer or admin token of the collective ``""``), oldest
    first, with its number of passkeys."""
    with engine.connect() as conn:
        counts: dict[str, int] = {}
        for (m,) in conn.execute(
            select(member_credentials.c.member).where(
                member_credentials.c.collective == NO_COLLECTIVE
            )
        ):
            counts[str(m)] = counts.get(str(m), 0) + 1
    return [
        StaffAccount(
            t.id, t.role, t.label, t.created, t.revoked, counts.get(staff_principal(t.id), 0)
        )
        for t in list_tokens(engine)
        if t.collective == NO_COLLECTIVE and t.role in STAFF_ROLES
    ]


def staff_account(engine: Engine, principal: str) -> StaffAccount | None:
    """The staff account of a principal ``staff:<id>`` (None for a member or an unknown id)."""
    if not principal.startswith(STAFF_PREFIX):
        return None
    return next((a for a in staff_accounts(engine) if a.id == staff_id(principal)), None)


def revoke_staff_account(
    engine: Engine, actor: Actor | None, account_id: str, now: datetime
) -> int:
    """An admin (or the operator) ends a staff account at once: its token is revoked (so its
    actor id acts no more), its sessions, passkeys, recovery codes and open invitations go.
    The number of rows removed. An admin cannot revoke their own account here."""
    if actor is not None:
        require_role(actor, "admin")
        if actor.id == f"admin:{account_id}":
            raise RuleViolation("an admin cannot revoke their own account", "forbidden")
    if account_id not in {a.id for a in staff_accounts(engine)}:
        raise NotFound(f"no staff account {account_id!r}")
    revoke_token(engine, account_id, now)
    with write_transaction(engine) as conn:
        return _end_access(conn, staff_principal(account_id))
