"""Regenerate the Merkle test vectors here: ``python tests/testdata/merkle/generate.py``.

The vectors are computed by a reference written straight from the recursive definitions of
RFC 9162 §2.1 (MTH, PATH, SUBPROOF) with nothing but ``hashlib``: it shares no code with
``ledger.log.merkle`` (whose verifiers use the RFC's iterative bit algorithms), so the tests compare
two independent readings of the RFC. Before anything is written the reference is checked
against:

* the roots and proofs published in transparency-dev/merkle ``proof/verify_test.go`` (the same
  values as certificate-transparency-go), hard-coded below;
* ``pymerkle`` 7 (an independent RFC 6962 implementation) for every root and inclusion proof.

Files written:

``rfc6962.json``
    The eight RFC 6962 leaves, their leaf hashes, the root of every size 0..8, and every
    inclusion and consistency proof over them (``published`` marks the upstream vectors).
``inclusion_probes.json`` / ``consistency_probes.json``
    For a handful of proofs, the valid proof ("happy path") and named mutations of it, each
    with the outcome a strict RFC 9162 verifier must give (``want``). The outcome of every
    probe is computed by the reference verifier below, never assumed: a few mutations of a
    size are genuinely accepted by RFC 9162 (see ``note`` on those probes).

The tests only read the JSON; they never run this script.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

RFC6962_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]

# MTH of the first n RFC 6962 leaves, n = 0..8. Agreed by the reference below, pymerkle 7 and
# (sizes 1..8) transparency-dev/merkle proof/verify_test.go; size 0 is SHA-256 of nothing.
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# transparency-dev/merkle proof/verify_test.go (its leaf numbers are 1-based; these are not).
PUBLISHED_INCLUSION: dict[tuple[int, int], list[str]] = {
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
PUBLISHED_CONSISTENCY: dict[tuple[int, int], list[str]] = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (6, 7): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}

EMPTY = hashlib.sha256(b"").digest()
# Garbage of the right length, as in transparency-dev's probes.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- The reference: RFC 9162 §2.1, recursively ---------------------------------------------


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """k: the largest power of two smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    if not d:
        return EMPTY
    if len(d) == 1:
        return d[0]
    k = split(len(d))
    return node(mth(d[:k]), mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1)."""
    if len(d) == 1:
        return []
    k = split(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (§2.1.4.1)."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = split(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def consistency(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]); empty when m is 0 or n (nothing to prove)."""
    return subproof(m, d, True) if 0 < m < len(d) else []


def ref_verify_inclusion(
    index: int, size: int, leaf_hash: bytes, hashes: Sequence[bytes], root: bytes
) -> bool:
    """Accept iff folding ``hashes`` along the RFC tree shape of ``size`` gives ``root``."""
    if any(len(h) != 32 for h in [leaf_hash, root, *hashes]) or not 0 <= index < size:
        return False
    steps = []  # root-down: is the leaf in the left subtree?
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        steps.append(index < lo + k)
        lo, hi = (lo, lo + k) if index < lo + k else (lo + k, hi)
    if len(steps) != len(hashes):
        return False
    r = leaf_hash
    for in_left, h in zip(reversed(steps), hashes, strict=True):
        r = node(r, h) if in_left else node(h, r)
    return r == root


