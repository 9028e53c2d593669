"""The ``lunaria`` command line: Lunaria's commands and nothing of Flask's own.

:data:`main` (the ``lunaria`` script) is a plain click group: no ``--app``, ``run``, ``shell`` or
``routes``. Each command that needs the app gets it from ``with_appcontext``, which creates it
with :func:`api.create_app` on first use; that app refuses a database, log or key file that is
not there (:func:`api.db.for_the_command_line`). :func:`init_app` registers the same commands on
``app.cli`` too, for ``app.test_cli_runner()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from sqlalchemy import Engine, text

from api import (
    anchor_cli,
    chain_cli,
    create_app,
    db,
    import_cli,
    public_url,
    publish_cli,
    reconcile_cli,
    serve_cli,
    worker_cli,
)
from api.command_errors import fail, reports_ledger_errors
from api.mirror_cli import COMMANDS as MIRROR_COMMANDS
from api.mirror_cli import ensure_mirror_key
from api.redact_cli import redact_command
from api.reports_cli import report_command
from api.witness_cli import COMMANDS as WITNESS_COMMANDS
from api.witness_cli import ensure_witness_key
from api.workspace_cli import COMMANDS as WORKSPACE_COMMANDS
from api.workspace_cli import demo_invitation, demo_treasurer_invitation
from exports import cache as report_cache
from ledger import migrate
from ledger.errors import LedgerError
from ledger.fund import (
    ROLES,
    Fund,
    Vault,
    access,
    check_replay,
    erase,
    index_references,
    load_demo,
    public_text,
    recipient_commitment,
    seal_legacy_records,
    start_of_demo,
    webhooks,
)
from ledger.log import (
    DEFAULT_DOUBLE_SIGNING,
    Log,
    ManualClock,
    Signer,
    Verifier,
    VerifyReport,
    parse_ts,
    rotate_key,
    verify_database,
    verify_export,
)


@click.command("init")
@click.option("--demo", is_flag=True, help="On a new database, also load six cycles of demo.")
@with_appcontext
@reports_ledger_errors
def init_command(demo: bool) -> None:
    """Create the schema, the signing key (mode 0600), the log and its first checkpoint."""
    public_url.configured()  # a malformed LUNARIA_PUBLIC_URL is refused before anything is made
    engine = db.get_engine(create=True)
    migrate.upgrade(engine)
    origin = db.stored_origin(engine) or db.configured_origin()
    path = db.key_file()
    if path.exists():
        signer = Signer.load(path)
        if signer.name != origin:
            fail(f"key file {path} signs for {signer.name!r}, but the log is {origin!r}")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate(origin)
        signer.save(path)
        click.echo(f"created signing key {path}")
    vault = _init_vault(engine)
    ensure_witness_key(origin)
    ensure_mirror_key(origin)
    _init_public_url(engine)
    now = db.get_clock().now()
    # The demo's history is written by a clock that walks from six cycles ago up to now.
    demo_clock = ManualClock(start_of_demo(now)) if demo else None
    fingerprint_key = db.key_files().fingerprint_key()
    clock = demo_clock or db.get_clock()
    log = Log(engine, origin, signer=signer, clock=clock, fingerprint_key=fingerprint_key)
    if log.create():
        click.echo(f"created log {origin}")
        if demo_clock is not None:
            summary = load_demo(Fund(log, vault), demo_clock, now)
            click.echo(f"loaded the demo: {summary.entries} entries over {summary.cycles} cycles")
            invited = demo_invitation(engine)
            if invited:
                click.echo(f"try the workspace: open {invited} (single use, 72 hours)")
                treasurer = demo_treasurer_invitation(engine)
                click.echo(f"or as a treasurer: open {treasurer} (single use, 72 hours)")
    indexed = index_references(engine, vault, log.fingerprint_key)
    if indexed:
        click.echo(f"indexed the bank references of {indexed} earlier donations")
    _init_server_role(engine)
    head = log.head()
    click.echo(f"log {origin}: size {head.size}, verifier key {signer.verifier().vkey()}")


def _init_server_role(engine: Engine) -> None:
    """Run as the owner (LUNARIA_ADMIN_DATABASE_URL): the server's role may append to the log
    but not rewrite it (ledger.migrate.grant_server_role)."""
    role = db.server_role()
    if role is None:
        return
    created = migrate.grant_server_role(engine, *role)
    click.echo(
        f"{'created' if created else 'granted'} the server's database role {role[0]}: "
        "SELECT and INSERT on the log, SELECT, INSERT, UPDATE and DELETE on the rest"
    )


def _init_public_url(engine: Engine) -> None:
    """Store LUNARIA_PUBLIC_URL (or, the first time, the default) and forget the reports kept
    until now: they may print the old URL, or come from an older Lunaria."""
    wanted, kept = public_url.configured(), public_url.stored(engine)
    url = wanted or kept or public_url.DEFAULT_PUBLIC_URL
    if url != kept:
        public_url.store(engine, url)
        click.echo(f"public URL {url}" + (f" (was {kept})" if kept else ""))
    report_cache.clear(engine)


def _init_vault(engine: Engine) -> Vault:
    """The data key file (made if there is none and nothing is sealed yet), and the private
    records and webhook secrets of an older Lunaria sealed with it."""
    path = db.data_key_file()
    if not path.exists():
        with engine.connect() as conn:
            sealed = conn.execute(text("SELECT count(*) FROM private_records")).scalar()
            hooks = conn.execute(text("SELECT count(*) FROM webhook_secrets")).scalar()
        if sealed or hooks:
            fail(
                f"the data key file {path} is missing, but the database holds {sealed} sealed "
                f"private records and {hooks} sealed webhook secrets: restore it from the "
                "backup of the key files"
            )
        Vault.create(path)
        click.echo(f"created data key {path}")
    vault = db.get_vault()
    moved = seal_legacy_records(engine, vault)
    if moved:
        click.echo(f"sealed {moved} private records written before sealing")
    hooks = webhooks.seal_legacy_secrets(engine, vault)
    if hooks:
        click.echo(f"sealed the signing secrets of {hooks} webhook endpoints kept in the clear")
    return vault


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as lines:
        yield from lines


@click.command("verify")
@click.option("--export", "export_file", type=click.Path(exists=True, path_type=Path))
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, path_type=Path))
@click.option("--vkey", "vkeys", multiple=True, help="Verifier key string (repeatable).")
@click.option("--origin", help="Expected log origin (default: the checkpoint's).")
@with_appcontext
@reports_ledger_errors
def verify_command(
    export_file: Path | None,
    checkpoint_file: Path | None,
    vkeys: tuple[str, ...],
    origin: str | None,
) -> None:
    """Verify the whole log (or, with --export, an exported log with no database at all)."""
    verifiers = [Verifier.from_vkey(v) for v in vkeys]
    if export_file is not None:
        if checkpoint_file is None or not verifiers:
            raise click.UsageError("--export needs --checkpoint FILE and --vkey VKEY")
        note = checkpoint_file.read_text(encoding="utf-8")
        report = verify_export(_read_lines(export_file), note, verifiers, origin)
        click.echo(report.summary())
        return
    click.echo(_verify_stored(verifiers).summary())
    click.echo(check_replay(db.get_engine()).summary())


def _verify_stored(verifiers: list[Verifier]) -> VerifyReport:
    log = db.get_log()
    # Without --vkey: every key this deployment signed with (the key file and its history).
    verifiers = verifiers or db.key_files().trusted_verifiers()
    if not verifiers:
        raise LedgerError("no --vkey given and no key file to take the verifier key from")
    return verify_database(log.engine, verifiers)


@click.command("checkpoint")
@click.option("--new", is_flag=True, help="Sign a checkpoint of the current tree first.")
@with_appcontext
@reports_ledger_errors
def checkpoint_command(new: bool) -> None:
    """Print the latest signed checkpoint."""
    log = db.get_log()
    latest = log.checkpoint_now() if new else log.latest_checkpoint()
    if latest is None:
        fail("the log has no checkpoint yet")
    click.echo(latest.note, nl=False)


@click.command("vkey")
@with_appcontext
@reports_ledger_errors
def vkey_command() -> None:
    """Print the verifier key string of the log's signing key."""
    signer = db.load_signer()
    if signer is None:
        fail(f"no key file at {db.key_file()}")
    click.echo(signer.verifier().vkey())


