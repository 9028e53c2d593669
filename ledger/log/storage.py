"""The log's storage: the head row, entries, interior nodes, checkpoints, idempotency keys.

The append path (:mod:`ledger.log.append`) decides what to write; this module knows the
tables and reads and writes them. Reads that a public request makes (a proof, a receipt, a
tile) take one statement (:func:`read_snapshot`; one round trip on PostgreSQL) and keep the
upper interior nodes in memory; the writes of one commit take one statement on PostgreSQL
(:func:`write_head`, or :func:`commit_at_head` for an append at a head read earlier).
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ledger.errors import LedgerError, NotFound
from ledger.log import merkle
from ledger.log.db import RowInsert, commit_pipelined, is_sqlite, read_sql, write_sql
from ledger.log.db import execute_raw as _execute
from ledger.log.merkle import Frontier, NodeId
from ledger.log.schema import checkpoints, entries, log_head, node_key


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: tree size, root hash, when it was signed, the note."""

    size: int
    root: bytes
    ts: str
    note: str


@dataclass
class LogHead:
    """The ``log_head`` row: size, last entry, the tree's frontier, the latest checkpoint."""

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


# -- the head ---------------------------------------------------------------------------------

_HEAD_COLUMNS = "origin, size, last_hash, last_ts, frontier, checkpoint_size, checkpoint_ts"
_HEAD = f"SELECT {_HEAD_COLUMNS} FROM log_head WHERE id = 1"
# PostgreSQL holds this row lock until the transaction ends: writers take turns on it.
LOCKED_HEAD: Mapping[str, str] = {"sqlite": _HEAD, "postgresql": _HEAD + " FOR UPDATE"}
"""By dialect: the statement that opens a write transaction, reading the head under the
database's write lock (its row is for :func:`head_from_row`)."""


def load_head(conn: Connection) -> LogHead:
    """The head row."""
    cursor = _execute(conn, _HEAD)
    row = cursor.fetchone()
    cursor.close()
    return head_from_row(row)


def head_from_row(row: Any) -> LogHead:
    """The head from its row (None: the log has not been created)."""
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

_HEAD_ROW, _LEAF_ROW, _NODE_ROW, _CHECKPOINT_ROW, _BODY_ROW, _COSIGNATURE_ROW = range(6)
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
    _COSIGNATURE_ROW: f"SELECT {_COSIGNATURE_ROW}, line, size, NULL, witness, NULL, NULL, NULL "
    f"FROM cosignatures WHERE size = {_LATEST}",
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
    ``checkpoint``) the latest signed checkpoint with its witnesses' cosignatures (see
    :func:`with_cosignatures`), from one statement; :class:`NotFound` before the log exists.
    Missing nodes and entries are simply absent."""
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
        parts += [(_CHECKPOINT_ROW, None), (_COSIGNATURE_ROW, None)]
    head: Any = None
    cosignatures: list[tuple[str, str]] = []
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
        elif which == _COSIGNATURE_ROW:
            cosignatures.append((columns[3], columns[0]))
        else:
            bodies_found[columns[1]] = bytes(columns[4])
    if latest is not None and cosignatures:
        latest = replace(latest, note=latest.note + _joined(cosignatures))
    snapshot = Snapshot(head_from_row(head), {**cached, **nodes_found}, latest, bodies_found)
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


# -- the writes of one commit -----------------------------------------------------------------
#
# PostgreSQL: entries, nodes and the new head in one statement (one round trip per commit).
# A few rows go as plain parameters (adapting arrays costs psycopg more than the round trip
# saves); more go as arrays through unnest, in psycopg's binary format (%b), which it dumps
# without the escaping its text format pays per element.
#
# The same statement can also stand alone, for an append at a head read earlier (see
# Log.append in ledger.log.append): the head update then comes first, only WHERE the head is
# still the one read, and entries and nodes are inserted only if it updated a row. The update
# takes the row lock that a locked read would have taken.
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


# -- checkpoints ------------------------------------------------------------------------------


def _stored_checkpoint(conn: Connection, where: str, params: Any = ()) -> StoredCheckpoint | None:
    rows = read_sql(conn, f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE {where}", params)
    return next((StoredCheckpoint(s, bytes(root), ts, note) for s, root, ts, note in rows), None)


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    return _stored_checkpoint(conn, f"size = {_LATEST}")


def checkpoint_at(conn: Connection, size: int) -> StoredCheckpoint | None:
    """The checkpoint signed at exactly tree size ``size``, if one was."""
    return _stored_checkpoint(conn, "size = ?", (size,))


def _joined(cosignatures: list[tuple[str, str]]) -> str:
    """Cosignature lines in a fixed order (by witness), so a note served twice is the same."""
    return "".join(line for _, line in sorted(cosignatures))


def with_cosignatures(conn: Connection, stored: StoredCheckpoint) -> StoredCheckpoint:
    """``stored`` with its witnesses' cosignature lines after the log's own signatures.

    ``checkpoints`` holds each note as the log signed it, never changed; cosignatures arrive
    later (``lunaria worker``, :mod:`ledger.log.cosigning`) into ``cosignatures``, and what is
    served (``/tlog/checkpoint``, receipts, published tiles) is the note with them. Still one
    signed note: more signature lines, which a verifier that knows no witness ignores."""
    rows = read_sql(conn, "SELECT witness, line FROM cosignatures WHERE size = ?", (stored.size,))
    if not rows:
        return stored
    return replace(stored, note=stored.note + _joined([(w, line) for w, line in rows]))


def store_cosignature(conn: Connection, size: int, witness: str, line: str, ts: str) -> None:
    """Keep a witness's cosignature line of the checkpoint at ``size``: one per witness and
    size, the first kept (a row is added, never changed)."""
    write_sql(
        conn,
        "INSERT INTO cosignatures (size, witness, line, ts) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (size, witness, line, ts),
    )


def create_head(conn: Connection, origin: str, ts: str) -> None:
    """The head row of an empty log (``ts`` stands for its last entry and checkpoint)."""
    conn.execute(
        insert(log_head).values(
            id=1,
            origin=origin,
            size=0,
            last_hash=b"\x00" * 32,
            last_ts=ts,
            frontier=b"",
            checkpoint_size=0,
            checkpoint_ts=ts,
        )
    )


def store_checkpoint(conn: Connection, stored: StoredCheckpoint) -> None:
    """Store a signed checkpoint and make it the head's latest."""
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


