"""Canonical JSON for log entries: the subset of RFC 8785 (JCS) that Lunaria allows.

Entries hold no floats, integers only within the interoperable range (|n| < 2**53), and
ASCII object keys. Under those rules ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` produces exactly the JCS bytes (tests cross-check the ``rfc8785``
package). Amounts are never JSON numbers: they are strings of decimal digits in minor units.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ledger.errors import EncodingError, InvalidAmount

MAX_SAFE_INTEGER = 2**53 - 1
# 64 KiB minus one: tlog-tiles entry bundles prefix each entry with a uint16 length.
MAX_ENTRY_BYTES = 64 * 1024 - 1
MAX_AMOUNT_DIGITS = 38
MAX_DEPTH = 32
_AMOUNT = re.compile(r"[1-9][0-9]*\Z")

JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]


def _check(value: Any, path: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"{path}: nested deeper than {MAX_DEPTH} levels (or contains itself)")
    # bool is a subclass of int: test it first.
    if value is None or isinstance(value, bool | str):
        if isinstance(value, str):
            _check_string(value, path)
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EncodingError(
                f"{path}: integer {value} is outside ±(2^53-1); use a digit string for amounts"
            )
        return
    if isinstance(value, float):
        raise EncodingError(f"{path}: floats are not allowed in entries (got {value!r})")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"{path}: object key {key!r} is not a string")
            if not key.isascii():
                raise EncodingError(f"{path}: object key {key!r} is not ASCII")
            _check(item, f"{path}.{key}", depth + 1)
        return
    raise EncodingError(f"{path}: {type(value).__name__} cannot be encoded in an entry")


def _check_string(value: str, path: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError(f"{path}: string is not valid Unicode (lone surrogate)") from exc


def _plainly_valid(value: Any, depth: int = 0) -> bool:
    """A quick yes for the values entries are made of; False means "ask :func:`_check`".

    It decides exactly as :func:`_check` does for exact types, but builds no paths (every
    append calls it); subclasses, unsafe integers, floats and anything odd take the slow path,
    which accepts or explains. Lone surrogates are caught when the text is encoded.
    """
    if depth > MAX_DEPTH:
        return False
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return True
    if cls is int:
        number: int = value
        return -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER
    if cls is dict:
        # (a loop, strings passed inline: calls and generators cost more than the checks)
        inline = depth < MAX_DEPTH  # a string one level down is still within the limit
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if not (inline and type(item) is str) and not _plainly_valid(item, depth + 1):
                return False
        return True
    if cls is list or cls is tuple:
        return all(_plainly_valid(item, depth + 1) for item in value)
    return False


# One encoder for every entry (json.dumps with options builds a new one per call). It skips the
# circular-reference check: what it encodes has passed _plainly_valid or _check, whose depth
# limit refuses a value that contains itself.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def canonical_bytes(value: Any) -> bytes:
    """Return the canonical (JCS) UTF-8 bytes of ``value``, refusing what JCS cannot carry.

    Every value is walked before it is encoded, whoever built it: a float or an unsafe integer
    would encode without complaint, and the log could never take it back."""
    if _plainly_valid(value):
        try:
            return _ENCODER.encode(value).encode()
        except (TypeError, ValueError, RecursionError):
            pass  # _check names what is wrong (a lone surrogate: UnicodeEncodeError)
    _check(value, "$")
    return _ENCODER.encode(value).encode()


def _nesting_depth(raw: bytes) -> int:
    """The deepest array/object nesting in JSON text, without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_canonical(raw: bytes) -> dict[str, Any]:
    """Parse entry bytes and insist they are exactly canonical (so the hash is unambiguous)."""
    # Refuse deep nesting before the parser sees it: its recursion must never be the limit
    # (a library may raise Python's recursion limit far beyond what the C stack holds).
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_DEPTH and _nesting_depth(raw) > MAX_DEPTH:
        raise EncodingError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncodingError(f"not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EncodingError("an entry must be a JSON object")
    if canonical_bytes(value) != raw:
        raise EncodingError("bytes are not in canonical (JCS) form")
    return value


def check_amount(value: Any, field: str = "amount") -> str:
    """Return ``value`` if it is a positive amount in minor units written as digits."""
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise InvalidAmount(
            f"{field} must be a positive whole number of minor units written as a string of "
            f'digits without leading zeros, e.g. "1500"; got {value!r}'
        )
    if len(value) > MAX_AMOUNT_DIGITS:
        raise InvalidAmount(f"{field} has more than {MAX_AMOUNT_DIGITS} digits")
    return value
