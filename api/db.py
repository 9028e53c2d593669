"""The database and the log for the app: created on first use, shared by requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import Engine, inspect

from ledger import migrate
from ledger.clock import Clock, SystemClock
from ledger.db import make_engine, read_transaction
from ledger.errors import LedgerError, NotFound, SchemaOutdated
from ledger.fund import Fund
from ledger.keys import KeyFiles
from ledger.log import CheckpointPolicy, Log, load_head
from ledger.notes import Signer

DEFAULT_ORIGIN = "localhost/lunaria"


@dataclass
class LedgerState:
    engine: Engine
    clock: Clock
    log: Log | None = None
    fund: Fund | None = None
    schema_current: bool = False


def init_app(app: Flask) -> None:
    app.extensions["lunaria"] = None


def _state() -> LedgerState:
    state: LedgerState | None = current_app.extensions["lunaria"]
    if state is None:
        state = LedgerState(
            engine=make_engine(current_app.config["DATABASE_URL"]),
            clock=current_app.config["CLOCK"] or SystemClock(),
        )
        current_app.extensions["lunaria"] = state
    return state


def get_engine() -> Engine:
    return _state().engine


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


def key_files() -> KeyFiles:
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
        state.fund = Fund(get_log())
    return state.fund
