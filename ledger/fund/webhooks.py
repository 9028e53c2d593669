"""Webhook endpoints: subscriptions over the API, and the signed HTTP POST that delivers.

A collective's member subscribes URLs for its collective's events; an admin for the whole
fund. The secret is generated here in the Standard Webhooks format (``whsec_`` and base64 of
24 random bytes), returned once, and kept to sign: each delivery carries ``webhook-id`` (the
event id, the same on every retry), ``webhook-timestamp`` and ``webhook-signature``, made by
the ``standardwebhooks`` library.

The secret is kept sealed (``webhook_secrets``): the :class:`~ledger.fund.vault.Vault`
encrypts it as it does a private record, under a data key of its own wrapped by the vault key,
with the endpoint's id as associated data, so a copy of the database (a backup, a seized
server) cannot forge deliveries, and a sealed secret moved to another endpoint's row does not
open. It is opened only where a delivery is signed (:func:`open_secret`). A vault key rotation
re-wraps these data keys with the private records' (:func:`rewrap_secrets`, called by
``privacy.erase``); secrets kept in the clear by a Lunaria before migration 0017 are sealed by
``lunaria init`` (:func:`seal_legacy_secrets`), and until then the worker refuses to sign with
them.

Server-side request forgery: a target must be http(s) and every address its host resolves to
must be public (not loopback, private, link-local, shared, reserved or multicast), checked
when it is subscribed and again at each delivery, which then connects to the very address it
checked (a host that resolves elsewhere a second later is not asked again) and follows no
redirect. ``LUNARIA_WEBHOOK_ALLOW_PRIVATE=1`` lifts this (tests, a closed network).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)
from standardwebhooks import Webhook

from ledger.errors import IdempotencyConflict, LedgerError, NotFound, RuleViolation
from ledger.fund.events import EVENT_TYPES, notification_write, start_cursors
from ledger.fund.rules import Actor, require_role
from ledger.fund.schema import deliveries, notification_events, webhook_endpoints, webhook_secrets
from ledger.fund.vault import Rewrap, Sealed, Vault, VaultError
from ledger.log.clock import format_ts
from ledger.log.db import write_transaction

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 24
MAX_URL = 2000
MAX_ENDPOINTS = 20  # per collective, and for the fund
USER_AGENT = "Lunaria-Webhooks/1"


class TargetRefused(RuleViolation):
    """A webhook URL resolving to an address that is not public."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "private_target")


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (an address that was checked) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _invalid(message: str) -> RuleViolation:
    return RuleViolation(message, "invalid_url")


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])  # (an IPv6 zone id is link-local anyway)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_target(url: str, allow_private: bool) -> Target:
    """Parse ``url`` and resolve its host; refuse what is not a public http(s) target."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL or not url.isprintable():
        raise _invalid(f"the url must be 1-{MAX_URL} printable characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise _invalid(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("the url must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise _invalid("the url may carry no user, password or #fragment")
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _invalid(f"the host {parts.hostname!r} does not resolve") from exc
    addresses = sorted({str(info[4][0]) for info in found})
    refused = [a for a in addresses if not _is_public(a)]
    if refused and not allow_private:
        raise TargetRefused(
            f"{parts.hostname} resolves to {', '.join(refused)}: not a public address "
            "(set LUNARIA_WEBHOOK_ALLOW_PRIVATE=1 to allow private targets)"
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to the checked address, not to whatever the host name resolves to now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._create_connection = _pinned(target.address)


class _PinnedHttpsConnection(http.client.HTTPSConnection):
    """The same over TLS: the certificate is still checked against the host name (SNI)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._create_connection = _pinned(target.address)