def consistency_ranges(m: int, lo: int, hi: int, whole: bool) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose MTHs SUBPROOF(m, D[lo:hi], whole) lists, in order."""
    if m == hi:
        return [] if whole else [(lo, hi)]
    k = split(hi - lo)
    if m <= lo + k:
        return [*consistency_ranges(m, lo, lo + k, whole), (lo + k, hi)]
    return [*consistency_ranges(m, lo + k, hi, False), (lo, lo + k)]


def ref_verify_consistency(
    old: int, new: int, hashes: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """Accept iff the proof, read as the MTHs of the SUBPROOF ranges, rebuilds both roots."""
    if any(len(h) != 32 for h in [old_root, new_root, *hashes]) or not 0 <= old <= new:
        return False
    if old == 0:  # MTH of the empty tree is defined: SHA-256 of nothing.
        return not hashes and old_root == EMPTY and (new > 0 or new_root == EMPTY)
    if old == new:
        return not hashes and old_root == new_root
    ranges = consistency_ranges(old, 0, new, True)
    if len(ranges) != len(hashes):
        return False
    known = dict(zip(ranges, hashes, strict=True))
    if old & (old - 1) == 0:  # the old tree is itself a subtree of the new one
        known[(0, old)] = old_root

    def rebuild(lo: int, hi: int) -> bytes:
        if (lo, hi) in known:
            return known[(lo, hi)]
        assert hi - lo > 1, "SUBPROOF ranges always cover both trees"
        k = split(hi - lo)
        return node(rebuild(lo, lo + k), rebuild(lo + k, hi))

    return rebuild(0, old) == old_root and rebuild(0, new) == new_root


# --- Cross-checks ---------------------------------------------------------------------------


def check_reference() -> list[bytes]:
    from pymerkle import InmemoryTree  # the independent oracle; 1-based indexes

    hashes = [leaf(bytes.fromhex(x)) for x in RFC6962_LEAVES]
    tree = InmemoryTree(algorithm="sha256")
    for x in RFC6962_LEAVES:
        tree.append_entry(bytes.fromhex(x))
    for n in range(9):
        assert mth(hashes[:n]).hex() == ROOTS[n], n
        assert tree.get_root(n).hex() == ROOTS[n], n
    for n in range(1, 9):
        for i in range(n):
            ours = path(i, hashes[:n])
            theirs = tree.prove_inclusion(i + 1, n).path  # starts with the leaf itself
            assert theirs[0] == hashes[i] and theirs[1:] == ours, (i, n)
            assert ref_verify_inclusion(i, n, hashes[i], ours, mth(hashes[:n]))
    for (i, n), published in PUBLISHED_INCLUSION.items():
        assert [h.hex() for h in path(i, hashes[:n])] == published, (i, n)
    for (m, n), published in PUBLISHED_CONSISTENCY.items():
        assert [h.hex() for h in consistency(m, hashes[:n])] == published, (m, n)
    return hashes


# --- Vectors --------------------------------------------------------------------------------


def hx(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def rfc6962_vectors(hashes: list[bytes]) -> dict[str, Any]:
    inclusion = [
        {
            "index": i,
            "size": n,
            "leaf_hash": hashes[i].hex(),
            "hashes": hx(path(i, hashes[:n])),
            "published": (i, n) in PUBLISHED_INCLUSION,
        }
        for n in range(1, 9)
        for i in range(n)
    ]
    consistency_vectors = [
        {
            "from": m,
            "to": n,
            "hashes": hx(consistency(m, hashes[:n])),
            "published": (m, n) in PUBLISHED_CONSISTENCY,
        }
        for n in range(9)
        for m in range(n + 1)
    ]
    return {
        "description": (
            "RFC 6962 / RFC 9162 test tree: leaves (hex data), their leaf hashes "
            "SHA-256(0x00 || data), MTH for every size 0..8, and every inclusion proof "
            "(index < size <= 8) and consistency proof (from <= to <= 8). Entries marked "
            "published are the vectors of transparency-dev/merkle proof/verify_test.go."
        ),
        "leaves": RFC6962_LEAVES,
        "leaf_hashes": hx(hashes),
        "roots": ROOTS,
        "inclusion": inclusion,
        "consistency": consistency_vectors,
    }


def flip(h: bytes, bit: int) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


Mutation = tuple[str, dict[str, Any]]


def inclusion_mutations(
    index: int, size: int, leaf_hash: bytes, proof: list[bytes], root: bytes
) -> list[Mutation]:
    out: list[Mutation] = [
        ("index - 1", {"index": index - 1}),
        ("index + 1", {"index": index + 1}),
        ("index ^ 2", {"index": index ^ 2}),
        ("index = size", {"index": size}),
        ("size * 2", {"size": size * 2}),
        ("size / 2", {"size": size // 2}),
        ("size - 1", {"size": size - 1}),
        ("size + 1", {"size": size + 1}),
        ("size 0", {"size": 0}),
        ("wrong leaf", {"leaf_hash": leaf(b"WrongLeaf")}),
        ("leaf data instead of leaf hash", {"leaf_hash": hashlib.sha256(b"WrongLeaf").digest()}),
        ("modified leaf bit 0", {"leaf_hash": flip(leaf_hash, 0)}),
        ("empty root", {"root": EMPTY}),
        ("random root", {"root": SOME_HASH}),
        ("modified root bit 7", {"root": flip(root, 7)}),
        ("root swapped with leaf", {"root": leaf_hash, "leaf_hash": root}),
        ("trailing garbage", {"hashes": [*proof, SOME_HASH]}),
        ("trailing root", {"hashes": [*proof, root]}),
        ("trailing empty hash", {"hashes": [*proof, b""]}),
        ("preceding garbage", {"hashes": [SOME_HASH, *proof]}),
        ("preceding root", {"hashes": [root, *proof]}),
        ("preceding leaf", {"hashes": [leaf_hash, *proof]}),
        ("short root (31 bytes)", {"root": root[:31]}),
        ("long leaf hash (33 bytes)", {"leaf_hash": leaf_hash + b"\x00"}),
    ]
    for i in range(len(proof)):
        out.append(
            (
                f"modified proof[{i}] bit 3",
                {"hashes": [*proof[:i], flip(proof[i], 3), *proof[i + 1 :]]},
            )
        )
        out.append((f"dropped proof[{i}]", {"hashes": proof[:i] + proof[i + 1 :]}))
        out.append(
            (
                f"proof[{i}] truncated to 31 bytes",
                {"hashes": [*proof[:i], proof[i][:31], *proof[i + 1 :]]},
            )
        )
    if proof:
        out.append(("empty proof", {"hashes": []}))
        out.append(
            ("reversed proof", {"hashes": proof[::-1]})
            if len(proof) > 1
            else ("proof[0] doubled", {"hashes": proof * 2})
        )
    if len(proof) > 1:
        out.append(("inserted component", {"hashes": [proof[0], SOME_HASH, *proof[1:]]}))
    return out


def consistency_mutations(
    old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes
) -> list[Mutation]:
    wrong = hashlib.sha256(b"WrongRoot").digest()
    out: list[Mutation] = [
        ("from - 1", {"from": old - 1}),
        ("from + 1", {"from": old + 1}),
        ("from ^ 2", {"from": old ^ 2}),
        ("to * 2", {"to": new * 2}),
        ("to / 2", {"to": new // 2}),
        ("to - 1", {"to": new - 1}),
        ("to + 1", {"to": new + 1}),
        ("from = to", {"from": new}),
        ("from 0", {"from": 0}),
        ("wrong old root", {"old_root": wrong}),
        ("wrong new root", {"new_root": wrong}),
        ("swapped roots", {"old_root": new_root, "new_root": old_root}),
        ("modified old root bit 0", {"old_root": flip(old_root, 0)}),
        ("modified new root bit 7", {"new_root": flip(new_root, 7)}),
        ("short old root (9 bytes)", {"old_root": b"WrongRoot"}),
        ("long new root (33 bytes)", {"new_root": new_root + b"\x00"}),
        ("empty proof", {"hashes": []}),
        ("trailing garbage", {"hashes": [*proof, SOME_HASH]}),
        ("trailing empty hash", {"hashes": [*proof, b""]}),
        ("trailing old root", {"hashes": [*proof, old_root]}),
        ("trailing new root", {"hashes": [*proof, new_root]}),
        ("preceding garbage", {"hashes": [SOME_HASH, *proof]}),
        ("preceding old root", {"hashes": [old_root, *proof]}),
        ("preceding new root", {"hashes": [new_root, *proof]}),
        ("preceding proof[0]", {"hashes": [proof[0], *proof]}),
        ("truncated proof", {"hashes": proof[:-1]}),
    ]
    for i in range(len(proof)):
        out.append(
            (
                f"modified proof[{i}] bit 4",
                {"hashes": [*proof[:i], flip(proof[i], 4), *proof[i + 1 :]]},
            )
        )
        out.append((f"dropped proof[{i}]", {"hashes": proof[:i] + proof[i + 1 :]}))
        out.append(
            (
                f"proof[{i}] extended to 33 bytes",
                {"hashes": [*proof[:i], proof[i] + b"\x00", *proof[i + 1 :]]},
            )
        )
    if len(proof) > 1:
        out.append(("reversed proof", {"hashes": proof[::-1]}))
        out.append(("inserted component", {"hashes": [proof[0], SOME_HASH, *proof[1:]]}))
    return out


AMBIGUOUS_NOTE = (
    "RFC 9162 proofs do not commit to the tree size: these hashes also prove the claim at "
    "this size under this root (a subtree hash stands in for a leaf or a smaller subtree). "
    "Only the signed checkpoint binds a size to a root, so verifiers take both from it."
)


def probe_files(hashes: list[bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
    big = [leaf(i.to_bytes(4, "big")) for i in range(1000)]
    trees = {"rfc6962": hashes, "u32be-1000": big}
    inclusion_cases = [
        ("rfc6962", 0, 1),
        ("rfc6962", 0, 8),
        ("rfc6962", 5, 8),
        ("rfc6962", 2, 3),
        ("rfc6962", 1, 5),
        ("rfc6962", 4, 5),
        ("rfc6962", 0, 4),
        ("rfc6962", 6, 7),
        ("u32be-1000", 0, 1000),
        ("u32be-1000", 999, 1000),
        ("u32be-1000", 123, 257),
    ]
    consistency_cases = [
        ("rfc6962", 1, 8),
        ("rfc6962", 6, 8),
        ("rfc6962", 2, 5),
        ("rfc6962", 6, 7),
        ("rfc6962", 4, 8),
        ("rfc6962", 3, 7),
        ("rfc6962", 1, 2),
        ("rfc6962", 1, 4),
        ("rfc6962", 7, 8),
        ("u32be-1000", 1, 1000),
        ("u32be-1000", 500, 1000),
        ("u32be-1000", 256, 257),
    ]
    inclusion_probes: list[dict[str, Any]] = []
    for tree, index, size in inclusion_cases:
        d = trees[tree][:size]
        base = {
            "index": index,
            "size": size,
            "leaf_hash": d[index],
            "hashes": path(index, d),
            "root": mth(d),
        }
        variants: list[Mutation] = [("happy path", {})]
        variants += inclusion_mutations(index, size, d[index], path(index, d), mth(d))
        for desc, change in variants:
            p = {**base, **change}
            if desc != "happy path" and p == base:
                continue  # not a mutation here (e.g. swapping equal leaf and root at size 1)
            verifies = ref_verify_inclusion(
                p["index"], p["size"], p["leaf_hash"], p["hashes"], p["root"]
            )
            inclusion_probes.append(
                probe(f"{tree}/{index}-{size}/{desc}", desc, p, verifies, ["leaf_hash", "root"])
            )
    consistency_probes: list[dict[str, Any]] = []
    for tree, old, new in consistency_cases:
        d = trees[tree]
        base = {
            "from": old,
            "to": new,
            "hashes": consistency(old, d[:new]),
            "old_root": mth(d[:old]),
            "new_root": mth(d[:new]),
        }
        variants = [("happy path", {})]
        variants += consistency_mutations(
            old, new, base["hashes"], base["old_root"], base["new_root"]
        )
        for desc, change in variants:
            p = {**base, **change}
            if desc != "happy path" and p == base:
                continue  # not a mutation here (e.g. swapping equal leaf and root at size 1)
            verifies = ref_verify_consistency(
                p["from"], p["to"], p["hashes"], p["old_root"], p["new_root"]
            )
            consistency_probes.append(
                probe(f"{tree}/{old}-{new}/{desc}", desc, p, verifies, ["old_root", "new_root"])
            )
    # The trivial sizes: nothing to prove, but the roots and the emptiness are checked.
    for n in (0, 1, 8):
        d = hashes[:n]
        trivial: list[tuple[str, int, int, list[bytes], bytes, bytes]] = [
            ("happy path (equal sizes)", n, n, [], mth(d), mth(d)),
            ("equal sizes, non-empty proof", n, n, [mth(d)], mth(d), mth(d)),
            ("equal sizes, different roots", n, n, [], mth(d), SOME_HASH),
            ("old size 0, old root not the empty root", 0, n, [], SOME_HASH, mth(d)),
            ("from > to", n + 1, n, [], mth(d), mth(d)),
            ("negative from", -1, n, [], EMPTY, mth(d)),
        ]
        if n:
            trivial += [
                ("happy path (old size 0)", 0, n, [], EMPTY, mth(d)),
                ("old size 0, non-empty proof", 0, n, [mth(d)], EMPTY, mth(d)),
            ]
        for desc, old, new, hs, r1, r2 in trivial:
            p = {"from": old, "to": new, "hashes": hs, "old_root": r1, "new_root": r2}
            verifies = ref_verify_consistency(old, new, hs, r1, r2)
            consistency_probes.append(
                probe(f"rfc6962/trivial-{n}/{desc}", desc, p, verifies, ["old_root", "new_root"])
            )
    header = (
        "Probes in the style of transparency-dev/merkle testdata: each is a complete "
        "verification call (hashes in hex) and the outcome a strict RFC 9162 verifier must "
        "give. Generated by generate.py from a recursive reference; trees: 'rfc6962' is the "
        "8-leaf RFC 6962 tree, 'u32be-1000' has leaf i = SHA-256(0x00 || uint32_be(i))."
    )
    return (
        {"description": header, "probes": inclusion_probes},
        {"description": header, "probes": consistency_probes},
    )


def probe(
    name: str, desc: str, p: dict[str, Any], verifies: bool, hash_fields: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "desc": desc}
    for key, value in p.items():
        if key in hash_fields:
            out[key] = value.hex()
        elif key == "hashes":
            out[key] = hx(value)
        else:
            out[key] = value
    out["want"] = "verifies" if verifies else "fails"
    if verifies and not desc.startswith("happy path"):
        out["note"] = AMBIGUOUS_NOTE
    return out


def write(name: str, data: dict[str, Any]) -> None:
    """Pretty JSON, except that each list of hashes or probe sits on one line (short diffs)."""
    lines = ["{"]
    for i, (key, value) in enumerate(data.items()):
        comma = "," if i < len(data) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = [f"  {json.dumps(item)}" for item in value]
            body = ",\n".join(items)
            lines.append(f"{json.dumps(key)}: [\n{body}\n]{comma}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}{comma}")
    text = "\n".join(lines) + "\n}\n"
    assert json.loads(text) == data
    (HERE / name).write_text(text, encoding="utf-8")


def main() -> None:
    hashes = check_reference()
    write("rfc6962.json", rfc6962_vectors(hashes))
    inclusion, consistency_ = probe_files(hashes)
    write("inclusion_probes.json", inclusion)
    write("consistency_probes.json", consistency_)
    for name, data in (("inclusion", inclusion), ("consistency", consistency_)):
        probes = data["probes"]
        accepted = [p["name"] for p in probes if p["want"] == "verifies"]
        print(f"{name}: {len(probes)} probes, {len(accepted)} verify")
        for p in accepted:
            if "happy path" not in p:
                print("  accepted mutation:", p)


if __name__ == "__main__":
    main()