@click.command("export")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
@reports_ledger_errors
def export_command(output: Path) -> None:
    """Write every entry, one per line, as exactly the canonical bytes that were hashed."""
    log = db.get_log()  # (before the file is made: no empty file is left if there is no log)
    count = 0
    with output.open("wb") as out:
        for raw in log.iter_raw():
            out.write(raw + b"\n")
            count += 1
    click.echo(f"wrote {count} entries to {output}")


@click.command("rotate")
@with_appcontext
@reports_ledger_errors
def rotate_command() -> None:
    """Append every due handover and a checkpoint (safe from cron, and twice at once)."""
    handovers = db.get_fund().rotate()
    for entry in handovers:
        data = entry.data
        click.echo(
            f"seq {entry.seq}: {data['pool']} cycle {data['cycle']['number']}: "
            f"{data['from'] or '-'} -> {data['to'] or '-'}"
        )
    if not handovers:
        click.echo("no handover due")
    elif current_app.config["ANCHOR_AT_HANDOVER"]:
        click.echo(anchor_cli.anchor_after_rotation())


@click.command("replay")
@click.option("--check", is_flag=True, required=True, help="Rebuild and compare (the only mode).")
@with_appcontext
@reports_ledger_errors
def replay_command(check: bool) -> None:
    """Rebuild the projections from the log in a scratch database and compare."""
    click.echo(check_replay(db.get_engine()).summary())


