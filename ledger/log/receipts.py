"""Receipts: offline proof that an entry is in the log, in two equivalent forms.

C2SP tlog-proof (https://c2sp.org/tlog-proof), e.g. ``lunaria receipt 5 --format tlog-proof``::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's canonical bytes>
    index 5
    <base64 hash: the leaf's sibling first, up to the root's child>
    ...
    <blank line>
    <the signed checkpoint, verbatim>

Lunaria always writes the ``extra`` line with the exact bytes that were hashed, so a proof is
self-contained. The extra data is never trusted: verification hashes it and walks the proof up
to the root of a checkpoint signed by a key the verifier already trusts. A proof without the
``extra`` line (from another tool) verifies when the entry bytes are supplied separately.

The JSON twin carries the same proof and the entry as an object (for people and pages)::

    {"entry": {...}, "entry_b64": "<the same bytes, base64>", "seq": 5, "leaf_hash": "<hex>",
     "proof": {"index": 5, "size": 10, "leaf_hash": "<hex>", "hashes": ["<hex>", ...]},
     "checkpoint": "<signed note>", "vkey": "<verifier key string>"}

``vkey`` says which key the log signs with; it is a hint, never trusted (the verifier passes
its own keys). Tree size and root always come from the signed checkpoint, never the proof.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

from ledger.errors import (
    InvalidKey,
    LedgerError,
    NoteError,
    NotFound,
    NotYetCovered,
    ProofError,
    VerificationError,
)
from ledger.log import merkle
from ledger.log.append import Log
from ledger.log.canonical import canonical_bytes
from ledger.log.cosignature import WitnessQuorum
from ledger.log.entry import Entry, decode_entry
from ledger.log.notes import Checkpoint, Signer, Verifier, open_note, parse_checkpoint, parse_note
from ledger.log.storage import one_read, read_nodes, read_snapshot

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_INDEX = 2**63 - 1

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_RECEIPT_KEYS = frozenset({"entry", "seq", "leaf_hash", "proof", "checkpoint", "vkey"})
_OPTIONAL_KEYS = frozenset({"entry_b64", "texts"})
_PROOF_KEYS = frozenset({"index", "size", "leaf_hash", "hashes"})


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str, what: str) -> bytes:
    """Standard padded base64 in its one canonical spelling, else :class:`ProofError`."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or _b64encode(data) != value:
        raise ProofError(f"{what} is not canonical padded base64: {value[:60]!r}")
    return data


# --- c2sp.org/tlog-proof@v1 ------------------------------------------------------------------


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof: entry index, inclusion proof, signed checkpoint, optional extra."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def serialise(self) -> str:
        """The proof text; the inverse of :func:`parse_tlog_proof`."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_b64encode(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint


def _take_line(rest: str, what: str) -> tuple[str, str]:
    line, newline, rest = rest.partition("\n")
    if not newline:
        raise ProofError(f"tlog-proof ends before {what}")
    return line, rest


def parse_tlog_proof(data: str | bytes) -> TlogProof:
    """Parse a tlog-proof strictly; raises :class:`ProofError` naming the bad line.

    Accepted texts re-serialise to exactly the same bytes. The checkpoint is checked to be a
    well-formed signed note here; its signatures are checked by :func:`verify_receipt`.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProofError(f"tlog-proof is not UTF-8 at byte {exc.start}") from None
    header, rest = _take_line(data, "its first line ends")
    if header != TLOG_PROOF_HEADER:
        raise ProofError(f"tlog-proof must start with {TLOG_PROOF_HEADER!r}, not {header[:60]!r}")
    line, rest = _take_line(rest, "the index line")
    extra = None
    if line.startswith("extra "):
        extra = _b64decode(line[len("extra ") :], "tlog-proof extra data")
        line, rest = _take_line(rest, "the index line")
    if not line.startswith("index ") or _DECIMAL.fullmatch(line[len("index ") :]) is None:
        raise ProofError(f"tlog-proof needs 'index <decimal>' here, not {line[:60]!r}")
    index = int(line[len("index ") :])
    if index > MAX_INDEX:
        raise ProofError(f"tlog-proof index {index} is beyond any tree")
    hashes: list[bytes] = []
    while True:
        line, rest = _take_line(rest, "the blank line before the checkpoint")
        if not line:
            break
        digest = _b64decode(line, f"tlog-proof hash {len(hashes)}")
        if len(digest) != merkle.HASH_SIZE:
            raise ProofError(f"tlog-proof hash {len(hashes)} is {len(digest)} bytes, not 32")
        hashes.append(digest)
    try:
        parse_note(rest)
    except NoteError as exc:
        raise ProofError(f"tlog-proof checkpoint: {exc.message}") from exc
    return TlogProof(index=index, hashes=tuple(hashes), checkpoint=rest, extra=extra)


