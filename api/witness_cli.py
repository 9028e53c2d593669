"""``lunaria witness``: the logs this instance witnesses, and its witness key.

``witness trust VKEY``  witness the log whose verifier key this is (its name is the origin)
``witness list``        the logs witnessed: origin, size last cosigned, when, refusals
``witness vkey``        this instance's witness verifier key (give it to the logs' operators)

The witness key (type 0x04, c2sp.org/tlog-cosignature) is made by ``lunaria init``
(:func:`ensure_witness_key`), beside the log's signing key unless LUNARIA_WITNESS_KEY_FILE
says otherwise.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from api import witness
from api.command_errors import fail, reports_ledger_errors
from ledger.log import Cosigner

witness_group = AppGroup("witness", help="This instance as a witness of other logs.")


def ensure_witness_key(origin: str) -> Cosigner:
    """The witness key, made (mode 0600) if there is none yet: for ``lunaria init``."""
    path = witness.witness_key_file()
    if path.exists():
        return Cosigner.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cosigner = Cosigner.generate(witness.witness_name(origin))
    cosigner.save(path)
    click.echo(f"created witness key {path}")
    return cosigner


@witness_group.command("trust")
@click.argument("vkey")
@with_appcontext
@reports_ledger_errors
def trust_command(vkey: str) -> None:
    """Witness the log whose verifier key is VKEY (its name is the log's origin)."""
    verifier = witness.get_witness().trust(vkey)
    click.echo(f"witnessing {verifier.name} (key {verifier.key_id.hex()})")


@witness_group.command("list")
@with_appcontext
@reports_ledger_errors
def list_command() -> None:
    """The logs witnessed: origin, size last cosigned and when, refusals, trusted keys."""
    for log in witness.get_witness().logs():
        when = log.ts if log.size else "never"
        click.echo(f"{log.origin}  size {log.size}  cosigned {when}  refusals {log.refusals}")
        for vkey in log.vkeys:
            click.echo(f"  {vkey}")


@witness_group.command("vkey")
@with_appcontext
@reports_ledger_errors
def vkey_command() -> None:
    """Print this instance's witness verifier key."""
    cosigner = witness.load_cosigner()
    if cosigner is None:
        fail(f"no witness key at {witness.witness_key_file()}: run `lunaria init`")
    click.echo(cosigner.verifier().vkey())


COMMANDS: tuple[click.Command, ...] = (witness_group,)
