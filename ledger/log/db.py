"""Database engines for SQLite (embedded default) and PostgreSQL (production).

Writers serialise on the database: SQLite takes the write lock at ``BEGIN IMMEDIATE``;
PostgreSQL takes a row lock on ``log_head`` (see :mod:`ledger.log.append`). Everything else about
the two engines is kept the same.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import cached_property, lru_cache
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
    return _postgres_engine(url, **kwargs)


def _postgres_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, pool_recycle=3600, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # psycopg prepares a statement it has run 5 times on a connection, but PostgreSQL
        # then still plans it at every execution unless the generic plan looks no dearer than
        # the custom ones, which for `key = ANY(array)` it never does: a proof paid its
        # planning (a third of its time) each time. The ledger's statements are key lookups
        # and key ranges, for which the generic plan is the custom one: plan them once.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        dbapi_connection.commit()

    return engine


def _owner_only(database: Path) -> None:
    """Make the database file readable by its owner only (it holds private records and token
    hashes), before the first write: SQLite creates ``-wal`` and ``-shm`` with its mode."""
    stat = database.stat()
    if stat.st_mode & 0o077 and stat.st_uid == os.getuid():
        database.chmod(stat.st_mode & 0o700)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        if database and database != ":memory:":
            _owner_only(Path(database))
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
        driver: Any = conn.connection.dbapi_connection
        if driver.in_transaction:  # begun on the driver: see _sqlite_write_transaction
            return
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        execute_raw(conn, "BEGIN IMMEDIATE" if write else "BEGIN").close()

    return engine


def execute_raw(conn: Connection, sql: str, params: Any = (), *, many: bool = False) -> Any:
    """Run one statement straight on the DBAPI connection, inside ``conn``'s transaction.

    On the append path SQLAlchemy's per-statement machinery (contexts, result objects, events)
    costs more than the statement itself. Errors are still raised as SQLAlchemy's DBAPIError
    subclasses, and a lost connection is invalidated, as ``Connection.exec_driver_sql`` does.
    """

    def run(cursor: Any) -> None:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)

    return _on_cursor(conn, sql, params, many, run)


def copy_rows(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Send ``rows`` through ``COPY … FROM STDIN`` (PostgreSQL, psycopg), as execute_raw runs a
    statement: in ``conn``'s transaction, errors raised as SQLAlchemy's."""

    def run(cursor: Any) -> None:
        with cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

    _on_cursor(conn, sql, rows, True, run).close()


def _on_cursor(
    conn: Connection, sql: str, params: Any, many: bool, run: Callable[[Any], None]
) -> Any:
    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        run(cursor)
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


