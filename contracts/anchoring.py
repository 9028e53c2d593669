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

Schedules: :func:`anchor_due` answers "every N hours"; :func:`anchor_after_handover` is the
hook for the handover path (call it after the handover's transaction commits).

Checking the anchors on chain against the log is :mod:`contracts.verification`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from contracts import DEFAULT_RECEIPT_TIMEOUT
from contracts.anchor import (
    AnchorContract,
    AnchorReceipt,
    OnchainAnchor,
    _translated,
    load_artifact,
)
from contracts.errors import AnchorError, TreeSizeNotIncreasing
from contracts.verification import other_origin, read_chain_id
from ledger.errors import LedgerError
from ledger.log import (
    Entry,
    Log,
    StoredCheckpoint,
    entries,
    idempotency_keys,
    parse_ts,
    read_transaction,
)

__all__ = [
    "ANCHORED_KIND",
    "ANCHOR_ACTOR",
    "AnchorConflict",
    "AnchorOutcome",
    "AnchorRecord",
    "AnchoringResult",
    "anchor_after_handover",
    "anchor_due",
    "anchor_latest",
    "latest_anchor_entry",
]

ANCHORED_KIND = "checkpoint_anchored"
ANCHOR_ACTOR = "anchor"


# --- errors -----------------------------------------------------------------------------------


class AnchorConflict(AnchorError):
    """The chain and the log disagree about an anchor; anchoring stops until someone looks."""

    code = "anchor_conflict"


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
    problem = other_origin(log, contract)
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
    chain_id = read_chain_id(contract)
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
