"""The append path of the log: writers, the head they build on, checkpoints, idempotency.

One writer at a time: a write transaction takes the database's write lock first (SQLite
``BEGIN IMMEDIATE``; PostgreSQL ``SELECT … FOR UPDATE`` on the ``log_head`` row), then reads
the head, assigns ``seq``, writes entries, interior nodes, idempotency records and — through
the same connection — whatever projections the caller keeps, and commits once. Writers in
many processes therefore never fork the chain or leave a gap.

A single ``Log.append`` on PostgreSQL may skip the locked read: it builds the entry on the head
its Log last committed and sends the whole transaction at once, with the head update first and
conditional on the head being unchanged (the update takes the same row lock); if another writer
moved the head, nothing is written and the append takes the locked path.

What is read and written, and how, is :mod:`ledger.log.storage`'s; this module holds no SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from ledger.errors import IdempotencyConflict, LedgerError, NotFound, ProofError
from ledger.log import merkle
from ledger.log.clock import Clock, SystemClock, format_ts, parse_ts
from ledger.log.db import Opened, Read, WriteConnections, is_sqlite, read_transaction
from ledger.log.entry import GENESIS_PREV, CanonicalData, Entry, decode_entry, encode_entry
from ledger.log.merkle import NodeId
from ledger.log.notes import Checkpoint, Signer, sign_checkpoint
from ledger.log.schema import node_key
from ledger.log.storage import (
    LOCKED_HEAD,
    LogHead,
    StoredCheckpoint,
    bodies_of_kind,
    commit_at_head,
    create_head,
    entry_bodies,
    entry_body,
    head_from_row,
    iter_bodies,
    latest_checkpoint,
    load_head,
    one_read,
    read_nodes,
    read_snapshot,
    remember_keys,
    remembered_keys,
    store_checkpoint,
    stored_checkpoints,
    unsigned_tail,
    write_head,
)

SYSTEM_ACTOR = "system"
_Proven = TypeVar("_Proven")
ENTRY_FORMAT = "lunaria-entry/1"


@dataclass(frozen=True)
class CheckpointPolicy:
    """Sign a checkpoint after this many entries or this much time, whichever comes first."""

    every_entries: int = 1000
    interval: timedelta = timedelta(seconds=60)


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


def _check_sizes(size: int, requested: Collection[int]) -> None:
    for tree_size in requested:
        if tree_size > size:
            raise ProofError(f"tree size {tree_size} is beyond the log's size {size}")


def _double_signing_until(conn: Connection, retiring: Signer) -> datetime:
    """When the key_rotated entry that retired ``retiring`` ends its double signing."""
    vkey = retiring.verifier().vkey()
    for body in bodies_of_kind(conn, "key_rotated"):
        data = decode_entry(body).data
        if data.get("previous_vkey") == vkey:
            return parse_ts(str(data["double_signing_until"]))
    # A retiring key that no rotation names signs nothing more.
    return datetime.min.replace(tzinfo=UTC)


class LogWriter:
    """One write transaction on the log. Obtain it from :meth:`Log.writer`."""

    def __init__(
        self, log: Log, conn: Connection, head: LogHead, opened: Opened | None = None
    ) -> None:
        self.log = log
        self.conn = conn
        self.head = head
        # The rows of the reads Log.writer was given, and the queue for the last writes.
        self.prefetched: list[list[Any]] = [] if opened is None else opened.prefetched
        self._queue = None if opened is None else opened.queue
        self.now = log.clock.now()
        self.appended: list[Entry] = []
        self.new_entries: list[tuple[int, bytes, str, str, bytes]] = []
        self.new_nodes: list[tuple[int, bytes]] = []
        self._checkpoint_requested = False
        self._now_formatted = (self.now, format_ts(self.now))
        self.signed: StoredCheckpoint | None = None  # the checkpoint this transaction signed

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
        return remembered_keys(self.conn, keys)

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
        remember_keys(self.conn, rows)

    def queue_writes(self) -> None:
        """Queue the statements from here to the commit and send them with it, on PostgreSQL
        in one round trip (see WriteQueue): for the last writes of a transaction, which read
        nothing back. A statement the database refuses then surfaces at the commit, as
        NotCommitted (nothing was written)."""
        if self._queue is not None:
            self._queue.start()

    def request_checkpoint(self) -> None:
        """Sign a checkpoint at commit even if the policy would not (e.g. at a handover)."""
        self._checkpoint_requested = True

    def finish(self) -> None:
        """Write everything, then sign a checkpoint if one is due (called before commit)."""
        if self.appended:
            write_head(self.conn, self.head, self.new_entries, self.new_nodes)
            self.new_entries, self.new_nodes = [], []
        if self.checkpoint_due():
            if self._queue is not None:  # (signing reads and writes through SQLAlchemy)
                self._queue.flush()
            self.signed = self.log.sign_checkpoint(self.conn, self.head)

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
        # Told of every checkpoint this Log signs, once its transaction has committed.
        self.on_signed: Callable[[StoredCheckpoint], None] | None = None

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def writer(self, reads: Sequence[Read] = ()) -> Iterator[LogWriter]:
        """A write transaction; everything done through it commits or rolls back together.

        ``reads`` run first, under the write lock, on PostgreSQL in the same round trip as
        the locked read of the head: their rows are the writer's ``prefetched``."""
        if self.signer is None:
            raise LedgerError("this Log was opened without a signing key; it cannot write")
        opening = LOCKED_HEAD[self.engine.dialect.name]
        with self._write_connections.transaction(opening, reads) as (conn, opened):
            head = head_from_row(opened.row)
            if head.origin != self.origin:
                raise LedgerError(f"database holds the log {head.origin!r}, not {self.origin!r}")
            writer = LogWriter(self, conn, head, opened)
            yield writer
            writer.finish()
        if not is_sqlite(self.engine):  # (SQLite writers take no round trips to save)
            self._known_head.head = writer.head.copy()
        if writer.signed is not None and self.on_signed is not None:
            self.on_signed(writer.signed)

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
        with self._write_connections.transaction("SELECT id FROM log_head") as (conn, opened):
            if opened.row is not None:
                return False
            create_head(conn, self.origin, format_ts(self.clock.now()))
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
        store_checkpoint(conn, stored)
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

    def checkpoint_due_at(self) -> datetime | None:
        """When the policy makes the next checkpoint due, counted from the first entry that no
        checkpoint covers: ``interval`` after it (at once when ``every_entries`` wait). None
        while the latest checkpoint covers the whole log.

        Writers sign only while they write; a process that calls :meth:`sign_if_due` at this
        time (``lunaria worker``) keeps the unsigned tail younger than ``interval`` even on a
        log nobody writes to."""
        with read_transaction(self.engine) as conn:
            return self._due_at(*unsigned_tail(conn))

    def _due_at(self, waiting: int, first_ts: str | None) -> datetime | None:
        if first_ts is None:
            return None
        first = parse_ts(first_ts)
        return first if waiting >= self.policy.every_entries else first + self.policy.interval

    def sign_if_due(self, early: timedelta = timedelta(0)) -> StoredCheckpoint | None:
        """Sign a checkpoint of the whole log if :meth:`checkpoint_due_at` has come, or comes
        within ``early`` (or if a writer would sign one now); None if not, or if nothing
        waits. Decided under the write lock: of two callers at once, the second finds the
        tail covered and signs nothing."""
        with self.writer() as writer:
            due = self._due_at(*unsigned_tail(writer.conn))
            if due is None or (writer.now < due - early and not writer.checkpoint_due()):
                return None
            writer.signed = self.sign_checkpoint(writer.conn, writer.head)
        return writer.signed

    # -- reading ---------------------------------------------------------------------------

    def head(self) -> LogHead:
        with read_transaction(self.engine) as conn:
            return load_head(conn)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with read_transaction(self.engine) as conn:
            return latest_checkpoint(conn)

    def checkpoints(self) -> list[StoredCheckpoint]:
        with read_transaction(self.engine) as conn:
            return stored_checkpoints(conn)

    def entry(self, seq: int, conn: Connection | None = None) -> Entry:
        if conn is None:
            with read_transaction(self.engine) as own:
                return self.entry(seq, own)
        body = entry_body(conn, seq)
        if body is None:
            raise NotFound(f"no entry with seq {seq}")
        return decode_entry(body)

    def entries(self, after: int = -1, limit: int = 100) -> list[Entry]:
        with read_transaction(self.engine) as conn:
            return [decode_entry(body) for body in entry_bodies(conn, after, limit)]

    def iter_raw(self, batch: int = 10_000) -> Iterator[bytes]:
        """Every entry's stored bytes in seq order, streamed from one snapshot."""
        with read_transaction(self.engine) as conn:
            yield from iter_bodies(conn, batch)

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
