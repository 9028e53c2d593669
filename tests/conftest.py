"""Fixtures: every database test runs on SQLite and on PostgreSQL (its own schema per test)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, create_engine, text

from api import create_app
from ledger import migrate
from ledger.fund.vault import Vault
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.clock import ManualClock
from ledger.log.db import make_engine, normalise_url
from ledger.log.notes import Signer

POSTGRES_URL = os.environ.get(
    "LUNARIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("LUNARIA_REQUIRE_POSTGRES") == "1"
ORIGIN = "test.lunaria.example/log"
RUN_ID = uuid.uuid4().hex[:8]
OUTPUT_DIR = Path(__file__).parent.parent / "test-output"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (LUNARIA_FORBID_SKIPS=1) a skipped test is a failed run."""
    if os.environ.get("LUNARIA_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        print(f"\nLUNARIA_FORBID_SKIPS: {len(skipped)} tests were skipped; failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


ENGINES = ("sqlite", "postgresql")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``pytest -n N --dist loadgroup`` (``make test``): one worker runs a file's
    tests on one engine, so a module fixture (a demo fund per engine) is built once."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        engine = next((v for v in params.values() if v in ENGINES), "any")
        item.add_marker(pytest.mark.xdist_group(f"{item.nodeid.split('::')[0]}:{engine}"))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


def _postgres_schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return normalise_url(POSTGRES_URL) + f"{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lunaria.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def log(engine: Engine, signer: Signer, clock: ManualClock) -> Log:
    log = Log(engine, ORIGIN, signer=signer, clock=clock, policy=CheckpointPolicy(every_entries=10))
    log.create()
    return log


def new_vault() -> Vault:
    """A vault with a fresh key in a folder of its own (for helpers without ``tmp_path``)."""
    return Vault.create(Path(tempfile.mkdtemp(prefix="lunaria-vault-")) / "data.key")


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault.create(tmp_path / "vault" / "data.key")


@pytest.fixture
def app(db_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Flask]:
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": db_url,
        "KEY_FILE": str(tmp_path / "keys" / "log.key"),
        "ORIGIN": ORIGIN,
        "CLOCK": clock,
        "CHECKPOINT_EVERY": 10,
        # The clock stands still, so a rate limit's window never ends: tests of other things
        # would trip them. tests/test_throttle.py turns them on.
        "RATE_LIMITS": False,
    }
    app = create_app(config)
    yield app
    # Close the app's connections now, not whenever the collector gets to them: otherwise a
    # run holds dozens of idle PostgreSQL connections and meets "too many clients".
    state = app.extensions.get("lunaria")
    if state is not None:
        state.engine.dispose()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave artefacts worth looking at (screenshots, rendered pages)."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


def tamper(engine: Engine, statement: str, **params: Any) -> None:
    """Run SQL with the append-only triggers out of the way, as an attacker with DB access."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for table in ("entries", "nodes", "checkpoints"):
                for operation in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{operation}"))
        conn.execute(text(statement), params)
