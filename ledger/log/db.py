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
        # While queueing, psycopg raises a refusal of an earlier queued statement from
        # whichever statement its result arrives with: it is the same refusal as at the commit.
        if queueing(conn) and _refused(exc):
            raise NotCommitted(exc) from exc
        raise _dbapi_error(conn, exc, sql, params, many, cursor) from exc
    return cursor


def _refused(exc: Exception) -> bool:
    """The database refused a statement (it rolls the transaction back), as opposed to the
    connection failing (SQLSTATE class 08), after which nothing is known."""
    sqlstate = getattr(exc, "sqlstate", None)
    return bool(sqlstate) and not str(sqlstate).startswith("08")


def _dbapi_error(
    conn: Connection, exc: Any, sql: str, params: Any, many: bool, cursor: Any = None
) -> Exception:
    """The driver's ``exc`` as SQLAlchemy raises it; a lost connection is invalidated."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    error: Exception = DBAPIError.instance(
        sql,
        params,
        exc,
        conn.dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=lost,
        dialect=conn.dialect,
        ismulti=many,
    )
    return error


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


# SQLite before 3.32 binds at most 999 parameters to a statement; PostgreSQL 65,535.
_SQLITE_MAX_PARAMETERS = 999
_POSTGRES_MAX_PARAMETERS = 65_535


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
        elif is_sqlite(conn) or queueing(conn):  # (COPY cannot be queued: see WriteQueue)
            limit = _SQLITE_MAX_PARAMETERS if is_sqlite(conn) else _POSTGRES_MAX_PARAMETERS
            step = max(1, limit // len(self.columns))
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                values = [value for row in chunk for value in row]
                write_sql(conn, self._values(len(chunk)), values)
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
    rows: list[Any] = []

    def run(cursor: Any) -> None:
        cursor.execute(sql, params)
        rows.extend(cursor.fetchall())  # (while queueing, the rows may bring a refusal)

    _on_cursor(conn, sql, params, False, run).close()
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


Read = tuple[str, Sequence[Any]]
"""A query written with ``?`` placeholders and its parameters (see read_sql)."""


class NotCommitted(Exception):
    """The database refused a statement of a queued write transaction (see WriteQueue), so
    it rolled the transaction back: nothing of it was written. ``error`` is the refusal."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class WriteQueue:
    """PostgreSQL: the statements of a write transaction's end, queued and sent with its
    COMMIT in one round trip (psycopg's pipeline mode); on SQLite, which has no round trips
    to save, statements run as they come and :meth:`start` does nothing.

    While queueing, a statement that returns rows still works (psycopg sends what is queued
    and waits for its rows), but a write is not known to have succeeded until :meth:`flush`
    or the commit (or a later statement, which psycopg may hand an earlier one's refusal):
    an error surfaces there, as :class:`NotCommitted` when the database
    refused a statement (it then rolled the transaction back), else as SQLAlchemy's error. So
    only a transaction's last writes, which nothing reads back, are queued; ``COPY`` cannot
    be (RowInsert inserts rows by ``VALUES`` meanwhile)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pipeline: Any = None

    def start(self) -> None:
        if self._pipeline is None and not is_sqlite(self._conn):
            driver: Any = self._conn.connection.dbapi_connection
            self._pipeline = driver.pipeline()
            self._pipeline.__enter__()

    def flush(self) -> None:
        """Send what is queued and wait for it; statements then run as they come again."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        try:
            pipeline.__exit__(None, None, None)
        except self._conn.dialect.loaded_dbapi.Error as exc:
            if _refused(exc):
                raise NotCommitted(exc) from exc
            raise _dbapi_error(self._conn, exc, "(queued statements)", (), True) from exc

    def commit(self) -> None:
        """COMMIT, queued with the rest, and wait for it."""
        if self._pipeline is None or self._conn.in_transaction():
            self.flush()
            _commit(self._conn)
            return
        self._conn.connection.dbapi_connection.execute("COMMIT")  # type: ignore[union-attr]
        self.flush()

    def abandon(self) -> None:
        """Leave pipeline mode after an error (the transaction is then rolled back)."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with suppress(Exception):  # (the first error is the one)
                pipeline.__exit__(RuntimeError, RuntimeError("abandoned"), None)


def queueing(conn: Connection) -> bool:
    """True while ``conn`` queues its statements (a WriteQueue was started on it)."""
    if is_sqlite(conn):
        return False
    driver: Any = conn.connection.dbapi_connection
    return bool(driver.pgconn.pipeline_status)


@dataclass
class Opened:
    """A write transaction as it starts: the first row of its opening query, the rows of each
    read sent with it, and the queue for its last writes."""

    row: Any
    prefetched: list[list[Any]]
    queue: WriteQueue


@contextmanager
def _sqlite_write_transaction(
    conn: Connection, opening: str, reads: Sequence[Read]
) -> Iterator[Opened]:
    """``BEGIN IMMEDIATE``, ``opening``, ``reads``, … ``COMMIT``, straight on the driver.

    SQLAlchemy's transaction (its events and objects) cost a tenth of a small append. A
    statement run through SQLAlchemy inside still works: it begins SQLAlchemy's transaction,
    for which the begin listener adds nothing (the driver's is open), and that transaction's
    commit ends both. An error leaves it to the caller to roll back (closing ``conn`` does)."""
    execute_raw(conn, "BEGIN IMMEDIATE").close()
    row = _first_row(execute_raw(conn, opening))
    yield Opened(row, [read_sql(conn, sql, params) for sql, params in reads], WriteQueue(conn))
    _commit(conn)


@contextmanager
def _postgres_write_transaction(
    conn: Connection, opening: str, reads: Sequence[Read]
) -> Iterator[Opened]:
    """``BEGIN``, ``opening`` and ``reads`` in one round trip, … ``COMMIT`` (with the queued
    writes, if any: see WriteQueue).

    psycopg would send its own BEGIN, one round trip, before the first statement; a write
    connection is in autocommit mode instead (psycopg sends no BEGIN), and the transaction
    starts with one simple query of both statements, or, with reads, with all of them queued
    (pipeline mode): a tenth of a single append on a local server. Statements through
    SQLAlchemy inside run in it, and the commit (SQLAlchemy's, or ours) ends it. An error
    rolls it back here, before the connection goes back to the pool, which restores
    psycopg's own transactions (it cannot while one is open)."""
    if reads:
        row, prefetched = _read_at_once(conn, opening, reads)
    else:
        cursor = execute_raw(conn, "BEGIN; " + opening)
        cursor.nextset()
        row, prefetched = _first_row(cursor), []
    queue = WriteQueue(conn)
    try:
        yield Opened(row, prefetched, queue)
        queue.commit()
    except BaseException:
        queue.abandon()
        if not conn.invalidated:  # (a lost connection is discarded, not pooled)
            with suppress(conn.dialect.loaded_dbapi.Error):  # (the first error is the one)
                conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        raise


def _read_at_once(
    conn: Connection, opening: str, reads: Sequence[Read]
) -> tuple[Any, list[list[Any]]]:
    """PostgreSQL: ``BEGIN``, ``opening`` and every read queued, sent in one round trip; the
    first row of ``opening`` and the rows of each read."""
    driver: Any = conn.connection.dbapi_connection
    cursors: list[Any] = []

    def run(cursor: Any) -> None:
        with driver.pipeline():
            driver.execute("BEGIN")
            cursor.execute(opening)
            for sql, params in reads:
                cursors.append(driver.cursor())
                cursors[-1].execute(_format_style(sql), params)

    try:
        row = _first_row(_on_cursor(conn, opening, (), False, run))
        prefetched = []
        for cursor in cursors:
            prefetched.append(cursor.fetchall())
    except BaseException:
        if not conn.invalidated:
            with suppress(conn.dialect.loaded_dbapi.Error):
                driver.rollback()
        raise
    finally:
        for cursor in cursors:
            cursor.close()
    return row, prefetched


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
        self._begin: Callable[[Connection, str, Sequence[Read]], AbstractContextManager[Any]] = (
            _sqlite_write_transaction if sqlite else _postgres_write_transaction
        )
        event.listen(engine, "engine_disposed", self._close_idle)

    @contextmanager
    def transaction(
        self, opening: str, reads: Sequence[Read] = ()
    ) -> Iterator[tuple[Connection, Opened]]:
        """A transaction that holds the write lock from its first statement (SQLite), which
        is ``opening`` (a query without parameters), followed by ``reads`` (on PostgreSQL in
        the same round trip); yields the connection and what they read (see Opened)."""
        with self._turns, self.connection() as conn, self._begin(conn, opening, reads) as opened:
            yield conn, opened

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


def write_transaction(engine: Engine) -> AbstractContextManager[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN (IMMEDIATE),
    waiting its turn, where a plain BEGIN that read first would be refused at its first write
    ("database is locked") whenever another writer committed meanwhile."""
    return engine.execution_options(**{WRITE_OPTION: True}).begin()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read-only view."""
    with engine.connect() as conn, conn.begin():
        yield conn
