"""``lunaria invite COLLECTIVE MEMBER``: a one-time invitation link to the workspace, so the
first members of a new fund can be brought in from the shell (members invite each other in
the workspace after that). ``lunaria invite --role treasurer NAME`` (or ``admin``) creates a
staff account for NAME (a private label, never in the log) and prints its first invitation:
the first admin of a new fund comes in this way, and invites others from the admin page.
The link is printed alone on stdout, on the public URL
(LUNARIA_PUBLIC_URL), where the member's passkey will work; it is single use and expires
after 72 hours. ``lunaria init --demo`` prints one for a member of a custodian, and one for a
demo treasurer account.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import Engine

from api import db
from api.command_errors import reports_ledger_errors
from api.workspace import invitation_url
from ledger.fund import STAFF_ROLES, create_invitation, create_staff_account, views

OPERATOR = "operator:cli"


@click.command("invite")
@click.option(
    "--role",
    type=click.Choice(("member", *STAFF_ROLES)),
    default="member",
    show_default=True,
    help="treasurer or admin: a new staff account named NAME (then give no MEMBER)",
)
@click.argument("collective", metavar="COLLECTIVE|NAME")
@click.argument("member", required=False)
@with_appcontext
@reports_ledger_errors
def invite_command(role: str, collective: str, member: str | None) -> None:
    """Print a one-time invitation URL (72 hours) for MEMBER of COLLECTIVE, or with
    --role treasurer|admin for a new staff account of NAME."""
    now = db.get_clock().now()
    if role != "member":
        if member is not None:
            raise click.UsageError("a staff invitation takes one NAME, no MEMBER")
        account, secret = create_staff_account(db.get_engine(), None, role, collective, now)
        click.echo(invitation_url(secret))
        click.echo(
            f"single use, valid 72 hours, for the {role} account {account.id} ({collective}); "
            f"it acts as {role}:{account.id}",
            err=True,
        )
        return
    if member is None:
        raise click.UsageError("name the COLLECTIVE and one of its MEMBERs")
    secret = create_invitation(db.get_engine(), collective, member, by=OPERATOR, now=now)
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


def demo_treasurer_invitation(engine: Engine) -> str:
    """A treasurer account for the demo ("Demo treasurer") and its invitation link."""
    _, secret = create_staff_account(
        engine, None, "treasurer", "Demo treasurer", db.get_clock().now()
    )
    return invitation_url(secret)


COMMANDS: tuple[click.Command, ...] = (invite_command,)
