"""Two database roles on PostgreSQL: ``lunaria init`` runs as the owner
(LUNARIA_ADMIN_DATABASE_URL) and gives the server's role (LUNARIA_DATABASE_URL) what it needs,
and no more: it appends to the log but cannot rewrite it, nor switch off the triggers that
forbid it.

PostgreSQL only by nature (on SQLite the file's owner is the boundary, and there is no second
role to test), so these tests take the ``postgres_admin`` fixture, not ``db_url``: they run
wherever PostgreSQL is, and fail rather than skip under LUNARIA_REQUIRE_POSTGRES=1. Each has a
schema and a role of its own, named per run, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from api import create_app, db
from api.public_url import DEFAULT_PUBLIC_URL
from ledger.log.db import make_engine
from tests.conftest import ORIGIN, POSTGRES_URL, RUN_ID
from tests.test_api_support import Http, cli_admin_token, donation

LOG_TABLES = {"entries": "hash", "nodes": "hash", "checkpoints": "root"}  # and a column
REWRITES = (
    "UPDATE {table} SET {column} = {column}",
    "DELETE FROM {table}",
    "TRUNCATE {table}",
    "ALTER TABLE {table} DISABLE TRIGGER USER",
    "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "DROP TRIGGER {table}_append_only ON {table}",
    "DROP TABLE {table}",
)


@dataclass
class TwoRoles:
    admin_url: str  # the owner's (the tests' superuser, in the test's schema)
    server_url: str  # the server's role, in the same schema
    role: str
    schema: str
    folder: Path

    def app(self, **settings: Any) -> Flask:
        return create_app(
            {
                "TESTING": True,
                "DATABASE_URL": self.server_url,
                "KEY_FILE": str(self.folder / "keys" / "log.key"),
                "ORIGIN": ORIGIN,
                "CHECKPOINT_EVERY": 1000,
                **settings,
            }
        )


def _in_schema(url: str, schema: str, role: str | None = None) -> str:
    parsed = make_url(url)
    if role is not None:
        parsed = parsed.set(username=role, password=f"pw:{role}%")  # (quoting is tested too)
    options = {**parsed.query, "options": f"-csearch_path={schema}"}
    return parsed.set(query=options).render_as_string(hide_password=False)


@pytest.fixture
def two_roles(postgres_admin: Engine, tmp_path: Path) -> Iterator[TwoRoles]:
    suffix = f"{RUN_ID}_{uuid.uuid4().hex[:10]}"
    schema, role = f"t_{suffix}", f"lunaria_server_{suffix}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield TwoRoles(
            _in_schema(POSTGRES_URL, schema),
            _in_schema(POSTGRES_URL, schema, role),
            role,
            schema,
            tmp_path,
        )
    finally:
        with postgres_admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
            if found.first() is not None:
                conn.execute(text(f"DROP OWNED BY {role}"))  # (its privileges, here and on the db)
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))


def _init_as_owner(roles: TwoRoles) -> str:
    app = roles.app(ADMIN_DATABASE_URL=roles.admin_url)
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    app.extensions["lunaria"].engine.dispose()
    return str(result.output)


def test_init_makes_a_role_that_cannot_rewrite_the_log(two_roles: TwoRoles) -> None:
    output = _init_as_owner(two_roles)
    assert f"created the server's database role {two_roles.role}" in output
    assert f"granted the server's database role {two_roles.role}" in _init_as_owner(two_roles)
    server = make_engine(two_roles.server_url)
    try:
        with server.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == two_roles.role
            assert conn.execute(text("SELECT count(*) FROM entries")).scalar() == 1
        for table, column in LOG_TABLES.items():
            for statement in REWRITES:
                with pytest.raises(ProgrammingError) as refused, server.begin() as conn:
                    conn.execute(text(statement.format(table=table, column=column)))
                assert "InsufficientPrivilege" in type(refused.value.orig).__name__, statement
        with pytest.raises(DBAPIError), server.begin() as conn:
            conn.execute(text("SET session_replication_role = replica"))  # (superusers only)
        for statement in (  # the public URL, which every link is made of, is the owner's
            "UPDATE settings SET value = 'https://evil.example'",
            "DELETE FROM settings",
            "INSERT INTO settings (name, value) VALUES ('x', 'y')",
        ):
            with pytest.raises(ProgrammingError) as refused, server.begin() as conn:
                conn.execute(text(statement))
            assert "InsufficientPrivilege" in type(refused.value.orig).__name__, statement
        with server.connect() as conn:
            assert conn.execute(text("SELECT value FROM settings")).scalar() == DEFAULT_PUBLIC_URL
    finally:
        server.dispose()


def test_the_app_works_as_the_server_role(two_roles: TwoRoles) -> None:
    _init_as_owner(two_roles)
    app = two_roles.app()
    try:
        http = Http(app, app.test_client())
        admin = cli_admin_token(app.test_cli_runner())  # (init again, as the server: no change)
        pool = {"slug": "food", "name": "Food bank", "currencies": ["EUR"]}
        http.post("/pools", pool, token=admin, status=201)
        treasurer = http.post("/tokens", {"role": "treasurer", "label": "t"}, token=admin)
        token = treasurer.get_json()["token"]
        http.post("/pools/food/donations", donation(), token=token, status=201)
        runner = app.test_cli_runner()
        signed = runner.invoke(args=["checkpoint", "--new"])
        assert signed.exit_code == 0 and "\n\n" in signed.output, signed.output
        with app.app_context():
            assert db.get_log().latest_checkpoint().size == http.size() == 3  # type: ignore[union-attr]
        verified = runner.invoke(args=["verify"])
        assert verified.exit_code == 0, verified.output
    finally:
        state = app.extensions.get("lunaria")
        if state is not None:
            state.engine.dispose()


def test_refused_role_settings(two_roles: TwoRoles, tmp_path: Path) -> None:
    """The owner as the server, or an admin URL on SQLite or another database: refused."""
    cases = {
        "is the owner": two_roles.app(
            DATABASE_URL=two_roles.admin_url, ADMIN_DATABASE_URL=two_roles.admin_url
        ),
        "for PostgreSQL": two_roles.app(
            DATABASE_URL=f"sqlite:///{tmp_path / 'l.db'}", ADMIN_DATABASE_URL=two_roles.admin_url
        ),
        "same database": two_roles.app(
            ADMIN_DATABASE_URL=_in_schema(POSTGRES_URL, "elsewhere"),
        ),
    }
    for message, app in cases.items():
        result = app.test_cli_runner().invoke(args=["init"])
        assert result.exit_code != 0 and message in result.output, (message, result.output)
        state = app.extensions.get("lunaria")
        if state is not None:
            state.engine.dispose()
