"""The database and the log for the app: created on first use, shared by requests.

Only ``lunaria init`` creates a database. Until it has, the web server reads a SQLite file that
is not there as an empty database (the pages say "no ledger yet") without creating the file or
its folder in whatever directory it runs in; the ``lunaria`` command line refuses instead (see
:func:`for_the_command_line`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from ledger import migrate
from ledger.errors import LedgerError, NotFound, SchemaOutdated
from ledger.fund import Fund, Vault
from ledger.log import (
    CheckpointPolicy,
    Clock,
    KeyFiles,
    Log,
    Signer,
    SystemClock,
    load_head,
    make_engine,
    read_transaction,
)

DEFAULT_ORIGIN = "localhost/lunaria"


@dataclass
class LedgerState:
    engine: Engine
    clock: Clock
    log: Log | None = None
    fund: Fund | None = None
    vault: Vault | None = None
    schema_current: bool = False


COMMAND_LINE = "lunaria.command_line"  # app.extensions: set by for_the_command_line


class NoLog(LedgerError):
    """The database, the log or the key file that the configuration names is not there."""

    code = "no_log"


def init_app(app: Flask) -> None:
    app.extensions["lunaria"] = None
    app.extensions[COMMAND_LINE] = False


def for_the_command_line(app: Flask) -> None:
    """Make ``app`` the ``lunaria`` command's: the first use of the database or the key files
    (by any command but ``init``) checks that the database holds a log and that the key file
    exists, and raises :class:`NoLog` naming both otherwise. The defaults are relative paths,
    so a command run from another folder would otherwise work on a new, empty log there.

    Commands that use neither (``verify --export``, ``verify-receipt``, ``audit``) run anywhere.
    """
    app.extensions[COMMAND_LINE] = True


def _state(*, create: bool = False) -> LedgerState:
    state: LedgerState | None = current_app.extensions["lunaria"]
    if state is None:
        url = admin_url() if create else current_app.config["DATABASE_URL"]
        sqlite_file = _sqlite_file(url)
        missing = not create and sqlite_file is not None and not sqlite_file.exists()
        clock = current_app.config["CLOCK"] or SystemClock()
        if current_app.extensions[COMMAND_LINE] and not create:
            if missing:
                raise _no_log("no such file")
            engine = make_engine(url)
            _check_log_and_key(engine)
        elif missing:
            # An empty in-memory stand-in, not kept: the file is used once `lunaria init` has
            # created it, even by a server started before.
            return LedgerState(engine=create_engine("sqlite://"), clock=clock)
        else:
            engine = make_engine(url)
        state = LedgerState(engine=engine, clock=clock)
        current_app.extensions["lunaria"] = state
    return state


def _sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite database file; None for PostgreSQL and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def _check_log_and_key(engine: Engine) -> None:
    try:
        has_log = stored_origin(engine) is not None
    except OperationalError as exc:
        engine.dispose()
        raise _no_log(f"cannot be read: {str(exc.orig).strip().splitlines()[0]}") from exc
    if not has_log or not key_file().exists():
        engine.dispose()
        raise _no_log("holds a log" if has_log else "holds no log", has_log=has_log)


def _no_log(database: str, *, has_log: bool = False) -> NoLog:
    """The refusal: what the configuration resolved to, and how to point it elsewhere."""
    configured = current_app.config["DATABASE_URL"]
    url = make_url(configured)
    sqlite_file = _sqlite_file(configured)
    if sqlite_file is not None:
        url = url.set(database=str(sqlite_file))
    key = key_file().absolute()
    if has_log:
        headline = "the log's signing key is not at this path:"
        init = "would make a new signing key there, not the log's own"
    else:
        headline = "no Lunaria log at these paths:"
        init = "would start a new, empty log at these paths"
    return NoLog(
        f"{headline}\n"
        f"  database  {url.render_as_string(hide_password=True)}  ({database})\n"
        f"  key file  {key}  ({'found' if key.exists() else 'no such file'})\n"
        "Run lunaria from the folder that holds the log (relative paths start there), or set "
        "LUNARIA_DATABASE_URL and LUNARIA_KEY_FILE to its database and key file "
        f"(`lunaria init` {init})."
    )


def admin_url() -> str:
    """What ``lunaria init`` connects with: LUNARIA_ADMIN_DATABASE_URL, the tables' owner, when
    set (PostgreSQL only, and the same database as LUNARIA_DATABASE_URL), else the latter."""
    server: str = current_app.config["DATABASE_URL"]
    admin: str | None = current_app.config["ADMIN_DATABASE_URL"]
    if not admin:
        return server
    owner, served = make_url(admin), make_url(server)
    if owner.get_backend_name() != "postgresql" or served.get_backend_name() != "postgresql":
        raise LedgerError(
            "LUNARIA_ADMIN_DATABASE_URL is for PostgreSQL; on SQLite the database file's "
            "owner is the boundary (see docs/operations.md)"
        )
    if _database(owner) != _database(served):
        raise LedgerError(
            "LUNARIA_ADMIN_DATABASE_URL and LUNARIA_DATABASE_URL must name the same database "
            "(host, port, name and options), as two roles"
        )
    return admin


def _database(url: URL) -> tuple[Any, ...]:
    """The database a URL names, whoever connects and through which driver."""
    return url.host, url.port, url.database, url.query


def server_role() -> tuple[str, str | None] | None:
    """The server's role and password, from LUNARIA_DATABASE_URL, when ``lunaria init`` runs
    as another (LUNARIA_ADMIN_DATABASE_URL); None otherwise."""
    if not current_app.config["ADMIN_DATABASE_URL"]:
        return None
    served = make_url(current_app.config["DATABASE_URL"])
    if not served.username:
        raise LedgerError("LUNARIA_DATABASE_URL must name the server's role (postgresql://ROLE@…)")
    return served.username, served.password


def get_engine(*, create: bool = False) -> Engine:
    """The deployment's engine. ``create`` is for ``lunaria init`` alone: a SQLite database
    file (and its folder) that does not exist yet is created rather than refused."""
    return _state(create=create).engine


def require_current_schema() -> None:
    """``before_request``: a database holding a log whose schema is older than this code
    (upgraded without ``lunaria init``) is refused with SchemaOutdated rather than served
    half-working. Checked until found current, then not again: a schema never goes back."""
    state = _state()
    if state.schema_current or stored_origin(state.engine) is None:
        return  # (no log yet: each page and endpoint says so its own way)
    if not migrate.is_current(state.engine):
        raise SchemaOutdated(
            "the database schema is older than this Lunaria: run `lunaria init` to upgrade it"
        )
    state.schema_current = True


def get_clock() -> Clock:
    return _state().clock


def key_file() -> Path:
    return Path(current_app.config["KEY_FILE"])


def data_key_file() -> Path:
    """LUNARIA_DATA_KEY_FILE, or ``data.key`` beside the signing key (the key files together)."""
    configured: str | None = current_app.config["DATA_KEY_FILE"]
    return Path(configured) if configured else key_file().with_name("data.key")


def get_vault() -> Vault:
    """The vault that seals private records (its key file is made by ``lunaria init``)."""
    state = _state()
    if state.vault is None:
        state.vault = Vault(data_key_file())
    return state.vault


def key_files() -> KeyFiles:
    _state()  # (on the command line, the first use checks the database and the key together)
    return KeyFiles(key_file())


def load_signer() -> Signer | None:
    """The log's signing key, or None where this process only reads."""
    return key_files().signer()


