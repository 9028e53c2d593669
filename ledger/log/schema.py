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


# -- witnessing (migration 0012) ----------------------------------------------------------------
# As a witness (ledger.log.witness): the log keys trusted, by origin; per origin the latest
# checkpoint cosigned (changed only by compare-and-set); validly signed checkpoints refused.

witness_keys = Table(
    "witness_keys",
    metadata,
    Column("vkey", Text, primary_key=True),
    Column("origin", Text, nullable=False),
    Column("added", String(27), nullable=False),
)

witness_logs = Table(
    "witness_logs",
    metadata,
    Column("origin", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=True),
    Column("ts", String(27), nullable=False),
)

witness_refusals = Table(
    "witness_refusals",
    metadata,
    Column("id", LogKey, primary_key=True, autoincrement=True),
    Column("origin", Text, nullable=False),
    Column("ts", String(27), nullable=False),
    Column("status", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("note", Text, nullable=False),
)

# As a log (ledger.log.cosigning): the witnesses' cosignature lines on its checkpoints (added,
# never changed), and per witness what it last cosigned and every refusal it answered.

cosignatures = Table(
    "cosignatures",
    metadata,
    Column("size", LogKey, primary_key=True, autoincrement=False),
    Column("witness", Text, primary_key=True),
    Column("line", Text, nullable=False),
    Column("ts", String(27), nullable=False),
)

witnesses = Table(
    "witnesses",
    metadata,
    Column("vkey", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("cosigned_size", BigInteger, nullable=False),
    Column("cosigned_ts", String(27), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_ts", String(27), nullable=True),
    Column("refusals", Integer, nullable=False),
    Column("last_refusal", Text, nullable=True),
    Column("last_refusal_ts", String(27), nullable=True),
)

# -- mirroring (migration 0016) -----------------------------------------------------------------
# As a mirror (ledger.log.mirroring): per mirrored log, where from, its key, the checkpoint held
# (moved only by compare-and-set) with this mirror's cosignature; the tiles and entry bundles
# copied, byte for byte, by path; refused checkpoints (split views), kept as evidence.

mirrors = Table(
    "mirrors",
    metadata,
    Column("origin_hash", String(64), primary_key=True),
    Column("origin", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("vkey", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("cosignature", Text, nullable=False),
    Column("added", String(27), nullable=False),
    Column("copied", String(27), nullable=False),
    Column("checked", String(27), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", String(27), nullable=True),
)

mirror_tiles = Table(
    "mirror_tiles",
    metadata,
    Column("origin_hash", String(64), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

mirror_incidents = Table(
    "mirror_incidents",
    metadata,
    Column("id", LogKey, primary_key=True, autoincrement=True),
    Column("origin_hash", String(64), nullable=False),
    Column("ts", String(27), nullable=False),
    Column("reason", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("held_note", Text, nullable=False),
)
