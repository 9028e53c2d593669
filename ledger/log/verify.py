"""Verification of a whole log: from the database, or offline from an export.

Both paths feed every entry's bytes through :class:`ChainChecker`, which re-hashes them,
checks ``v``/``seq``/``prev``/``ts`` continuity and rebuilds the tree; roots are then compared
with every signed checkpoint. The database path also compares the stored hashes, interior
nodes and head with what the entries imply, because proofs are served from them.
"""

from __future__ import annotations

import re
from binascii import hexlify
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from hashlib import sha256
from typing import Any, NoReturn

from sqlalchemy import Connection, Engine, select

from ledger.errors import LedgerError, NoteError, VerificationError
from ledger.log.canonical import MAX_ENTRY_BYTES
from ledger.log.clock import parse_ts
from ledger.log.entry import GENESIS_PREV, KINDS, decode_entry
from ledger.log.merkle import Frontier, NodeId, leaf_hash
from ledger.log.notes import Verifier, open_checkpoint
from ledger.log.schema import checkpoints, node_id, node_key
from ledger.log.storage import StoredCheckpoint, load_head

STREAM_BATCH = 10_000  # rows per fetch from a server-side cursor
STREAM_CHUNK = 1_000  # rows per chunk of a streamed query

# -- The fast path of ChainChecker.add ---------------------------------------------------------
# Decoding an entry strictly (parse, re-serialise, compare, check every field) costs ~40 us in
# Python. Most entries have a shape that a regular expression can prove canonical: the
# envelope in its canonical key order, and ``data`` a flat object whose values are strings of
# printable ASCII without '"' or '\' (which JSON writes as they are), small integers written
# canonically, true, false or null. For such bytes the canonical encoding is the bytes
# themselves as long as the keys of ``data`` are strictly increasing, which is checked too.
# After "prev", everything but the timestamp is known in advance (the previous hash, the seq,
# fixed punctuation) and is compared as bytes. Every test here accepts a subset of what the
# strict path accepts; whatever they do not accept (nesting, escapes, non-ASCII text, big
# numbers, seq 0, a broken chain, any error) goes through the strict path, so results, errors
# and messages are exactly those of decode_entry.
_STRING = rb"[ !#-\[\]-~]*"  # printable ASCII except '"' and '\': JSON never escapes these
_SCALAR = rb'(?:"' + _STRING + rb'"|0|-?[1-9][0-9]{0,14}|true|false|null)'  # ints below 2^53
_PAIR = rb'"' + _STRING + rb'":' + _SCALAR
_ACTOR = rb'\{"actor":"[A-Za-z0-9._:-]{1,100}","data":'
# The head of an entry with any flat data, up to the prev hash: captures data and kind, so
# that the shape (kind and data keys) can be learnt.
_ANY_HEAD = re.compile(
    _ACTOR + rb"(\{(?:" + _PAIR + rb"(?:," + _PAIR + rb')*)?\}),"kind":"([a-z_]{1,40})","prev":"'
)
_DATA_KEY = re.compile(rb'"(' + _STRING + rb')":' + _SCALAR)
_KINDS = frozenset(kind.encode() for kind in KINDS)
_MAX_SHAPES = 32
# The time of day is range-checked here, the date by parse_ts once per distinct date.
_TS = re.compile(
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)
_TS_LENGTH = 27
# RFC 9162's leaf and node hashes, prefix already hashed: copying one costs less than a new
# sha256 (OpenSSL's set-up) and the concatenation (leaf_hash and node_hash in ledger.log.merkle).
_LEAF_HASH = sha256(b"\x00")
_NODE_HASH = sha256(b"\x01")
_SEQ_TS = b'","seq":%d,"ts":"'
_PREV_SEQ_TS = b'%s","seq":%d,"ts":"'  # the prev hash (hex) too
_END = b'","v":1}'


