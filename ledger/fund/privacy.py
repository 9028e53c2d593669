"""Personal data: commitments in public, the data itself in a private, erasable table.

A donor appears in the log as ``SHA-256(salt || donor reference)``; the 32-byte random salt
goes to the donor in the receipt, so only they can later show the donation is theirs.
Payment and recipient details are kept the same way. The record (salt and data) is sealed by
the :class:`~ledger.fund.vault.Vault` before it reaches the database, so no plaintext of a
private field is ever written there. Erasing a record deletes it and rotates the vault key,
which leaves every copy the database still holds unreadable; the public commitment stays and
every hash and proof remains valid.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, insert, inspect, select, text

from ledger.errors import NotFound
from ledger.fund.rules import Actor, require_role
from ledger.fund.schema import donation_references, private_records
from ledger.fund.vault import Sealed, Vault
from ledger.fund.webhooks import rewrap_secrets
from ledger.log.append import Log
from ledger.log.db import RowInsert, read_sql, write_sql, write_transaction

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

    def plaintext(self) -> bytes:
        return json.dumps({"salt": self.salt.hex(), "payload": self.payload}).encode()


_COLUMNS = ("commitment", "kind", "seq", "key_id", "wrapped_key", "sealed")
_NEW_RECORDS = RowInsert("private_records", _COLUMNS)


def keep_private(conn: Connection, vault: Vault, records: Sequence[PrivateRecord]) -> None:
    """Seal and store private records, a batch of donations' in a few statements."""
    sealed = vault.seal([(r.commitment, r.plaintext()) for r in records])
    rows = [
        (r.commitment, r.kind, r.seq, *_stored(s)) for r, s in zip(records, sealed, strict=True)
    ]
    _NEW_RECORDS.run(conn, rows)


def _stored(sealed: Sealed) -> tuple[str, bytes, bytes]:
    return sealed.key_id, sealed.wrapped_key, sealed.ciphertext


def _opened(vault: Vault, row: Any) -> PrivateRecord:
    sealed = Sealed(row.key_id, bytes(row.wrapped_key), bytes(row.sealed))
    opened = json.loads(vault.open(row.commitment, sealed))
    salt = bytes.fromhex(opened["salt"])
    return PrivateRecord(row.commitment, row.kind, salt, opened["payload"], int(row.seq))


def private_record(conn: Connection, vault: Vault, key: str) -> PrivateRecord | None:
    """The record behind a public commitment, opened; None if there is none (or erased)."""
    row = conn.execute(
        select(private_records).where(private_records.c.commitment == key)
    ).one_or_none()
    return None if row is None else _opened(vault, row)


def private_salt(conn: Connection, vault: Vault, key: str) -> bytes | None:
    record = private_record(conn, vault, key)
    return None if record is None else record.salt


def recipient_commitment(engine: Engine, grant_id: int) -> str | None:
    """The commitment of a grant's recipient details (kept under the grant's seq)."""
    with engine.connect() as conn:
        rows = read_sql(
            conn,
            "SELECT commitment FROM private_records WHERE kind = 'recipient' AND seq = ?",
            (grant_id,),
        )
    return str(rows[0][0]) if rows else None


def erase(log: Log, vault: Vault, key: str) -> bool:
    """Delete the private record behind a public commitment and rotate the vault key, so no
    copy of it anywhere can be opened again; False if there was none. The webhook secrets,
    sealed by the same vault key, are re-wrapped with the remaining records.

    Runs under the log's write lock, which every writer of private records holds too: none
    can seal a record with the old vault key once the new one is installed."""
    with log.engine.connect() as conn:
        if not private_record_exists(conn, key):
            return False
    with vault.rotation() as rewrap, log.writer() as writer:
        conn = writer.conn
        write_sql(conn, "DELETE FROM private_records WHERE commitment = ?", (key,))
        rows = read_sql(conn, "SELECT commitment, key_id, wrapped_key FROM private_records")
        rewrapped = [
            (rewrap.key_id, rewrap(commitment, key_id, bytes(wrapped)), commitment)
            for commitment, key_id, wrapped in rows
        ]
        if rewrapped:
            write_sql(
                conn,
                "UPDATE private_records SET key_id = ?, wrapped_key = ? WHERE commitment = ?",
                rewrapped,
                many=True,
            )
        rewrap_secrets(conn, rewrap)
        rewrap.install()
    return True


def erase_recipient_details(log: Log, vault: Vault, actor: Actor, grant_id: int) -> str:
    """Erase a grant's recipient details (admin); the commitment erased. NotFound if the
    grant has none kept (never given, or erased already)."""
    require_role(actor, "admin")
    key = recipient_commitment(log.engine, grant_id)
    if key is None or not erase(log, vault, key):
        raise NotFound(f"grant {grant_id} has no recipient details kept")
    return key


def private_record_exists(conn: Connection, key: str) -> bool:
    found = read_sql(conn, "SELECT 1 FROM private_records WHERE commitment = ?", (key,))
    return bool(found)


def seal_legacy_records(engine: Engine, vault: Vault) -> int:
    """Seal the records that migration 0006 set aside as written before sealing existed, then
    drop their table (``lunaria init`` runs this). The number sealed."""
    if "private_records_legacy" not in inspect(engine).get_table_names():
        return 0
    with write_transaction(engine) as conn:
        rows = read_sql(
            conn, "SELECT commitment, kind, salt, payload, seq FROM private_records_legacy"
        )
        records = [
            PrivateRecord(c, kind, bytes.fromhex(salt), json.loads(payload), int(seq))
            for c, kind, salt, payload, seq in rows
        ]
        keep_private(conn, vault, records)
        conn.execute(text("DROP TABLE private_records_legacy"))
    return len(records)


def index_references(engine: Engine, vault: Vault, key: bytes) -> int:
    """Fill ``donation_references`` from the private records of donations it lacks (written
    before it existed); the first donation of a repeated reference keeps it. The number of
    donations indexed."""
    with write_transaction(engine) as conn:
        rows = conn.execute(
            text(
                "SELECT e.pool, p.commitment, p.kind, p.seq, p.key_id, p.wrapped_key, p.sealed"
                " FROM private_records p JOIN entry_pools e ON e.seq = p.seq"
                " WHERE p.kind = 'donation' AND NOT EXISTS"
                " (SELECT 1 FROM donation_references r WHERE r.seq = p.seq) ORDER BY p.seq"
            )
        ).all()
        known = set(conn.execute(text(_INDEXED)).scalars())
        fresh = []
        for row in rows:
            reference = _opened(vault, row).payload["external_reference"]
            digest = reference_digest(key, row.pool, reference)
            if digest not in known:
                known.add(digest)
                fresh.append({"digest": digest, "pool": row.pool, "seq": row.seq})
        if fresh:
            conn.execute(insert(donation_references), fresh)
        return len(fresh)


_INDEXED = "SELECT digest FROM donation_references"
