"""Anchoring the log's checkpoints on chain, recording them in the log, and checking them.

:func:`anchor_latest` anchors the latest signed checkpoint on a LedgerAnchor contract, then
appends a ``checkpoint_anchored`` entry naming the transaction. It runs after the database
commit that produced the checkpoint, and is safe to repeat or to run after a crash:

- the checkpoint already on chain *and* recorded: nothing is sent, nothing is written;
- on chain but not recorded (a run stopped after sending): the entry is written from the chain's
  own record (the ``Anchored`` event), and nothing is sent;
- not on chain: the transaction is sent, its receipt awaited, then the entry written.

The entry is appended with the idempotency key ``anchor:<chain id>:<contract>:<size>``, so even
two runs racing each other record one anchor once. A chain failure (node down, revert, timeout)
raises an :class:`~contracts.anchor.AnchorError` before anything is written; the next run
retries.

:func:`verify_anchors` reads every on-chain anchor and checks it against the log: same origin,
each root equal to the log's root at that size, successive anchors consistent (RFC 9162). The
anchors are read as of one block in JSON-RPC batches (:func:`read_anchors`), and the log's
subtrees for many anchors in one query, so 1,000 anchors verify in a fraction of a second.

Schedules: :func:`anchor_due` answers "every N hours"; :func:`anchor_after_handover` is the
hook for the handover path (call it after the handover's transaction commits).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from sqlalchemy import Connection, select
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from contracts import DEFAULT_RECEIPT_TIMEOUT
from contracts.anchor import (
    AnchorContract,
    AnchorReceipt,
    OnchainAnchor,
    _translated,
    load_artifact,
    origin_hash,
)
from contracts.errors import AnchorError, ChainUnavailable, TreeSizeNotIncreasing
from ledger import merkle
from ledger.clock import parse_ts
from ledger.db import read_transaction
from ledger.entry import Entry
from ledger.errors import LedgerError, ProofError, VerificationError
from ledger.log import Log, StoredCheckpoint, load_head, read_nodes
from ledger.merkle import NodeId, NodeReader
from ledger.schema import entries, idempotency_keys

__all__ = [
    "ANCHORED_KIND",
    "ANCHOR_ACTOR",
    "AnchorConflict",
    "AnchorOutcome",
    "AnchorRecord",
    "AnchorVerificationFailed",
    "AnchorVerifyReport",
    "AnchoringResult",
    "anchor_after_handover",
    "anchor_due",
    "anchor_latest",
    "latest_anchor_entry",
    "read_anchors",
    "verify_anchors",
]

ANCHORED_KIND = "checkpoint_anchored"
ANCHOR_ACTOR = "anchor"
READ_BATCH = 200  # anchors per JSON-RPC batch; public providers cap batches at 100-1,000
PREFETCH_ANCHORS = 100  # anchors whose Merkle subtrees are read from the log in one query
_ANCHOR_AT_SELECTOR = keccak(text="anchorAt(uint256)")[:4]
_ANCHOR_AT_OUTPUT = ("bytes32", "uint64", "uint64")


# --- errors -----------------------------------------------------------------------------------


class AnchorConflict(AnchorError):
    """The chain and the log disagree about an anchor; anchoring stops until someone looks."""

    code = "anchor_conflict"


class AnchorVerificationFailed(VerificationError):
    """An on-chain anchor does not match the log (``index`` and ``size`` name it)."""

    code = "anchor_verification_failed"

    def __init__(self, index: int | None, size: int | None, reason: str) -> None:
        self.index = index
        self.size = size
        super().__init__(None, reason)


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorRecord:
    """What a ``checkpoint_anchored`` entry says: which checkpoint went where, in which tx."""

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    anchor_index: int
    size: int
    root: bytes

    @property
    def idempotency_key(self) -> str:
        """One key per (chain, contract, size): a retry can never record the anchor twice."""
        return record_key(self.chain_id, self.contract, self.size)

    def data(self) -> dict[str, Any]:
        """The entry's ``data`` (hashes as lowercase hex; the tx hash 0x-prefixed, as on chain)."""
        return {
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "anchor_index": self.anchor_index,
            "size": self.size,
            "root": self.root.hex(),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> AnchorRecord:
        """Parse an entry's ``data``; :class:`LedgerError` if it is not an anchor record."""
        try:
            return cls(
                chain_id=int(data["chain_id"]),
                contract=str(data["contract"]),
                tx_hash=str(data["tx_hash"]),
                block_number=int(data["block_number"]),
                anchor_index=int(data["anchor_index"]),
                size=int(data["size"]),
                root=bytes.fromhex(str(data["root"]).removeprefix("0x")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"malformed {ANCHORED_KIND} data ({exc!r})") from exc

    @classmethod
    def from_receipt(cls, receipt: AnchorReceipt) -> AnchorRecord:
        return cls(
            chain_id=receipt.chain_id,
            contract=receipt.contract,
            tx_hash=receipt.tx_hash,
            block_number=receipt.block_number,
            anchor_index=receipt.index,
            size=receipt.tree_size,
            root=receipt.root,
        )


class AnchorOutcome(StrEnum):
    """What :func:`anchor_latest` did."""

    ANCHORED = "anchored"  # sent a transaction and recorded it
    RECORDED = "recorded"  # found on chain from an earlier run, recorded it; nothing sent
    ALREADY_ANCHORED = "already_anchored"  # on chain and recorded: nothing to do
    NOT_NEWER = "not_newer"  # the chain already holds this size or a larger one


@dataclass(frozen=True)
class AnchoringResult:
    """The outcome of one :func:`anchor_latest` run."""

    outcome: AnchorOutcome
    checkpoint: StoredCheckpoint
    record: AnchorRecord | None = None
    entry_seq: int | None = None
    gas_used: int | None = None
    chain_size: int | None = None

    @property
    def sent(self) -> bool:
        """Whether this run sent a transaction."""
        return self.outcome is AnchorOutcome.ANCHORED

    def summary(self) -> str:
        """One line for the command line."""
        size, root = self.checkpoint.size, self.checkpoint.root.hex()
        if self.outcome is AnchorOutcome.NOT_NEWER:
            return (
                f"nothing to anchor: the chain's latest anchor has size {self.chain_size}, "
                f"the latest checkpoint size {size}"
            )
        assert self.record is not None
        where = f"LedgerAnchor {self.record.contract} (chain {self.record.chain_id})"
        tx = f"tx {self.record.tx_hash}, block {self.record.block_number}"
        if self.outcome is AnchorOutcome.ALREADY_ANCHORED:
            return (
                f"already anchored: checkpoint size {size} root {root} is anchor "
                f"{self.record.anchor_index} on {where}, {tx}, recorded at seq {self.entry_seq}"
            )
        verb = "anchored" if self.sent else "recorded the earlier anchor of"
        gas = f", gas {self.gas_used}" if self.gas_used is not None else ""
        return (
            f"{verb} checkpoint size {size} root {root} as anchor {self.record.anchor_index} "
            f"on {where}: {tx}{gas}; entry seq {self.entry_seq}"
        )


@dataclass(frozen=True)
class AnchorVerifyReport:
    """A successful :func:`verify_anchors`."""

    origin: str
    contract: str
    chain_id: int
    anchors: int
    log_size: int
    latest_anchored_size: int

    def summary(self) -> str:
        if not self.anchors:
            return f"OK: LedgerAnchor {self.contract} (chain {self.chain_id}) holds no anchor yet"
        return (
            f"OK: {self.anchors} anchor(s) on LedgerAnchor {self.contract} "
            f"(chain {self.chain_id}) match the log {self.origin} (size {self.log_size}); "
            f"latest anchored size {self.latest_anchored_size}, successive anchors consistent"
        )


# --- reading the log --------------------------------------------------------------------------


def record_key(chain_id: int, contract: str, size: int) -> str:
    """The idempotency key of the anchor of ``size`` on ``contract``."""
    return f"anchor:{chain_id}:{contract}:{size}"


def _recorded_entry(log: Log, key: str) -> Entry | None:
    """The entry appended under idempotency ``key``, if any (primary-key lookups only)."""
    with read_transaction(log.engine) as conn:
        seq = conn.execute(
            select(idempotency_keys.c.seq).where(idempotency_keys.c.key == key)
        ).scalar()
        return None if seq is None else log.entry(int(seq), conn)


def latest_anchor_entry(log: Log) -> Entry | None:
    """The most recent ``checkpoint_anchored`` entry, or None before the first anchor."""
    with read_transaction(log.engine) as conn:
        seq = conn.execute(
            select(entries.c.seq)
            .where(entries.c.kind == ANCHORED_KIND)
            .order_by(entries.c.seq.desc())
            .limit(1)
        ).scalar()
        return None if seq is None else log.entry(int(seq), conn)


def anchor_due(log: Log, every: timedelta | None, now: datetime) -> bool:
    """The "every N hours" schedule: due when the last anchor entry is ``every`` old, or none.

    ``every=None`` means no periodic schedule: never due (anchoring then happens only at
    handovers, through :func:`anchor_after_handover`, or when run by hand).
    """
    if every is None:
        return False
    last = latest_anchor_entry(log)
    return last is None or now - parse_ts(last.ts) >= every


# --- reading the chain ------------------------------------------------------------------------


def _chain_id(contract: AnchorContract) -> int:
    with _translated(contract.w3, "reading the chain id", contract.address):
        return int(contract.w3.eth.chain_id)


def _record_from_chain(
    contract: AnchorContract, chain_id: int, anchor: OnchainAnchor
) -> AnchorRecord:
    """Rebuild the record of an anchor sent by an earlier run, from its ``Anchored`` event."""
    events = contract.w3.eth.contract(address=contract.address, abi=load_artifact().abi).events
    action = f"looking up the transaction of anchor {anchor.index}"
    with _translated(contract.w3, action, contract.address):
        logs = events.Anchored().get_logs(
            argument_filters={"index": anchor.index}, from_block=0, to_block="latest"
        )
        mine = [event for event in logs if event["address"] == contract.address]
    if len(mine) != 1:
        raise AnchorError(
            f"{action}: LedgerAnchor {contract.address} has {len(mine)} Anchored events for it"
        )
    event = mine[0]
    return AnchorRecord(
        chain_id=chain_id,
        contract=contract.address,
        tx_hash="0x" + bytes(event["transactionHash"]).hex(),
        block_number=int(event["blockNumber"]),
        anchor_index=anchor.index,
        size=anchor.tree_size,
        root=anchor.root,
    )


# --- anchoring --------------------------------------------------------------------------------


def _writable_checkpoint(log: Log) -> StoredCheckpoint:
    if log.signer is None:
        raise LedgerError(
            "anchoring records a checkpoint_anchored entry, so it needs the log's signing key"
        )
    checkpoint = log.latest_checkpoint()
    if checkpoint is None:
        raise LedgerError("the log has no signed checkpoint to anchor yet")
    return checkpoint


def _append(log: Log, record: AnchorRecord) -> Entry:
    return log.append(
        ANCHORED_KIND, record.data(), actor=ANCHOR_ACTOR, idempotency_key=record.idempotency_key
    )


def _check_recorded(entry: Entry, contract: AnchorContract, cp: StoredCheckpoint) -> None:
    """The entry found under an anchor's idempotency key really records that checkpoint."""
    data = entry.data
    recorded = (data.get("contract"), data.get("size"), data.get("root"))
    if entry.kind != ANCHORED_KIND or recorded != (contract.address, cp.size, cp.root.hex()):
        raise AnchorConflict(
            f"seq {entry.seq} is recorded as the anchor of size {cp.size} on LedgerAnchor "
            f"{contract.address}, but it is a {entry.kind} entry for {recorded}, not root "
            f"{cp.root.hex()}"
        )


def _recorded_but_missing(entry: Entry, contract: AnchorContract, size: int) -> AnchorConflict:
    tx = entry.data.get("tx_hash")
    return AnchorConflict(
        f"the log records (seq {entry.seq}, tx {tx}) the anchor of size {size} on LedgerAnchor "
        f"{contract.address}, but the chain holds no such anchor: is this the right chain, "
        "or was the node reset?"
    )


def _on_chain(
    log: Log, contract: AnchorContract, chain_id: int, found: OnchainAnchor, cp: StoredCheckpoint
) -> AnchoringResult:
    """The checkpoint is on chain already: record it if no earlier run did."""
    recorded = _recorded_entry(log, record_key(chain_id, contract.address, cp.size))
    if recorded is not None:
        _check_recorded(recorded, contract, cp)
        record = AnchorRecord.from_data(recorded.data)
        return AnchoringResult(AnchorOutcome.ALREADY_ANCHORED, cp, record, recorded.seq)
    record = _record_from_chain(contract, chain_id, found)
    entry = _append(log, record)
    return AnchoringResult(AnchorOutcome.RECORDED, cp, record, entry.seq)


def _conflicting_root(contract: AnchorContract, found: OnchainAnchor, cp: StoredCheckpoint) -> None:
    if found.root != cp.root:
        raise AnchorConflict(
            f"anchor {found.index} on LedgerAnchor {contract.address} has root "
            f"{found.root.hex()} at size {cp.size}, but the log's checkpoint of that size has "
            f"root {cp.root.hex()}: the log was rewritten after anchoring"
        )


def _not_on_chain(
    log: Log,
    contract: AnchorContract,
    account: LocalAccount,
    chain_id: int,
    cp: StoredCheckpoint,
    timeout: float,
) -> AnchoringResult:
    """The checkpoint is newer than every anchor: send it, then record it."""
    recorded = _recorded_entry(log, record_key(chain_id, contract.address, cp.size))
    if recorded is not None:
        raise _recorded_but_missing(recorded, contract, cp.size)
    problem = _other_origin(log, contract)
    if problem is not None:
        raise AnchorConflict(f"refusing to anchor {log.origin!r} there: {problem}")
    try:
        receipt = contract.anchor(account, cp.root, cp.size, timeout=timeout)
    except TreeSizeNotIncreasing:
        # Another run may have anchored this very checkpoint since we looked: record theirs.
        raced = contract.find(cp.root, cp.size)
        if raced is None:
            raise
        return _on_chain(log, contract, chain_id, raced, cp)
    record = AnchorRecord.from_receipt(receipt)
    entry = _append(log, record)
    return AnchoringResult(AnchorOutcome.ANCHORED, cp, record, entry.seq, receipt.gas_used)


def anchor_latest(
    log: Log,
    contract: AnchorContract,
    account: LocalAccount,
    timeout: float = DEFAULT_RECEIPT_TIMEOUT,
) -> AnchoringResult:
    """Anchor the log's latest signed checkpoint on ``contract`` and record it in the log.

    Idempotent (see the module docstring). Raises :class:`~contracts.anchor.ChainUnavailable`
    when the node is down or the receipt does not arrive within ``timeout`` seconds,
    :class:`~contracts.anchor.NotOwner` / :class:`~contracts.anchor.TreeSizeNotIncreasing` on
    a refusal, and :class:`AnchorConflict` when chain and log disagree; none writes anything.
    """
    cp = _writable_checkpoint(log)
    chain_id = _chain_id(contract)
    chain_size = contract.latest_tree_size()
    if chain_size < cp.size:
        # Sizes strictly increase on chain, so this checkpoint cannot be there yet.
        return _not_on_chain(log, contract, account, chain_id, cp, timeout)
    found = contract.at_tree_size(cp.size)
    if found is None:
        return AnchoringResult(AnchorOutcome.NOT_NEWER, cp, chain_size=chain_size)
    _conflicting_root(contract, found, cp)
    return _on_chain(log, contract, chain_id, found, cp)


def anchor_after_handover(
    log: Log,
    contract: AnchorContract,
    account: LocalAccount,
    timeout: float = DEFAULT_RECEIPT_TIMEOUT,
) -> AnchoringResult:
    """The "at each handover" trigger: call it once the handover (and its checkpoint) committed.

    A handover ends with a checkpoint, so this anchors exactly that checkpoint (or a later one).
    Chain failures propagate: the handover itself stands, and the next run anchors.
    """
    return anchor_latest(log, contract, account, timeout)


# --- verifying --------------------------------------------------------------------------------


def _other_origin(log: Log, contract: AnchorContract) -> str | None:
    """Why ``contract`` belongs to another log than ``log``, or None if it is this log's."""
    expected = origin_hash(log.origin)
    stored = contract.origin_hash()
    if stored == expected:
        return None
    return (
        f"LedgerAnchor {contract.address} anchors another log: its origin hash is "
        f"{stored.hex()}, SHA-256 of {log.origin!r} is {expected.hex()}"
    )


def _check_origin(log: Log, contract: AnchorContract) -> None:
    problem = _other_origin(log, contract)
    if problem is not None:
        raise AnchorVerificationFailed(None, None, problem)


def _anchor_at_call(contract: AnchorContract, index: int, block: int) -> tuple[RPCEndpoint, Any]:
    """A raw ``eth_call`` of ``anchorAt(index)`` at ``block``: no per-call web3 machinery."""
    data = _ANCHOR_AT_SELECTOR + index.to_bytes(32, "big")
    return RPCEndpoint("eth_call"), [
        {"to": contract.address, "data": "0x" + data.hex()},
        hex(block),
    ]


def _decoded_anchor(index: int, response: object) -> OnchainAnchor:
    """One ``anchorAt`` answer from a batch; AnchorError if it is an error or malformed."""
    result = response.get("result") if isinstance(response, dict) else None
    if not isinstance(result, str) or not result.startswith("0x"):
        raise AnchorError(f"reading anchor {index}: unexpected batch answer {response!r:.200}")
    try:
        root, size, timestamp = abi_decode(_ANCHOR_AT_OUTPUT, bytes.fromhex(result[2:]))
    except Exception as exc:  # eth_abi raises several unrelated types on short or bad data
        raise AnchorError(f"reading anchor {index}: undecodable answer {result:.200}") from exc
    return OnchainAnchor(index, bytes(root), int(size), int(timestamp))


def _read_batched(contract: AnchorContract, block: int, indexes: range) -> list[OnchainAnchor]:
    """The anchors at ``indexes`` in one JSON-RPC batch (answers come back sorted by id)."""
    provider = contract.w3.provider
    if not isinstance(provider, JSONBaseProvider):
        raise AnchorError(f"{provider!r} cannot send JSON-RPC batches")
    calls = [_anchor_at_call(contract, index, block) for index in indexes]
    action = f"reading anchors {indexes.start}-{indexes.stop - 1}"
    with _translated(contract.w3, action, contract.address):
        responses = provider.make_batch_request(calls)
    if not isinstance(responses, list) or len(responses) != len(indexes):
        raise AnchorError(f"{action}: the node did not answer the batch ({responses!r:.200})")
    return [_decoded_anchor(i, response) for i, response in zip(indexes, responses, strict=True)]


def read_anchors(contract: AnchorContract, batch_size: int = READ_BATCH) -> list[OnchainAnchor]:
    """Every anchor, oldest first, as of one block: ``batch_size`` reads per JSON-RPC batch.

    One round trip per batch instead of one per anchor; a node that refuses batches is read
    one anchor at a time.
    """
    with _translated(contract.w3, "reading the block number", contract.address):
        block = int(contract.w3.eth.block_number)
    count = contract.count(block)
    anchors: list[OnchainAnchor] = []
    try:
        for start in range(0, count, batch_size):
            indexes = range(start, min(count, start + batch_size))
            anchors.extend(_read_batched(contract, block, indexes))
    except ChainUnavailable:
        raise
    except AnchorError:
        return [contract.anchor_at(index, block) for index in range(count)]
    return anchors


def _check_anchor(anchor: OnchainAnchor, log_size: int, read: NodeReader) -> None:
    i, size = anchor.index, anchor.tree_size
    if size > log_size:
        raise AnchorVerificationFailed(
            i, size, f"anchor {i} claims size {size} beyond the log's size {log_size}"
        )
    try:
        root = merkle.root_at(size, read)
    except ProofError as exc:
        raise AnchorVerificationFailed(
            i, size, f"anchor {i} at size {size}: the log cannot compute its root: {exc.message}"
        ) from exc
    if root != anchor.root:
        raise AnchorVerificationFailed(
            i,
            size,
            f"anchor {i} at size {size}: on-chain root {anchor.root.hex()}, log root "
            f"{root.hex()} — the log was rewritten after anchoring",
        )


def _check_consistent(previous: OnchainAnchor, anchor: OnchainAnchor, read: NodeReader) -> None:
    """The log proves the earlier on-chain tree a prefix of the later one (RFC 9162 §2.1.4)."""
    old, new = previous.tree_size, anchor.tree_size
    try:
        proof = merkle.consistency_proof(old, new, read)
        merkle.verify_consistency(old, new, proof, previous.root, anchor.root)
    except ProofError as exc:
        raise AnchorVerificationFailed(
            anchor.index,
            new,
            f"anchor {anchor.index} at size {new} is not consistent with anchor "
            f"{previous.index} at size {old}: {exc.message}",
        ) from exc


def _nodes_needed(previous: OnchainAnchor | None, anchor: OnchainAnchor) -> set[NodeId]:
    """The stored subtrees that checking ``anchor`` (its root, its consistency) will read."""
    wanted = set(merkle.decompose(0, anchor.tree_size))
    if previous is not None and 0 < previous.tree_size < anchor.tree_size:
        plan = merkle.consistency_plan(previous.tree_size, anchor.tree_size)
        wanted.update(node for element in plan for node in element)
    return wanted


def _prefetched(conn: Connection, wanted: set[NodeId]) -> NodeReader:
    """A node reader over one batched read of ``wanted``: one query for many anchors."""
    found = read_nodes(conn, wanted)

    def read(ids: Collection[NodeId]) -> dict[NodeId, bytes]:
        return {node: found[node] for node in ids if node in found}

    return read


def _check_against_log(log: Log, anchors: list[OnchainAnchor]) -> int:
    """Check every anchor against one snapshot of the log; returns the log's size.

    The subtrees a chunk of anchors needs are read in one query, then the roots and proofs are
    computed and verified with :mod:`ledger.merkle` exactly as for single reads.
    """
    with read_transaction(log.engine) as conn:
        log_size = load_head(conn).size
        previous: OnchainAnchor | None = None
        for start in range(0, len(anchors), PREFETCH_ANCHORS):
            chunk = anchors[start : start + PREFETCH_ANCHORS]
            wanted: set[NodeId] = set()
            for before, anchor in zip([previous, *chunk], chunk, strict=False):
                wanted |= _nodes_needed(before, anchor)
            read = _prefetched(conn, wanted)
            for anchor in chunk:
                _check_anchor(anchor, log_size, read)
                if previous is not None:
                    _check_consistent(previous, anchor, read)
                previous = anchor
    return log_size


def verify_anchors(log: Log, contract: AnchorContract) -> AnchorVerifyReport:
    """Check every on-chain anchor against the log; :class:`AnchorVerificationFailed` names
    the first mismatch (its index, size and what is wrong)."""
    chain_id = _chain_id(contract)
    _check_origin(log, contract)
    anchors = read_anchors(contract)
    log_size = _check_against_log(log, anchors)
    return AnchorVerifyReport(
        origin=log.origin,
        contract=contract.address,
        chain_id=chain_id,
        anchors=len(anchors),
        log_size=log_size,
        latest_anchored_size=anchors[-1].tree_size if anchors else 0,
    )
