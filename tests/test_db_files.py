"""The SQLite files hold private records and token hashes: their owner alone may read them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import migrate
from ledger.log.append import Log
from ledger.log.db import make_engine
from ledger.log.notes import Signer


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default, under which new files are 0644
    try:
        yield
    finally:
        os.umask(previous)


def test_sqlite_files_are_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    database = tmp_path / "var" / "lunaria.db"
    engine = make_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    assert Log(engine, "example.org/test", signer=Signer.generate("example.org/test")).create()
    files = {p.name: p for p in database.parent.iterdir()}
    expected = {"lunaria.db", "lunaria.db-wal", "lunaria.db-shm", "lunaria.db-writer.lock"}
    assert expected <= set(files), sorted(files)
    for name in expected:
        mode = stat.S_IMODE(files[name].stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))
    engine.dispose()