def _pinned(address: str) -> Any:
    def connect(where: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((address, where[1]), *args, **kwargs)

    return connect


@dataclass(frozen=True)
class Sent:
    """How one attempt went: ``ok`` for a 2xx answer; else the status and/or the error."""

    ok: bool
    status: int | None = None
    error: str | None = None


def post_signed(
    url: str,
    secret: str,
    event_id: str,
    at: datetime,
    body: bytes,
    *,
    timeout: float,
    allow_private: bool,
) -> Sent:
    """POST ``body`` to ``url`` signed per Standard Webhooks; never raises for the target's
    faults (they are the delivery log's to show)."""
    try:
        target = check_target(url, allow_private)
    except RuleViolation as exc:
        return Sent(False, error=exc.message)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }
    kind = _PinnedHttpsConnection if target.scheme == "https" else _PinnedConnection
    conn = kind(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)  # (a little of it, so the connection closes cleanly)
    except (OSError, http.client.HTTPException) as exc:
        return Sent(False, error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return Sent(True, response.status)
    if 300 <= response.status < 400:
        return Sent(False, response.status, "redirects are not followed")
    return Sent(False, response.status, f"HTTP {response.status} {response.reason}"[:500])


# -- the sealed secret -------------------------------------------------------------------------


class SecretRefused(LedgerError):
    """An endpoint's secret that cannot be used to sign: none sealed, or one that does not
    open for this endpoint. Nothing is sent."""

    code = "webhook_secret_refused"


def _bound(endpoint_id: str) -> str:
    """What a secret is sealed to (the vault's associated data): the endpoint's id, named so
    that no private record's commitment (64 hex digits) is ever the same."""
    return f"webhook-secret/{endpoint_id}"


def _lock_secrets(conn: Connection, mode: str) -> None:
    """PostgreSQL: creating an endpoint (``ROW EXCLUSIVE``) waits for a rotation
    (``EXCLUSIVE``) and the other way round, so no secret is sealed under a vault key that a
    rotation is retiring without being re-wrapped. (SQLite: each holds the write lock.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE webhook_secrets IN {mode} MODE"))


def _seal_secret(conn: Connection, vault: Vault, endpoint_id: str, secret: str) -> None:
    (sealed,) = vault.seal([(_bound(endpoint_id), secret.encode())])
    conn.execute(
        insert(webhook_secrets).values(
            endpoint=endpoint_id,
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
            sealed=sealed.ciphertext,
        )
    )


def _stored_secret(conn: Connection, endpoint_id: str) -> Sealed | None:
    row = conn.execute(
        select(webhook_secrets).where(webhook_secrets.c.endpoint == endpoint_id)
    ).one_or_none()
    return None if row is None else Sealed(row.key_id, bytes(row.wrapped_key), bytes(row.sealed))


def open_secret(engine: Engine, vault: Vault, endpoint_id: str) -> str:
    """The endpoint's ``whsec_`` secret, opened to sign a delivery; :class:`SecretRefused`
    if it has none sealed or what its row holds does not open for it."""
    opened: bytes | None = None
    for _ in range(2):  # (a rotation may retire the key between the read and the opening)
        with engine.connect() as conn:
            sealed = _stored_secret(conn, endpoint_id)
        if sealed is None:
            raise SecretRefused(
                f"webhook endpoint {endpoint_id} has no sealed secret (kept in the clear by "
                "an older Lunaria? run lunaria init to seal it): nothing sent"
            )
        try:
            opened = vault.open(_bound(endpoint_id), sealed)
            break
        except VaultError as exc:
            with engine.connect() as conn:
                again = _stored_secret(conn, endpoint_id)
            if again is None or again.key_id == sealed.key_id:
                raise SecretRefused(
                    f"the sealed secret of webhook endpoint {endpoint_id} does not open for it "
                    f"({exc.message}; a row copied from another endpoint?): nothing sent"
                ) from exc
    assert opened is not None
    return opened.decode()


def rewrap_secrets(conn: Connection, rewrap: Rewrap) -> int:
    """Re-wrap every secret's data key under the new vault key of a rotation, in the
    rotation's write transaction (before :meth:`Rewrap.install`); the number re-wrapped."""
    _lock_secrets(conn, "EXCLUSIVE")
    rows = conn.execute(
        select(webhook_secrets.c.endpoint, webhook_secrets.c.key_id, webhook_secrets.c.wrapped_key)
    ).all()
    if rows:
        conn.execute(
            update(webhook_secrets)
            .where(webhook_secrets.c.endpoint == bindparam("which"))
            .values(key_id=bindparam("key"), wrapped_key=bindparam("wrapped")),
            [
                {
                    "which": endpoint,
                    "key": rewrap.key_id,
                    "wrapped": rewrap(_bound(endpoint), k, bytes(w)),
                }
                for endpoint, k, w in rows
            ],
        )
    return len(rows)


def seal_legacy_secrets(engine: Engine, vault: Vault) -> int:
    """Seal the secrets that migration 0017 set aside as kept in the clear before, then drop
    their table (``lunaria init`` runs this). The number sealed."""
    if "webhook_secrets_legacy" not in inspect(engine).get_table_names():
        return 0
    with write_transaction(engine) as conn:
        rows = conn.execute(text("SELECT endpoint, secret FROM webhook_secrets_legacy")).all()
        for endpoint_id, secret in rows:
            _seal_secret(conn, vault, endpoint_id, secret)
        conn.execute(text("DROP TABLE webhook_secrets_legacy"))
    return len(rows)


# -- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint as the API shows it (never its secret, once created)."""

    id: str
    url: str
    collective: str | None
    events: list[str]
    created: str
    disabled_at: str | None
    disabled_reason: str | None
    failures_in_a_row: int


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: Endpoint
    secret: str | None  # shown once; None on an idempotent replay
    replayed: bool


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        collective=row.collective,
        events=json.loads(row.events),
        created=row.created_ts,
        disabled_at=row.disabled_ts,
        disabled_reason=row.disabled_reason,
        failures_in_a_row=int(row.failures_in_a_row),
    )


