"""``lunaria worker``: checkpoints, handovers at new moons, notifications and anchoring.

The loop is :class:`ledger.fund.Worker`'s; this command only wires it to the configuration:
the deployment's fund and log (``LUNARIA_CHECKPOINT_INTERVAL`` says how old the unsigned tail
may grow), the worker lock of its database, and anchoring when it is configured
(``LUNARIA_ANCHOR_EVERY_HOURS``: as ``lunaria anchor --if-due``; ``LUNARIA_ANCHOR_AT_HANDOVER``:
as ``lunaria rotate``), and the notifications: events derived from the log and delivered to
webhooks and mail (``LUNARIA_WEBHOOK_*``, ``LUNARIA_NOTIFY_*``, ``LUNARIA_SMTP_*``). It runs
until SIGTERM or Ctrl-C, saying on stderr what it does.
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from types import FrameType

import click
from flask import current_app
from flask.cli import with_appcontext

from api import anchor_cli, db, mirrors, witness
from api.command_errors import reports_ledger_errors
from api.notifications import delivery_settings
from ledger.fund import ChainScan, Fund, Periodic, Worker, notification_tasks, worker_lock
from ledger.log import Cosigning, Log, MirrorSync, parse_ts


def _say(line: str) -> None:
    click.echo(f"worker: {line}", err=True)


def _anchoring(log: Log) -> Periodic | None:
    """The periodic anchoring task, if ``LUNARIA_ANCHOR_EVERY_HOURS`` is set; a missing
    setting that it needs stops the command at once, not at the first anchor."""
    every = anchor_cli.anchor_every()
    if every is None:
        return None
    from contracts.anchoring import anchor_latest, latest_anchor_entry

    # (the same settings, checked the same way, as `lunaria anchor`)
    contract, account = anchor_cli.configured_contract(), anchor_cli.configured_account()

    def last_done() -> datetime | None:
        last = latest_anchor_entry(log)
        return None if last is None else parse_ts(last.ts)

    def anchor() -> str:
        return anchor_latest(log, contract, account).summary()

    return Periodic("anchoring", every, last_done, anchor)


def _chain_scan(fund: Fund) -> list[ChainScan]:
    """Recording on-chain donations, if ``LUNARIA_CHAIN_RPC_URL`` names a node."""
    url = current_app.config.get("CHAIN_RPC_URL")
    if not url:
        return []
    from contracts.anchor import connect

    confirmations = int(current_app.config.get("CHAIN_CONFIRMATIONS", 12))
    return [ChainScan(fund, connect(str(url)), confirmations)]


def _cosigning(log: Log) -> list[Cosigning]:
    """Collecting cosignatures, if ``LUNARIA_WITNESSES`` names witnesses (see api.witness)."""
    endpoints = witness.configured_witnesses()
    if not endpoints:
        return []
    return [Cosigning(log, endpoints, witness.configured_quorum(len(endpoints)))]


def _mirroring() -> MirrorSync:
    """Syncing every mirrored log (``lunaria mirror add``, also one added while the worker
    runs) each LUNARIA_MIRROR_INTERVAL seconds: one small read when there is none."""
    return MirrorSync(mirrors.get_mirrors(), mirrors.mirror_interval())


@click.command("worker")
@with_appcontext
@reports_ledger_errors
def worker_command() -> None:
    """Sign checkpoints, hand over at new moons, notify and anchor when due, until stopped.

    One worker acts at a time: another one started on the same database waits, and takes
    over if the first stops or dies. Stop it with Ctrl-C or SIGTERM.
    """
    fund = db.get_fund()
    log = fund.log
    anchoring = _anchoring(log)
    at_handover = bool(current_app.config["ANCHOR_AT_HANDOVER"])
    worker = Worker(
        fund,
        worker_lock(log.engine),
        # (cosigning first: a checkpoint signed in this step is sent out in this step; then
        # notifications: an event found in this step is delivered in this step)
        tasks=[
            *_cosigning(log),
            *notification_tasks(fund, delivery_settings()),
            *([anchoring] if anchoring else []),
            *_chain_scan(fund),
            _mirroring(),
        ],
        after_handover=anchor_cli.anchor_after_rotation if at_handover else None,
        say=_say,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        _say(f"stopping ({signal.Signals(signum).name})")
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    interval = log.policy.interval.total_seconds()
    _say(
        f"started: checkpoints within {interval:g} s, handovers at new moons, notifications, "
        + ("anchoring every " + str(anchoring.every) if anchoring else "no periodic anchoring")
    )
    try:
        worker.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say("stopped")


COMMANDS: tuple[click.Command, ...] = (worker_command,)
