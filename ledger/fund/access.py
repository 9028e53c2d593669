"""API tokens: random bearer secrets, shown once, stored as SHA-256 hashes.

A token reads ``lun_<16 hex id>_<43 url-safe characters>``. The id finds the row; the secret
(32 random bytes, url-safe base64 without padding) is compared by hash in constant time. A
token carries one role; a member's token also names the collective and the member pseudonym.
The domain sees only an :class:`ledger.fund.rules.Actor` built from it: a pseudonymous id, never a
name (``member:<pseudonym>`` for members, ``<role>:<token id>`` for everyone else).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.errors import IdempotencyConflict, LedgerError, NotFound, RuleViolation
from ledger.fund.rules import ROLES, Actor, check_text, member_actor, require_role
from ledger.fund.schema import members, tokens
from ledger.log.clock import format_ts, parse_ts
from ledger.log.db import read_sql, read_transaction, write_transaction
from ledger.log.storage import one_read

TOKEN_PREFIX = "lun_"
_TOKEN = re.compile(r"lun_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")
_TOKEN_ID = re.compile(r"[0-9a-f]{16}\Z")
_SECRET_BYTES = 32
# Compared against when the id is unknown, so a miss costs the same as a wrong secret.
_NO_SUCH_HASH = hashlib.sha256(b"lunaria: no such token").digest()


class Unauthorized(LedgerError):
    """No usable bearer token: missing, malformed or unknown."""

    code = "unauthorized"


class TokenExpired(Unauthorized):
    """The token's expiry instant has passed."""

    code = "token_expired"


class TokenRevoked(Unauthorized):
    """The token was revoked (or its member was removed from the collective)."""

    code = "token_revoked"


@dataclass(frozen=True)
class TokenInfo:
    """What a token stands for (never its secret or hash)."""

    id: str
    role: str
    collective: str | None
    member: str | None
    label: str
    created: str
    expires: str | None
    revoked: str | None

    @property
    def actor(self) -> Actor:
        """The pseudonymous actor the domain and the log see."""
        if self.role == "member":
            assert self.member is not None
            return Actor(
                id=member_actor(self.member),
                role="member",
                collective=self.collective,
                member=self.member,
            )
        return Actor(id=f"{self.role}:{self.id}", role=self.role)


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued (``token`` is the secret string, shown this once) or replayed."""

    info: TokenInfo
    token: str | None
    replayed: bool


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        role=row.role,
        collective=row.collective,
        member=row.member,
        label=row.label,
        created=row.created_ts,
        expires=row.expires_ts,
        revoked=row.revoked_ts,
    )


def _row(conn: Connection, token_id: str) -> TokenInfo | None:
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).one_or_none()
    return None if row is None else _info(row)


def _member_is_active(conn: Connection, collective: str, member: str) -> bool:
    found = conn.execute(
        select(members.c.id).where(
            and_(members.c.id == member, members.c.collective == collective, members.c.active == 1)
        )
    ).first()
    return found is not None


def _check_request(
    conn: Connection,
    role: str,
    collective: str | None,
    member: str | None,
    label: str,
    expires: datetime | None,
    now: datetime,
) -> None:
    if role not in ROLES:
        raise RuleViolation(f"role must be one of {', '.join(ROLES)}, not {role!r}", "invalid_role")
    if role == "member":
        if collective is None or member is None:
            raise RuleViolation("a member token names its collective and member", "invalid_role")
        if not _member_is_active(conn, collective, member):
            raise RuleViolation(
                f"{member!r} is not an active member of {collective!r}", "unknown_member"
            )
    elif collective is not None or member is not None:
        raise RuleViolation(
            f"only member tokens name a collective or member, not {role} tokens", "invalid_role"
        )
    check_text(label, "label", 200)
    if expires is not None and (expires.tzinfo is None or expires <= now):
        raise RuleViolation(
            "expires must be a future instant with a time zone", code="invalid_expiry"
        )


def _insert(
    conn: Connection,
    token_id: str,
    role: str,
    collective: str | None,
    member: str | None,
    label: str,
    expires: datetime | None,
    now: datetime,
) -> str:
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    conn.execute(
        insert(tokens).values(
            id=token_id,
            secret_hash=_hash(secret),
            role=role,
            collective=collective,
            member=member,
            label=label,
            created_ts=format_ts(now),
            expires_ts=None if expires is None else format_ts(expires),
            revoked_ts=None,
        )
    )
    return f"{TOKEN_PREFIX}{token_id}_{secret}"


def create_token(
    engine: Engine,
    role: str,
    collective: str | None = None,
    member: str | None = None,
    *,
    label: str,
    expires: datetime | None = None,
    now: datetime,
) -> tuple[str, str]:
    """Create a token; returns ``(token id, token string)``. The string is never stored."""
    with write_transaction(engine) as conn:
        _check_request(conn, role, collective, member, label, expires, now)
        token_id = secrets.token_hex(8)
        return token_id, _insert(conn, token_id, role, collective, member, label, expires, now)


def create_account_token(conn: Connection, role: str, label: str, now: datetime) -> str:
    """The token of a workspace staff account (:mod:`ledger.fund.sign_in`): role treasurer or
    admin, collective ``""`` (what marks it), no expiry; its bearer secret is made and dropped
    at once, so only the account's passkeys let anyone act as it. Returns the token id."""
    token_id = secrets.token_hex(8)
    _insert(conn, token_id, role, "", None, label, None, now)
    return token_id