# --- the inclusion proof, in JSON -------------------------------------------------------------


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves, hashes hex.

    One JSON shape wherever Lunaria publishes a proof: the public read API
    (``/ledger/proofs/inclusion``), a JSON receipt's ``proof`` and each line of a cycle's
    JSONL export (``inclusion_proof``)::

        {"index": 5, "size": 10, "leaf_hash": "<hex>", "hashes": ["<hex>", ...]}

    ``hashes`` run from the leaf's sibling up to a child of the root.
    """

    index: int
    size: int
    leaf_hash: str
    hashes: tuple[str, ...]

    @classmethod
    def of(cls, index: int, size: int, leaf: bytes, hashes: Iterable[bytes]) -> InclusionProof:
        """The proof from raw hashes."""
        return cls(index, size, leaf.hex(), tuple(h.hex() for h in hashes))

    def to_json(self) -> dict[str, Any]:
        """The proof as JSON-ready values, keys in the order above."""
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash,
            "hashes": list(self.hashes),
        }


# --- the JSON receipt ------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """A JSON receipt: the entry's canonical bytes, its inclusion proof and the checkpoint.

    ``texts``, when present, is what the application serves beside the entry (the fund's
    public texts and their salts, see ``ledger.fund.public_text``): carried as it is, never
    part of what the proof covers; the log neither reads nor checks it."""

    entry: bytes
    seq: int
    leaf_hash: bytes
    size: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    vkey: str
    texts: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body = {
            "entry": json.loads(self.entry),
            "entry_b64": _b64encode(self.entry),
            "seq": self.seq,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": self.proof.to_json(),
            "checkpoint": self.checkpoint,
            "vkey": self.vkey,
        }
        if self.texts is not None:
            body["texts"] = self.texts
        return body

    @property
    def proof(self) -> InclusionProof:
        """The inclusion proof of the entry in the tree of the checkpoint."""
        return InclusionProof.of(self.seq, self.size, self.leaf_hash, self.hashes)

    def dumps(self) -> str:
        """The receipt as indented JSON text ending in a newline."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def to_tlog_proof(self) -> TlogProof:
        """The same proof as c2sp.org/tlog-proof, with the entry bytes as its extra data."""
        return TlogProof(self.seq, self.hashes, self.checkpoint, extra=self.entry)


def _field(obj: dict[str, Any], keys: frozenset[str], optional: frozenset[str], what: str) -> None:
    missing = sorted(keys - obj.keys())
    unknown = sorted(obj.keys() - keys - optional)
    if missing or unknown:
        raise ProofError(f"{what} is missing {missing} / has unknown fields {unknown}")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX:
        raise ProofError(f"receipt {what} must be an integer in [0, 2**63), not {value!r}")
    return value


