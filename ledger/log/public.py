"""Public reads of the log: pages of entries, signed notes, proofs, keys and anchors.

The functions behind the public read API (:mod:`api.ledger_api`), the web pages and the feeds:
plain functions over the database, raising ledger errors with stable codes (which
:data:`api.errors.PROBLEMS` maps to HTTP statuses). Nothing here knows about HTTP.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, select

from ledger.errors import LedgerError, NoteError, NotFound
from ledger.log import merkle
from ledger.log.db import read_transaction
from ledger.log.entry import decode_entry
from ledger.log.notes import Verifier, open_note, parse_note
from ledger.log.receipts import InclusionProof
from ledger.log.schema import entries
from ledger.log.storage import (
    Snapshot,
    checkpoint_at,
    latest_checkpoint,
    load_head,
    one_read,
    read_snapshot,
    with_cosignatures,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SCAN_WINDOW = 10_000
"""A page filtered by ``kind`` alone looks at no more than this many seqs past its cursor."""


# -- errors -----------------------------------------------------------------------------------


class InvalidLimit(LedgerError):
    code = "invalid_limit"


class InvalidCursor(LedgerError):
    code = "invalid_cursor"


class InvalidIndex(LedgerError):
    """An inclusion proof for an index at or beyond the tree size."""

    code = "invalid_index"


class SizeBeyondLog(LedgerError):
    """A proof for a tree larger than the log is now."""

    code = "size_beyond_log"


class CheckpointNotFound(NotFound):
    """No checkpoint was signed at the tree size asked for (the log signs only some sizes)."""

    code = "checkpoint_not_found"


class InvalidRange(LedgerError):
    """A consistency proof from a larger tree to a smaller one."""

    code = "invalid_range"


# -- reads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicEntry:
    seq: int
    hash: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page; ``settled`` when it ends before the log does, so it can never change."""

    items: tuple[Any, ...]
    next: int | None
    settled: bool

    def body(self) -> dict[str, Any]:
        return {"items": self.items, "next": self.next}


@dataclass(frozen=True)
class ConsistencyProof:
    old: int
    new: int
    hashes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """As DESIGN.md gives it (and ConsistencyProofSchema documents it)."""
        return {"from": self.old, "to": self.new, "hashes": list(self.hashes)}


@dataclass(frozen=True)
class KeyValidity:
    vkey: str
    name: str
    key_id: str
    introduced_seq: int
    retired_seq: int | None
    signs_latest_checkpoint: bool

    @property
    def current(self) -> bool:
        return self.retired_seq is None


@dataclass(frozen=True)
class LogKeys:
    origin: str
    checkpoint_size: int
    keys: tuple[KeyValidity, ...]


@dataclass(frozen=True)
class Anchor:
    seq: int
    ts: str
    hash: str
    chain_id: Any
    contract: Any
    tx_hash: Any
    block_number: Any
    anchor_index: Any
    size: Any
    root: Any