def issue_token(
    engine: Engine,
    issuer: Actor,
    *,
    role: str,
    collective: str | None = None,
    member: str | None = None,
    label: str,
    expires: datetime | None = None,
    now: datetime,
    idempotency_scope: str | None = None,
) -> IssuedToken:
    """An admin issues a token. With an idempotency scope the token id is derived from it, so
    a retry finds the token issued before: the same metadata comes back, but never the secret
    again (it is not stored); a retry with other values is an :class:`IdempotencyConflict`."""
    require_role(issuer, "admin")
    wanted = {"role": role, "collective": collective, "member": member, "label": label}
    wanted["expires"] = None if expires is None else format_ts(expires)
    token_id = (
        secrets.token_hex(8)
        if idempotency_scope is None
        else hashlib.sha256(f"lunaria-token|{idempotency_scope}".encode()).hexdigest()[:16]
    )
    for _ in range(2):  # a concurrent twin may insert first: then read and compare
        with write_transaction(engine) as conn:
            before = _row(conn, token_id)
            if before is not None:
                stored = {
                    "role": before.role,
                    "collective": before.collective,
                    "member": before.member,
                    "label": before.label,
                    "expires": before.expires,
                }
                differing = sorted(name for name in wanted if wanted[name] != stored[name])
                if differing:
                    raise IdempotencyConflict(str(idempotency_scope), differing)
                return IssuedToken(before, token=None, replayed=True)
            _check_request(conn, role, collective, member, label, expires, now)
            try:
                with conn.begin_nested():
                    token = _insert(conn, token_id, role, collective, member, label, expires, now)
            except IntegrityError:
                continue
            info = _row(conn, token_id)
            assert info is not None
            return IssuedToken(info, token=token, replayed=False)
    raise LedgerError(f"could not issue token {token_id}: it keeps changing")


_AUTHENTICATE = (
    "SELECT t.secret_hash, t.role, t.collective, t.member, t.label, t.created_ts, t.expires_ts, "
    "t.revoked_ts, m.active FROM tokens t "
    "LEFT JOIN members m ON m.id = t.member AND m.collective = t.collective WHERE t.id = ?"
)


def authenticate(engine: Engine, token: str | None, now: datetime) -> TokenInfo:
    """The token's info, if the secret matches and the token is neither revoked nor expired."""
    if not token:
        raise Unauthorized("this needs a bearer token: Authorization: Bearer lun_…")
    match = _TOKEN.match(token)
    if match is None:
        raise Unauthorized("the bearer token is malformed")
    token_id, secret = match.groups()
    # Every write asks this: one plain statement (the member's row joined) in one read.
    with one_read(engine) as conn:
        rows = read_sql(conn, _AUTHENTICATE, (token_id,))
    stored = _NO_SUCH_HASH if not rows else bytes(rows[0][0])
    if not hmac.compare_digest(_hash(secret), stored) or not rows:
        raise Unauthorized("the bearer token is not known")
    _, *columns, member_active = rows[0]
    info = TokenInfo(token_id, *columns)
    if info.revoked is not None:
        raise TokenRevoked(f"token {token_id} was revoked at {info.revoked}")
    if info.expires is not None and parse_ts(info.expires) <= now:
        raise TokenExpired(f"token {token_id} expired at {info.expires}")
    if info.role == "member" and member_active != 1:
        raise TokenRevoked(f"{info.member} is no longer an active member of {info.collective}")
    return info


def token_info(engine: Engine, token_id: str) -> TokenInfo:
    with read_transaction(engine) as conn:
        info = _row(conn, token_id) if _TOKEN_ID.match(token_id) else None
    if info is None:
        raise NotFound(f"no token {token_id}")
    return info


def revoke_token(
    engine: Engine, token_id: str, now: datetime, by: TokenInfo | None = None
) -> TokenInfo:
    """Revoke a token (idempotent: a revoked token keeps its first revocation instant).

    ``by`` is the API caller: an admin, or the token itself; None is the operator's CLI."""
    if by is not None and by.id != token_id:
        require_role(by.actor, "admin")
    with write_transaction(engine) as conn:
        info = _row(conn, token_id) if _TOKEN_ID.match(token_id) else None
        if info is None:
            raise NotFound(f"no token {token_id}")
        if info.revoked is None:
            conn.execute(
                update(tokens).where(tokens.c.id == token_id).values(revoked_ts=format_ts(now))
            )
            info = _row(conn, token_id)
            assert info is not None
    return info


def list_tokens(engine: Engine) -> list[TokenInfo]:
    """Every token's metadata, oldest first (for the operator; never public)."""
    with read_transaction(engine) as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.created_ts, tokens.c.id))
        return [_info(row) for row in rows]
