"""Checking the anchors on chain against the log.

:func:`verify_anchors` reads every on-chain anchor and checks it against the log: same origin,
each root equal to the log's root at that size, successive anchors consistent (RFC 9162). The
anchors are read as of one block in JSON-RPC batches (:func:`read_anchors`), and the log's
subtrees for many anchors in one query, so 1,000 anchors verify in a fraction of a second.

Anchoring itself (sending a checkpoint, recording it in the log) is :mod:`contracts.anchoring`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak
from sqlalchemy import Connection
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from contracts.anchor import AnchorContract, OnchainAnchor, _translated, origin_hash
from contracts.errors import AnchorError, ChainUnavailable
from ledger.errors import ProofError, VerificationError
from ledger.log import Log, NodeId, NodeReader, load_head, merkle, read_nodes, read_transaction

__all__ = [
    "AnchorVerificationFailed",
    "AnchorVerifyReport",
    "other_origin",
    "read_anchors",
    "read_chain_id",
    "verify_anchors",
]

READ_BATCH = 200  # anchors per JSON-RPC batch; public providers cap batches at 100-1,000
PREFETCH_ANCHORS = 100  # anchors whose Merkle subtrees are read from the log in one query
_ANCHOR_AT_SELECTOR = keccak(text="anchorAt(uint256)")[:4]
_ANCHOR_AT_OUTPUT = ("bytes32", "uint64", "uint64")


# --- errors and values ------------------------------------------------------------------------


class AnchorVerificationFailed(VerificationError):
    """An on-chain anchor does not match the log (``index`` and ``size`` name it)."""

    code = "anchor_verification_failed"

    def __init__(self, index: int | None, size: int | None, reason: str) -> None:
        self.index = index
        self.size = size
        super().__init__(None, reason)


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


# --- reading the chain ------------------------------------------------------------------------


def read_chain_id(contract: AnchorContract) -> int:
    """The chain id of the node ``contract`` is read through."""
    with _translated(contract.w3, "reading the chain id", contract.address):
        return int(contract.w3.eth.chain_id)


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


# --- the origin -------------------------------------------------------------------------------


def other_origin(log: Log, contract: AnchorContract) -> str | None:
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
    problem = other_origin(log, contract)
    if problem is not None:
        raise AnchorVerificationFailed(None, None, problem)


# --- checking against the log ----------------------------------------------------------------


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
    computed and verified with :mod:`ledger.log.merkle` exactly as for single reads.
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
    chain_id = read_chain_id(contract)
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
