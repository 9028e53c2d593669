"""``lunaria`` commands for the public side of the log: tiles, receipts and audits.

``publish DIR``        write the C2SP tlog-tiles of the latest checkpoint to a directory, and
                       beside them a static site a donor can read (:mod:`api.mirror`)
``receipt SEQ``        print the receipt of an entry (JSON, or ``--format tlog-proof``)
``verify-receipt F``   verify a receipt offline (either format) with trusted ``--vkey``s
``audit SOURCE``       verify a published directory or a running Lunaria from the outside

A tlog-proof written by ``lunaria receipt`` carries the entry's bytes in its ``extra`` line;
for a proof without one, pass the entry (its exact canonical bytes) with ``--entry FILE``.
A JSON receipt of an entry with public texts carries them (``texts``); ``verify-receipt``
checks each text served against the commitment in the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from api import db, mirror
from api.command_errors import reports_ledger_errors
from ledger.fund import audit, public_text
from ledger.log import (
    Verifier,
    WitnessQuorum,
    build_receipt,
    parse_receipt,
    publish,
    verify_receipt,
)

FORMATS = ("json", "tlog-proof")


def _verifiers(vkeys: tuple[str, ...]) -> list[Verifier]:
    if not vkeys:
        raise click.UsageError("give at least one trusted --vkey")
    return [Verifier.from_vkey(v) for v in vkeys]


def _witnesses(vkeys: tuple[str, ...], quorum: int | None) -> WitnessQuorum | None:
    """The witnesses that must have cosigned (--witness, --witness-quorum; default: all)."""
    if not vkeys:
        if quorum:
            raise click.UsageError("--witness-quorum needs at least that many --witness keys")
        return None
    return WitnessQuorum.of(vkeys, quorum)


def witness_options(command: Any) -> Any:
    """``--witness VKEY`` (repeatable) and ``--witness-quorum K``."""
    command = click.option(
        "--witness-quorum",
        type=click.IntRange(min=0),
        help="How many of the --witness keys must have cosigned (default: all of them).",
    )(command)
    return click.option(
        "--witness",
        "witness_vkeys",
        multiple=True,
        help="A trusted witness's verifier key (repeatable): c2sp.org/tlog-cosignature.",
    )(command)


@click.command("publish")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@with_appcontext
@reports_ledger_errors
def publish_command(directory: Path) -> None:
    """Write checkpoint, tiles and entry bundles of the latest checkpoint to DIRECTORY, and
    a static site a donor can read beside them (index.html, verify.html, vkey.txt)."""
    report = publish(db.get_log(), directory)
    click.echo(report.summary())
    click.echo(mirror.write_site(directory, report).summary())


@click.command("receipt")
@click.argument("seq", type=click.IntRange(min=0))
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="json")
@with_appcontext
@reports_ledger_errors
def receipt_command(seq: int, output_format: str) -> None:
    """Print the receipt of entry SEQ against the latest signed checkpoint."""
    receipt = public_text.receipt_with_texts(db.get_engine(), build_receipt(db.get_log(), seq))
    if output_format == "json":
        click.echo(receipt.dumps(), nl=False)
    else:
        click.echo(receipt.to_tlog_proof().serialise(), nl=False)


@click.command("verify-receipt")
@click.argument("receipt_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vkey", "vkeys", multiple=True, help="Trusted verifier key (repeatable).")
@click.option(
    "--entry",
    "entry_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The entry's canonical bytes (a trailing newline is ignored, as in `lunaria export` "
    "lines), for a tlog-proof without an extra line.",
)
@click.option("--origin", help="Expected log origin (default: the checkpoint's).")
@witness_options
@reports_ledger_errors
def verify_receipt_command(
    receipt_file: Path,
    vkeys: tuple[str, ...],
    entry_file: Path | None,
    origin: str | None,
    witness_vkeys: tuple[str, ...],
    witness_quorum: int | None,
) -> None:
    """Verify a receipt (JSON or c2sp.org/tlog-proof) offline; no database needed. The
    public texts a JSON receipt carries are checked against the entry's commitments."""
    verifiers = _verifiers(vkeys)
    receipt = parse_receipt(receipt_file.read_bytes())
    entry = None if entry_file is None else entry_file.read_bytes().removesuffix(b"\n")
    witnesses = _witnesses(witness_vkeys, witness_quorum)
    verified = verify_receipt(receipt, verifiers, entry=entry, origin=origin, witnesses=witnesses)
    texts = getattr(receipt, "texts", None) or {}  # (a JSON receipt's; no tlog-proof has any)
    found = verified.entry
    checked = public_text.check_texts(found.seq, found.kind, found.data, texts)
    click.echo(verified.summary())
    for line in public_text.describe_checked(checked):
        click.echo(line)


@click.command("audit")
@click.argument("source")
@click.option("--vkey", "vkeys", multiple=True, help="Trusted verifier key (repeatable).")
@click.option("--origin", help="Expected log origin (default: the checkpoint's).")
@witness_options
@reports_ledger_errors
def audit_command(
    source: str,
    vkeys: tuple[str, ...],
    origin: str | None,
    witness_vkeys: tuple[str, ...],
    witness_quorum: int | None,
) -> None:
    """Audit SOURCE: a `lunaria publish` directory or the base URL of a running Lunaria."""
    witnesses = _witnesses(witness_vkeys, witness_quorum)
    report = audit(source, _verifiers(vkeys), origin=origin, witnesses=witnesses)
    click.echo(report.summary())


COMMANDS: tuple[click.Command, ...] = (
    publish_command,
    receipt_command,
    verify_receipt_command,
    audit_command,
)
