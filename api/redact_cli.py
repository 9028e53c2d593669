"""``lunaria redact COMMITMENT --reason CODE``: remove a public text, log that it was removed.

The text and salt behind a commitment of entry data version 2 (a donor's display name, a
grant's purpose, a vote's note, a cancellation or correction reason) stop being served
anywhere, and a ``text_redacted`` entry by the actor ``operator`` names the commitment and the
reason code, never the text. The same as ``POST /api/v1/redactions`` with an admin token.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from api import db
from api.command_errors import reports_ledger_errors
from ledger.fund import OPERATOR, REASONS


@click.command("redact")
@click.argument("commitment")
@click.option("--reason", type=click.Choice(REASONS), required=True, help="Why, as a code.")
@with_appcontext
@reports_ledger_errors
def redact_command(commitment: str, reason: str) -> None:
    """Redact the public text behind COMMITMENT; every hash and proof stays valid."""
    outcome = db.get_fund().redact_text(OPERATOR, commitment, reason)
    entry = db.get_log().entry(outcome.seq)
    click.echo(
        f"redacted the {entry.data['field']} of entry {entry.data['entry']} ({commitment}): "
        f"text_redacted at seq {outcome.seq}, reason {reason}"
    )
