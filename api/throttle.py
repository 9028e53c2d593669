"""Rate limits: failed authentications per client address, writes per token, report renders per
client address, and a decorator for public forms (the grant-request form reuses it).

Each limit is a setting in the ``limits`` notation (``"20 per minute"``, several separated by
``;``), counted in fixed windows by the ``limits`` library (flask-limiter's engine) in a table
of our own database, ``rate_counters``. Why the database: limits must hold across processes
and hosts (the proxy may spread clients over several servers, and a restart must not reset
them), and ``limits`` otherwise offers only process memory or servers that a deployment does
not run (Redis, memcached, MongoDB). A counted request costs one upsert, on the database the
request uses anyway. Why ``limits`` and not flask-limiter's decorators: two of the limits
count around authentication (failures only, and checked before the token is), not per view.

Past a limit the API answers ``429`` problem+json, code ``rate_limited``, with ``Retry-After``
(seconds until the window ends); a web page answers a plain 429 with the same header.

The client address is the connection's, unless ``LUNARIA_PROXY_HOPS`` says how many proxies in
front append to ``X-Forwarded-For`` (werkzeug's ProxyFix then takes the address they saw;
``X-Forwarded-Proto`` too). Trust it only behind such proxies: a client can write any
``X-Forwarded-For`` it likes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from api import db
from api.errors import API_PREFIX, problem

F = TypeVar("F", bound=Callable[..., Any])

# Created by migration 0010. Not part of the ledger: nothing here is derived from the log or
# needed to verify it; the server's database role may update and delete rows.
rate_counters = Table(
    "rate_counters",
    MetaData(),
    Column("key", String(200), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),  # seconds since the epoch (the app's clock)
)

# Fixed window: a new window starts with the first hit after the last one ended.
_INCREMENT = text(
    "INSERT INTO rate_counters (key, count, expires_at) VALUES (:key, :amount, :expires) "
    "ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN rate_counters.expires_at <= :now "
    "THEN :amount ELSE rate_counters.count + :amount END, "
    "expires_at = CASE WHEN rate_counters.expires_at <= :now "
    "THEN :expires ELSE rate_counters.expires_at END "
    "RETURNING count"
)
PURGE_EVERY = 1000  # increments between deletions of ended windows (per process)


class DatabaseStorage(Storage):
    """A ``limits`` storage for fixed windows in ``rate_counters``, on the app's engine and
    clock (so tests that move the clock move the windows)."""

    STORAGE_SCHEME = ["lunaria-database"]  # noqa: RUF012  (as limits declares it; never parsed)

    def __init__(self, engine: Callable[[], Engine], now: Callable[[], float]) -> None:
        super().__init__()
        self._engine = engine
        self._now = now
        self._increments = 0

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._now()
        params = {"key": key, "amount": amount, "expires": now + expiry, "now": now}
        with self._engine().connect() as conn, _without_waiting_for_the_disk(conn):
            count: int = conn.execute(_INCREMENT, params).scalar_one()
            self._increments += 1
            if self._increments % PURGE_EVERY == 0:
                conn.execute(delete(rate_counters).where(rate_counters.c.expires_at <= now))
            conn.commit()
        return count

    def _row(self, key: str) -> tuple[int, float] | None:
        """(count, end of window) of the window under way, or None."""
        query = select(rate_counters.c.count, rate_counters.c.expires_at).where(
            rate_counters.c.key == key, rate_counters.c.expires_at > self._now()
        )
        with self._engine().connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], row[1])

    def get(self, key: str) -> int:
        row = self._row(key)
        return 0 if row is None else row[0]

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return self._now() if row is None else row[1]

    def check(self) -> bool:
        with self._engine().connect() as conn:
            conn.execute(select(1))
        return True

    def reset(self) -> int | None:
        with self._engine().begin() as conn:
            return conn.execute(delete(rate_counters)).rowcount

    def clear(self, key: str) -> None:
        with self._engine().begin() as conn:
            conn.execute(delete(rate_counters).where(rate_counters.c.key == key))


@contextmanager
def _without_waiting_for_the_disk(conn: Connection) -> Iterator[None]:
    """A counter's commit need not reach the disk before the request goes on: a crash loses
    at most the last counts. (Every write counts once, so a synced commit each would cost
    the writes an fsync more.) PostgreSQL: ``synchronous_commit`` off for the transaction;
    SQLite: ``synchronous=OFF`` on the connection until the commit, then FULL again."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        yield
        return
    driver = conn.connection.dbapi_connection  # (outside a transaction: SQLite requires it)
    assert driver is not None
    driver.execute("PRAGMA synchronous=OFF")
    try:
        yield
    finally:
        conn.rollback()  # (nothing after the commit; else the failed statement's transaction)
        driver.execute("PRAGMA synchronous=FULL")


