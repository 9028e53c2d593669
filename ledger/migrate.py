"""Schema migrations (alembic), run programmatically: ``lunaria init`` and the tests call them;
and the privileges of the server's database role on PostgreSQL (:func:`grant_server_role`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from ledger.errors import LedgerError
from ledger.log.db import execute_raw
from ledger.log.schema import APPEND_ONLY_TABLES

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``, by default the newest (idempotent)."""
    config = _config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest revision."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


# -- the server's database role (PostgreSQL) ----------------------------------------------------
# `lunaria init` runs as the tables' owner; the web server and the other commands connect as a
# role that can append to the log but not rewrite it. Only the owner (or a superuser) may ALTER
# a table, so the server's role can neither disable the append-only triggers nor drop them.

# The log's history, and what hangs on it unchanged: rows are added, never changed or removed.
INSERT_ONLY_TABLES = (*APPEND_ONLY_TABLES, "idempotency_keys", "cosignatures")
# The log's one mutable row (the head and the write lock: SELECT … FOR UPDATE needs UPDATE).
HEAD_TABLES = ("log_head",)
# The server checks the schema is current, and reads the public URL `lunaria init` stored (the
# base of every link in reports, feeds and webhooks: whoever holds the server's credentials
# must not be able to point them elsewhere).
READ_ONLY_TABLES = ("alembic_version", "settings")


def table_privileges(table: str) -> str:
    """The server role's privileges on ``table``; every table not named above (projections,
    private records, tokens, texts, caches, counters, witness state) gets all four."""
    if table in INSERT_ONLY_TABLES:
        return "SELECT, INSERT"
    if table in HEAD_TABLES:
        return "SELECT, UPDATE"
    if table in READ_ONLY_TABLES:
        return "SELECT"
    return "SELECT, INSERT, UPDATE, DELETE"


def grant_server_role(engine: Engine, role: str, password: str | None) -> bool:
    """Create the role ``role`` (LOGIN, with ``password`` if given) unless it exists, and set
    its privileges on every table of the current schema (after ``upgrade``, so new tables
    are covered). True when the role was created. PostgreSQL only; run as the owner."""
    with engine.begin() as conn:
        owner, schema = conn.execute(text("SELECT current_user, current_schema()")).one()
        if role == owner:
            raise LedgerError(f"the server's role {role!r} is the owner: it must be another")
        found = conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).first()
        if found is not None and found[0]:
            raise LedgerError(f"the server's role {role!r} is a superuser: no boundary")
        if found is None:
            _ddl(
                conn, "CREATE ROLE %I LOGIN" + (" PASSWORD %L" if password else ""), role, password
            )
        _ddl(conn, "GRANT USAGE ON SCHEMA %I TO %I", schema, role)
        _ddl(conn, "REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I", schema, role)
        for table in inspect(conn).get_table_names():
            _ddl(conn, f"GRANT {table_privileges(table)} ON TABLE %I.%I TO %I", schema, table, role)
        _ddl(conn, "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I", schema, role)
    return found is None


def _ddl(conn: Connection, template: str, *values: str | None) -> None:
    """A statement with identifiers (%I) and literals (%L) quoted by PostgreSQL's format(),
    run without parameters (so a ``%`` or ``:`` in a password is only text)."""
    names = ", ".join(f"CAST(:v{number} AS text)" for number in range(len(values)))
    params = {f"v{number}": value for number, value in enumerate(values)}
    formatted = conn.execute(
        text(f"SELECT format(:template, {names})"), {"template": template, **params}
    )
    execute_raw(conn, formatted.scalar_one(), None).close()