def _hash(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or _HEX_HASH.fullmatch(value) is None:
        raise ProofError(f"receipt {what} must be 64 lowercase hex digits, not {value!r:.80}")
    return bytes.fromhex(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProofError(f"receipt {what} must be a string")
    return value


def _load_json(data: str | bytes) -> dict[str, Any]:
    def refuse(value: str) -> Any:
        raise ProofError(f"receipt holds a non-integer number {value[:40]!r}")

    try:
        obj = json.loads(data, parse_float=refuse, parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProofError(f"receipt is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProofError("receipt must be a JSON object")
    return obj


def _entry_bytes(obj: dict[str, Any]) -> bytes:
    if not isinstance(obj["entry"], dict):
        raise ProofError("receipt entry must be a JSON object")
    try:
        raw = canonical_bytes(obj["entry"])
    except LedgerError as exc:
        raise ProofError(f"receipt entry cannot be canonicalised: {exc.message}") from exc
    if "entry_b64" in obj:
        given = _b64decode(_text(obj["entry_b64"], "entry_b64"), "receipt entry_b64")
        if given != raw:
            raise ProofError("receipt entry_b64 is not the canonical bytes of its entry object")
    return raw


def parse_receipt_json(data: str | bytes) -> Receipt:
    """Parse a JSON receipt strictly (exact fields, duplicated values agree).

    Raises :class:`ProofError` when malformed; whether it *verifies* is :func:`verify_receipt`.
    """
    obj = _load_json(data)
    _field(obj, _RECEIPT_KEYS, _OPTIONAL_KEYS, "receipt")
    proof = obj["proof"]
    if not isinstance(proof, dict):
        raise ProofError("receipt proof must be a JSON object")
    _field(proof, _PROOF_KEYS, frozenset(), "receipt proof")
    seq, leaf = _count(obj["seq"], "seq"), _hash(obj["leaf_hash"], "leaf_hash")
    if _count(proof["index"], "proof.index") != seq:
        raise ProofError(f"receipt seq {seq} differs from its proof.index {proof['index']}")
    if _hash(proof["leaf_hash"], "proof.leaf_hash") != leaf:
        raise ProofError("receipt leaf_hash differs from its proof.leaf_hash")
    if not isinstance(proof["hashes"], list):
        raise ProofError("receipt proof.hashes must be a list")
    hashes = tuple(_hash(h, f"proof.hashes[{i}]") for i, h in enumerate(proof["hashes"]))
    checkpoint = _text(obj["checkpoint"], "checkpoint")
    vkey = _text(obj["vkey"], "vkey")
    try:
        parse_note(checkpoint)
        Verifier.from_vkey(vkey)
    except LedgerError as exc:
        raise ProofError(f"receipt: {exc.message}") from exc
    texts = obj.get("texts")
    if texts is not None and not isinstance(texts, dict):
        raise ProofError("receipt texts must be a JSON object")
    return Receipt(
        entry=_entry_bytes(obj),
        seq=seq,
        leaf_hash=leaf,
        size=_count(proof["size"], "proof.size"),
        hashes=hashes,
        checkpoint=checkpoint,
        vkey=vkey,
        texts=texts,
    )


def parse_receipt(data: str | bytes) -> Receipt | TlogProof:
    """A receipt in either form: tlog-proof text (by its first line) or JSON."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProofError(f"receipt is not UTF-8 at byte {exc.start}") from None
    if data.startswith(TLOG_PROOF_HEADER + "\n"):
        return parse_tlog_proof(data)
    if data.lstrip().startswith("{"):
        return parse_receipt_json(data)
    raise ProofError(f"not a receipt: neither {TLOG_PROOF_HEADER} text nor a JSON object")


# --- building receipts -----------------------------------------------------------------------


@lru_cache(maxsize=8)
def _signer_vkey(signer: Signer) -> str:
    """The signer's verifier key string (deriving the public key costs more than a receipt)."""
    return signer.verifier().vkey()


_recorded_vkeys: weakref.WeakKeyDictionary[Log, str] = weakref.WeakKeyDictionary()
_covered_sizes: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
"""Per engine, the size of the latest checkpoint when a receipt was last built: the next
receipt reads the proof for that size in the same statement as the checkpoint, and reads
again only if a newer checkpoint was signed since."""


def _known_vkey(log: Log) -> str | None:
    """The log's verifier key if known without reading: its signer's, or one read before."""
    return _signer_vkey(log.signer) if log.signer is not None else _recorded_vkeys.get(log)


def _recorded_vkey(log: Log, first_entry: bytes) -> str:
    """The verifier key the log_created entry records (a log opened without its key)."""
    vkey = decode_entry(first_entry).data.get("vkey")
    if not isinstance(vkey, str):
        raise LedgerError("the log_created entry records no verifier key")
    _recorded_vkeys[log] = vkey
    return vkey


def _plan(seq: int, size: int) -> merkle.ProofPlan:
    return merkle.inclusion_plan(seq, size) if 0 <= seq < size else []


def _subtrees(plan: merkle.ProofPlan) -> set[merkle.NodeId]:
    return {node for step in plan for node in step}


def build_receipt(log: Log, seq: int, vkey: str | None = None) -> Receipt:
    """The receipt of entry ``seq`` against the latest signed checkpoint.

    Raises :class:`NotFound` when there is no such entry and :class:`NotYetCovered` when the
    entry is newer than the latest checkpoint (ask again after the next one). One statement
    reads everything, unless a checkpoint was signed since the last receipt.
    """
    vkey = vkey or _known_vkey(log)
    expected = _covered_sizes.get(log.engine, 0)
    plan = _plan(seq, expected)
    bodies = [seq] if vkey else [0, seq]
    with one_read(log.engine) as conn:
        snapshot = read_snapshot(conn, _subtrees(plan), bodies=bodies, checkpoint=True)
        size, checkpoint = snapshot.head.size, snapshot.checkpoint
        if not 0 <= seq < size:
            raise NotFound(f"no entry with seq {seq} (the log has {size} entries)")
        covered = 0 if checkpoint is None else checkpoint.size
        if checkpoint is None or seq >= covered:
            raise NotYetCovered(
                f"entry {seq} is not covered by a signed checkpoint yet (the latest covers "
                f"{covered} entries); a receipt is available after the next checkpoint"
            )
        nodes = snapshot.nodes
        if covered != expected:
            _covered_sizes[log.engine] = covered
            plan = _plan(seq, covered)
            nodes = read_nodes(conn, _subtrees(plan))
    hashes = merkle.resolve(plan, lambda _: nodes)
    raw = snapshot.bodies[seq]
    return Receipt(
        entry=raw,
        seq=seq,
        leaf_hash=merkle.leaf_hash(raw),
        size=covered,
        hashes=tuple(hashes),
        checkpoint=checkpoint.note,
        vkey=vkey or _recorded_vkey(log, snapshot.bodies[0]),
    )


# --- verifying receipts ----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a verified receipt proves: this entry is leaf ``entry.seq`` of a signed tree."""

    entry: Entry
    leaf_hash: bytes
    checkpoint: Checkpoint
    signed_by: tuple[str, ...]
    cosigned_by: tuple[str, ...] = ()

    def summary(self) -> str:
        cp = self.checkpoint
        witnessed = f", cosigned by {', '.join(self.cosigned_by)}" if self.cosigned_by else ""
        return (
            f"ok: entry {self.entry.seq} ({self.entry.kind}, leaf hash {self.leaf_hash.hex()}) "
            f"is in {cp.origin} at size {cp.size}, root {cp.root.hex()}, "
            f"signed by {', '.join(self.signed_by)}{witnessed}"
        )


def _verifiers(vkeys: Sequence[Verifier | str]) -> list[Verifier]:
    verifiers = [v if isinstance(v, Verifier) else Verifier.from_vkey(v) for v in vkeys]
    if not verifiers:
        raise InvalidKey("verifying a receipt needs at least one trusted verifier key")
    return verifiers


def _receipt_entry(receipt: Receipt | TlogProof, supplied: bytes | None) -> bytes:
    carried = receipt.entry if isinstance(receipt, Receipt) else receipt.extra
    if supplied is not None and carried is not None and supplied != carried:
        what = "entry" if isinstance(receipt, Receipt) else "extra data"
        raise ProofError(f"the entry supplied differs from the receipt's {what}")
    raw = supplied if supplied is not None else carried
    if raw is None:
        raise ProofError("the tlog-proof has no extra line: supply the entry's bytes")
    return raw


def _decode(raw: bytes, index: int) -> Entry:
    try:
        entry = decode_entry(raw)
    except LedgerError as exc:
        raise VerificationError(
            index, f"receipt entry is not a valid entry: {exc.message}"
        ) from exc
    if entry.seq != index:
        raise VerificationError(
            index, f"the entry is seq {entry.seq}, but the proof is for index {index}"
        )
    return entry


def _open(
    note_text: str,
    verifiers: Sequence[Verifier],
    origin: str | None,
    index: int,
    witnesses: WitnessQuorum | None,
) -> tuple[Checkpoint, tuple[str, ...], tuple[str, ...]]:
    try:
        note = parse_note(note_text)
        signatures = open_note(note, verifiers)
        checkpoint = parse_checkpoint(note.text)
        cosigned_by = () if witnesses is None else witnesses.check(note)
    except NoteError as exc:
        raise VerificationError(index, f"receipt checkpoint: {exc.message}") from exc
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(
            index, f"receipt checkpoint is for {checkpoint.origin!r}, not {origin!r}"
        )
    return checkpoint, tuple(f"{s.name}+{s.key_id.hex()}" for s in signatures), cosigned_by


def verify_receipt(
    receipt: Receipt | TlogProof,
    vkeys: Sequence[Verifier | str],
    *,
    entry: bytes | None = None,
    origin: str | None = None,
    witnesses: WitnessQuorum | None = None,
) -> VerifiedReceipt:
    """Verify a receipt offline against trusted verifier keys; raise naming what failed.

    Recomputes the leaf hash from the entry's canonical bytes (``entry`` if given, else the
    receipt's own), checks it against the receipt, opens the checkpoint with ``vkeys`` (and
    ``origin`` if given; with ``witnesses``, a quorum of them must have cosigned it, see
    :mod:`ledger.log.cosignature`) and walks the inclusion proof to the *signed* root at the
    *signed* size. Raises :class:`VerificationError` (``seq`` = the receipt's index) when it
    does not verify, :class:`ProofError` when the entry is missing or contradicts the receipt.
    """
    verifiers = _verifiers(vkeys)
    index = receipt.seq if isinstance(receipt, Receipt) else receipt.index
    raw = _receipt_entry(receipt, entry)
    decoded = _decode(raw, index)
    leaf = merkle.leaf_hash(raw)
    if isinstance(receipt, Receipt) and receipt.leaf_hash != leaf:
        raise VerificationError(
            index, f"the entry hashes to {leaf.hex()}, the receipt says {receipt.leaf_hash.hex()}"
        )
    checkpoint, signed_by, cosigned_by = _open(
        receipt.checkpoint, verifiers, origin, index, witnesses
    )
    if isinstance(receipt, Receipt) and receipt.size != checkpoint.size:
        raise VerificationError(
            index,
            f"the proof claims tree size {receipt.size}, the signed checkpoint is for "
            f"size {checkpoint.size}",
        )
    try:
        merkle.verify_inclusion(index, checkpoint.size, leaf, receipt.hashes, checkpoint.root)
    except ProofError as exc:
        raise VerificationError(
            index, f"the inclusion proof does not lead to the signed root: {exc.message}"
        ) from exc
    return VerifiedReceipt(decoded, leaf, checkpoint, signed_by, cosigned_by)