@lru_cache(maxsize=512)
def _format_style(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (our statements hold no literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def write_sql(conn: Connection, sql: str, params: Any = (), *, many: bool = False) -> None:
    """Run a statement written with ``?`` placeholders on either engine (see execute_raw)."""
    if not is_sqlite(conn):
        sql = _format_style(sql)
    execute_raw(conn, sql, params, many=many).close()


def write_rows(conn: Connection, sql: str, rows: Sequence[Any]) -> None:
    """Run a statement once per row of parameters: a plain execute for one row (cheaper than
    executemany), one executemany for several (psycopg pipelines those), nothing for none."""
    if len(rows) == 1:
        write_sql(conn, sql, rows[0])
    elif rows:
        write_sql(conn, sql, rows, many=True)


# SQLite before 3.32 binds at most 999 parameters to a statement.
_SQLITE_MAX_PARAMETERS = 999


@dataclass(frozen=True)
class RowInsert:
    """``INSERT INTO table (columns)`` for many rows at once.

    A batch goes in a few statements, not one per row (executemany steps, and on PostgreSQL
    executes, a statement per row): SQLite takes as many rows per statement as its parameter
    limit allows, in one ``VALUES`` list; PostgreSQL takes them all through ``COPY``."""

    table: str
    columns: tuple[str, ...]

    @cached_property
    def _copy(self) -> str:
        return f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN"

    def _values(self, count: int) -> str:
        """The statement for ``count`` rows, ``?`` placeholders (see write_sql)."""
        return _values_statement(self.table, ", ".join(self.columns), len(self.columns), count)

    def run(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) < 2:
            write_rows(conn, self._values(1), rows)
        elif is_sqlite(conn):
            step = max(1, _SQLITE_MAX_PARAMETERS // len(self.columns))
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                values = [value for row in chunk for value in row]
                execute_raw(conn, self._values(len(chunk)), values).close()
        else:
            copy_rows(conn, self._copy, rows)


@lru_cache(maxsize=256)
def _values_statement(table: str, names: str, width: int, count: int) -> str:
    row = f"({', '.join('?' * width)})"
    return f"INSERT INTO {table} ({names}) VALUES {', '.join([row] * count)}"


def read_sql(conn: Connection, sql: str, params: Any = ()) -> list[Any]:
    """The rows (tuples) of a query written with ``?`` placeholders, on either engine."""
    if not is_sqlite(conn):
        sql = _format_style(sql)
    cursor = execute_raw(conn, sql, params)
    try:
        rows: list[Any] = cursor.fetchall()
    finally:
        cursor.close()
    return rows


class SqliteWriterTurns:
    """The turn to write to a SQLite database, taken before ``BEGIN IMMEDIATE``.

    SQLite has one writer at a time, and a writer that finds the lock taken waits in SQLite's
    busy handler, which sleeps 1, 2, 5, 10... ms between tries: under steady writes from two
    processes, most of a commit's time went to sleeping. Here a writer waits on a lock that
    wakes it as soon as the turn is free: a thread lock among this process's threads, then an
    exclusive ``flock`` on ``<database>-writer.lock`` among processes (writers that do not
    take it, such as other tools, still meet the busy handler and stay correct).
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = None if database in (None, "", ":memory:") else f"{database}-writer.lock"
        self._file: tuple[int, int] | None = None  # (pid, fd): a forked child opens its own

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fd = self._fd()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            fd = self._fd()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _fd(self) -> int | None:
        if self._path is None:
            return None
        if self._file is None or self._file[0] != os.getpid():
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            weakref.finalize(self, os.close, fd)
            self._file = (os.getpid(), fd)
        return self._file[1]


@contextmanager
def _sqlite_write_transaction(conn: Connection, opening: str) -> Iterator[Any]:
    """``BEGIN IMMEDIATE``, ``opening``, … ``COMMIT``, straight on the driver; yields the
    first row of ``opening``.

    SQLAlchemy's transaction (its events and objects) cost a tenth of a small append. A
    statement run through SQLAlchemy inside still works: it begins SQLAlchemy's transaction,
    for which the begin listener adds nothing (the driver's is open), and that transaction's
    commit ends both. An error leaves it to the caller to roll back (closing ``conn`` does)."""
    execute_raw(conn, "BEGIN IMMEDIATE").close()
    yield _first_row(execute_raw(conn, opening))
    _commit(conn)


@contextmanager
def _postgres_write_transaction(conn: Connection, opening: str) -> Iterator[Any]:
    """``BEGIN`` and ``opening`` in one round trip, … ``COMMIT``; yields the first row of
    ``opening``.

    psycopg would send its own BEGIN, one round trip, before the first statement; a write
    connection is in autocommit mode instead (psycopg sends no BEGIN), and the transaction
    starts with one simple query of both statements: a tenth of a single append on a local
    server. Statements through SQLAlchemy inside run in it, and the commit (SQLAlchemy's, or
    ours) ends it. An error rolls it back here, before the connection goes back to the pool,
    which restores psycopg's own transactions (it cannot while one is open)."""
    cursor = execute_raw(conn, "BEGIN; " + opening)
    try:
        cursor.nextset()
        yield _first_row(cursor)
    except BaseException:
        if not conn.invalidated:  # (a lost connection is discarded, not pooled)
            with suppress(conn.dialect.loaded_dbapi.Error):  # (the first error is the one)
                conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        raise
    _commit(conn)


def commit_pipelined(conn: Connection, sql: str, params: Any) -> Any:
    """``BEGIN``, ``sql``, ``COMMIT`` sent at once (psycopg's pipeline mode): one round trip
    for a whole write transaction on PostgreSQL; returns the first row of ``sql``.

    ``conn`` is an idle write connection from :meth:`WriteConnections.connection`. If ``sql``
    fails, the server skips the ``COMMIT``; the failed transaction is rolled back when that
    method hands the connection back to the pool."""
    driver: Any = conn.connection.dbapi_connection

    def run(cursor: Any) -> None:
        with driver.pipeline():
            driver.execute("BEGIN")
            cursor.execute(sql, params)
            driver.execute("COMMIT")

    return _first_row(_on_cursor(conn, sql, params, False, run))


def _first_row(cursor: Any) -> Any:
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _commit(conn: Connection) -> None:
    if conn.in_transaction():
        conn.commit()
    else:
        execute_raw(conn, "COMMIT").close()


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
        sqlite = is_sqlite(engine)
        self._turns: AbstractContextManager[Any] = (
            SqliteWriterTurns(engine.url.database) if sqlite else nullcontext()
        )
        self._begin: Callable[[Connection, str], AbstractContextManager[Any]] = (
            _sqlite_write_transaction if sqlite else _postgres_write_transaction
        )
        event.listen(engine, "engine_disposed", self._close_idle)

    @contextmanager
    def transaction(self, opening: str) -> Iterator[tuple[Connection, Any]]:
        """A transaction that holds the write lock from its first statement (SQLite), which
        is ``opening`` (a query without parameters); yields the connection and that query's
        first row (or None)."""
        with self._turns, self.connection() as conn, self._begin(conn, opening) as first_row:
            yield conn, first_row

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """An idle write connection, outside any transaction (see :func:`commit_pipelined`)."""
        try:
            conn = self._idle.pop()  # (no check first: another thread may take it meanwhile)
        except IndexError:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            conn.close()  # rolled back (or broken): back to the pool, which resets it
            raise
        if conn.invalidated:
            conn.close()
        else:
            self._idle.append(conn)

    def _connect(self) -> Connection:
        conn = self._engine.connect()
        if not is_sqlite(conn):  # see _postgres_write_transaction
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def _close_idle(self, _engine: Engine) -> None:
        while self._idle:
            self._idle.pop().close()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read-only view."""
    with engine.connect() as conn, conn.begin():
        yield conn
