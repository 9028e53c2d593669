"""Scratch databases for benchmarks, and their progress lines: a SQLite file in a temporary
folder, or a PostgreSQL schema of its own, dropped at the end (not a benchmark itself)."""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from ledger.log.db import normalise_url


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def sqlite_url(name: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix=f"lunaria-bench-{name}-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextmanager
def postgres_url(base_url: str, name: str) -> Iterator[str]:
    admin = create_engine(normalise_url(base_url), isolation_level="AUTOCOMMIT")
    schema = f"bench_{name}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in base_url else "?"
        yield normalise_url(base_url) + f"{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def postgres_reachable(base_url: str) -> bool:
    """True if PostgreSQL answers at ``base_url``; else says so (and the bench skips it)."""
    engine = create_engine(normalise_url(base_url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # reported, and PostgreSQL is skipped
        progress(f"PostgreSQL is not reachable at {base_url}: {exc}")
        return False
    finally:
        engine.dispose()
