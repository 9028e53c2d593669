"""``lunaria reconcile POOL [--rpc URL]``: the pool's books against its last bank statements
and (with a node: ``--rpc`` or ``LUNARIA_CHAIN_RPC_URL``) its receiving addresses' balances,
per currency, with the lines that explain a difference (:mod:`ledger.fund.reconcile`). Exit
status 0 when every currency checked balances, 3 when one does not."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from api import db
from api.command_errors import reports_ledger_errors
from ledger.fund import format_major, reconcile

NOT_BALANCED = 3


@click.command("reconcile")
@click.argument("pool")
@click.option("--rpc", help="A chain node (default: LUNARIA_CHAIN_RPC_URL; none: bank only).")
@with_appcontext
@reports_ledger_errors
def reconcile_command(pool: str, rpc: str | None) -> None:
    """Compare POOL's ledger balance per currency with the bank and the chain."""
    url = rpc or current_app.config.get("CHAIN_RPC_URL")
    w3 = None
    if url:
        from contracts.anchor import connect  # (web3 loads only when a chain is read)

        w3 = connect(str(url))
    result = reconcile(db.get_engine(), pool, db.get_clock().now(), w3)
    for check in result.currencies:
        c = check.currency

        def money(amount: int | None, currency: str = c) -> str:
            return "-" if amount is None else f"{format_major(amount, currency)} {currency}"

        sides = f"ledger {money(check.ledger)}, bank {money(check.bank)}"
        click.echo(f"{c}: {sides}, chain {money(check.chain)}")
        if check.bank_statement:
            click.echo(f"  bank: {check.bank_statement}")
        if check.outside is None:
            click.echo("  nothing outside to compare with")
            continue
        verdict = "balanced" if check.balanced else f"unexplained {money(check.unexplained)}"
        click.echo(f"  difference {money(check.difference)}: {verdict}")
        for line in check.explanations:
            click.echo(f"  {line.what} {money(line.amount)}: {line.detail}")
    verdict = "balanced" if result.balanced else "NOT balanced"
    click.echo(f"{pool} reconciled at {result.ts}: {verdict}")
    if not result.balanced:
        sys.exit(NOT_BALANCED)


COMMANDS: tuple[click.Command, ...] = (reconcile_command,)
