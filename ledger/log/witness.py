"""This instance as a C2SP tlog-witness: it cosigns other logs' checkpoints, append-only.

Read side by side with https://c2sp.org/tlog-witness (``add-checkpoint``) and
https://c2sp.org/tlog-cosignature. The operator trusts a log by its verifier key (whose name
is the log's origin: ``lunaria witness trust``); for each origin the witness keeps the latest
checkpoint it cosigned (``witness_logs``, size 0 and the empty tree's root until the first).
A request carries the size the submitter believes the witness holds, a consistency proof from
there, and the new checkpoint; :meth:`Witness.add_checkpoint` checks, in the spec's order:

* the body's shape (400; over :data:`MAX_BODY` bytes, 413);
* the origin is trusted (404) and a trusted key signed the checkpoint (403);
* the old size is not above the new one (400);
* the old size is the one held (409, answering the size held);
* at an equal size, the roots are equal (409); otherwise the proof verifies (422);

then moves the record by compare-and-set (an UPDATE whose WHERE is the size and root it
checked against), commits, and only then cosigns: two requests at once can never roll the
record back, and no cosignature is given for a tree that was not durably recorded first.
A validly signed checkpoint that is refused as inconsistent is kept (``witness_refusals``):
it is the log's own signature on a fork, the proof of a split view.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import Engine, func, insert, select, update

from ledger.errors import InvalidKey, LedgerError, NotFound, ProofError, SignatureError
from ledger.log.clock import Clock, format_ts
from ledger.log.cosignature import Cosigner
from ledger.log.db import write_transaction
from ledger.log.merkle import EMPTY_ROOT, verify_consistency
from ledger.log.notes import Checkpoint, Note, Verifier, open_note, parse_checkpoint, parse_note
from ledger.log.schema import witness_keys, witness_logs, witness_refusals

__all__ = [
    "MAX_BODY",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "Witness",
    "WitnessConflict",
    "WitnessRefusal",
    "WitnessedLog",
    "parse_add_checkpoint",
]

MAX_BODY = 32 * 1024
"""Largest add-checkpoint body accepted: 63 proof lines and a note with 100 signature lines
fit in well under half of it."""

MAX_PROOF_LINES = 63
"""The spec: a client MUST NOT send more consistency proof lines than this."""

SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The content type of a 409's body: the size held, in decimal, and a newline."""

_HASH_SIZE = 32


class WitnessRefusal(LedgerError):
    """An add-checkpoint request the witness refuses; ``status`` is the spec's HTTP status."""

    status: ClassVar[int] = 400
    code = "invalid_add_checkpoint"


class BodyTooLarge(WitnessRefusal):
    status = 413
    code = "body_too_large"


class OldSizeTooLarge(WitnessRefusal):
    status = 400
    code = "old_size_beyond_checkpoint"


class UnknownLog(WitnessRefusal, NotFound):
    status = 404
    code = "unknown_log"


class UntrustedCheckpoint(WitnessRefusal):
    status = 403
    code = "untrusted_checkpoint"


class InconsistentCheckpoint(WitnessRefusal):
    status = 422
    code = "inconsistent_checkpoint"


class NoWitnessKey(WitnessRefusal):
    """This instance has no witness key (made by ``lunaria init``): it cannot cosign."""

    status = 503
    code = "no_witness_key"


class WitnessConflict(WitnessRefusal):
    """The old size is not the one held, or the tree at that size has another root."""

    status = 409
    code = "witness_conflict"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size

    def body(self) -> str:
        """The response body the spec requires: the size held, in decimal, and a newline."""
        return f"{self.size}\n"


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint body: old size, consistency proof, the signed checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    note: Note
    checkpoint: Checkpoint


def _size(text: str) -> int:
    if text != "0" and (not text.isascii() or not text.isdigit() or text.startswith("0")):
        raise WitnessRefusal(f"old size {text[:40]!r} is not a decimal without leading zeros")
    if len(text) > 19 or int(text) > 2**63 - 1:
        raise WitnessRefusal(f"old size {text[:40]!r} is beyond 2**63 - 1")
    return int(text)


