"""Database engines for SQLite (embedded default) and PostgreSQL (production).

Writers serialise on the database: SQLite takes the write lock at ``BEGIN IMMEDIATE``;
PostgreSQL takes a row lock on ``log_head`` (see :mod:`ledger.log`). Everything else about
the two engines is kept the same.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

WRITE_OPTION = "lunaria_write"


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for the ledger: WAL and explicit transactions on SQLite."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_recycle=3600, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not pysqlite, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        execute_raw(conn, "BEGIN IMMEDIATE" if write else "BEGIN").close()

    return engine


def execute_raw(conn: Connection, sql: str, params: Any = (), *, many: bool = False) -> Any:
    """Run one statement straight on the DBAPI connection, inside ``conn``'s transaction.

    On the append path SQLAlchemy's per-statement machinery (contexts, result objects, events)
    costs more than the statement itself. Errors are still raised as SQLAlchemy's DBAPIError
    subclasses, and a lost connection is invalidated, as ``Connection.exec_driver_sql`` does.
    """
    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            params,
            exc,
            conn.dialect.loaded_dbapi.Error,
            hide_parameters=conn.engine.hide_parameters,
            connection_invalidated=lost,
            dialect=conn.dialect,
            ismulti=many,
        ) from exc
    return cursor


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


class WriteConnections:
    """Write transactions, on connections kept open between them.

    Taking a connection from SQLAlchemy's pool and handing it back costs more than the
    statements of a small SQLite append (tens of microseconds, on every append), so writers take
    one from a stack of idle write connections instead: at most as many stay open as writers
    ever ran at once, and ``engine.dispose()`` closes them. Like the engine, not fork-safe.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(**{WRITE_OPTION: True})
        self._idle: deque[Connection] = deque()  # append/pop are atomic: no lock needed
        event.listen(engine, "engine_disposed", self._close_idle)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction that holds the write lock from its first statement (SQLite)."""
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._engine.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            conn.close()  # rolled back (or broken): back to the pool, which resets it
            raise
        if conn.invalidated:
            conn.close()
        else:
            self._idle.append(conn)

    def _close_idle(self, _engine: Engine) -> None:
        while self._idle:
            self._idle.pop().close()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read-only view."""
    with engine.connect() as conn, conn.begin():
        yield conn
