"""Tests of ledger.log.canonical: Lunaria's subset of RFC 8785 (JCS), cross-checked with rfc8785."""

from __future__ import annotations

import json
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import EncodingError, InvalidAmount
from ledger.log.canonical import (
    MAX_AMOUNT_DIGITS,
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    _check,
    _plainly_valid,
    canonical_bytes,
    check_amount,
    parse_canonical,
)
from ledger.log.clock import format_ts
from ledger.log.entry import KINDS, decode_entry, encode_data, encode_entry

# --- Strategies for the allowed subset ------------------------------------------------------

# Characters JSON encoders are tempted to treat specially: controls (escaped as \u00xx or the
# short forms), quote and backslash, DEL, the JavaScript line separators, BOM, non-characters,
# astral planes (UTF-16 surrogate pairs in JCS's sort order), solidus (never escaped by JCS).
SPECIAL_CHARS = st.sampled_from(
    [
        "\x00",
        "\x01",
        "\x1f",
        "\b",
        "\t",
        "\n",
        "\f",
        "\r",
        '"',
        "\\",
        "/",
        "\x7f",
        "\x80",
        "é",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\uffff",
        "😀",
        "\U0010ffff",
    ]
)
# Lone surrogates (category Cs) cannot be encoded: they are tested as refusals below.
STRINGS = st.text(alphabet=st.one_of(st.characters(codec="utf-8"), SPECIAL_CHARS), max_size=24)
ASCII_KEYS = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=10)
SAFE_INTS = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, 2**32, -(2**31) - 1]),
)
SCALARS = st.one_of(st.none(), st.booleans(), SAFE_INTS, STRINGS)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(ASCII_KEYS, children, max_size=6),
    ),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(ASCII_KEYS, JSON_VALUES, max_size=5)


# --- canonical_bytes ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_canonical_bytes_equals_rfc8785(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=100, deadline=None)
@given(JSON_OBJECTS)
def test_objects_round_trip_through_parse_canonical(obj: dict[str, Any]) -> None:
    raw = canonical_bytes(obj)
    raw.decode("utf-8")  # valid UTF-8, raw (not \u-escaped) beyond ASCII
    assert parse_canonical(raw) == obj
    assert canonical_bytes(parse_canonical(raw)) == raw


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b"null"),
        (True, b"true"),  # not 1: bool is tested before int
        (False, b"false"),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        ({"b": 1, "a": 2, "B": 3, "": 4}, b'{"":4,"B":3,"a":2,"b":1}'),
        ({"a": [1, "x", None, {}]}, b'{"a":[1,"x",null,{}]}'),
        ((1, 2), b"[1,2]"),
        ("é\u2028😀", '"é\u2028😀"'.encode()),
        ('\x00\x1f\x7f\t\n"\\/', b'"\\u0000\\u001f\x7f\\t\\n\\"\\\\/"'),
        ({"k\x00": 0}, b'{"k\\u0000":0}'),
    ],
)
def test_canonical_bytes_examples(value: Any, expected: bytes) -> None:
    assert canonical_bytes(value) == expected == rfc8785.dumps(value)


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def value_id(value: Any) -> str:
    if type(value) is object:
        return "object()"  # (its repr holds an address, which differs between xdist workers)
    try:
        return repr(value)[:40]
    except RecursionError:
        return f"deeply nested {type(value).__name__}"


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.0,
        -0.0,
        1.5,
        1e300,
        float("nan"),
        float("inf"),
        float("-inf"),
        2**53,
        -(2**53),
        2**64,
        10**30,
        {"é": 1},
        {"\u2028": 1},
        {"key\x80": 1},
        {"😀": 1},
        {1: "a"},
        {None: 1},
        {True: 1},
        {(1, 2): 1},
        {b"a": 1},
        "\ud800",
        "a\udc00b",
        "\udfff\ud800",  # reversed pair: two lone surrogates
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        frozenset(),
        Decimal("1"),
        complex(1, 2),
        object(),
        [1, [2, [3.0]]],
        {"a": {"b": 2**53}},
        {"a": ["\ud800"]},
        {"a": {"é": 1}},
        {"a": [{1: 2}]},
        _cycle(),
        _deep(5000),
    ],
    ids=lambda value: value_id(value),
)
def test_canonical_bytes_refuses(value: Any) -> None:
    with pytest.raises(EncodingError):
        canonical_bytes(value)


def test_refusal_names_the_place() -> None:
    with pytest.raises(EncodingError, match=r"\$\.a\[1\]\.b"):
        canonical_bytes({"a": [0, {"b": 1.5}]})
    with pytest.raises(EncodingError, match="2\\^53"):
        canonical_bytes({"amount": 10**18})


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=MAX_SAFE_INTEGER + 1),
        st.integers(max_value=-MAX_SAFE_INTEGER - 1),
    )
)
def test_unsafe_integers_are_refused_like_rfc8785(n: int) -> None:
    with pytest.raises(EncodingError):
        canonical_bytes({"n": n})
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps({"n": n})


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), JSON_VALUES)
def test_a_float_anywhere_is_refused(f: float, other: Any) -> None:
    for value in (f, [other, f], {"x": other, "y": [f]}):
        with pytest.raises(EncodingError, match="float"):
            canonical_bytes(value)


