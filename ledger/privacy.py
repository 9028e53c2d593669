"""Personal data: commitments in public, the data itself in a private, erasable table.

A donor appears in the log as ``SHA-256(salt || donor reference)``; the 32-byte random salt
goes to the donor in the receipt, so only they can later show the donation is theirs.
Payment and recipient details are kept the same way. Erasing a record deletes the salt and the
data; the public commitment stays and every hash and proof remains valid.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from ledger.schema import private_records

SALT_BYTES = 32


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def commitment(salt: bytes, value: str) -> str:
    """Hex ``SHA-256(salt || UTF-8 value)``."""
    return hashlib.sha256(salt + value.encode()).hexdigest()


def keep_private(
    conn: Connection, key: str, kind: str, salt: bytes, payload: dict[str, Any], seq: int
) -> None:
    conn.execute(
        insert(private_records).values(
            commitment=key, kind=kind, salt=salt.hex(), payload=json.dumps(payload), seq=seq
        )
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
