"""``lunaria mirror``: the logs this instance mirrors.

``mirror add URL --vkey VKEY``  mirror the log served at URL (its tiles under URL/tlog/) and
                                signed by VKEY: the first copy, all or nothing
``mirror list``                 the logs mirrored: origin, size copied, when checked, incidents
``mirror sync [ORIGIN]``        bring one log (its origin or origin hash) or all up to date;
                                ``--from URL`` reads it from another server (a split view
                                shows as an inconsistency there)
``mirror vkey``                 this instance's mirror verifier key

The mirror key (type 0x04, c2sp.org/tlog-cosignature, distinct from the witness key) is made
by ``lunaria init`` (:func:`ensure_mirror_key`), beside the log's signing key unless
LUNARIA_MIRROR_KEY_FILE says otherwise. ``lunaria worker`` syncs every mirror each
LUNARIA_MIRROR_INTERVAL seconds. A split view exits with status 2 after saying so.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from api import mirrors
from api.command_errors import fail, reports_ledger_errors
from ledger.log import Cosigner, SplitView

mirror_group = AppGroup("mirror", help="This instance as a mirror of other logs.")


def ensure_mirror_key(origin: str) -> Cosigner:
    """The mirror key, made (mode 0600) if there is none yet: for ``lunaria init``."""
    path = mirrors.mirror_key_file()
    if path.exists():
        return Cosigner.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cosigner = Cosigner.generate(mirrors.mirror_name(origin))
    cosigner.save(path)
    click.echo(f"created mirror key {path}")
    return cosigner


@mirror_group.command("add")
@click.argument("url")
@click.option("--vkey", required=True, help="The log's verifier key (its name is the origin).")
@with_appcontext
@reports_ledger_errors
def add_command(url: str, vkey: str) -> None:
    """Mirror the log served at URL (a Lunaria's base URL) and signed by VKEY."""
    click.echo(mirrors.get_mirrors().add(url, vkey).summary())


@mirror_group.command("list")
@with_appcontext
@reports_ledger_errors
def list_command() -> None:
    """The logs mirrored: origin, size copied, when last checked, incidents, where from."""
    for log in mirrors.get_mirrors().logs():
        click.echo(
            f"{log.origin}  size {log.size}  checked {log.checked or 'never'}  "
            f"incidents {log.incidents}  {log.url}"
        )
        click.echo(f"  /mirror/{log.origin_hash}/  {log.vkey}")
        if log.last_error:
            click.echo(f"  last error {log.last_error_at}: {log.last_error}")


@mirror_group.command("sync")
@click.argument("origin", required=False)
@click.option("--from", "source", help="Read the log from this base URL instead of its own.")
@with_appcontext
@reports_ledger_errors
def sync_command(origin: str | None, source: str | None) -> None:
    """Bring ORIGIN (an origin or its hash; default: every log mirrored) up to date."""
    found = mirrors.get_mirrors()
    if origin is None:
        if source:
            raise click.UsageError("--from needs the ORIGIN it serves")
        lines = found.sync_all()
        for line in lines:
            click.echo(line, err=line.startswith("error:"))
        if any(line.startswith("error:") for line in lines):
            raise SystemExit(1)
        return
    try:
        click.echo(found.sync(origin, source).summary())
    except SplitView as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from exc


@mirror_group.command("vkey")
@with_appcontext
@reports_ledger_errors
def vkey_command() -> None:
    """Print this instance's mirror verifier key."""
    cosigner = mirrors.load_mirror_key()
    if cosigner is None:
        fail(f"no mirror key at {mirrors.mirror_key_file()}: run `lunaria init`")
    click.echo(cosigner.verifier().vkey())


COMMANDS: tuple[click.Command, ...] = (mirror_group,)
