"""``lunaria anchor``: put the log's checkpoints on an EVM chain and check them there.

``anchor deploy``      deploy a LedgerAnchor for this log; prints its address
``anchor``             anchor the latest checkpoint (idempotent; ``--if-due`` for cron)
``anchor verify``      check every on-chain anchor against the log; exit 1 on the first mismatch

Configuration (``LUNARIA_*`` environment variables, read into ``app.config``):

``ANCHOR_RPC_URL``      the chain node's JSON-RPC URL
``ANCHOR_CONTRACT``     the LedgerAnchor address (printed by ``anchor deploy``)
``ANCHOR_KEY_FILE``     the owner's private key (0x-hex, mode 0600); transactions are signed
                        locally with it, never by the node
``ANCHOR_EVERY_HOURS``  the periodic schedule honoured by ``anchor --if-due``
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from api import db
from api.command_errors import reports_ledger_errors
from contracts import DEFAULT_RECEIPT_TIMEOUT, DEFAULT_RPC_TIMEOUT
from contracts.errors import AnchorError

# web3 is imported by the commands that use it, not here: every command and the web app
# import this module, and web3 costs them half a second and raises the recursion limit.
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from contracts.anchor import AnchorContract

_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_RECEIPT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the transaction to be mined.",
)


# --- configuration ----------------------------------------------------------------------------


def _setting(name: str, purpose: str) -> str:
    """A required ``ANCHOR_*`` setting, or a one-line error naming the variable."""
    value = current_app.config.get(name)
    if value is None or str(value).strip() == "":
        raise AnchorError(f"LUNARIA_{name} is not set; {purpose}")
    return str(value).strip()


def _rpc_url() -> str:
    return _setting("ANCHOR_RPC_URL", "it names the chain node's JSON-RPC URL")


def configured_account() -> LocalAccount:
    """The anchoring account of ``LUNARIA_ANCHOR_KEY_FILE`` (also the worker's)."""
    from contracts.anchor import load_account

    path = _setting("ANCHOR_KEY_FILE", "it names the file holding the anchoring account's key")
    return load_account(path)


def configured_contract() -> AnchorContract:
    """The LedgerAnchor of ``LUNARIA_ANCHOR_CONTRACT`` on ``LUNARIA_ANCHOR_RPC_URL``."""
    from contracts.anchor import AnchorContract, connect

    address = _setting(
        "ANCHOR_CONTRACT", "deploy one with `lunaria anchor deploy` and set it to the address"
    )
    return AnchorContract(connect(_rpc_url(), timeout=DEFAULT_RPC_TIMEOUT), address)


def anchor_every() -> timedelta | None:
    """``ANCHOR_EVERY_HOURS`` as a period, or None when no periodic schedule is configured."""
    value = current_app.config.get("ANCHOR_EVERY_HOURS")
    if value is None or value == "":
        return None
    try:
        hours = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        hours = math.nan
    if not (math.isfinite(hours) and hours > 0):
        raise AnchorError(
            f"LUNARIA_ANCHOR_EVERY_HOURS must be a positive number of hours, got {value!r}"
        )
    return timedelta(hours=hours)


# --- commands ---------------------------------------------------------------------------------


@click.group("anchor", cls=AppGroup, invoke_without_command=True)
@click.option(
    "--if-due",
    is_flag=True,
    help="Only anchor when LUNARIA_ANCHOR_EVERY_HOURS have passed since the last anchor.",
)
@_TIMEOUT
@with_appcontext
@click.pass_context
@reports_ledger_errors
def anchor_group(ctx: click.Context, if_due: bool, timeout: float) -> None:
    """Anchor the latest signed checkpoint on chain, then record it in the log.

    Safe to repeat: a checkpoint already anchored is not sent again, and one anchored by a run
    that stopped before recording it is recorded from the chain.
    """
    if ctx.invoked_subcommand is not None:
        return
    from contracts.anchoring import anchor_due, anchor_latest

    log = db.get_log()
    if if_due:
        every = anchor_every()
        if every is None:
            click.echo("not due: LUNARIA_ANCHOR_EVERY_HOURS is not set")
            return
        if not anchor_due(log, every, db.get_clock().now()):
            click.echo(f"not due: the last anchor is less than {every} old")
            return
    result = anchor_latest(log, configured_contract(), configured_account(), timeout=timeout)
    click.echo(result.summary())


def anchor_after_rotation() -> str:
    """Anchor the handover's checkpoint; a chain failure is reported, the handover stands."""
    from contracts.anchoring import anchor_after_handover

    try:
        anchored = anchor_after_handover(db.get_log(), configured_contract(), configured_account())
        return anchored.summary()
    except AnchorError as exc:
        return f"not anchored (the next run retries): {exc.message}"


@anchor_group.command("deploy")
@_TIMEOUT
@reports_ledger_errors
def deploy_command(timeout: float) -> None:
    """Deploy a LedgerAnchor for this log, owned by the key file's account; print its address."""
    origin = db.get_log().origin
    from contracts.anchor import connect, deploy

    w3 = connect(_rpc_url(), timeout=DEFAULT_RPC_TIMEOUT)
    address = deploy(w3, configured_account(), origin, timeout=timeout)
    click.echo(address)
    click.echo(
        f"deployed LedgerAnchor for {origin}: set LUNARIA_ANCHOR_CONTRACT={address}", err=True
    )


@anchor_group.command("verify")
@reports_ledger_errors
def verify_command() -> None:
    """Check every on-chain anchor against the log: roots, sizes and consistency."""
    from contracts.verification import verify_anchors

    click.echo(verify_anchors(db.get_log(), configured_contract()).summary())