def _proof_hash(line: str, number: int) -> bytes:
    try:
        digest = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != _HASH_SIZE or base64.b64encode(digest).decode() != line:
        raise WitnessRefusal(f"consistency proof line {number} is not a base64 32-byte hash")
    return digest


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body strictly; raises :class:`WitnessRefusal` (400, or 413
    for a body over :data:`MAX_BODY`). The checkpoint's signatures are not checked here."""
    if len(body) > MAX_BODY:
        raise BodyTooLarge(f"the body is {len(body)} bytes, over the limit of {MAX_BODY}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WitnessRefusal(f"the body is not UTF-8 at byte {exc.start}") from None
    head, blank, note_text = text.partition("\n\n")
    if not blank:
        raise WitnessRefusal("the body has no empty line before the checkpoint")
    first, *proof_lines = head.split("\n")
    if not first.startswith("old "):
        raise WitnessRefusal(f"the first line is not 'old <size>': {first[:40]!r}")
    old_size = _size(first[4:])
    if len(proof_lines) > MAX_PROOF_LINES:
        raise WitnessRefusal(
            f"{len(proof_lines)} consistency proof lines, more than {MAX_PROOF_LINES}"
        )
    proof = tuple(_proof_hash(line, i) for i, line in enumerate(proof_lines, 1))
    try:
        note = parse_note(note_text)
        checkpoint = parse_checkpoint(note.text)
    except LedgerError as exc:
        raise WitnessRefusal(f"the checkpoint: {exc.message}") from exc
    return AddCheckpoint(old_size, proof, note, checkpoint)


@dataclass(frozen=True)
class WitnessedLog:
    """A log this instance witnesses: its trusted keys and the latest tree it cosigned."""

    origin: str
    vkeys: tuple[str, ...]
    size: int
    root: bytes
    ts: str
    refusals: int

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "vkeys": list(self.vkeys),
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "cosigned_at": self.ts if self.size else None,
            "refusals": self.refusals,
        }