def check_event_types(types: list[str] | None) -> list[str]:
    """The event types asked for, sorted; all of them when not given."""
    if types is None:
        return sorted(EVENT_TYPES)
    unknown = sorted({t for t in types if t not in EVENT_TYPES})
    if unknown or not types:
        raise RuleViolation(
            f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}"
            if unknown
            else "name at least one event type (or leave events out for all)",
            "unknown_event_type",
        )
    return sorted(set(types))


def _scope(actor: Actor) -> str | None:
    """The collective an endpoint of ``actor`` hears (None: the whole fund, admins)."""
    require_role(actor, "admin", "member")
    return actor.collective if actor.role == "member" else None


def _owned(actor: Actor) -> Any:
    """The endpoints ``actor`` may see and delete: its collective's, or all for an admin."""
    scope = _scope(actor)
    return True if scope is None else webhook_endpoints.c.collective == scope


def create_endpoint(
    engine: Engine,
    vault: Vault,
    actor: Actor,
    *,
    url: str,
    events: list[str] | None,
    now: datetime,
    allow_private: bool,
    idempotency_scope: str,
) -> CreatedEndpoint:
    """Subscribe ``url``. The id derives from the idempotency scope, so a retry finds the
    endpoint made before (its secret is not shown again); other values are a conflict. The
    secret is sealed by ``vault`` before it reaches the database."""
    scope = _scope(actor)
    types = check_event_types(events)
    endpoint_id = hashlib.sha256(f"lunaria-webhook|{idempotency_scope}".encode()).hexdigest()[:16]
    with engine.connect() as conn:
        before = _row(conn, endpoint_id)
    if before is not None:
        return _replay(before, url, types, idempotency_scope)
    check_target(url, allow_private)  # (resolving a name takes time: before the lock)
    with notification_write(engine) as conn:
        before = _row(conn, endpoint_id)
        if before is not None:  # (a twin request got there first)
            return _replay(before, url, types, idempotency_scope)
        _check_room(conn, scope)
        _lock_secrets(conn, "ROW EXCLUSIVE")  # (before sealing: see _lock_secrets)
        secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()
        _seal_secret(conn, vault, endpoint_id, secret)
        conn.execute(
            insert(webhook_endpoints).values(
                id=endpoint_id,
                url=url,
                collective=scope,
                events=json.dumps(types),
                created_by=actor.id,
                created_ts=format_ts(now),
                failures_in_a_row=0,
            )
        )
        start_cursors(conn)
        created = _row(conn, endpoint_id)
        assert created is not None
    return CreatedEndpoint(created, secret, replayed=False)