def _shape_head(kind: bytes, keys: Sequence[bytes]) -> re.Pattern[bytes]:
    """Heads of ``kind`` entries whose data has exactly ``keys`` (strictly increasing)."""
    pairs = b",".join(b'"' + re.escape(key) + b'":' + _SCALAR for key in keys)
    return re.compile(_ACTOR + b"\\{" + pairs + b'\\},"kind":"' + re.escape(kind) + b'","prev":"')


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    origin: str
    size: int
    root: bytes
    checkpoints: int
    latest_checkpoint_size: int

    def summary(self) -> str:
        return (
            f"ok: {self.origin} size {self.size} root {self.root.hex()}; "
            f"{self.checkpoints} checkpoints verified, latest at size {self.latest_checkpoint_size}"
        )


StoredEntry = tuple[int, bytes, bytes]
"""``(seq, hash, body)`` as stored in ``entries``."""


class StoredNodes:
    """The stored interior nodes, ``(key, hash)`` in key order, looked at one at a time."""

    def __init__(self, rows: Iterator[tuple[int, bytes]]) -> None:
        self.rows = rows
        self.next = next(rows, None)


class ChainChecker:
    """Feed entry bytes in order; raises VerificationError at the first inconsistency."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.frontier = Frontier()
        self.last_hash = bytes.fromhex(GENESIS_PREV)
        self.last_ts = ""
        # For the fast path: last_hash.hex() as bytes, the dates parse_ts accepted, and the
        # entry shapes (kind and data keys) seen so far, most recently used first.
        self._last_hex = GENESIS_PREV.encode()
        self._last_ts_bytes = b""
        self._valid_dates: set[bytes] = set()
        self._heads: list[re.Pattern[bytes]] = []
        self._known_shapes: set[tuple[bytes, tuple[bytes, ...]]] = set()

    @property
    def size(self) -> int:
        return self.frontier.size

    def add(self, raw: bytes) -> tuple[bytes, list[tuple[NodeId, bytes]]]:
        """Check the next entry; return its hash and the interior nodes it completed.

        The fast path accepts only what :meth:`_add_strict` accepts, with the same result;
        anything it is not sure about goes to :meth:`_add_strict`.
        """
        frontier = self.frontier
        size = frontier.size
        if not size or type(raw) is not bytes or len(raw) > MAX_ENTRY_BYTES:
            return self._add_strict(raw)
        heads = self._heads
        match = heads[0].match(raw) if heads else None
        if match is None:
            match = self._match_head(raw)
            if match is None:
                return self._add_strict(raw)
        # The rest is fixed: "<prev>","seq":<size>,"ts":"<ts>","v":1}
        start = match.end() + 64
        seq = _SEQ_TS % size
        ts_start = start + len(seq)
        ts_end = ts_start + _TS_LENGTH
        if (
            len(raw) != ts_end + len(_END)
            or not raw.startswith(self._last_hex, start - 64)
            or not raw.startswith(seq, start)
            or not raw.endswith(_END)
        ):
            return self._add_strict(raw)
        ts = raw[ts_start:ts_end]
        # The same ts as the previous entry is valid.
        if ts != self._last_ts_bytes and not self._accept_ts(ts):
            return self._add_strict(raw)
        entry_hash = sha256(b"\x00" + raw).digest()
        self.last_hash = entry_hash
        self._last_hex = hexlify(entry_hash)
        # Frontier.append, inlined: merge while the new subtree is a right child.
        hashes = frontier.hashes
        completed: list[tuple[NodeId, bytes]] = []
        current = entry_hash
        level = 0
        while (size >> level) & 1:
            current = sha256(b"\x01" + hashes.pop() + current).digest()
            level += 1
            completed.append(((level, size >> level), current))
        hashes.append(current)
        frontier.size = size + 1
        return entry_hash, completed

    def add_stored(self, rows: Iterator[StoredEntry], nodes: StoredNodes, stop: int) -> bool:
        """Check stored ``(seq, hash, body)`` rows until the log holds ``stop`` entries (True) or
        the rows run out (False).

        Each row is checked as :meth:`add_row` does: seq, body (as :meth:`add`), stored hash,
        and the stored interior nodes it completes. This loop is add's fast path with those
        comparisons inlined and the state in local variables, written back when it returns:
        verifying a log is mostly this loop, and per-row calls and attribute look-ups would
        add a fifth to it. A row the fast path does not accept goes, before anything was
        changed for it, through add_row, so every result, error and message is add_row's. A
        checker that raised is not to be used again.
        """
        frontier = self.frontier
        hashes = frontier.hashes
        heads = self._heads
        head = heads[0] if heads else None
        size = frontier.size
        last_hash = self.last_hash
        last_hex = self._last_hex
        node_rows = nodes.rows
        next_node = nodes.next
        try:
            for seq, stored_hash, body in rows:
                # add's fast path: the checks are the same, in the same order.
                match = None
                if seq == size and size and type(body) is bytes and len(body) <= MAX_ENTRY_BYTES:
                    match = head.match(body) if head is not None else None
                    if match is None:
                        match = self._match_head(body)
                        head = heads[0] if heads else None
                if match is not None:
                    start = match.end()
                    prev_seq_ts = _PREV_SEQ_TS % (last_hex, size)
                    ts_start = start + len(prev_seq_ts)
                    ts_end = ts_start + _TS_LENGTH
                    if (
                        len(body) != ts_end + len(_END)
                        or not body.startswith(prev_seq_ts, start)
                        or not body.endswith(_END)
                    ):
                        match = None
                    else:
                        ts = body[ts_start:ts_end]
                        if ts != self._last_ts_bytes and not self._accept_ts(ts):
                            match = None
                if match is None:
                    frontier.size, self.last_hash, self._last_hex = size, last_hash, last_hex
                    nodes.next = next_node
                    self.add_row(seq, stored_hash, body, nodes)
                    size, last_hash, last_hex = frontier.size, self.last_hash, self._last_hex
                    next_node = nodes.next
                    head = heads[0] if heads else None
                else:
                    leaf = _LEAF_HASH.copy()
                    leaf.update(body)
                    last_hash = leaf.digest()
                    last_hex = hexlify(last_hash)
                    if last_hash != stored_hash:
                        _stored_hash_mismatch(seq)
                    # Frontier.append, comparing each completed node with the stored one.
                    current = last_hash
                    if size & 1:
                        seq_key = seq << 6
                        level = 0
                        while (size >> level) & 1:
                            node = _NODE_HASH.copy()
                            node.update(hashes.pop())
                            node.update(current)
                            current = node.digest()
                            level += 1
                            if (
                                next_node is None
                                or next_node[0] != seq_key | level
                                or next_node[1] != current
                            ):
                                _node_mismatch(next_node, level, size >> level, seq)
                            next_node = next(node_rows, None)
                    hashes.append(current)
                    size += 1
                if size == stop:
                    return True
            return False
        finally:
            frontier.size, self.last_hash, self._last_hex = size, last_hash, last_hex
            nodes.next = next_node

    def add_row(self, seq: int, stored_hash: bytes, body: bytes, nodes: StoredNodes) -> None:
        """Check a stored entry: its seq, its body (:meth:`add`), its stored hash and the stored
        interior nodes it completes (the next ones in ``nodes``)."""
        if seq != self.frontier.size:
            raise VerificationError(self.size, f"entry missing: the next stored seq is {seq}")
        entry_hash, completed = self.add(bytes(body))
        if stored_hash != entry_hash:
            _stored_hash_mismatch(seq)
        # Every node this entry completed ends at it: key = seq << 6 | level (node_key).
        seq_key = seq << 6
        for (level, index), computed in completed:
            node = nodes.next
            if node is None or node[0] != seq_key | level or node[1] != computed:
                _node_mismatch(node, level, index, seq)
            nodes.next = next(nodes.rows, None)

    def _accept_ts(self, ts: bytes) -> bool:
        """Make ``ts`` (27 bytes) the latest time if it is valid and not before the latest."""
        if _TS.fullmatch(ts) is None:
            return False
        ts_text = ts.decode()
        if ts_text < self.last_ts:
            return False
        if ts[:10] not in self._valid_dates:
            try:
                parse_ts(ts_text)
            except ValueError:
                return False
            self._valid_dates.add(ts[:10])
        self.last_ts = ts_text
        self._last_ts_bytes = ts
        return True

    def _match_head(self, raw: bytes) -> re.Match[bytes] | None:
        """Match ``raw`` against the other known shapes, or learn its shape."""
        heads = self._heads
        for position in range(1, len(heads)):
            match = heads[position].match(raw)
            if match is not None:
                heads.insert(0, heads.pop(position))  # most recently used first
                return match
        match = _ANY_HEAD.match(raw)
        if match is None:
            return None
        data, kind = match.group(1, 2)
        keys = tuple(_DATA_KEY.findall(data))
        if kind not in _KINDS or list(keys) != sorted(set(keys)):  # sorted, no duplicates
            return None
        if len(heads) < _MAX_SHAPES and (kind, keys) not in self._known_shapes:
            self._known_shapes.add((kind, keys))
            heads.insert(0, _shape_head(kind, keys))
        return match

    def _add_strict(self, raw: bytes) -> tuple[bytes, list[tuple[NodeId, bytes]]]:
        seq = self.frontier.size
        try:
            entry = decode_entry(raw)
        except LedgerError as exc:
            raise VerificationError(seq, f"entry is malformed: {exc.message}") from exc
        if entry.seq != seq:
            raise VerificationError(seq, f"entry at position {seq} claims seq {entry.seq}")
        if entry.prev != self.last_hash.hex():
            # The bytes of seq-1 no longer hash to what seq recorded: seq-1 was rewritten
            # (or, less likely, only the prev inside seq was).
            raise VerificationError(
                seq - 1,
                f"its hash {self.last_hash.hex()} is not the prev {entry.prev} recorded by "
                f"seq {seq}: one of the two was altered",
            )
        if entry.ts < self.last_ts:
            raise VerificationError(seq, f"ts {entry.ts} is before {self.last_ts} of seq {seq - 1}")
        if seq == 0 and (entry.kind != "log_created" or entry.data.get("origin") != self.origin):
            raise VerificationError(0, f"the first entry must be log_created for {self.origin!r}")
        entry_hash = leaf_hash(raw)
        self.last_hash = entry_hash
        self._last_hex = entry_hash.hex().encode()
        self.last_ts = entry.ts
        self._last_ts_bytes = b""  # (only used to skip re-checking the same valid ts)
        return entry_hash, self.frontier.append(entry_hash)


def check_checkpoint(
    stored: StoredCheckpoint | str,
    verifiers: Sequence[Verifier],
    origin: str,
    size: int,
    root: bytes,
) -> None:
    """The note verifies with a known key, for this origin, and commits to ``root`` at ``size``."""
    note = stored if isinstance(stored, str) else stored.note
    try:
        checkpoint = open_checkpoint(note, verifiers, origin=origin)
    except NoteError as exc:
        raise VerificationError(None, f"checkpoint at size {size}: {exc.message}") from exc
    if checkpoint.size != size:
        raise VerificationError(None, f"checkpoint stored for size {size} says {checkpoint.size}")
    if checkpoint.root != root:
        raise VerificationError(
            max(size - 1, 0),
            f"checkpoint at size {size} signs root {checkpoint.root.hex()}, "
            f"but the entries give {root.hex()}",
        )


def verify_database(engine: Engine, verifiers: Sequence[Verifier]) -> VerifyReport:
    """Verify everything stored, from one consistent snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            with conn.begin():
                return _verify_snapshot(conn, conn, verifiers)
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if not _streams_in_chunks():
                return _verify_snapshot(conn, conn, verifiers)
            with _snapshot_twin(engine, _export_snapshot(conn)) as twin:
                return _verify_snapshot(conn, twin, verifiers)