class Witness:
    """The witness of one deployment: its database and its cosigning key."""

    def __init__(self, engine: Engine, cosigner: Cosigner | None, clock: Clock) -> None:
        self.engine = engine
        self.cosigner = cosigner
        self.clock = clock

    # -- the operator's side ------------------------------------------------------------------

    def trust(self, vkey: str) -> Verifier:
        """Trust a log's verifier key (its name is the log's origin); idempotent. A log not
        witnessed before starts at size 0."""
        verifier = Verifier.from_vkey(vkey.strip())
        now = format_ts(self.clock.now())
        with write_transaction(self.engine) as conn:
            known = conn.execute(
                select(witness_keys.c.origin).where(witness_keys.c.vkey == verifier.vkey())
            ).first()
            if known is None:
                conn.execute(
                    insert(witness_keys).values(
                        vkey=verifier.vkey(), origin=verifier.name, added=now
                    )
                )
            held = conn.execute(
                select(witness_logs.c.origin).where(witness_logs.c.origin == verifier.name)
            ).first()
            if held is None:
                conn.execute(
                    insert(witness_logs).values(
                        origin=verifier.name, size=0, root=EMPTY_ROOT, note=None, ts=now
                    )
                )
        return verifier

    def logs(self) -> list[WitnessedLog]:
        """Every log witnessed, by origin."""
        with self.engine.connect() as conn:
            keys: dict[str, list[str]] = {}
            for vkey, origin in conn.execute(
                select(witness_keys.c.vkey, witness_keys.c.origin).order_by(witness_keys.c.added)
            ):
                keys.setdefault(origin, []).append(vkey)
            refusals: dict[str, int] = dict(
                conn.execute(
                    select(witness_refusals.c.origin, func.count()).group_by(
                        witness_refusals.c.origin
                    )
                ).all()
            )
            rows = conn.execute(select(witness_logs).order_by(witness_logs.c.origin)).all()
        return [
            WitnessedLog(
                r.origin,
                tuple(keys.get(r.origin, ())),
                r.size,
                bytes(r.root),
                r.ts,
                refusals.get(r.origin, 0),
            )
            for r in rows
        ]

    def refusals(self, origin: str) -> list[tuple[str, int, str, str]]:
        """The refused, validly signed checkpoints of ``origin``: (time, status, reason, note)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    witness_refusals.c.ts,
                    witness_refusals.c.status,
                    witness_refusals.c.reason,
                    witness_refusals.c.note,
                )
                .where(witness_refusals.c.origin == origin)
                .order_by(witness_refusals.c.id)
            ).all()
        return [(ts, status, reason, note) for ts, status, reason, note in rows]

    # -- add-checkpoint -------------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> str:
        """Check an add-checkpoint body, record its checkpoint, and return the response body:
        this witness's cosignature line. Raises :class:`WitnessRefusal` (its ``status`` is the
        HTTP status; a :class:`WitnessConflict` carries the size held)."""
        if self.cosigner is None:
            raise NoWitnessKey("this instance has no witness key: run `lunaria init`")
        request = parse_add_checkpoint(body)
        checkpoint = request.checkpoint
        self._check_signed(request)
        if request.old_size > checkpoint.size:
            raise OldSizeTooLarge(
                f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}"
            )
        held_size, held_root = self._held(checkpoint.origin)
        if request.old_size != held_size:
            raise WitnessConflict(
                f"old size {request.old_size} is not the size last cosigned, {held_size}",
                held_size,
            )
        self._check_consistent(request, held_root)
        self._record(request, held_size, held_root)
        timestamp = int(self.clock.now().timestamp())
        return self.cosigner.cosign(request.note.text, timestamp).line()

    def _check_signed(self, request: AddCheckpoint) -> None:
        origin = request.checkpoint.origin
        with self.engine.connect() as conn:
            vkeys = conn.execute(
                select(witness_keys.c.vkey).where(witness_keys.c.origin == origin)
            ).scalars()
            trusted = [Verifier.from_vkey(v) for v in vkeys]
        if not trusted:
            raise UnknownLog(f"this witness does not witness the log {origin!r}")
        try:
            open_note(request.note, trusted)
        except (SignatureError, InvalidKey) as exc:
            raise UntrustedCheckpoint(f"the checkpoint of {origin!r}: {exc.message}") from exc

    def _held(self, origin: str) -> tuple[int, bytes]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(witness_logs.c.size, witness_logs.c.root).where(
                    witness_logs.c.origin == origin
                )
            ).first()
        if row is None:  # (a key trusted but its row gone: only by hand)
            raise UnknownLog(f"this witness holds no state for {origin!r}")
        return int(row.size), bytes(row.root)

    def _check_consistent(self, request: AddCheckpoint, held_root: bytes) -> None:
        checkpoint = request.checkpoint
        if request.old_size == checkpoint.size and held_root != checkpoint.root:
            self._refused(
                request,
                WitnessConflict(
                    f"a checkpoint of size {checkpoint.size} with root "
                    f"{checkpoint.root.hex()}, but the tree cosigned at that size has root "
                    f"{held_root.hex()}: a fork",
                    request.old_size,
                ),
            )
        try:
            verify_consistency(
                request.old_size, checkpoint.size, request.proof, held_root, checkpoint.root
            )
        except ProofError as exc:
            self._refused(
                request,
                InconsistentCheckpoint(
                    f"the consistency proof from size {request.old_size} to "
                    f"{checkpoint.size} does not verify: {exc.message}"
                ),
            )

    def _refused(self, request: AddCheckpoint, refusal: WitnessRefusal) -> None:
        """Keep the validly signed checkpoint refused (evidence), then raise ``refusal``."""
        with write_transaction(self.engine) as conn:
            conn.execute(
                insert(witness_refusals).values(
                    origin=request.checkpoint.origin,
                    ts=format_ts(self.clock.now()),
                    status=refusal.status,
                    reason=refusal.message,
                    note=request.note.serialise(),
                )
            )
        raise refusal

    def _record(self, request: AddCheckpoint, held_size: int, held_root: bytes) -> None:
        """Compare-and-set: move the record only if it is still what was checked against."""
        checkpoint = request.checkpoint
        with write_transaction(self.engine) as conn:
            moved = conn.execute(
                update(witness_logs)
                .where(
                    witness_logs.c.origin == checkpoint.origin,
                    witness_logs.c.size == held_size,
                    witness_logs.c.root == held_root,
                )
                .values(
                    size=checkpoint.size,
                    root=checkpoint.root,
                    note=request.note.serialise(),
                    ts=format_ts(self.clock.now()),
                )
            ).rowcount
        if moved != 1:
            now_size, _ = self._held(checkpoint.origin)
            raise WitnessConflict(
                f"another request moved the record of {checkpoint.origin!r} to size {now_size} "
                f"while this one was checked against size {held_size}",
                now_size,
            )
