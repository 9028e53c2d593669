"""Schema migrations keep every stored row and the append-only guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from api import create_app, db
from ledger import migrate
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.db import make_engine
from ledger.log.notes import Signer
from ledger.log.verify import verify_database
from tests.conftest import ORIGIN


def _log_at_0002(db_url: str, signer: Signer) -> tuple[Engine, Log]:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0002")
    log = Log(engine, ORIGIN, signer=signer, policy=CheckpointPolicy(every_entries=7))
    log.create()
    for n in range(40):
        log.append("donation_recorded", {"pool": "p", "amount": str(n + 1)})
    return engine, log


def test_0003_keeps_the_log_and_its_triggers(db_url: str, signer: Signer) -> None:
    engine, log = _log_at_0002(db_url, signer)
    try:
        before = (log.head().root, [c.note for c in log.checkpoints()], list(log.iter_raw()))
        migrate.upgrade(engine)
        assert (log.head().root, [c.note for c in log.checkpoints()], list(log.iter_raw())) == (
            before
        )
        report = verify_database(engine, [signer.verifier()])
        assert report.size == 41
        log.append("donation_recorded", {"pool": "p", "amount": "99"})
        assert verify_database(engine, [signer.verifier()]).size == 42
        for statement in ("UPDATE entries SET kind = 'x'", "DELETE FROM nodes"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_0003_makes_sqlite_log_keys_the_rowid(tmp_path: Path, signer: Signer) -> None:
    # A SQLite storage detail: 0003 leaves PostgreSQL's tables as they are.
    engine, _ = _log_at_0002(f"sqlite:///{tmp_path / 'lunaria.db'}", signer)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            # No key index beside the table (0011's small partial index on entries is no key).
            indexes = conn.execute(
                text("SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NULL")
            ).scalars()
            assert not {"entries", "nodes", "checkpoints"} & set(indexes)
            for table, key in (("entries", "seq"), ("nodes", "key"), ("checkpoints", "size")):
                sql = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
                ).scalar_one()
                assert f"{key} INTEGER PRIMARY KEY" in sql
    finally:
        engine.dispose()


def test_0004_fills_entry_pools_from_the_log(db_url: str, signer: Signer) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0003")
        log = Log(engine, ORIGIN, signer=signer, policy=CheckpointPolicy(every_entries=7))
        log.create()
        for kind, data in [
            ("pool_created", {"slug": "rent", "name": "Rent"}),
            ("collective_registered", {"slug": "alba", "name": "Alba"}),
            ("roster_set", {"pool": "rent", "collectives": ["alba"]}),
            ("pool_created", {"slug": "food", "name": "Food"}),
            ("donation_recorded", {"pool": "food", "amount": "100"}),
            ("donation_recorded", {"pool": "rent", "amount": "100"}),
        ]:
            log.append(kind, data)
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, pool FROM entry_pools ORDER BY seq")).all()
        assert [tuple(row) for row in rows] == [
            (1, "rent"),
            (3, "rent"),
            (4, "food"),
            (5, "food"),
            (6, "rent"),
        ]
    finally:
        engine.dispose()


def test_a_server_on_an_older_schema_says_so_until_lunaria_init(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """Code upgraded without ``lunaria init``: every request gets a clear 503 (the API's
    problem names ``schema_out_of_date``), nothing is written, and init mends it."""
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0003")
    Log(engine, ORIGIN, signer=signer).create()
    engine.dispose()
    key_file = tmp_path / "keys" / "log.key"
    key_file.parent.mkdir()
    signer.save(key_file)
    app = create_app(
        {"TESTING": True, "DATABASE_URL": db_url, "KEY_FILE": str(key_file), "ORIGIN": ORIGIN}
    )
    client = app.test_client()
    try:
        api = client.get("/api/v1/pools")
        assert api.status_code == 503 and api.mimetype == "application/problem+json"
        assert api.get_json()["code"] == "schema_out_of_date"
        write = client.post(
            "/api/v1/pools", json={}, headers={"Authorization": "Bearer x", "Idempotency-Key": "k"}
        )
        assert write.status_code == 503
        page = client.get("/pools/food?lang=es")
        assert page.status_code == 503 and "se está actualizando" in page.get_data(as_text=True)
        assert client.get("/tlog/checkpoint").status_code == 503
        with app.app_context():
            assert db.get_log().head().size == 1  # nothing written

        assert app.test_cli_runner().invoke(args=["init"]).exit_code == 0
        assert client.get("/api/v1/pools").status_code == 200
        assert client.get("/").status_code == 200
    finally:
        with app.app_context():
            db.get_engine().dispose()
