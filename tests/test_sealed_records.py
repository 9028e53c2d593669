"""Crypto-shredding: no plaintext of a private field in any database file, and an erased
record that no copy can open. Raw bytes of the SQLite file and its WAL, of the PostgreSQL
table's files and its WAL, before and after erase. Both databases."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from ledger.fund.commands import Fund
from ledger.fund.privacy import erase, private_record
from ledger.fund.schema import private_records
from ledger.fund.vault import Sealed, Vault, VaultError
from tests.test_fund import APPLICANT, TREASURER, donation
from tests.test_fund import fund as fund


def _database_files(engine: Engine, since_lsn: str | None) -> list[Path]:
    """The files that hold private_records: the SQLite file and its WAL, or the PostgreSQL
    table's files (after a CHECKPOINT) and the WAL segments written since ``since_lsn``."""
    if engine.dialect.name == "sqlite":
        database = Path(str(engine.url.database))
        return [p for p in (database, Path(f"{database}-wal")) if p.exists()]
    with engine.begin() as conn:
        conn.execute(text("CHECKPOINT"))
        root = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        relation = conn.execute(text("SELECT pg_relation_filepath('private_records')")).scalar()
        first = conn.execute(text("SELECT pg_walfile_name(:lsn)"), {"lsn": since_lsn}).scalar()
        last = conn.execute(text("SELECT pg_walfile_name(pg_current_wal_lsn())")).scalar()
    table = sorted(root.glob(f"{relation}*"))
    wal = [p for p in sorted((root / "pg_wal").iterdir()) if first <= p.name <= last]
    assert table and wal
    return table + wal


def _wal_position(engine: Engine) -> str | None:
    if engine.dialect.name == "sqlite":
        return None
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar())


def _holding(files: list[Path], marker: bytes) -> list[str]:
    return [str(path) for path in files if marker in path.read_bytes()]


def test_private_fields_never_reach_a_database_file(fund: Fund) -> None:
    engine, vault = fund.log.engine, fund.vault
    start = _wal_position(engine)
    marker = f"MARKER-{secrets.token_hex(8)}"
    outcome = fund.record_donation(
        TREASURER,
        "food",
        donation("100", f"{marker}-ref", donor_reference=f"{marker}-donor", note=f"{marker}-note"),
    )
    proposal = {
        "amount": "100",
        "currency": "EUR",
        "purpose": "Rent support",
        "recipient": "family-7",
        "recipient_details": f"{marker}-recipient",
    }
    fund.propose_grant(APPLICANT, "food", proposal)
    commitment = fund.log.entry(outcome.seq).data["donor"]["commitment"]
    with engine.connect() as conn:
        opened = private_record(conn, vault, commitment)
        stolen = conn.execute(  # what a copy of the database (a backup, a replica) holds
            select(private_records).where(private_records.c.commitment == commitment)
        ).one()
    assert opened is not None and opened.payload["note"] == f"{marker}-note"  # it was written

    files = _database_files(engine, start)
    assert _holding(files, marker.encode()) == []

    assert erase(fund.log, vault, commitment)
    files = _database_files(engine, start)
    assert _holding(files, marker.encode()) == []
    # The old row's bytes cannot be opened with the data key file any more.
    with pytest.raises(VaultError):
        Vault(vault.path).open(commitment, _sealed(stolen))
    with engine.connect() as conn:
        assert private_record(conn, vault, commitment) is None
        others = conn.execute(select(private_records.c.commitment)).scalars().all()
        assert others and all(private_record(conn, vault, c) for c in others)  # re-wrapped


def _sealed(row: Any) -> Sealed:
    return Sealed(row.key_id, bytes(row.wrapped_key), bytes(row.sealed))


def test_a_rotation_that_does_not_commit_keeps_the_old_key(tmp_path: Path) -> None:
    vault = Vault.create(tmp_path / "data.key")
    (sealed,) = vault.seal([("c" * 64, b"kept")])
    with pytest.raises(RuntimeError), vault.rotation() as rewrap:
        rewrap("c" * 64, sealed.key_id, sealed.wrapped_key)
        rewrap.install()
        raise RuntimeError("the commit failed")
    assert Vault(vault.path).open("c" * 64, sealed) == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.key"]


def test_the_key_file_is_owner_only(tmp_path: Path) -> None:
    vault = Vault.create(tmp_path / "data.key")
    assert vault.path.stat().st_mode & 0o077 == 0
    vault.path.chmod(0o644)
    with pytest.raises(VaultError):
        Vault(vault.path).seal([("c" * 64, b"x")])
