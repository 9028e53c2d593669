"""The worker lock: of all the ``lunaria worker`` processes on one database, one acts.

SQLite: an exclusive ``flock`` on ``<database>-worker.lock``, a file beside the database (as
the writers' ``-writer.lock``: a local disk, one host). PostgreSQL: a session advisory lock,
held by a connection of its own for as long as the worker acts; its key is this module's and
the schema's, so deployments in other schemas of the same database do not wait for each other.

The kernel drops a ``flock`` and the server drops a session lock when their holder dies, even
by ``kill -9``: a waiting worker then takes over. A lost PostgreSQL connection loses the lock;
:meth:`WorkerLock.held` says so, and the worker stops acting until it has the lock again.
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from contextlib import suppress
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from ledger.log.db import is_sqlite

# The first half of the advisory lock's key: "LUNA" in ASCII. The second is the schema's CRC.
_ADVISORY_CLASS = 0x4C554E41
_SIGNED_INT4 = 1 << 31


class WorkerLock(Protocol):
    """An exclusive lock among processes (and among threads of one process)."""

    description: str

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this object holds it now."""
        ...

    def held(self) -> bool:
        """Whether this object still holds the lock."""
        ...

    def release(self) -> None:
        """Let it go (nothing happens if it is not held)."""
        ...


def worker_lock(engine: Engine) -> WorkerLock:
    """The worker lock of the database behind ``engine``."""
    if is_sqlite(engine):
        database = engine.url.database
        if database in (None, "", ":memory:"):
            return ThreadLock()
        return FileLock(f"{database}-worker.lock")
    return AdvisoryLock(engine)


class FileLock:
    """An exclusive ``flock`` on a file (made 0600), held while the file stays open."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"flock on {path}"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        # A descriptor of our own: flock excludes other open files, even in this process.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # (closing the last descriptor of the file releases the flock)


class AdvisoryLock:
    """A PostgreSQL session advisory lock, held by a connection kept for it alone."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.description = "PostgreSQL advisory lock"
        self._conn: Connection | None = None
        self._key: tuple[int, int] | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = str(conn.execute(text("SELECT current_schema()")).scalar())
            key = (_ADVISORY_CLASS, zlib.crc32(schema.encode()) - _SIGNED_INT4)
            taken = conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": key[0], "b": key[1]}
            ).scalar()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        self.description = f"PostgreSQL advisory lock ({key[0]}, {key[1]}) of schema {schema}"
        self._conn, self._key = conn, key
        return True

    def held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except Exception:
            self._drop()
            return False
        return True

    def release(self) -> None:
        conn, key = self._conn, self._key
        if conn is None or key is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": key[0], "b": key[1]})
        except Exception:
            self._drop()  # (closing the session releases it just as well)
            return
        self._conn = self._key = None
        conn.close()

    def _drop(self) -> None:
        """Close the connection for good: a pooled session would keep the lock."""
        conn, self._conn, self._key = self._conn, None, None
        if conn is not None:
            with suppress(Exception):
                conn.invalidate()
            conn.close()


class ThreadLock:
    """For a database that lives in one process (in-memory SQLite): a lock among its threads."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self.description = "a lock of this process"
        self._held = False

    def try_acquire(self) -> bool:
        if not self._held:
            self._held = self._lock.acquire(blocking=False)
        return self._held

    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
