"""``lunaria invite COLLECTIVE MEMBER``: a one-time invitation link to the workspace, so the
first members of a new fund can be brought in from the shell (members invite each other in
the workspace after that). The link is printed alone on stdout, on the public URL
(LUNARIA_PUBLIC_URL), where the member's passkey will work; it is single use and expires
after 72 hours. ``lunaria init --demo`` prints one for a member of a custodian.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import Engine

from api import db
from api.command_errors import reports_ledger_errors
from api.workspace import invitation_url
from ledger.fund import create_invitation, views

OPERATOR = "operator:cli"


@click.command("invite")
@click.argument("collective")
@click.argument("member")
@with_appcontext
@reports_ledger_errors
def invite_command(collective: str, member: str) -> None:
    """Print a one-time invitation URL (72 hours) for MEMBER of COLLECTIVE."""
    secret = create_invitation(
        db.get_engine(), collective, member, by=OPERATOR, now=db.get_clock().now()
    )
    click.echo(invitation_url(secret))
    click.echo(f"single use, valid 72 hours, for {member} of {collective}", err=True)


def demo_invitation(engine: Engine) -> str | None:
    """An invitation for the first member of the collective holding the first pool now:
    the demo's way into the workspace. None without pools or custodians."""
    now = db.get_clock().now()
    for pool in views.list_pools(engine, now):
        if pool.custodian is not None:
            members = views.collective_detail(engine, pool.custodian).members
            if members:
                secret = create_invitation(engine, pool.custodian, members[0], by=OPERATOR, now=now)
                return invitation_url(secret)
    return None


COMMANDS: tuple[click.Command, ...] = (invite_command,)
