"""ChainChecker's fast path must decide exactly as the strict path (decode_entry) does.

Every entry goes through both a normal checker and one that only uses the strict path; the
two must return the same hash and nodes, or raise the same error (seq and message).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import VerificationError
from ledger.log.merkle import Frontier, leaf_hash
from ledger.log.schema import node_key
from ledger.log.verify import ChainChecker, StoredNodes

ORIGIN = "test.lunaria.example/log"


class StrictChecker(ChainChecker):
    def add(self, raw: bytes) -> Any:
        return self._add_strict(raw)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def envelope(seq: int, prev: str, data: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "v": 1,
        "seq": seq,
        "ts": "2026-11-23T10:00:00.000000Z",
        "kind": "donation_recorded",
        "prev": prev,
        "actor": "treasurer:1",
        "data": data,
    }
    entry.update(overrides)
    return entry


def chain(datas: list[Any], overrides: list[dict[str, Any]] | None = None) -> list[bytes]:
    """Entries that chain correctly (prev = hash of the previous), starting with log_created."""
    raws = [
        canonical(
            envelope(
                0,
                "0" * 64,
                {"origin": ORIGIN},
                {"kind": "log_created", "ts": "2026-01-01T00:00:00.000000Z"},
            )
        )
    ]
    for i, data in enumerate(datas, start=1):
        extra = overrides[i - 1] if overrides else {}
        raws.append(canonical(envelope(i, leaf_hash(raws[-1]).hex(), data, extra)))
    return raws


def outcome(checker: ChainChecker, raw: bytes) -> tuple[str, Any]:
    try:
        entry_hash, completed = checker.add(raw)
    except VerificationError as exc:
        return "error", (exc.seq, exc.message)
    return "ok", (entry_hash, completed, checker.last_ts, checker.last_hash, checker.frontier)


def stored_outcome(raws: list[bytes]) -> tuple[str, Any]:
    """add_stored over ``raws`` stored faithfully: right seqs, hashes and interior nodes."""
    rows = [(seq, leaf_hash(raw), raw) for seq, raw in enumerate(raws)]
    frontier, nodes = Frontier(), []
    for raw in raws:
        completed = frontier.append(leaf_hash(raw))
        nodes += [(node_key(level, index), digest) for (level, index), digest in completed]
    checker = ChainChecker(ORIGIN)
    try:
        assert not checker.add_stored(iter(rows), StoredNodes(iter(nodes)), -1)
    except VerificationError as exc:
        return "error", (exc.seq, exc.message)
    return "ok", (checker.last_ts, checker.last_hash, checker.frontier)


def assert_same(raws: list[bytes]) -> None:
    """add (fast path) and add_stored (its inlined copy) decide as the strict path does."""
    fast, strict = ChainChecker(ORIGIN), StrictChecker(ORIGIN)
    want: tuple[str, Any] = ("ok", None)
    for raw in raws:
        got, want = outcome(fast, raw), outcome(strict, raw)
        assert got == want, raw
        if got[0] == "error":
            break
    if want[0] == "ok":
        want = ("ok", (strict.last_ts, strict.last_hash, strict.frontier))
    assert stored_outcome(raws) == want


DONATION = {
    "amount": "1500",
    "channel": "bank",
    "currency": "EUR",
    "donor": "ab" * 32,
    "pool": "garden",
    "receipt": "357b97bf-c47a-4507-a75d-856eb9ba9a26",
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([0, -0, 2**53 - 1, 2**53, -(2**53) + 1, 10**15, 10**15 - 1, 1.5, 1e5])
    | st.text(max_size=8)
    | st.sampled_from(["", '"', "\\", "\n", "\x7f", "é", "\ud800", "a/b", "ä", "\u2028"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.sampled_from(["a", "b", "é"]), inner, max_size=3)
    ),
    max_leaves=8,
)
flat_datas = st.dictionaries(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=5),
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**16), max_value=10**16)
    | st.text(st.characters(min_codepoint=0x1F, max_codepoint=0x80), max_size=6),
    max_size=6,
)
datas = flat_datas | st.dictionaries(
    st.sampled_from(["amount", "pool", "a", "b", "Z", "é", "", " ", "a b", "x\\y"])
    | st.text(max_size=3),
    json_values,
    max_size=6,
)
timestamps = st.sampled_from(
    [
        "2026-11-23T10:00:00.000000Z",
        "2026-11-23T23:59:59.999999Z",
        "2026-11-23T24:00:00.000000Z",
        "2026-11-23T10:60:00.000000Z",
        "2026-11-23T10:00:60.000000Z",
        "2026-02-29T10:00:00.000000Z",
        "2024-02-29T10:00:00.000000Z",
        "2026-11- 3T10:00:00.000000Z",
        "2026-13-01T10:00:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "2025-11-23T10:00:00.000000Z",
        "2026-11-23T10:00:00.000000+00:00",
        "2026-11-23T10:00:00Z",
        "２026-11-23T10:00:00.000000Z",
    ]
)
overrides = st.fixed_dictionaries(
    {},
    optional={
        "ts": timestamps,
        "kind": st.sampled_from(["vote_cast", "nope", "Donation", "x" * 41]),
        "actor": st.sampled_from(["admin:1", "", "a b", "é", "x" * 101, "x" * 100]),
        "v": st.sampled_from([1, 2, True, "1"]),
        "seq": st.integers(min_value=-1, max_value=12),
        "prev": st.sampled_from(["0" * 64, "A" * 64, "a" * 63]),
        "extra": st.just(1),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(datas, overrides), min_size=1, max_size=10))
def test_generated_entries_decide_alike(items: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    try:
        raws = chain([data for data, _ in items], [extra for _, extra in items])
    except (UnicodeEncodeError, ValueError):  # lone surrogates cannot even be written
        return
    assert_same(raws)


MUTATIONS = [b'"', b"\\", b"{", b"}", b",", b":", b"0", b"9", b"a", b"F", b" ", b"\xc3", b"\x01"]


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(MUTATIONS),
    st.sampled_from(["replace", "insert", "delete"]),
)
def test_mutated_bytes_decide_alike(which: int, where: int, byte: bytes, how: str) -> None:
    raws = chain([DONATION, {**DONATION, "amount": "7"}, {}, {"n": 5}, {"n": -3}, {"b": True}])
    raw = raws[which]
    i = where % len(raw)
    if how == "replace":
        raws[which] = raw[:i] + byte + raw[i + 1 :]
    elif how == "insert":
        raws[which] = raw[:i] + byte + raw[i:]
    else:
        raws[which] = raw[:i] + raw[i + 1 :]
    assert_same(raws)


def test_fast_path_is_taken_and_agrees_on_a_long_chain() -> None:
    items = [{**DONATION, "amount": str(i + 1)} for i in range(300)]
    kinds = [{"kind": "vote_cast"} if i % 7 == 0 else {} for i in range(300)]
    raws = chain(items, kinds)
    assert_same(raws)
    checker = ChainChecker(ORIGIN)
    for raw in raws:
        checker.add(raw)
    assert len(checker._heads) == 2  # both shapes were learnt, so the fast path ran


def test_same_shape_different_order_or_duplicate_keys() -> None:
    raws = chain([{"a": "1", "b": "2"}, {"a": "1", "b": "2"}])
    swapped = raws[2].replace(b'"a":"1","b":"2"', b'"b":"2","a":"1"')
    duplicated = raws[2].replace(b'"a":"1","b":"2"', b'"a":"1","a":"2"')
    for changed in (swapped, duplicated):
        assert_same([*raws[:2], changed])


def test_numbers_at_the_edges() -> None:
    for value in (2**53 - 1, 10**15 - 1, 10**15, -(10**15), 0):
        assert_same(chain([{"n": value}, {"n": value}]))
    for text in (b"-0", b"01", b"1.0", b"1e3", b"NaN", b"Infinity", b"9" * 17):
        raws = chain([{"n": 1}, {"n": 1}])
        raws[2] = raws[2].replace(b'"n":1', b'"n":' + text)
        assert_same(raws)


class CountingChecker(ChainChecker):
    """Counts the rows add_stored hands to add_row (those its fast path did not accept)."""

    slow_rows = 0

    def add_row(self, seq: int, stored_hash: bytes, body: bytes, nodes: StoredNodes) -> None:
        self.slow_rows += 1
        super().add_row(seq, stored_hash, body, nodes)


def test_add_stored_takes_the_fast_path_and_stops_where_asked() -> None:
    items = [{**DONATION, "amount": str(i + 1)} for i in range(300)]
    kinds = [{"kind": "vote_cast"} if i % 7 == 0 else {} for i in range(300)]
    raws = chain(items, kinds)
    frontier, nodes = Frontier(), []
    for raw in raws:
        completed = frontier.append(leaf_hash(raw))
        nodes += [(node_key(level, index), digest) for (level, index), digest in completed]
    rows = iter([(seq, leaf_hash(raw), raw) for seq, raw in enumerate(raws)])
    stored_nodes = StoredNodes(iter(nodes))
    checker = CountingChecker(ORIGIN)
    assert checker.add_stored(rows, stored_nodes, 100)
    assert checker.size == 100
    assert not checker.add_stored(rows, stored_nodes, -1)
    assert (checker.size, checker.frontier, stored_nodes.next) == (301, frontier, None)
    assert checker.slow_rows == 1  # only seq 0 (log_created) went through add_row