@cache
def _streams_in_chunks() -> bool:
    """Whether psycopg can stream a query in chunks of rows (psycopg 3.2 with libpq 17)."""
    import psycopg  # (only PostgreSQL needs it)

    capabilities = getattr(psycopg, "capabilities", None)  # (psycopg 3.1 has none)
    return capabilities is not None and bool(capabilities.has_stream_chunked())


def _export_snapshot(conn: Connection) -> str:
    """The id of the snapshot of ``conn``'s transaction (PostgreSQL), for _snapshot_twin."""
    return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())


@contextmanager
def _snapshot_twin(engine: Engine, snapshot: str) -> Iterator[Connection]:
    """A second PostgreSQL connection whose transaction sees exactly what the one that
    exported ``snapshot`` sees: a connection streams one query at a time, and verification
    streams two, the entries and the nodes."""
    from psycopg import sql

    with engine.connect() as twin:
        twin = twin.execution_options(isolation_level="REPEATABLE READ")
        with twin.begin():
            driver: Any = twin.connection.driver_connection
            with driver.cursor() as cursor:  # (a utility statement: no bound parameters)
                cursor.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot))
            yield twin


def _verify_snapshot(
    conn: Connection, nodes_conn: Connection, verifiers: Sequence[Verifier]
) -> VerifyReport:
    """Verify what ``conn`` sees; ``nodes_conn`` (``conn`` itself or its twin) reads nodes."""
    try:
        head = load_head(conn)
    except LedgerError as exc:
        raise VerificationError(None, exc.message) from exc
    cps = [
        StoredCheckpoint(r.size, r.root, r.ts, r.note)
        for r in conn.execute(select(checkpoints).order_by(checkpoints.c.size))
    ]
    checker = ChainChecker(head.origin)
    with (
        _rows(nodes_conn, "SELECT key, hash FROM nodes ORDER BY key") as stored_nodes,
        _rows(conn, "SELECT seq, hash, body FROM entries ORDER BY seq") as stored_entries,
    ):
        next_node, checkpoint = _check_entries(
            checker, stored_entries, stored_nodes, cps, verifiers
        )
    if next_node is not None:
        level, index = node_id(next_node[0])
        raise VerificationError(
            next_node[0] >> 6,
            f"stored interior node (level {level}, index {index}) is not part of the tree",
        )
    if checkpoint is not None:
        raise VerificationError(
            None, f"checkpoint at size {checkpoint.size} is beyond the {checker.size} entries"
        )
    _check_head(head.size, head.last_hash, head.frontier.hashes, checker)
    return _report(head.origin, checker, cps)