# --- parse_canonical ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"{}", {}),
        (b'{"a":1}', {"a": 1}),
        (b'{"a":"\xc3\xa9"}', {"a": "é"}),
        (b'{"a":"\xe2\x80\xa8"}', {"a": "\u2028"}),
        (b'{"a":"\\u0000\\u001f"}', {"a": "\x00\x1f"}),
        (b'{"a":"\\"\\\\\\b\\f\\n\\r\\t"}', {"a": '"\\\b\f\n\r\t'}),
        (
            b'{"A":[true,false,null],"a":-9007199254740991}',
            {"A": [True, False, None], "a": -MAX_SAFE_INTEGER},
        ),
    ],
)
def test_parse_canonical_accepts(raw: bytes, value: dict[str, Any]) -> None:
    assert parse_canonical(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1}',  # whitespace
        b' {"a":1}',
        b'{"a":1}\n',
        b'{\n"a":1}',
        b'{"b":1,"a":2}',  # unsorted keys
        b'{"a":1,"a":1}',  # duplicate key
        b'{"a":"\\u00e9"}',  # escaped non-ASCII where the raw character is canonical
        b'{"a":"\\u2028"}',
        b'{"a":"\\ud83d\\ude00"}',  # escaped astral character
        b'{"a":"\\u0041"}',  # escaped ASCII
        b'{"a":"\\/"}',  # escaped solidus
        b'{"a":"\\u001F"}',  # upper-case hex
        b'{"a":"\\u000a"}',  # \\n has a short form
        b'{"a":"\\u007f"}',  # DEL is not escaped by JCS
        b'{"a":1.0}',  # floats, in any spelling
        b'{"a":1e2}',
        b'{"a":-0}',
        b'{"a":01}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":9007199254740992}',  # beyond 2^53
        b'{"a":"\\ud800"}',  # escaped lone surrogate
        b'{"\\u00e9":1}',  # non-ASCII key
        b'{"\xc3\xa9":1}',
        b'{"a":"\xff"}',  # invalid UTF-8
        b'{"a":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate
        b'{"a":"\t"}',  # raw control character in a string
        b"\xef\xbb\xbf{}",  # BOM
        '{"a":1}'.encode("utf-16"),
        '{"a":1}'.encode("utf-16-le"),
        b"",
        b"{",
        b'{"a":1}{}',
        b"[]",  # an entry is an object
        b"[1]",
        b'"x"',
        b"1",
        b"null",
        b"true",
        b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}",  # nesting: refused, not a crash
    ],
    ids=lambda raw: repr(raw[:40]),
)
def test_parse_canonical_refuses(raw: bytes) -> None:
    with pytest.raises(EncodingError):
        parse_canonical(raw)


@pytest.mark.parametrize("depth", [10, 30, 31, 32, 100, 1000, 100_000])
def test_parse_canonical_limits_nesting_explicitly(depth: int) -> None:
    """Up to MAX_DEPTH levels parse; deeper is refused before the parser recurses."""
    raw = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    if depth + 1 <= MAX_DEPTH:
        assert parse_canonical(raw) == {"a": _deep(depth - 1)}
    else:
        with pytest.raises(EncodingError, match="nested deeper"):
            parse_canonical(raw)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = canonical_bytes({"a": "[" * 100 + "{" * 100, "b": '\\"[[['})
    assert parse_canonical(raw)["a"].startswith("[[")


@settings(max_examples=100, deadline=None)
@given(JSON_OBJECTS)
def test_parse_canonical_accepts_only_the_canonical_spelling(obj: dict[str, Any]) -> None:
    """Other valid JSON spellings of the same object are refused unless byte-identical."""
    canonical = canonical_bytes(obj)
    spellings = [
        json.dumps(obj, sort_keys=True, separators=(", ", ":"), ensure_ascii=False),
        json.dumps(obj, sort_keys=True, separators=(",", ": "), ensure_ascii=False),
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True),
        json.dumps(obj, sort_keys=True, indent=0, ensure_ascii=False),
        json.dumps(dict(reversed(obj.items())), separators=(",", ":"), ensure_ascii=False),
    ]
    for text in spellings:
        raw = text.encode()
        assert json.loads(raw) == obj
        if raw == canonical:
            assert parse_canonical(raw) == obj
        else:
            with pytest.raises(EncodingError):
                parse_canonical(raw)


# --- check_amount ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", ["1", "9", "10", "1500", "1000000000000000000", "9" * MAX_AMOUNT_DIGITS]
)
def test_check_amount_accepts(amount: str) -> None:
    assert check_amount(amount) == amount