@click.command("erase")
@click.argument("commitment", required=False)
@click.option("--grant", type=int, help="Erase a grant's recipient details, by the grant's id.")
@with_appcontext
@reports_ledger_errors
def erase_command(commitment: str | None, grant: int | None) -> None:
    """Delete the private record behind a public commitment (or a grant's recipient details)
    for good: the vault key is rotated, so no copy of it can be opened; every hash stays
    valid. Public text (a display name, a purpose, a note, a reason) is not a private record:
    ``lunaria redact`` removes it."""
    if (commitment is None) == (grant is None):
        fail("give a COMMITMENT or --grant ID")
    if grant is not None:
        commitment = recipient_commitment(db.get_engine(), grant)
        if commitment is None:
            click.echo(f"grant {grant} has no recipient details kept", err=True)
            raise SystemExit(1)
    assert commitment is not None
    public = public_text.texts_beside_record(db.get_engine(), commitment)
    if erase(db.get_log(), db.get_vault(), commitment):
        click.echo(f"erased the private record of {commitment} (private data only)")
        for field, shown in public:
            click.echo(
                f"its entry still shows a public {field} (commitment {shown}): erase does not "
                f"remove public text; run `lunaria redact {shown} --reason subject_request`"
            )
    else:
        click.echo(f"no private record for {commitment}", err=True)
        raise SystemExit(1)


key_group = AppGroup("key", help="The log's signing key.")


@key_group.command("rotate")
@click.option(
    "--double-signing-days",
    type=click.IntRange(min=1),
    default=DEFAULT_DOUBLE_SIGNING.days,
    show_default=True,
    help="Days during which checkpoints carry both the old and the new signature.",
)
@with_appcontext
@reports_ledger_errors
def key_rotate_command(double_signing_days: int) -> None:
    """Replace the signing key: a key_rotated entry, then a period of double signing.

    Restart the server afterwards so that it signs with the new key.
    """
    files = db.key_files()
    entry = rotate_key(db.get_log(), files, timedelta(days=double_signing_days))
    click.echo(f"key_rotated at seq {entry.seq}: the signing key is now {entry.data['vkey']}")
    click.echo(
        f"{files.retiring} co-signs until {entry.data['double_signing_until']}; "
        f"every verifier key used so far is listed in {files.history}"
    )