def _check_entries(
    checker: ChainChecker,
    stored_entries: Iterator[StoredEntry],
    stored_nodes: Iterator[tuple[int, bytes]],
    cps: Sequence[StoredCheckpoint],
    verifiers: Sequence[Verifier],
) -> tuple[tuple[int, bytes] | None, StoredCheckpoint | None]:
    """Feed the stored entries to ``checker``, comparing stored hashes, nodes and checkpoints.

    Returns the first stored node and the first checkpoint that no entry accounted for.
    """
    nodes = StoredNodes(stored_nodes)
    pending = iter(cps)
    checkpoint = next(pending, None)
    while True:
        # Checkpoints are checked as soon as the entries reach their size (0 included).
        while checkpoint is not None and checkpoint.size == checker.size:
            root = checker.frontier.root()
            check_checkpoint(checkpoint, verifiers, checker.origin, checker.size, root)
            checkpoint = next(pending, None)
        stop = -1 if checkpoint is None else checkpoint.size
        if not checker.add_stored(stored_entries, nodes, stop):
            return nodes.next, checkpoint


def _stored_hash_mismatch(seq: int) -> NoReturn:
    raise VerificationError(seq, "stored hash does not match the entry bytes")


def _node_mismatch(stored: tuple[int, bytes] | None, level: int, index: int, seq: int) -> NoReturn:
    if stored is None or stored[0] != node_key(level, index):
        raise VerificationError(seq, f"interior node (level {level}, index {index}) is missing")
    raise VerificationError(
        seq, f"stored interior node (level {level}, index {index}) does not match"
    )


