"""The RFC 9162 Merkle tree: hashing, the compact-range frontier, proofs and their verification.

Read side by side with RFC 9162 §2.1. Subtrees are named by ``(level, index)``: the perfect
subtree of ``2**level`` leaves starting at leaf ``index * 2**level``. Level 0 is a leaf hash.
Proof *generation* works against any store that can return the hashes of perfect subtrees,
so a proof at any tree size costs O(log n) reads; proof *verification* needs nothing but the
proof (§2.1.3.2 and §2.1.4.2, implemented literally and strictly).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""

NodeReader = Callable[[Collection[NodeId]], Mapping[NodeId, bytes]]
"""Returns the stored hash of every requested perfect subtree (one batch, one read)."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || data)``. Lunaria's entry hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1), the RFC's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) by the RFC's recursive definition; a reference for small trees and tests."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _largest_power_of_two_below(n)
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


@dataclass
class Frontier:
    """The compact range [0, size): one hash per set bit of ``size``, largest subtree first.

    Appending a leaf costs O(log n) hashes at worst (O(1) amortised) and reports the perfect
    subtrees it completed, which is all a store needs to keep to serve proofs later.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0:  # int.bit_count() counts the bits of abs(size): check the sign first
            raise ValueError(f"a frontier cannot have negative size {self.size}")
        _check_frontier_hashes(self.hashes)
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a frontier of size {self.size} holds {self.size.bit_count()} hashes, "
                f"not {len(self.hashes)}"
            )

    @staticmethod
    def node_ids(size: int) -> list[NodeId]:
        """The perfect subtrees that make up [0, size), left to right."""
        return decompose(0, size)

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf hash; return the interior nodes (level >= 1) it completed."""
        index = self.size
        current = leaf
        level = 0
        completed: list[tuple[NodeId, bytes]] = []
        while (index >> level) & 1:  # the subtree at this level is a right child: merge
            current = node_hash(self.hashes.pop(), current)
            level += 1
            completed.append(((level, index >> level), current))
        self.hashes.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))


def _check_frontier_hashes(hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError(f"frontier hash {i} is not {HASH_SIZE} bytes")


def decompose(begin: int, end: int) -> list[NodeId]:
    """Split [begin, end) into maximal aligned perfect subtrees, left to right."""
    nodes: list[NodeId] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while begin + (1 << level) > end:
            level -= 1
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its decomposition (largest subtree first), right to left."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


ProofPlan = list[list[NodeId]]
"""Each proof element as the perfect subtrees to fold into it."""


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The subtrees whose hashes form PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf upward."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    plan: ProofPlan = []
    begin, end = 0, size
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if index < begin + k:
            plan.append(decompose(begin + k, end))
            end = begin + k
        else:
            plan.append(decompose(begin, begin + k))
            begin += k
    plan.reverse()
    return plan


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """The subtrees whose hashes form PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"cannot prove consistency from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    plan: ProofPlan = []
    begin, end, whole = 0, new_size, True
    while old_size != end:
        k = _largest_power_of_two_below(end - begin)
        if old_size <= begin + k:
            plan.append(decompose(begin + k, end))
            end = begin + k
        else:
            plan.append(decompose(begin, begin + k))
            begin += k
            whole = False
    if not whole:
        plan.append(decompose(begin, end))
    plan.reverse()
    return plan


def resolve(plan: ProofPlan, read: NodeReader) -> list[bytes]:
    """Turn a plan into proof hashes with a single batched read."""
    wanted = {node for element in plan for node in element}
    found = read(wanted)
    missing = wanted - found.keys()
    if missing:
        raise ProofError(f"store is missing subtrees {sorted(missing)[:4]}")
    return [fold([found[node] for node in element]) for element in plan]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    return resolve(inclusion_plan(index, size), read)


def consistency_proof(old_size: int, new_size: int, read: NodeReader) -> list[bytes]:
    return resolve(consistency_plan(old_size, new_size), read)


def root_at(size: int, read: NodeReader) -> bytes:
    """MTH(D[size]) from at most log2(size) stored subtrees."""
    if size == 0:
        return EMPTY_ROOT
    return resolve([decompose(0, size)], read)[0]


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(f"{what} hash {i} is not {HASH_SIZE} bytes")


def _right_shift_until_set(fn: int, sn: int) -> tuple[int, int]:
    while not fn & 1 and fn != 0:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-5: the root implied by an inclusion proof."""
    if index < 0 or size < 1 or index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    _check_hashes("leaf", [leaf])
    _check_hashes("proof", proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof has {len(proof)} hashes: too many for this size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _right_shift_until_set(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof has {len(proof)} hashes: too few for this size")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows leaf ``index`` of tree ``size`` under ``root``."""
    _check_hashes("root", [root])
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} gives root {computed.hex()}, "
            f"expected {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows tree ``old_size`` is a prefix of ``new_size``."""
    _check_hashes("root", [old_root, new_root])
    _check_hashes("proof", proof)
    if old_size < 0 or old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError(f"the root of the empty tree is {EMPTY_ROOT.hex()}, not {old_root.hex()}")
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"different roots for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _right_shift_until_set(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof gives old root {fr.hex()}, expected {old_root.hex()}")
    if sr != new_root:
        raise ProofError(f"consistency proof gives new root {sr.hex()}, expected {new_root.hex()}")
