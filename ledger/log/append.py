"""The append path and storage of the log.

One writer at a time: a write transaction takes the database's write lock first (SQLite
``BEGIN IMMEDIATE``; PostgreSQL ``SELECT … FOR UPDATE`` on the ``log_head`` row), then reads
the head, assigns ``seq``, writes entries, interior nodes, idempotency records and — through
the same connection — whatever projections the caller keeps, and commits once. Writers in
many processes therefore never fork the chain or leave a gap.

A single ``Log.append`` on PostgreSQL may skip the locked read: it builds the entry on the head
its Log last committed and sends the whole transaction at once, with the head update first and
conditional on the head being unchanged (the update takes the same row lock); if another writer
moved the head, nothing is written and the append takes the locked path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, insert, select, update

from ledger.errors import IdempotencyConflict, LedgerError, NotFound, ProofError
from ledger.log import merkle
from ledger.log.clock import Clock, SystemClock, format_ts, parse_ts
from ledger.log.db import (
    RowInsert,
    WriteConnections,
    commit_pipelined,
    is_sqlite,
    read_sql,
    read_transaction,
)
from ledger.log.db import execute_raw as _execute
from ledger.log.entry import GENESIS_PREV, CanonicalData, Entry, decode_entry, encode_entry
from ledger.log.merkle import Frontier, NodeId
from ledger.log.notes import Checkpoint, Signer, sign_checkpoint
from ledger.log.schema import checkpoints, entries, log_head, node_key

SYSTEM_ACTOR = "system"
_Proven = TypeVar("_Proven")
ENTRY_FORMAT = "lunaria-entry/1"


@dataclass(frozen=True)
class CheckpointPolicy:
    """Sign a checkpoint after this many entries or this much time, whichever comes first."""

    every_entries: int = 1000
    interval: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    ts: str
    note: str


@dataclass
class LogHead:
    origin: str
    size: int
    last_hash: bytes
    last_ts: str
    frontier: Frontier
    checkpoint_size: int
    checkpoint_ts: str

    @property
    def root(self) -> bytes:
        return self.frontier.root()

    def copy(self) -> LogHead:
        return replace(self, frontier=self.frontier.copy())


def _pack_frontier(frontier: Frontier) -> bytes:
    return b"".join(frontier.hashes)


def _unpack_frontier(size: int, packed: bytes) -> Frontier:
    hashes = [packed[i : i + merkle.HASH_SIZE] for i in range(0, len(packed), merkle.HASH_SIZE)]
    return Frontier(size, hashes)


@lru_cache(maxsize=16)
def _parse_ts_cached(text: str) -> datetime:
    """parse_ts for the checkpoint time, which every append looks at and rarely changes."""
    return parse_ts(text)


def fingerprint_key_from(signer: Signer | None) -> bytes:
    """A key for request_fingerprint derived from a signing key, so it never leaves this log
    (a deployment keeps the first one it derived: see ``KeyFiles.fingerprint_key``)."""
    seed = signer.seed if signer is not None else b""
    return hashlib.sha256(b"lunaria idempotency fingerprints\n" + seed).digest()


def request_fingerprint(key: bytes, request: Mapping[str, Any]) -> dict[str, str]:
    """Per-field HMACs of a request, to name differing fields without storing values.

    Keyed, because request fields can be personal (an IBAN, an email): an unkeyed hash of a
    guessable value would let anyone holding the database confirm it, even after erasure.
    """
    return {
        name: hmac.new(
            key,
            json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode(),
            hashlib.sha256,
        ).hexdigest()
        for name, value in request.items()
    }


_REMEMBER = RowInsert("idempotency_keys", ("key", "seq", "fingerprint"))
_HEAD_COLUMNS = "origin, size, last_hash, last_ts, frontier, checkpoint_size, checkpoint_ts"


_HEAD = f"SELECT {_HEAD_COLUMNS} FROM log_head WHERE id = 1"
# PostgreSQL holds this row lock until the transaction ends: writers take turns on it.
_LOCKED_HEAD = {"sqlite": _HEAD, "postgresql": _HEAD + " FOR UPDATE"}


def load_head(conn: Connection) -> LogHead:
    """The head row."""
    cursor = _execute(conn, _HEAD)
    row = cursor.fetchone()
    cursor.close()
    return _head_from_row(row)


def _check_sizes(size: int, requested: Collection[int]) -> None:
    for tree_size in requested:
        if tree_size > size:
            raise ProofError(f"tree size {tree_size} is beyond the log's size {size}")


def _head_from_row(row: Any) -> LogHead:
    if row is None:
        raise NotFound("the log has not been created: run `lunaria init`")
    origin, size, last_hash, last_ts, frontier, checkpoint_size, checkpoint_ts = row
    try:
        compact_range = _unpack_frontier(size, bytes(frontier))
    except ValueError as exc:
        raise LedgerError(f"the log head is corrupt: {exc}") from exc
    return LogHead(
        origin=origin,
        size=size,
        last_hash=bytes(last_hash),
        last_ts=last_ts,
        frontier=compact_range,
        checkpoint_size=checkpoint_size,
        checkpoint_ts=checkpoint_ts,
    )


# -- reads in one statement --------------------------------------------------------------
#
# A public read (a proof, a receipt, a tile) needs the head, some leaf and node hashes, maybe
# the latest checkpoint and a few entries. As SQLAlchemy statements (an expanding IN, result
# objects) that costs far more than the database's work, so these are plain SQL strings run
# on the driver's cursor, every part in one UNION ALL statement (one round trip on
# PostgreSQL). The first column says what a row is; the other seven line up with the head's
# columns (text, bigint, bytea, text, bytea, bigint, text) so that the parts' types agree.

_HEAD_ROW, _LEAF_ROW, _NODE_ROW, _CHECKPOINT_ROW, _BODY_ROW = range(5)
_CHECKPOINT_COLUMNS = "size, root, ts, note"
_LATEST = "(SELECT max(size) FROM checkpoints)"
_PARTS = {
    _HEAD_ROW: f"SELECT {_HEAD_ROW}, {_HEAD_COLUMNS} FROM log_head WHERE id = 1",
    _LEAF_ROW: f"SELECT {_LEAF_ROW}, NULL, seq, hash, NULL, NULL, NULL, NULL FROM entries "
    "WHERE seq",
    _NODE_ROW: f"SELECT {_NODE_ROW}, NULL, key, hash, NULL, NULL, NULL, NULL FROM nodes WHERE key",
    _CHECKPOINT_ROW: f"SELECT {_CHECKPOINT_ROW}, note, size, root, ts, NULL, NULL, NULL "
    f"FROM checkpoints WHERE size = {_LATEST}",
    _BODY_ROW: f"SELECT {_BODY_ROW}, NULL, seq, NULL, NULL, body, NULL, NULL FROM entries "
    "WHERE seq",
}
_MAX_IDS = 500
"""Ids per statement in :func:`read_nodes` (SQLite binds each as its own parameter)."""


CACHED_LEVEL = 8
"""Interior nodes at this level and up are kept in memory once read (per engine, per process):
every proof in a large tree passes through the same few of them (2 per 256 entries), and a
stored node never changes. A proof then reads only its lowest levels from the database."""
_CACHE_LIMIT = 1 << 17
_node_caches: weakref.WeakKeyDictionary[Engine, dict[NodeId, bytes]] = weakref.WeakKeyDictionary()


def _node_cache(engine: Engine) -> dict[NodeId, bytes]:
    cache = _node_caches.get(engine)
    if cache is None:
        cache = _node_caches.setdefault(engine, {})
    return cache


def _remember_nodes(cache: dict[NodeId, bytes], found: dict[NodeId, bytes]) -> None:
    if len(cache) > _CACHE_LIMIT:  # (a log of ~30 million entries and more)
        cache.clear()
    for node, digest in found.items():
        if node[0] >= CACHED_LEVEL:
            cache[node] = digest


@dataclass(frozen=True)
class Snapshot:
    """What one read statement found (see :func:`read_snapshot`)."""

    head: LogHead
    nodes: dict[NodeId, bytes]
    checkpoint: StoredCheckpoint | None
    bodies: dict[int, bytes]


def _read_rows(conn: Connection, parts: list[tuple[int, list[int] | None]]) -> list[Any]:
    """Rows of the parts ``(which, seqs or keys it is restricted to)``, in one statement."""
    sqlite = is_sqlite(conn)
    statements: list[str] = []
    params: list[Any] = []
    for which, values in parts:
        if values is None:
            statements.append(_PARTS[which])
        elif not values:
            continue
        elif sqlite:
            statements.append(f"{_PARTS[which]} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        else:
            statements.append(f"{_PARTS[which]} = ANY(?::bigint[])")
            params.append(values)
    return read_sql(conn, " UNION ALL ".join(statements), params) if statements else []


_MAX_STORED_KEY = 2**63 - 1


def _node_keys(ids: Collection[NodeId]) -> tuple[list[int], dict[int, NodeId]]:
    """Leaf indexes (their hashes are the entries') and interior nodes by stored key; keys
    beyond the database's integers (of a tree no log reaches) cannot be stored: left out."""
    leaves = [index for level, index in ids if level == 0 and index <= _MAX_STORED_KEY]
    keyed = {node_key(level, index): (level, index) for level, index in ids if level > 0}
    return leaves, {key: node for key, node in keyed.items() if key <= _MAX_STORED_KEY}


def read_nodes(conn: Connection, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
    """Hashes of perfect subtrees: leaves from ``entries``, interior nodes from ``nodes``."""
    found: dict[NodeId, bytes] = {}
    listed = list(ids)
    for start in range(0, len(listed), _MAX_IDS):
        leaves, keyed = _node_keys(listed[start : start + _MAX_IDS])
        for which, _, key, digest, *_ in _read_rows(
            conn, [(_LEAF_ROW, leaves), (_NODE_ROW, list(keyed))]
        ):
            found[(0, key) if which == _LEAF_ROW else keyed[key]] = bytes(digest)
    return found


def read_snapshot(
    conn: Connection,
    ids: Collection[NodeId] = (),
    *,
    bodies: Collection[int] = (),
    checkpoint: bool = False,
) -> Snapshot:
    """The head, the hashes of ``ids``, the stored bytes of entries ``bodies`` and (with
    ``checkpoint``) the latest signed checkpoint, from one statement; :class:`NotFound`
    before the log exists. Missing nodes and entries are simply absent."""
    cache = _node_cache(conn.engine)
    cached = {node: cache[node] for node in ids if node in cache}
    leaves, keyed = _node_keys([node for node in ids if node not in cached])
    parts: list[tuple[int, list[int] | None]] = [
        (_HEAD_ROW, None),
        (_LEAF_ROW, leaves),
        (_NODE_ROW, list(keyed)),
        (_BODY_ROW, list(bodies)),
    ]
    if checkpoint:
        parts.append((_CHECKPOINT_ROW, None))
    head: Any = None
    nodes_found: dict[NodeId, bytes] = {}
    latest: StoredCheckpoint | None = None
    bodies_found: dict[int, bytes] = {}
    for which, *columns in _read_rows(conn, parts):
        if which == _HEAD_ROW:
            head = columns
        elif which == _LEAF_ROW:
            nodes_found[(0, columns[1])] = bytes(columns[2])
        elif which == _NODE_ROW:
            nodes_found[keyed[columns[1]]] = bytes(columns[2])
        elif which == _CHECKPOINT_ROW:
            latest = StoredCheckpoint(columns[1], bytes(columns[2]), columns[3], columns[0])
        else:
            bodies_found[columns[1]] = bytes(columns[4])
    snapshot = Snapshot(_head_from_row(head), {**cached, **nodes_found}, latest, bodies_found)
    _remember_nodes(cache, nodes_found)
    return snapshot


@contextmanager
def one_read(engine: Engine) -> Iterator[Connection]:
    """A connection for reads of one statement each, outside any transaction: a statement
    is its own consistent snapshot, and BEGIN and COMMIT would cost more than the read
    (round trips on PostgreSQL). Several statements see the log at different sizes, which
    only ever grows, and the rows they read (entries, nodes, checkpoints) never change."""
    with engine.connect() as conn:
        yield conn if is_sqlite(engine) else conn.execution_options(isolation_level="AUTOCOMMIT")


# PostgreSQL: entries, nodes and the new head in one statement (one round trip per commit).
# A few rows go as plain parameters (adapting arrays costs psycopg more than the round trip
# saves); more go as arrays through unnest, in psycopg's binary format (%b), which it dumps
# without the escaping its text format pays per element.
#
# The same statement can also stand alone, for an append at a head read earlier (see
# Log.append): the head update then comes first, only WHERE the head is still the one read,
# and entries and nodes are inserted only if it updated a row. The update takes the row lock
# that a locked read would have taken.
_PG_HEAD_SET = (
    "UPDATE log_head SET size = %s, last_hash = %s, last_ts = %s, frontier = %s, "
    "checkpoint_size = %s, checkpoint_ts = %s WHERE id = 1"
)
# (size and last hash fix the entries; a checkpoint signed since changes only the checkpoint)
_PG_HEAD_IF = (
    f"head AS ({_PG_HEAD_SET} AND size = %s AND last_hash = %s AND checkpoint_size = %s "
    "RETURNING id)"
)
_PG_ENTRY_COLUMNS = "entries (seq, hash, kind, ts, body)"
_PG_ENTRY_TYPES = ("bigint", "bytea", "text", "text", "bytea")
_PG_NODE_COLUMNS = "nodes (key, hash)"
_PG_NODE_TYPES = ("bigint", "bytea")
_PG_FEW = 8
_pg_statements: dict[tuple[int, int, bool], str] = {}


def _pg_rows(count: int, types: tuple[str, ...]) -> str:
    """Rows of parameters: ``count`` of them inline, or one array per column (unnest)."""
    if count > _PG_FEW:
        return "unnest(" + ", ".join(f"%b::{name}[]" for name in types) + ")"
    row = "(" + ", ".join(f"%s::{name}" for name in types) + ")"
    return "(VALUES " + ", ".join([row] * count) + ")"


def _pg_write(entry_count: int, node_count: int, conditional: bool = False) -> str:
    """The write statement for this many entries and nodes; ``conditional``: see _PG_HEAD_IF
    (it then returns one row, the number of heads it updated)."""
    key = (min(entry_count, _PG_FEW + 1), min(node_count, _PG_FEW + 1), conditional)
    statement = _pg_statements.get(key)
    if statement is None:
        parts = [_PG_HEAD_IF] if conditional else []
        only_if = ", head" if conditional else ""
        for name, count, table, types in (
            ("new_entries", key[0], _PG_ENTRY_COLUMNS, _PG_ENTRY_TYPES),
            ("new_nodes", key[1], _PG_NODE_COLUMNS, _PG_NODE_TYPES),
        ):
            if count:
                rows = _pg_rows(count, types)
                parts.append(
                    f"{name} AS (INSERT INTO {table} "
                    f"SELECT new_rows.* FROM {rows} AS new_rows{only_if})"
                )
        main = "SELECT count(*) FROM head" if conditional else _PG_HEAD_SET
        statement = ("WITH " + ", ".join(parts) + " " if parts else "") + main
        _pg_statements[key] = statement
    return statement


def _pg_parameters(rows: list[tuple[Any, ...]]) -> list[Any]:
    if len(rows) > _PG_FEW:
        return [list(column) for column in zip(*rows, strict=True)]
    return [value for row in rows for value in row] if rows else []


_SQLITE_ENTRY = "INSERT INTO entries (seq, hash, kind, ts, body) VALUES (?, ?, ?, ?, ?)"
_SQLITE_NODE = "INSERT INTO nodes (key, hash) VALUES (?, ?)"
_SQLITE_HEAD = (
    "UPDATE log_head SET size = ?, last_hash = ?, last_ts = ?, frontier = ?, "
    "checkpoint_size = ?, checkpoint_ts = ? WHERE id = 1"
)


def write_head(
    conn: Connection,
    head: LogHead,
    new_entries: list[tuple[int, bytes, str, str, bytes]],
    new_nodes: list[tuple[int, bytes]],
) -> None:
    """Store appended entries, completed nodes and the head, with as few statements as we can."""
    head_values = _head_values(head)
    if is_sqlite(conn):
        for sql, rows in ((_SQLITE_ENTRY, new_entries), (_SQLITE_NODE, new_nodes)):
            if len(rows) == 1:
                _execute(conn, sql, rows[0]).close()
            elif rows:
                _execute(conn, sql, rows, many=True).close()
        _execute(conn, _SQLITE_HEAD, head_values).close()
        return
    parameters = [
        *_pg_parameters(new_entries),
        *_pg_parameters(new_nodes),
        *head_values,
    ]
    _execute(conn, _pg_write(len(new_entries), len(new_nodes)), parameters).close()


def commit_at_head(
    conn: Connection,
    read: LogHead,
    head: LogHead,
    new_entries: list[tuple[int, bytes, str, str, bytes]],
    new_nodes: list[tuple[int, bytes]],
) -> bool:
    """PostgreSQL: what :func:`write_head` writes, in a transaction of its own sent in one
    round trip, if the stored head is still ``read`` (size, last hash and checkpoint);
    False, with nothing written, if another writer has moved it. ``conn`` is outside any
    transaction."""
    parameters = [
        *_head_values(head),
        read.size,
        read.last_hash,
        read.checkpoint_size,
        *_pg_parameters(new_entries),
        *_pg_parameters(new_nodes),
    ]
    statement = _pg_write(len(new_entries), len(new_nodes), conditional=True)
    (updated,) = commit_pipelined(conn, statement, parameters)
    return bool(updated)


def _head_values(head: LogHead) -> tuple[Any, ...]:
    return (
        head.size,
        head.last_hash,
        head.last_ts,
        _pack_frontier(head.frontier),
        head.checkpoint_size,
        head.checkpoint_ts,
    )


def _stored_checkpoint(conn: Connection, where: str, params: Any = ()) -> StoredCheckpoint | None:
    rows = read_sql(conn, f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE {where}", params)
    return next((StoredCheckpoint(s, bytes(root), ts, note) for s, root, ts, note in rows), None)


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    return _stored_checkpoint(conn, f"size = {_LATEST}")


def checkpoint_at(conn: Connection, size: int) -> StoredCheckpoint | None:
    """The checkpoint signed at exactly tree size ``size``, if one was."""
    return _stored_checkpoint(conn, "size = ?", (size,))


def _double_signing_until(conn: Connection, retiring: Signer) -> datetime:
    """When the key_rotated entry that retired ``retiring`` ends its double signing."""
    rows = conn.execute(
        select(entries.c.body).where(entries.c.kind == "key_rotated").order_by(entries.c.seq)
    ).scalars()
    vkey = retiring.verifier().vkey()
    for body in rows:
        data = decode_entry(bytes(body)).data
        if data.get("previous_vkey") == vkey:
            return parse_ts(str(data["double_signing_until"]))
    # A retiring key that no rotation names signs nothing more.
    return datetime.min.replace(tzinfo=UTC)


class LogWriter:
    """One write transaction on the log. Obtain it from :meth:`Log.writer`."""

    def __init__(self, log: Log, conn: Connection, head: LogHead) -> None:
        self.log = log
        self.conn = conn
        self.head = head
        self.now = log.clock.now()
        self.appended: list[Entry] = []
        self.new_entries: list[tuple[int, bytes, str, str, bytes]] = []
        self.new_nodes: list[tuple[int, bytes]] = []
        self._checkpoint_requested = False
        self._now_formatted = (self.now, format_ts(self.now))

    def append(
        self, kind: str, data: dict[str, Any] | CanonicalData, actor: str = SYSTEM_ACTOR
    ) -> Entry:
        """Append one entry; it becomes durable when the transaction commits."""
        head = self.head
        now, now_ts = self._now_formatted
        if now is not self.now:  # (a caller replaced it)
            now, now_ts = self._now_formatted = (self.now, format_ts(self.now))
        # ts never goes backwards, even if the clock does.
        ts = max(now_ts, head.last_ts)
        prev = head.last_hash.hex() if head.size else GENESIS_PREV
        entry = encode_entry(head.size, ts, kind, prev, actor, data)
        entry_hash = entry.hash
        self.new_entries.append((entry.seq, entry_hash, kind, ts, entry.raw))
        for (level, index), node in head.frontier.append(entry_hash):
            self.new_nodes.append((node_key(level, index), node))
        head.size += 1
        head.last_hash = entry_hash
        head.last_ts = ts
        self.appended.append(entry)
        return entry

    def find_idempotent(self, key: str, request: Mapping[str, Any]) -> int | None:
        """The seq recorded for ``key`` if this exact request was seen; conflict if it differs."""
        seen = self.remembered([key]).get(key)
        return None if seen is None else self.replay(key, request, seen)

    def remembered(self, keys: Collection[str]) -> dict[str, tuple[int, str]]:
        """The keys already used, each with its seq and its request's stored fingerprint."""
        if not keys:
            return {}
        marks = ", ".join("?" * len(keys))
        sql = f"SELECT key, seq, fingerprint FROM idempotency_keys WHERE key IN ({marks})"
        return {
            key: (int(seq), fingerprint)
            for key, seq, fingerprint in read_sql(self.conn, sql, tuple(keys))
        }

    def replay(self, key: str, request: Mapping[str, Any], seen: tuple[int, str]) -> int:
        """The seq ``key`` produced (see :meth:`remembered`), if ``request`` is the one it
        was used for; else IdempotencyConflict naming the fields that differ."""
        seq, fingerprint = seen
        before: dict[str, str] = json.loads(fingerprint)
        now = request_fingerprint(self.log.fingerprint_key, request)
        names = before.keys() | now.keys()
        differing = sorted(name for name in names if before.get(name) != now.get(name))
        if differing:
            raise IdempotencyConflict(key, differing)
        return seq

    def fingerprint(self, request: Mapping[str, Any]) -> str:
        """What :meth:`remember` stores of ``request``: a keyed digest per field."""
        return json.dumps(request_fingerprint(self.log.fingerprint_key, request))

    def remember(self, key: str, request: Mapping[str, Any], seq: int) -> None:
        """Record that ``key`` produced the entry at ``seq`` (unique index: one per key)."""
        self.remember_all([(key, seq, self.fingerprint(request))])

    def remember_all(self, rows: Sequence[tuple[str, int, str]]) -> None:
        """Record several keys at once: (key, seq, fingerprint) rows."""
        _REMEMBER.run(self.conn, rows)

    def request_checkpoint(self) -> None:
        """Sign a checkpoint at commit even if the policy would not (e.g. at a handover)."""
        self._checkpoint_requested = True

    def finish(self) -> None:
        """Write everything, then sign a checkpoint if one is due (called before commit)."""
        if self.appended:
            write_head(self.conn, self.head, self.new_entries, self.new_nodes)
            self.new_entries, self.new_nodes = [], []
        if self.checkpoint_due():
            self.log.sign_checkpoint(self.conn, self.head)

    def checkpoint_due(self) -> bool:
        head = self.head
        if head.checkpoint_size == head.size:
            return False
        policy = self.log.policy
        return (
            self._checkpoint_requested
            or head.checkpoint_size == 0
            or head.size - head.checkpoint_size >= policy.every_entries
            or self.now - _parse_ts_cached(head.checkpoint_ts) >= policy.interval
        )


class _KnownHead:
    """The head as a Log's last write committed it (see Log._append_at_known_head), and how
    long to leave it unused after another writer moved it: while several processes write,
    most attempts on a known head would fail and cost a round trip each, so after each
    failure in a row the next twice as many appends (up to _MAX_BACKOFF) take the locked
    path. Threads share it without a lock: at worst an attempt fails, or waits longer."""

    _MAX_BACKOFF = 256

    def __init__(self) -> None:
        self.head: LogHead | None = None
        self._backoff = 0
        self._skip = 0

    def take(self) -> LogHead | None:
        if self._skip > 0:  # (> 0: two threads may both count the last one down)
            self._skip -= 1
            return None
        return self.head

    def written(self, head: LogHead) -> None:
        self.head = head
        self._backoff = 0

    def moved(self) -> None:
        self.head = None
        self._backoff = min(2 * self._backoff or 1, self._MAX_BACKOFF)
        self._skip = self._backoff


class Log:
    """The log of one deployment: its storage, its origin and (to write) its signing key."""

    def __init__(
        self,
        engine: Engine,
        origin: str,
        signer: Signer | None = None,
        clock: Clock | None = None,
        policy: CheckpointPolicy | None = None,
        retiring: Signer | None = None,
        fingerprint_key: bytes | None = None,
    ) -> None:
        self.engine = engine
        self.origin = origin
        self.signer = signer
        # The key a rotation replaced: it co-signs checkpoints until double signing ends (the
        # time its key_rotated entry gives, read when first needed).
        self.retiring = retiring
        self._retiring_until: datetime | None = None
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or CheckpointPolicy()
        # What stored idempotency fingerprints were made with; it must outlive key rotations.
        self.fingerprint_key = fingerprint_key or fingerprint_key_from(signer)
        self._write_connections = WriteConnections(engine)
        self._known_head = _KnownHead()  # (PostgreSQL; see _append_at_known_head)

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[LogWriter]:
        """A write transaction; everything done through it commits or rolls back together."""
        if self.signer is None:
            raise LedgerError("this Log was opened without a signing key; it cannot write")
        opening = _LOCKED_HEAD[self.engine.dialect.name]
        with self._write_connections.transaction(opening) as (conn, row):
            head = _head_from_row(row)
            if head.origin != self.origin:
                raise LedgerError(f"database holds the log {head.origin!r}, not {self.origin!r}")
            writer = LogWriter(self, conn, head)
            yield writer
            writer.finish()
        if not is_sqlite(self.engine):  # (SQLite writers take no round trips to save)
            self._known_head.head = writer.head.copy()

    def append(
        self,
        kind: str,
        data: dict[str, Any],
        actor: str = SYSTEM_ACTOR,
        *,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Append one entry in its own transaction; with a key, a retry returns the original."""
        if idempotency_key is None:
            entry = self._append_at_known_head(kind, data, actor)
            if entry is not None:
                return entry
        with self.writer() as writer:
            if idempotency_key is not None:
                request = {"kind": kind, "data": data, "actor": actor}
                seq = writer.find_idempotent(idempotency_key, request)
                if seq is not None:
                    return self.entry(seq, conn=writer.conn)
            entry = writer.append(kind, data, actor)
            if idempotency_key is not None:
                writer.remember(idempotency_key, request, entry.seq)
            return entry

    def _append_at_known_head(self, kind: str, data: dict[str, Any], actor: str) -> Entry | None:
        """PostgreSQL: append one entry in one round trip instead of three (locked head read,
        write, commit): built on the head this Log last committed, and written only if that is
        still the head, which it is while this Log is the only writer. None, with nothing
        written, if no head is known, a checkpoint is due, or another writer moved the head:
        the caller then takes the locked path, which learns the new head."""
        known = self._known_head.take()
        if known is None:
            return None
        with self._write_connections.connection() as conn:
            writer = LogWriter(self, conn, known.copy())
            entry = writer.append(kind, data, actor)
            if writer.checkpoint_due():
                return None
            if not commit_at_head(conn, known, writer.head, writer.new_entries, writer.new_nodes):
                self._known_head.moved()
                return None
        self._known_head.written(writer.head)
        return entry

    def create(self) -> bool:
        """Create the log (``log_created`` entry and first checkpoint); False if it exists."""
        if self.signer is None:
            raise LedgerError("creating a log needs its signing key")
        with self._write_connections.transaction("SELECT id FROM log_head") as (conn, row):
            if row is not None:
                return False
            conn.execute(
                insert(log_head).values(
                    id=1,
                    origin=self.origin,
                    size=0,
                    last_hash=b"\x00" * 32,
                    last_ts=format_ts(self.clock.now()),
                    frontier=b"",
                    checkpoint_size=0,
                    checkpoint_ts=format_ts(self.clock.now()),
                )
            )
        with self.writer() as writer:
            writer.append(
                "log_created",
                {
                    "origin": self.origin,
                    "format": ENTRY_FORMAT,
                    "vkey": self.signer.verifier().vkey(),
                },
            )
            writer.request_checkpoint()
        return True

    def sign_checkpoint(self, conn: Connection, head: LogHead) -> StoredCheckpoint:
        """Sign and store a checkpoint of ``head``, proven consistent with the previous first."""
        assert self.signer is not None
        root = head.root
        previous = latest_checkpoint(conn)
        if previous is not None:
            if previous.size >= head.size:
                raise LedgerError(
                    f"refusing a checkpoint of size {head.size} after one of size {previous.size}"
                )
            proof = merkle.consistency_proof(
                previous.size, head.size, lambda ids: read_nodes(conn, ids)
            )
            try:
                merkle.verify_consistency(previous.size, head.size, proof, previous.root, root)
            except ProofError as exc:
                raise LedgerError(
                    f"refusing to sign: size {head.size} is not consistent with the "
                    f"checkpoint at size {previous.size}: {exc}"
                ) from exc
        note = sign_checkpoint(Checkpoint(self.origin, head.size, root), self._signers(conn))
        stored = StoredCheckpoint(head.size, root, format_ts(self.clock.now()), note.serialise())
        conn.execute(
            insert(checkpoints).values(
                size=stored.size, root=stored.root, ts=stored.ts, note=stored.note
            )
        )
        conn.execute(
            update(log_head)
            .where(log_head.c.id == 1)
            .values(checkpoint_size=stored.size, checkpoint_ts=stored.ts)
        )
        head.checkpoint_size, head.checkpoint_ts = stored.size, stored.ts
        return stored

    def _signers(self, conn: Connection) -> list[Signer]:
        """The active key, and the retiring one while double signing lasts."""
        assert self.signer is not None
        if self.retiring is None:
            return [self.signer]
        if self._retiring_until is None:
            self._retiring_until = _double_signing_until(conn, self.retiring)
        if self.clock.now() < self._retiring_until:
            return [self.signer, self.retiring]
        return [self.signer]

    def rotate_key(self, new: Signer, until: datetime) -> Entry:
        """Publish ``new`` as the signing key (``key_rotated``); both keys sign until ``until``.

        The checkpoint of the rotation itself carries both signatures. See ``ledger.log.keys`` for
        the key files around it.
        """
        old = self.signer
        if old is None:
            raise LedgerError("rotating a key needs the current signing key")
        if new.name != old.name or new.key_id == old.key_id:
            raise LedgerError("the new key must keep the key name and have a new key id")
        data = {
            "vkey": new.verifier().vkey(),
            "previous_vkey": old.verifier().vkey(),
            "double_signing_until": format_ts(until),
        }
        saved = (self.signer, self.retiring, self._retiring_until)
        self.signer, self.retiring, self._retiring_until = new, old, until
        try:
            with self.writer() as writer:
                entry = writer.append("key_rotated", data)
                writer.request_checkpoint()
        except BaseException:
            self.signer, self.retiring, self._retiring_until = saved
            raise
        return entry

    def checkpoint_now(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree unless the latest one already covers it."""
        with self.writer() as writer:
            writer.request_checkpoint()
        latest = self.latest_checkpoint()
        assert latest is not None
        return latest

    # -- reading ---------------------------------------------------------------------------

    def head(self) -> LogHead:
        with read_transaction(self.engine) as conn:
            return load_head(conn)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with read_transaction(self.engine) as conn:
            return latest_checkpoint(conn)

    def checkpoints(self) -> list[StoredCheckpoint]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(checkpoints).order_by(checkpoints.c.size))
            return [StoredCheckpoint(r.size, r.root, r.ts, r.note) for r in rows]

    def entry(self, seq: int, conn: Connection | None = None) -> Entry:
        if conn is None:
            with read_transaction(self.engine) as own:
                return self.entry(seq, own)
        body = conn.execute(select(entries.c.body).where(entries.c.seq == seq)).scalar()
        if body is None:
            raise NotFound(f"no entry with seq {seq}")
        return decode_entry(bytes(body))

    def entries(self, after: int = -1, limit: int = 100) -> list[Entry]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(
                select(entries.c.body)
                .where(entries.c.seq > after)
                .order_by(entries.c.seq)
                .limit(limit)
            )
            return [decode_entry(bytes(body)) for (body,) in rows]

    def iter_raw(self, batch: int = 10_000) -> Iterator[bytes]:
        """Every entry's stored bytes in seq order, streamed from one snapshot."""
        with read_transaction(self.engine) as conn:
            result = conn.execution_options(yield_per=batch).execute(
                select(entries.c.body).order_by(entries.c.seq)
            )
            for (body,) in result:
                yield bytes(body)

    def _size_check(self, conn: Connection, *sizes: int) -> None:
        _check_sizes(load_head(conn).size, sizes)

    def _proof(
        self,
        sizes: tuple[int, ...],
        plan: Callable[[], Collection[Collection[NodeId]]],
        prove: Callable[[merkle.NodeReader], _Proven],
    ) -> _Proven:
        """Check ``sizes`` against the log, read what ``plan`` needs in one statement, prove.

        Errors come in the same order as ever: no log or a corrupt head, then a size beyond
        the log, then invalid arguments (from ``plan``), then missing subtrees.
        """
        try:
            wanted = {node for step in plan() for node in step}
        except ProofError:
            with read_transaction(self.engine) as conn:
                self._size_check(conn, *sizes)
            raise
        with one_read(self.engine) as conn:
            snapshot = read_snapshot(conn, wanted)
        _check_sizes(snapshot.head.size, sizes)
        return prove(lambda ids: snapshot.nodes)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self._proof(
            (size,),
            lambda: merkle.inclusion_plan(index, size),
            lambda read: merkle.inclusion_proof(index, size, read),
        )

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return self._proof(
            (new_size,),
            lambda: merkle.consistency_plan(old_size, new_size),
            lambda read: merkle.consistency_proof(old_size, new_size, read),
        )

    def root_at(self, size: int) -> bytes:
        return self._proof(
            (size,),
            lambda: [merkle.decompose(0, size)] if size else [],
            lambda read: merkle.root_at(size, read),
        )