@contextmanager
def _rows(conn: Connection, sql: str) -> Iterator[Iterator[Any]]:
    """The rows of ``sql`` as plain tuples, within ``conn``'s transaction.

    Straight from the driver: SQLAlchemy's result rows cost more than the checks themselves.
    SQLite's cursor is iterated row by row (cheaper than its fetchmany lists, with no more
    memory). PostgreSQL streams the rows in chunks where psycopg can: the server sends them
    while Python checks the ones before (socket buffers, not a thread, let it work ahead, so
    nothing waits for the GIL), which at 100,000 entries is ~1.4x as fast as the server-side
    cursor of the fallback (see _prefetched) and costs the server half the CPU. Streaming
    occupies the connection until the last row: one query per connection.
    """
    driver: Any = conn.connection.driver_connection
    if conn.dialect.name != "postgresql":
        cursor = driver.cursor()
        try:
            yield cursor.execute(sql)
        finally:
            cursor.close()
        return
    if _streams_in_chunks():
        with driver.cursor(binary=True) as cursor:
            streamed = cursor.stream(sql, size=STREAM_CHUNK)
            try:
                yield streamed
            finally:
                streamed.close()  # (cancels the query if rows are left: verification failed)
        return
    cursor = driver.cursor(name=f"lunaria_verify_{id(sql):x}", binary=True)
    try:
        cursor.execute(sql)
        rows = _prefetched(lambda: cursor.fetchmany(STREAM_BATCH))
        try:
            yield rows
        finally:
            rows.close()  # (waits for a fetch under way, before the cursor closes)
    finally:
        cursor.close()