@pytest.mark.parametrize(
    "amount",
    [
        "",
        "0",
        "00",
        "01",
        "007",
        "-5",
        "+5",
        "1.5",
        "1.",
        "1e3",
        "1E3",
        " 1",
        "1 ",
        "1\n",
        "\n1",
        "1_000",
        "1,000",
        "0x10",
        "١٢",  # Arabic-Indic digits: str.isdigit() is True, they are not amounts
        "1٢",  # ...nor after an ASCII digit (a \d in the pattern would let this through)
        "１２",  # full-width digits
        "1２",
        "1²",  # superscript two
        "²",  # superscript two
        "1" + "0" * MAX_AMOUNT_DIGITS,  # 39 digits
        "9" * (MAX_AMOUNT_DIGITS + 1),
        1500,
        0,
        15.0,
        Decimal("1500"),
        None,
        True,
        b"1500",
        ["1500"],
    ],
    ids=repr,
)
def test_check_amount_refuses(amount: Any) -> None:
    with pytest.raises(InvalidAmount) as info:
        check_amount(amount, field="data.amount")
    assert isinstance(info.value, EncodingError)
    assert info.value.code == "invalid_amount"
    assert "data.amount" in info.value.message


@settings(max_examples=200)
@given(st.integers(1, 10**MAX_AMOUNT_DIGITS - 1))
def test_every_positive_amount_in_range_is_accepted(n: int) -> None:
    assert check_amount(str(n)) == str(n)
    with pytest.raises(InvalidAmount):
        check_amount("0" + str(n))
    with pytest.raises(InvalidAmount):
        check_amount(str(-n))
    with pytest.raises(InvalidAmount):
        check_amount(n)


# --- the quick check agrees with the full one ----------------------------------------------

ANY_SCALARS = st.one_of(
    SCALARS,
    st.floats(allow_nan=True),
    st.integers(),
    st.text(max_size=8),  # lone surrogates included
    st.binary(max_size=4),
)
ANY_VALUES = st.recursive(
    ANY_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)


def _full_check_passes(value: Any) -> bool:
    try:
        _check(value, "$")
    except EncodingError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(ANY_VALUES)
def test_quick_check_decides_as_the_full_check(value: Any) -> None:
    # Equal except for lone surrogates, which only the encoding step (or _check) refuses.
    assert _plainly_valid(value) == _full_check_passes(value) or (
        _plainly_valid(value) and "surrogates" in repr(_encoding_error(value))
    )


def _encoding_error(value: Any) -> Exception | None:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        return exc
    return None


@pytest.mark.parametrize("container", [list, dict])
@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_quick_check_nesting_limit_matches(depth: int, container: type) -> None:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if container is list else {"k": value}
    assert _plainly_valid(value) == _full_check_passes(value) == (depth <= MAX_DEPTH)


# --- the entry envelope ---------------------------------------------------------------------

ACTORS = st.from_regex(r"[A-Za-z0-9._:-]{1,100}", fullmatch=True)
TIMESTAMPS = st.datetimes(timezones=st.just(UTC)).map(format_ts)
HASHES = st.binary(min_size=32, max_size=32).map(bytes.hex)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, MAX_SAFE_INTEGER),
    TIMESTAMPS,
    st.sampled_from(sorted(KINDS)),
    HASHES,
    ACTORS,
    JSON_OBJECTS,
)
def test_entries_are_their_envelope_in_rfc8785(
    seq: int, ts: str, kind: str, prev: str, actor: str, data: dict[str, Any]
) -> None:
    """The envelope is assembled around the data's canonical bytes; it must be exactly the
    JCS of the whole envelope, whether the data was encoded before or with it."""
    entry = encode_entry(seq, ts, kind, prev, actor, data)
    assert entry.raw == rfc8785.dumps(entry.envelope())
    assert encode_entry(seq, ts, kind, prev, actor, encode_data(data)) == entry
    assert decode_entry(entry.raw) == entry


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", -1),
        ("seq", MAX_SAFE_INTEGER + 1),
        ("seq", True),
        ("ts", '2026-01-01T00:00:00Z","v":2'),
        ("ts", "2026-01-01T00:00:00Z\\"),
        ("ts", "2026-01-01T00:00:00Zé"),
        ("prev", "0" * 63),
        ("prev", "A" * 64),
        ("actor", 'a","v'),
        ("kind", "made_up"),
    ],
)
def test_entry_fields_that_could_break_the_envelope_are_refused(field: str, value: Any) -> None:
    fields: dict[str, Any] = {
        "seq": 1,
        "ts": "2026-01-01T00:00:00.000000Z",
        "kind": "pool_created",
        "prev": "0" * 64,
        "actor": "system",
        "data": {},
    }
    fields[field] = value
    with pytest.raises(EncodingError):
        encode_entry(**fields)
