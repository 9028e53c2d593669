"""Tables of the log core (SQLAlchemy Core). Migrations in ``ledger/migrations`` create them.

``entries``, ``nodes`` and ``checkpoints`` are append-only: database triggers refuse UPDATE
and DELETE on them. ``log_head`` is the one mutable row: the writer lock and the frontier.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# In SQLite only INTEGER PRIMARY KEY is the rowid itself (migration 0003): one B-tree per table.
LogKey = BigInteger().with_variant(Integer(), "sqlite")

log_head = Table(
    "log_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("origin", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("last_hash", LargeBinary(32), nullable=False),
    Column("last_ts", String(27), nullable=False),
    # The compact range of [0, size): popcount(size) hashes of 32 bytes, largest first.
    Column("frontier", LargeBinary, nullable=False),
    # Size and time of the latest checkpoint, so the append path needs no extra query.
    Column("checkpoint_size", BigInteger, nullable=False),
    Column("checkpoint_ts", String(27), nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("seq", LogKey, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("ts", String(27), nullable=False),
    # The canonical bytes exactly as hashed; verification re-hashes these.
    Column("body", LargeBinary, nullable=False),
)

# Interior nodes (level >= 1) of perfect subtrees; leaves are entries.hash. The key orders
# nodes by the entry that completed them, so verification can stream them beside entries:
# key = (last leaf of the subtree) << 6 | level.
nodes = Table(
    "nodes",
    metadata,
    Column("key", LogKey, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", LogKey, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("ts", String(27), nullable=False),
    Column("note", Text, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    # Per-field SHA-256 of the request (JSON), so a conflict can name the fields that differ
    # without keeping request values (which may be private) around.
    Column("fingerprint", Text, nullable=False),
)

APPEND_ONLY_TABLES = ("entries", "nodes", "checkpoints")


def node_key(level: int, index: int) -> int:
    """Storage key of the perfect subtree ``(level, index)``; see ``nodes``."""
    return ((((index + 1) << level) - 1) << 6) | level


def node_id(key: int) -> tuple[int, int]:
    """Inverse of :func:`node_key`."""
    level = key & 63
    return level, (((key >> 6) + 1) >> level) - 1