def check_page(after: int, limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
    if after < -1:
        raise InvalidCursor(f"after must be a seq, or -1 for the first page, not {after}")


def public_entry(seq: int, entry_hash: bytes, body: bytes) -> PublicEntry:
    return PublicEntry(int(seq), bytes(entry_hash).hex(), decode_entry(bytes(body)).envelope())


def entry_page(
    engine: Engine,
    after: int = -1,
    limit: int = DEFAULT_LIMIT,
    kind: str | None = None,
) -> Page:
    """Entries after seq ``after``; with ``kind``, a page looks at most SCAN_WINDOW seqs ahead
    (a pool's entries are read by key by the fund, which knows what a pool is)."""
    check_page(after, limit)
    with read_transaction(engine) as conn:
        last = load_head(conn).size - 1
        end = last if kind is None else min(last, after + SCAN_WINDOW)
        where = [entries.c.seq > after, entries.c.seq <= end]
        if kind is not None:
            where.append(entries.c.kind == kind)
        rows = conn.execute(
            select(entries.c.seq, entries.c.hash, entries.c.body)
            .where(and_(*where))
            .order_by(entries.c.seq)
            .limit(limit)
        ).all()
    scanned = int(rows[-1].seq) if len(rows) == limit else end
    more = scanned < last
    return Page(tuple(public_entry(*row) for row in rows), scanned if more else None, settled=more)


def entry_at(engine: Engine, seq: int) -> PublicEntry:
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(entries.c.seq, entries.c.hash, entries.c.body).where(entries.c.seq == seq)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no entry with seq {seq}")
    return public_entry(*row)


def log_version(engine: Engine) -> tuple[int, int]:
    """The log's size and the size of its latest checkpoint, now (one read): between two
    reads, anything published changed if and only if this did."""
    with one_read(engine) as conn:
        head = load_head(conn)
        return head.size, head.checkpoint_size


def latest_note(engine: Engine) -> str:
    with one_read(engine) as conn:
        latest = latest_checkpoint(conn)
        if latest is None:
            raise NotFound("the log has no signed checkpoint yet")
        return with_cosignatures(conn, latest).note


def note_at(engine: Engine, size: int) -> str:
    """The checkpoint signed at exactly tree size ``size``, with the cosignatures of it
    collected so far."""
    with one_read(engine) as conn:
        stored = checkpoint_at(conn, size)
        if stored is None:
            raise CheckpointNotFound(f"no checkpoint was signed at tree size {size}")
        return with_cosignatures(conn, stored).note


def _check_size(size: int, log_size: int) -> None:
    if size > log_size:
        raise SizeBeyondLog(f"tree size {size} is beyond the log, which has {log_size} entries")


def _proven(engine: Engine, size: int, plan: merkle.ProofPlan, *extra: merkle.NodeId) -> Snapshot:
    """The head and every subtree of ``plan`` (and ``extra``) in one statement, once the
    size is known to be within the log."""
    with one_read(engine) as conn:
        snapshot = read_snapshot(conn, {*(node for step in plan for node in step), *extra})
    _check_size(size, snapshot.head.size)
    return snapshot


def _hex(hashes: Iterable[bytes]) -> tuple[str, ...]:
    return tuple(h.hex() for h in hashes)


def inclusion(engine: Engine, index: int, size: int) -> InclusionProof:
    """The proof and the leaf hash, read in one statement with the proof's subtrees."""
    valid = index < size
    plan = merkle.inclusion_plan(index, size) if valid else []
    snapshot = _proven(engine, size, plan, *([(0, index)] if valid else []))
    if not valid:
        raise InvalidIndex(f"index {index} is not below the tree size {size}")
    hashes = merkle.resolve(plan, lambda _: snapshot.nodes)
    leaf = merkle.resolve([[(0, index)]], lambda _: snapshot.nodes)[0]
    return InclusionProof.of(index, size, leaf, hashes)


def consistency(engine: Engine, old: int, new: int) -> ConsistencyProof:
    valid = old <= new
    plan = merkle.consistency_plan(old, new) if valid else []
    snapshot = _proven(engine, new, plan)
    if not valid:
        raise InvalidRange(f"from {old} is beyond to {new}: give the older size as from")
    return ConsistencyProof(old, new, _hex(merkle.resolve(plan, lambda _: snapshot.nodes)))


# Kinds rare enough to keep every seq of in memory: found once by one scan of the log, then
# by scanning only what was appended since (entries never change). Per engine, per process.
SPARSE_KINDS = ("key_rotated", "checkpoint_anchored")


@dataclass
class _SparseIndex:
    scanned: int = 0
    seqs: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in SPARSE_KINDS})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, conn: Connection, size: int) -> None:
        with self.lock:
            if size <= self.scanned:
                return
            rows = conn.execute(
                select(entries.c.seq, entries.c.kind)
                .where(
                    and_(
                        entries.c.seq >= self.scanned,
                        entries.c.seq < size,
                        entries.c.kind.in_(SPARSE_KINDS),
                    )
                )
                .order_by(entries.c.seq)
            )
            for seq, kind in rows:
                self.seqs[kind].append(int(seq))
            self.scanned = size


