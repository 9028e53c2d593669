"""Verification of a whole log: from the database, or offline from an export.

Both paths feed every entry's bytes through :class:`ChainChecker`, which re-hashes them,
checks ``v``/``seq``/``prev``/``ts`` continuity and rebuilds the tree; roots are then compared
with every signed checkpoint. The database path also compares the stored hashes, interior
nodes and head with what the entries imply, because proofs are served from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from ledger.entry import GENESIS_PREV, decode_entry
from ledger.errors import LedgerError, NoteError, VerificationError
from ledger.log import StoredCheckpoint, load_head
from ledger.merkle import Frontier, NodeId, leaf_hash
from ledger.notes import Verifier, open_checkpoint
from ledger.schema import checkpoints, entries, node_id, node_key, nodes

STREAM_BATCH = 10_000


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


class ChainChecker:
    """Feed entry bytes in order; raises VerificationError at the first inconsistency."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.frontier = Frontier()
        self.last_hash = bytes.fromhex(GENESIS_PREV)
        self.last_ts = ""

    @property
    def size(self) -> int:
        return self.frontier.size

    def add(self, raw: bytes) -> tuple[bytes, list[tuple[NodeId, bytes]]]:
        """Check the next entry; return its hash and the interior nodes it completed."""
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
        self.last_ts = entry.ts
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
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return _verify_snapshot(conn, verifiers)


def _verify_snapshot(conn: Connection, verifiers: Sequence[Verifier]) -> VerifyReport:
    try:
        head = load_head(conn)
    except LedgerError as exc:
        raise VerificationError(None, exc.message) from exc
    cps = [
        StoredCheckpoint(r.size, r.root, r.ts, r.note)
        for r in conn.execute(select(checkpoints).order_by(checkpoints.c.size))
    ]
    checker = ChainChecker(head.origin)
    streaming = conn.execution_options(yield_per=STREAM_BATCH)
    stored_nodes: Iterator[tuple[int, bytes]] = (
        (int(key), bytes(h))
        for key, h in streaming.execute(select(nodes.c.key, nodes.c.hash).order_by(nodes.c.key))
    )
    next_node = next(stored_nodes, None)
    pending = iter(cps)
    checkpoint = next(pending, None)
    if checkpoint is not None and checkpoint.size == 0:
        check_checkpoint(checkpoint, verifiers, head.origin, 0, checker.frontier.root())
        checkpoint = next(pending, None)
    for seq, stored_hash, body in streaming.execute(
        select(entries.c.seq, entries.c.hash, entries.c.body).order_by(entries.c.seq)
    ):
        if seq != checker.size:
            raise VerificationError(checker.size, f"entry missing: the next stored seq is {seq}")
        entry_hash, completed = checker.add(bytes(body))
        if bytes(stored_hash) != entry_hash:
            raise VerificationError(checker.size - 1, "stored hash does not match the entry bytes")
        for (level, index), computed in completed:
            key = node_key(level, index)
            if next_node is None or next_node[0] != key:
                raise VerificationError(
                    checker.size - 1, f"interior node (level {level}, index {index}) is missing"
                )
            if next_node[1] != computed:
                raise VerificationError(
                    checker.size - 1,
                    f"stored interior node (level {level}, index {index}) does not match",
                )
            next_node = next(stored_nodes, None)
        while checkpoint is not None and checkpoint.size == checker.size:
            check_checkpoint(
                checkpoint, verifiers, head.origin, checker.size, checker.frontier.root()
            )
            checkpoint = next(pending, None)
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