def stored_origin(engine: Engine) -> str | None:
    """The origin of the log in the database, or None before ``lunaria init``."""
    if not inspect(engine).has_table("log_head"):
        return None
    try:
        with read_transaction(engine) as conn:
            return load_head(conn).origin
    except NotFound:
        return None


def configured_origin() -> str:
    """The origin to create a log with: LUNARIA_ORIGIN or the default."""
    origin: str | None = current_app.config["ORIGIN"]
    return origin or DEFAULT_ORIGIN


def get_log() -> Log:
    """The deployment's log, opened with its signing key when the key file is present."""
    state = _state()
    if state.log is None:
        origin = stored_origin(state.engine)
        if origin is None:
            raise NotFound("the log has not been created: run `lunaria init`")
        wanted = current_app.config["ORIGIN"]
        if wanted and wanted != origin:
            raise LedgerError(f"LUNARIA_ORIGIN is {wanted!r} but the database holds {origin!r}")
        files = key_files()
        state.log = Log(
            state.engine,
            origin,
            signer=files.signer(),
            retiring=files.retiring_signer(),
            fingerprint_key=files.fingerprint_key(),
            clock=state.clock,
            policy=CheckpointPolicy(
                every_entries=int(current_app.config["CHECKPOINT_EVERY"]),
                interval=timedelta(seconds=float(current_app.config["CHECKPOINT_INTERVAL"])),
            ),
        )
    return state.log


def get_fund() -> Fund:
    """The fund's commands over the deployment's log (one per process: it caches the lunar
    schedule it has read)."""
    state = _state()
    if state.fund is None:
        state.fund = Fund(get_log(), get_vault())
    return state.fund