_sparse: weakref.WeakKeyDictionary[Engine, _SparseIndex] = weakref.WeakKeyDictionary()
_sparse_lock = threading.Lock()


def sparse_seqs(conn: Connection, size: int, kind: str) -> list[int]:
    """Every seq below ``size`` of an entry of ``kind`` (one of SPARSE_KINDS), in order."""
    with _sparse_lock:
        index = _sparse.setdefault(conn.engine, _SparseIndex())
    index.refresh(conn, size)
    seqs = index.seqs[kind]
    return seqs[: bisect.bisect_left(seqs, size)]


def _bodies(conn: Connection, seqs: Sequence[int]) -> list[tuple[int, bytes, bytes]]:
    if not seqs:
        return []
    rows = conn.execute(
        select(entries.c.seq, entries.c.hash, entries.c.body)
        .where(entries.c.seq.in_(bindparam("seqs", expanding=True)))
        .order_by(entries.c.seq),
        {"seqs": list(seqs)},
    )
    return [(int(seq), bytes(h), bytes(body)) for seq, h, body in rows]


def _signs(note: str, verifier: Verifier) -> bool:
    try:
        open_note(parse_note(note), [verifier])
    except (NoteError, LedgerError):
        return False
    return True


def log_keys(engine: Engine) -> LogKeys:
    """The keys ``log_created`` and each ``key_rotated`` entry published (``data.vkey``)."""
    with read_transaction(engine) as conn:
        head = load_head(conn)
        rotations = sparse_seqs(conn, head.size, "key_rotated")
        published = _bodies(conn, [0, *rotations])
        latest = latest_checkpoint(conn)
    found: list[tuple[int, Verifier]] = []
    for seq, _, body in published:
        vkey = decode_entry(body).data.get("vkey")
        if isinstance(vkey, str):
            found.append((seq, Verifier.from_vkey(vkey)))
    keys = tuple(
        KeyValidity(
            vkey=verifier.vkey(),
            name=verifier.name,
            key_id=verifier.key_id.hex(),
            introduced_seq=seq,
            retired_seq=found[i + 1][0] if i + 1 < len(found) else None,
            signs_latest_checkpoint=latest is not None and _signs(latest.note, verifier),
        )
        for i, (seq, verifier) in enumerate(found)
    )
    return LogKeys(head.origin, 0 if latest is None else latest.size, keys)


def _anchor(seq: int, entry_hash: bytes, body: bytes) -> Anchor:
    entry = decode_entry(body)
    data = entry.data
    return Anchor(
        seq=seq,
        ts=entry.ts,
        hash=entry_hash.hex(),
        chain_id=data.get("chain_id"),
        contract=data.get("contract"),
        tx_hash=data.get("tx_hash"),
        block_number=data.get("block_number"),
        anchor_index=data.get("anchor_index"),
        size=data.get("size"),
        root=data.get("root"),
    )


def recent_anchors(engine: Engine, limit: int = 5) -> list[Anchor]:
    """The newest ``checkpoint_anchored`` entries, newest first: found through the seqs kept
    in memory, as a scan for them goes through the whole log when there are few."""
    with read_transaction(engine) as conn:
        seqs = sparse_seqs(conn, load_head(conn).size, "checkpoint_anchored")[-limit:]
        rows = _bodies(conn, seqs)
    return [_anchor(*row) for row in reversed(rows)]


def anchor_page(engine: Engine, after: int = -1, limit: int = DEFAULT_LIMIT) -> Page:
    """``checkpoint_anchored`` entries after seq ``after``, in seq order."""
    check_page(after, limit)
    with read_transaction(engine) as conn:
        seqs = sparse_seqs(conn, load_head(conn).size, "checkpoint_anchored")
        start = bisect.bisect_right(seqs, after)
        chosen = seqs[start : start + limit]
        rows = _bodies(conn, chosen)
    more = start + limit < len(seqs)
    items = tuple(_anchor(*row) for row in rows)
    return Page(items, chosen[-1] if more else None, settled=more)
