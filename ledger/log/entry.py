"""The entry envelope: what every leaf of the log holds.

``{"v":1,"seq":N,"ts":"…Z","kind":"…","prev":"<hex hash of seq-1>","actor":"…","data":{…}}``
canonicalised (see :mod:`ledger.log.canonical`); the entry hash is the RFC 9162 leaf hash of
exactly those bytes. ``prev`` chains entries inside the leaves, so the tree commits to both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ledger.errors import EncodingError
from ledger.log.canonical import MAX_ENTRY_BYTES, MAX_SAFE_INTEGER, canonical_bytes, parse_canonical
from ledger.log.clock import parse_ts
from ledger.log.merkle import leaf_hash

ENTRY_VERSION = 1
GENESIS_PREV = "0" * 64

KINDS = frozenset(
    {
        "log_created",
        "key_rotated",
        "pool_created",
        "collective_registered",
        "member_added",
        "member_removed",
        "roster_set",
        "custody_transferred",
        "donation_recorded",
        "grant_proposed",
        "vote_cast",
        "grant_decided",
        "grant_disbursed",
        "grant_cancelled",
        "correction",
        "checkpoint_anchored",
        "text_redacted",
    }
)

_ENVELOPE_KEYS = frozenset({"v", "seq", "ts", "kind", "prev", "actor", "data"})
_ACTOR = re.compile(r"[A-Za-z0-9._:-]{1,100}\Z")
_HEX_HASH = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Entry:
    """One decoded log entry together with the exact bytes that were hashed."""

    seq: int
    ts: str
    kind: str
    prev: str
    actor: str
    data: dict[str, Any]
    raw: bytes

    @cached_property
    def hash(self) -> bytes:
        """The leaf hash, computed once: the append path and a receipt both need it."""
        return leaf_hash(self.raw)

    def envelope(self) -> dict[str, Any]:
        return _envelope(self.seq, self.ts, self.kind, self.prev, self.actor, self.data)


def _envelope(
    seq: int, ts: str, kind: str, prev: str, actor: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "v": ENTRY_VERSION,
        "seq": seq,
        "ts": ts,
        "kind": kind,
        "prev": prev,
        "actor": actor,
        "data": data,
    }


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise EncodingError(f"unknown entry kind {kind!r}")


def check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not _ACTOR.match(actor):
        raise EncodingError(
            f"actor {actor!r} must be a pseudonymous id of 1-100 characters [A-Za-z0-9._:-]"
        )


@dataclass(frozen=True)
class CanonicalData:
    """An entry's data with its canonical bytes, made by :func:`encode_data`.

    Encoding the data is most of the cost of an entry, and nothing in it depends on the
    entry's place in the log, so a batch encodes its entries' data before it takes the write
    lock and only the envelope is built under the lock. The data must not change once
    encoded (the entry would then carry other data than it hashed): build a new one."""

    value: dict[str, Any]
    raw: bytes


def encode_data(data: dict[str, Any]) -> CanonicalData:
    """Check and encode an entry's data (see :func:`ledger.log.canonical.canonical_bytes`)."""
    if not isinstance(data, dict):
        raise EncodingError("entry data must be a JSON object")
    return CanonicalData(data, canonical_bytes(data))


# Strings that JCS writes as themselves between quotes: printable ASCII but '"' and '\'.
_VERBATIM = re.compile(r"[ !#-\[\]-~]*\Z")


def encode_entry(
    seq: int, ts: str, kind: str, prev: str, actor: str, data: dict[str, Any] | CanonicalData
) -> Entry:
    """Build an entry, refusing anything that could not be hashed unambiguously."""
    check_kind(kind)
    check_actor(actor)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise EncodingError(f"seq {seq!r} is not a non-negative safe integer")
    if not isinstance(prev, str) or not _HEX_HASH.match(prev):
        raise EncodingError(f"prev {prev!r} is not a lowercase hex SHA-256")
    if not isinstance(ts, str) or not _VERBATIM.match(ts):
        raise EncodingError(f"ts {ts!r} is not an RFC 3339 timestamp")
    encoded = data if isinstance(data, CanonicalData) else encode_data(data)
    # The envelope's canonical form, keys in JCS order: every field but data is a safe integer
    # or a string JCS writes verbatim (checked above), and data is canonical already.
    raw = b"".join(
        (
            b'{"actor":"',
            actor.encode(),
            b'","data":',
            encoded.raw,
            b',"kind":"',
            kind.encode(),
            b'","prev":"',
            prev.encode(),
            b'","seq":',
            str(seq).encode(),
            b',"ts":"',
            ts.encode(),
            b'","v":%d}' % ENTRY_VERSION,
        )
    )
    if len(raw) > MAX_ENTRY_BYTES:
        raise EncodingError(f"entry is {len(raw)} bytes; the limit is {MAX_ENTRY_BYTES}")
    return Entry(seq=seq, ts=ts, kind=kind, prev=prev, actor=actor, data=encoded.value, raw=raw)


def checked_entry(raw: bytes) -> Entry:
    """The Entry of bytes that were checked already (by ``lunaria verify`` on the stored log,
    or by :class:`ledger.log.verify.ChainChecker` a moment ago), without a second validation:
    reading 100,000 entries strictly costs more than what their readers then do with them.
    Untrusted bytes go through :func:`decode_entry`."""
    obj = json.loads(raw)
    return Entry(
        seq=obj["seq"],
        ts=obj["ts"],
        kind=obj["kind"],
        prev=obj["prev"],
        actor=obj["actor"],
        data=obj["data"],
        raw=raw,
    )


def decode_entry(raw: bytes) -> Entry:
    """Parse and validate stored or exported entry bytes (strict: canonical, known fields)."""
    if len(raw) > MAX_ENTRY_BYTES:
        raise EncodingError(f"entry is {len(raw)} bytes; the limit is {MAX_ENTRY_BYTES}")
    obj = parse_canonical(raw)
    if obj.keys() != _ENVELOPE_KEYS:
        raise EncodingError(f"entry fields are {sorted(obj)}, expected {sorted(_ENVELOPE_KEYS)}")
    if obj["v"] != ENTRY_VERSION:
        raise EncodingError(f"entry version {obj['v']!r} is not {ENTRY_VERSION}")
    seq, ts, kind, prev = obj["seq"], obj["ts"], obj["kind"], obj["prev"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise EncodingError(f"seq {seq!r} is not a non-negative integer")
    if not isinstance(ts, str):
        raise EncodingError(f"ts {ts!r} is not a string")
    try:
        parse_ts(ts)
    except ValueError as exc:
        raise EncodingError(str(exc)) from exc
    if not isinstance(prev, str) or not _HEX_HASH.match(prev):
        raise EncodingError(f"prev {prev!r} is not a lowercase hex SHA-256")
    if not isinstance(kind, str):
        raise EncodingError(f"kind {kind!r} is not a string")
    check_kind(kind)
    check_actor(obj["actor"])
    if not isinstance(obj["data"], dict):
        raise EncodingError("entry data must be a JSON object")
    return Entry(
        seq=seq, ts=ts, kind=kind, prev=prev, actor=obj["actor"], data=obj["data"], raw=raw
    )