def unsigned_tail(conn: Connection) -> tuple[int, str | None]:
    """How many entries no checkpoint covers yet, and the time of the first of them (None
    when the latest checkpoint covers the whole log): one statement."""
    rows = read_sql(
        conn,
        "SELECT h.size - h.checkpoint_size, e.ts FROM log_head h "
        "LEFT JOIN entries e ON e.seq = h.checkpoint_size WHERE h.id = 1",
    )
    if not rows:
        raise NotFound("the log has not been created: run `lunaria init`")
    waiting, first_ts = rows[0]
    return int(waiting), (first_ts if waiting else None)


def stored_checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    """Every checkpoint signed, smallest tree first."""
    rows = conn.execute(select(checkpoints).order_by(checkpoints.c.size))
    return [StoredCheckpoint(r.size, r.root, r.ts, r.note) for r in rows]


# -- entries ----------------------------------------------------------------------------------


def entry_body(conn: Connection, seq: int) -> bytes | None:
    """The stored bytes of entry ``seq``; None beyond the log."""
    body = conn.execute(select(entries.c.body).where(entries.c.seq == seq)).scalar()
    return None if body is None else bytes(body)


def entry_bodies(conn: Connection, after: int, limit: int) -> list[bytes]:
    """The stored bytes of up to ``limit`` entries after seq ``after``, in seq order."""
    rows = conn.execute(
        select(entries.c.body).where(entries.c.seq > after).order_by(entries.c.seq).limit(limit)
    )
    return [bytes(body) for (body,) in rows]


def iter_bodies(conn: Connection, batch: int) -> Iterator[bytes]:
    """Every entry's stored bytes in seq order, fetched ``batch`` rows at a time."""
    result = conn.execution_options(yield_per=batch).execute(
        select(entries.c.body).order_by(entries.c.seq)
    )
    for (body,) in result:
        yield bytes(body)


def bodies_of_kind(conn: Connection, kind: str) -> Iterator[bytes]:
    """The stored bytes of every entry of ``kind``, in seq order."""
    rows = conn.execute(
        select(entries.c.body).where(entries.c.kind == kind).order_by(entries.c.seq)
    ).scalars()
    for body in rows:
        yield bytes(body)


# -- idempotency keys -------------------------------------------------------------------------

_REMEMBER = RowInsert("idempotency_keys", ("key", "seq", "fingerprint"))


def remembered_keys(conn: Connection, keys: Collection[str]) -> dict[str, tuple[int, str]]:
    """The ``keys`` already used, each with its seq and its request's stored fingerprint."""
    if not keys:
        return {}
    return remembered_from(read_sql(conn, *remembered_read(keys)))


def remembered_read(keys: Collection[str]) -> tuple[str, tuple[str, ...]]:
    """The query :func:`remembered_keys` runs (one or more keys); its rows go to
    :func:`remembered_from`."""
    marks = ", ".join("?" * len(keys))
    sql = f"SELECT key, seq, fingerprint FROM idempotency_keys WHERE key IN ({marks})"
    return sql, tuple(keys)


def remembered_from(rows: Sequence[Any]) -> dict[str, tuple[int, str]]:
    return {key: (int(seq), fingerprint) for key, seq, fingerprint in rows}


def remember_keys(conn: Connection, rows: Sequence[tuple[str, int, str]]) -> None:
    """Record keys as used: (key, seq, fingerprint) rows (unique index: one per key)."""
    _REMEMBER.run(conn, rows)