def _prefetched(fetch: Callable[[], list[Any]]) -> Generator[Any, None, None]:
    """The rows of ``fetch()`` batches until an empty one, the next batch fetched while these
    are checked: PostgreSQL works on the other core instead of idling while Python hashes
    (psycopg waits without the GIL). SQLite would gain nothing: it runs under the same GIL.
    Only where psycopg cannot stream in chunks: the fetching thread needs the GIL to turn
    rows into objects and waits for it, and the checking thread then waits for the rows."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lunaria-verify") as fetcher:
        pending = fetcher.submit(fetch)
        while batch := pending.result():
            pending = fetcher.submit(fetch)
            yield from batch


def _check_head(size: int, last_hash: bytes, frontier: list[bytes], checker: ChainChecker) -> None:
    if size != checker.size:
        raise VerificationError(
            min(size, checker.size), f"log head says size {size}, entries give {checker.size}"
        )
    if size and last_hash != checker.last_hash:
        raise VerificationError(size - 1, "log head's last hash does not match the last entry")
    if frontier != checker.frontier.hashes:
        raise VerificationError(size - 1 if size else None, "log head's frontier does not match")


def _report(origin: str, checker: ChainChecker, cps: Sequence[StoredCheckpoint]) -> VerifyReport:
    latest = max((c.size for c in cps), default=0)
    return VerifyReport(origin, checker.size, checker.frontier.root(), len(cps), latest)


def verify_export(
    lines: Iterable[bytes], checkpoint_note: str, verifiers: Sequence[Verifier], origin: str | None
) -> VerifyReport:
    """Verify exported entries (one canonical entry per line) against a signed checkpoint.

    Needs no database: re-hashes every entry, checks the chain and compares the root at the
    checkpoint's size with the signed one. ``origin`` defaults to the checkpoint's own.
    """
    try:
        signed = open_checkpoint(checkpoint_note, verifiers, origin=origin)
    except NoteError as exc:
        raise VerificationError(None, f"checkpoint: {exc.message}") from exc
    checker = ChainChecker(signed.origin)
    root_at_checkpoint = checker.frontier.root() if signed.size == 0 else None
    for line in lines:
        raw = line[:-1] if line.endswith(b"\n") else line
        checker.add(raw)
        if checker.size == signed.size:
            root_at_checkpoint = checker.frontier.root()
    if root_at_checkpoint is None:
        raise VerificationError(
            checker.size,
            f"the export holds {checker.size} entries but the checkpoint covers {signed.size}",
        )
    check_checkpoint(checkpoint_note, verifiers, signed.origin, signed.size, root_at_checkpoint)
    return VerifyReport(signed.origin, checker.size, checker.frontier.root(), 1, signed.size)