@dataclass(frozen=True)
class Throttle:
    """One limit: the setting that holds it, and what it counts (for keys and messages)."""

    setting: str
    scope: str
    counts: str


AUTH_FAILURES = Throttle("RATE_LIMIT_AUTH_FAILURES", "auth-failures", "failed authentications")
WRITES = Throttle("RATE_LIMIT_WRITES", "writes", "writes with this token")
REPORTS = Throttle("RATE_LIMIT_REPORTS", "reports", "report renders")
GRANT_REQUESTS = Throttle("RATE_LIMIT_GRANT_REQUESTS", "grant-requests", "grant requests")
PLEDGES = Throttle("RATE_LIMIT_PLEDGES", "pledges", "pledges")


_EXTENSION = "lunaria.throttle"


class RateLimited(Exception):
    """A limit is spent; ``retry_after`` is the number of seconds until its window ends."""

    def __init__(self, throttle: Throttle, item: RateLimitItem, retry_after: int) -> None:
        super().__init__(f"too many {throttle.counts}: at most {item}; retry in {retry_after} s")
        self.detail = str(self)
        self.retry_after = retry_after


def _limiter() -> FixedWindowRateLimiter:
    limiter: FixedWindowRateLimiter = current_app.extensions[_EXTENSION]
    return limiter


def _items(throttle: Throttle) -> list[RateLimitItem]:
    """The limits in force for ``throttle`` (none when limits are off or it is empty)."""
    configured = current_app.config[throttle.setting]
    if not current_app.config["RATE_LIMITS"] or not configured:
        return []
    return parse_many(str(configured))


def _refusal(throttle: Throttle, item: RateLimitItem, identity: str) -> RateLimited:
    ends = _limiter().get_window_stats(item, throttle.scope, identity).reset_time
    now = db.get_clock().now().timestamp()
    return RateLimited(throttle, item, max(1, math.ceil(ends - now)))


def refuse_if_spent(throttle: Throttle, identity: str) -> None:
    """Raise :class:`RateLimited` if ``identity`` has no hit of ``throttle`` left, without
    counting one (the failures limit is checked before a token, counted after a failure)."""
    for item in _items(throttle):
        if not _limiter().test(item, throttle.scope, identity):
            raise _refusal(throttle, item, identity)


def count(throttle: Throttle, identity: str) -> None:
    """Count one hit of ``throttle`` for ``identity``; raise :class:`RateLimited` past it."""
    for item in _items(throttle):
        if not _limiter().hit(item, throttle.scope, identity):
            raise _refusal(throttle, item, identity)


def client_address() -> str:
    """The client's address: the connection's, or the proxies' (``LUNARIA_PROXY_HOPS``)."""
    return request.remote_addr or "unknown"


def per_client_address(throttle: Throttle) -> Callable[[F], F]:
    """A view decorator: every request to the view counts against ``throttle`` for the
    client's address, before the view runs. For public, unauthenticated forms, e.g.::

        @bp.route("/pools/<slug>/request", methods=["POST"])
        @throttle.per_client_address(throttle.GRANT_REQUESTS)
        def grant_request(slug: str) -> Response: ...

    A new form gets a :class:`Throttle` of its own, its setting in ``api.DEFAULTS`` and a line
    in docs/operations.md."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count(throttle, client_address())
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def _too_many(exc: RateLimited) -> Any:
    headers = {"Retry-After": str(exc.retry_after)}
    if request.path.startswith(API_PREFIX):
        return problem("rate_limited", exc.detail, headers=headers)
    return TooManyRequests(exc.detail, retry_after=exc.retry_after)


def init_app(app: Flask) -> None:
    """The limiter on the app's database and clock, its 429 answers, and ProxyFix."""
    storage = DatabaseStorage(db.get_engine, lambda: db.get_clock().now().timestamp())
    app.extensions[_EXTENSION] = FixedWindowRateLimiter(storage)
    app.register_error_handler(RateLimited, _too_many)
    hops = int(app.config["PROXY_HOPS"])
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
