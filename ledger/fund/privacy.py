"""Personal data: commitments in public, the data itself in a private, erasable table.

A donor appears in the log as ``SHA-256(salt || donor reference)``; the 32-byte random salt
goes to the donor in the receipt, so only they can later show the donation is theirs.
Payment and recipient details are kept the same way. Erasing a record deletes the salt and the
data; the public commitment stays and every hash and proof remains valid.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, delete, insert, select, text

from ledger.fund.schema import donation_references, private_records
from ledger.log.db import RowInsert

SALT_BYTES = 32


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def new_salts(count: int) -> list[bytes]:
    """``count`` independent salts, as :func:`new_salt` gives, from one call to the system's
    random source (a batch of donations needs a thousand)."""
    pool = secrets.token_bytes(SALT_BYTES * count)
    return [pool[i : i + SALT_BYTES] for i in range(0, len(pool), SALT_BYTES)]


def commitment(salt: bytes, value: str) -> str:
    """Hex ``SHA-256(salt || UTF-8 value)``."""
    return hashlib.sha256(salt + value.encode()).hexdigest()


def reference_digest(key: bytes, pool: str, reference: str) -> str:
    """Hex HMAC-SHA256 of a pool's external reference under the log's fingerprint key: equal
    references compare equal, and the table holding it reveals none of them."""
    message = b"lunaria/donation-reference\x00" + pool.encode() + b"\x00" + reference.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class PrivateRecord(NamedTuple):
    """Personal data behind the public ``commitment`` written by the entry at ``seq``."""

    commitment: str
    kind: str
    salt: bytes
    payload: dict[str, Any]
    seq: int


_NEW_RECORDS = RowInsert("private_records", ("commitment", "kind", "salt", "payload", "seq"))


def keep_private(conn: Connection, records: Sequence[PrivateRecord]) -> None:
    """Store private records, a batch of donations' in a few statements (see RowInsert)."""
    _NEW_RECORDS.run(
        conn, [(r.commitment, r.kind, r.salt.hex(), json.dumps(r.payload), r.seq) for r in records]
    )


def private_salt(conn: Connection, key: str) -> bytes | None:
    salt = conn.execute(
        select(private_records.c.salt).where(private_records.c.commitment == key)
    ).scalar()
    return None if salt is None else bytes.fromhex(salt)


def erase(engine: Engine, key: str) -> bool:
    """Delete the private record behind a public commitment; False if there was none."""
    with engine.begin() as conn:
        result = conn.execute(delete(private_records).where(private_records.c.commitment == key))
        return result.rowcount > 0


def index_references(engine: Engine, key: bytes) -> int:
    """Fill ``donation_references`` from the private records of donations it lacks (written
    before it existed); the first donation of a repeated reference keeps it. The number of
    donations indexed."""
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT e.pool, p.payload, p.seq FROM private_records p"
                " JOIN entry_pools e ON e.seq = p.seq"
                " WHERE p.kind = 'donation' AND NOT EXISTS"
                " (SELECT 1 FROM donation_references r WHERE r.seq = p.seq) ORDER BY p.seq"
            )
        ).all()
        known = {(pool, digest) for pool, digest in conn.execute(text(_INDEXED))}
        fresh = []
        for pool, payload, seq in rows:
            digest = reference_digest(key, pool, json.loads(payload)["external_reference"])
            if (pool, digest) not in known:
                known.add((pool, digest))
                fresh.append({"pool": pool, "digest": digest, "seq": seq})
        if fresh:
            conn.execute(insert(donation_references), fresh)
        return len(fresh)


_INDEXED = "SELECT pool, digest FROM donation_references"