def _replay(before: Endpoint, url: str, types: list[str], scope: str) -> CreatedEndpoint:
    """The endpoint a retry made before (without its secret), or a conflict."""
    asked = {"url": url, "events": types}
    differing = [name for name, value in asked.items() if getattr(before, name) != value]
    if differing:
        raise IdempotencyConflict(scope, differing)
    return CreatedEndpoint(before, None, replayed=True)


def _check_room(conn: Connection, scope: str | None) -> None:
    same = (
        webhook_endpoints.c.collective.is_(None)
        if scope is None
        else webhook_endpoints.c.collective == scope
    )
    count = len(conn.execute(select(webhook_endpoints.c.id).where(same)).all())
    if count >= MAX_ENDPOINTS:
        raise RuleViolation(f"at most {MAX_ENDPOINTS} endpoints each", "too_many_endpoints")


def _row(conn: Connection, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(
        select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    ).one_or_none()
    return None if row is None else _endpoint(row)


def list_endpoints(engine: Engine, actor: Actor) -> list[Endpoint]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(webhook_endpoints)
            .where(_owned(actor))
            .order_by(webhook_endpoints.c.created_ts, webhook_endpoints.c.id)
        )
        return [_endpoint(row) for row in rows]


def get_endpoint(engine: Engine, actor: Actor, endpoint_id: str) -> Endpoint:
    with engine.connect() as conn:
        row = conn.execute(
            select(webhook_endpoints).where(
                and_(webhook_endpoints.c.id == endpoint_id, _owned(actor))
            )
        ).one_or_none()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return _endpoint(row)


def delete_endpoint(engine: Engine, actor: Actor, endpoint_id: str) -> None:
    """Unsubscribe: the endpoint, its sealed secret and its delivery log go; nothing more is
    sent to it."""
    get_endpoint(engine, actor, endpoint_id)
    with notification_write(engine) as conn:
        conn.execute(
            delete(deliveries).where(
                and_(deliveries.c.channel == "webhook", deliveries.c.target == endpoint_id)
            )
        )
        conn.execute(delete(webhook_secrets).where(webhook_secrets.c.endpoint == endpoint_id))
        conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))


@dataclass(frozen=True)
class DeliveryView:
    """One line of an endpoint's delivery log."""

    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    created: str
    last_attempt: str | None
    last_status: int | None
    last_error: str | None
    next_attempt: str | None
    delivered_at: str | None


def endpoint_deliveries(
    engine: Engine, actor: Actor, endpoint_id: str, limit: int = 100
) -> list[DeliveryView]:
    """The endpoint's deliveries, newest first."""
    get_endpoint(engine, actor, endpoint_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries, notification_events.c.type)
            .join(notification_events, notification_events.c.id == deliveries.c.event_id)
            .where(and_(deliveries.c.channel == "webhook", deliveries.c.target == endpoint_id))
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        return [
            DeliveryView(
                id=int(r.id),
                event_id=r.event_id,
                event_type=r.type,
                status=r.status,
                attempts=int(r.attempts),
                created=r.created_ts,
                last_attempt=r.last_attempt_ts,
                last_status=r.last_status,
                last_error=r.last_error,
                next_attempt=r.next_attempt_ts,
                delivered_at=r.delivered_ts,
            )
            for r in rows
        ]