token_group = AppGroup("token", help="API tokens: random, shown once, stored hashed.")


def _initialised_engine() -> Engine:
    engine = db.get_engine()
    if db.stored_origin(engine) is None:
        fail("the log has not been created: run `lunaria init` first")
    return engine


@token_group.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--collective", help="Member tokens: the member's collective.")
@click.option("--member", help="Member tokens: the member's pseudonym.")
@click.option("--label", help="A private note on whose token this is.")
@click.option("--expires-in-days", type=click.IntRange(min=1), help="Default: never.")
@with_appcontext
@reports_ledger_errors
def token_create_command(
    role: str,
    collective: str | None,
    member: str | None,
    label: str | None,
    expires_in_days: int | None,
) -> None:
    """Create a token and print it (stdout, alone): it is shown only this once."""
    engine = _initialised_engine()
    now = db.get_clock().now()
    expires = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    token_id, token = access.create_token(
        engine,
        role,
        collective,
        member,
        label=label or f"{role} token from the command line",
        expires=expires,
        now=now,
    )
    click.echo(token)
    click.echo(f"created {role} token {token_id}; store it now, it is not shown again", err=True)


@token_group.command("list")
@with_appcontext
@reports_ledger_errors
def token_list_command() -> None:
    """List tokens: id, role, member, state and label (never secrets)."""
    now = db.get_clock().now()
    for info in access.list_tokens(_initialised_engine()):
        if info.revoked:
            state = f"revoked {info.revoked}"
        elif info.expires and parse_ts(info.expires) <= now:
            state = f"expired {info.expires}"
        else:
            state = "active" + (f" until {info.expires}" if info.expires else "")
        who = f"{info.member}@{info.collective}" if info.member else "-"
        click.echo(f"{info.id}  {info.role:<9}  {who}  {state}  {info.label}")


@token_group.command("revoke")
@click.argument("token_id")
@with_appcontext
@reports_ledger_errors
def token_revoke_command(token_id: str) -> None:
    """Revoke a token by its id (the 16 hex digits after ``lun_``)."""
    info = access.revoke_token(_initialised_engine(), token_id, db.get_clock().now())
    click.echo(f"token {info.id} revoked at {info.revoked}")


COMMANDS: tuple[click.Command, ...] = (
    init_command,
    verify_command,
    checkpoint_command,
    vkey_command,
    export_command,
    rotate_command,
    replay_command,
    erase_command,
    redact_command,
    token_group,
    key_group,
    *publish_cli.COMMANDS,
    anchor_cli.anchor_group,
    report_command,
    *worker_cli.COMMANDS,
    *WITNESS_COMMANDS,
    *MIRROR_COMMANDS,
    *serve_cli.COMMANDS,
    *WORKSPACE_COMMANDS,
    *import_cli.COMMANDS,
    *chain_cli.COMMANDS,
    *reconcile_cli.COMMANDS,
)


def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)


def _command_line_app() -> Flask:
    app = create_app()
    db.for_the_command_line(app)
    return app


class _Lunaria(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # What with_appcontext loads the app from (Flask's FlaskGroup does the same).
        extra.setdefault(
            "obj",
            ScriptInfo(
                create_app=_command_line_app, set_debug_flag=False, load_dotenv_defaults=False
            ),
        )
        return super().make_context(info_name, args, parent, **extra)


@click.group("lunaria", cls=_Lunaria, commands=COMMANDS)
@click.version_option(package_name="lunaria", prog_name="lunaria")
def main() -> None:
    """Lunaria: a transparent micro-grant ledger.

    The database and the signing key are LUNARIA_DATABASE_URL (default
    sqlite:///var/lunaria.db) and LUNARIA_KEY_FILE (default var/log.key), relative to the
    current folder.
    """
