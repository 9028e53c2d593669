"""``lunaria chain receive|receivers|held`` and ``lunaria ingest chain``: a pool's receiving
addresses on EVM chains, and the scan that records the transfers to them as donations
(:mod:`ledger.fund.chain`).

Settings: ``LUNARIA_CHAIN_RPC_URL`` (the node's JSON-RPC URL, or ``--rpc``) and
``LUNARIA_CHAIN_CONFIRMATIONS`` (default 12).
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from api import db
from api.command_errors import fail, reports_ledger_errors
from ledger.fund import (
    OPERATOR,
    Receiver,
    add_receiver,
    held_transfers,
    ingest_chain,
    receivers,
)

NATIVE = "native"


@click.group("chain")
def chain_group() -> None:
    """Where pools receive crypto: addresses per pool, currency and chain."""


@chain_group.command("receive")
@click.argument("pool")
@click.argument("currency")
@click.option("--chain-id", type=int, required=True)
@click.option("--token", help="The ERC-20 contract (omit with --native).")
@click.option("--native", is_flag=True, help="The chain's own coin.")
@click.option("--decimals", type=int, required=True, help="The token's (or coin's) decimals.")
@click.option("--address", required=True, help="The fund's receiving address.")
@click.option("--from-block", type=int, default=0, help="The first block to read.")
@with_appcontext
@reports_ledger_errors
def receive_command(
    pool: str,
    currency: str,
    chain_id: int,
    token: str | None,
    native: bool,
    decimals: int,
    address: str,
    from_block: int,
) -> None:
    """POOL receives CURRENCY on a chain at an address (public: the fund's own)."""
    if native == (token is not None):
        fail("error: give either --token ADDRESS or --native")
    receiver = Receiver(
        pool, currency, chain_id, NATIVE if native else str(token), decimals, address, from_block
    )
    saved = add_receiver(db.get_engine(), OPERATOR, receiver, db.get_clock().now())
    click.echo(f"{saved.pool} receives {saved.currency} on chain {saved.chain_id}")
    click.echo(f"at {saved.address}")


@chain_group.command("receivers")
@with_appcontext
@reports_ledger_errors
def receivers_command() -> None:
    """List the receiving addresses."""
    for r in receivers(db.get_engine()):
        click.echo(
            f"{r.pool} {r.currency} chain {r.chain_id} {r.token} ({r.decimals} decimals) "
            f"{r.address} from block {r.from_block}"
        )


@chain_group.command("held")
@click.argument("pool")
@with_appcontext
@reports_ledger_errors
def held_command(pool: str) -> None:
    """Transfers to POOL held for review (not a whole number of minor units)."""
    for row in held_transfers(db.get_engine(), pool):
        click.echo(f"block {row.block} {row.reference} {row.value} units: {row.reason}")


@click.group("ingest")
def ingest_group() -> None:
    """Record money that arrived on its own rails."""


@ingest_group.command("chain")
@click.option("--rpc", help="The node's JSON-RPC URL (default: LUNARIA_CHAIN_RPC_URL).")
@click.option("--max-blocks", type=int, help="Read at most this many blocks.")
@with_appcontext
@reports_ledger_errors
def ingest_chain_command(rpc: str | None, max_blocks: int | None) -> None:
    """Record the confirmed transfers to the receiving addresses, each once."""
    url = rpc or current_app.config.get("CHAIN_RPC_URL")
    if not url:
        fail("error: LUNARIA_CHAIN_RPC_URL is not set; it names the chain node's JSON-RPC URL")
    confirmations = int(current_app.config.get("CHAIN_CONFIRMATIONS", 12))
    # (web3 loads only for the commands that read a chain, as for anchoring: tests/test_cli.py)
    from web3.exceptions import Web3Exception

    from contracts.anchor import connect

    try:
        report = ingest_chain(
            db.get_fund(), connect(str(url)), confirmations=confirmations, max_blocks=max_blocks
        )
    except (OSError, Web3Exception) as exc:  # (requests' errors are OSErrors)
        fail(
            f"error: the chain node at {url} failed: {type(exc).__name__}; nothing more was "
            "recorded, run it again"
        )
    click.echo(
        f"chain {report.chain_id}: blocks {report.first_block}..{report.last_block} read, "
        f"{len(report.recorded)} donations recorded, {len(report.held)} held for review, "
        f"{report.seen_before} recorded before"
    )


COMMANDS: tuple[click.Command, ...] = (chain_group, ingest_group)
