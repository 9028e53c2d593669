"""Handovers: at every new moon custody of each pool passes to the next collective of its
roster, with a closing statement of the books (opening + donations - disbursements +
corrections), the response figures of the cycle's urgent grants (data version 2), and the
grants still open passed on to the incoming custodian, the outgoing custodian's votes on them
voided.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from ledger.errors import LedgerError
from ledger.fund.rules import cycle_json
from ledger.fund.schema import (
    cycles,
    grants,
    votes,
)
from ledger.fund.state import balance, custodian_of, flows_of
from ledger.fund.urgency import cycle_response
from ledger.log.clock import parse_ts
from ledger.log.db import Read, read_sql
from ledger.log.entry import Entry

if TYPE_CHECKING:
    from ledger.fund.transaction import FundTransaction

HANDOVER_DATA_VERSION = 2
"""``custody_transferred`` data version 2: ``closed.response`` states how fast the closing
cycle's urgent grants were answered (:mod:`ledger.fund.urgency`)."""


_DUE = "SELECT slug, current_cycle FROM pools WHERE current_cycle < ? ORDER BY slug"


def due_handovers_read(cycle: int) -> Read:
    """The query for the pools whose current cycle is before ``cycle`` (see
    :func:`apply_due_handovers`), to send ahead with the opening of the transaction."""
    return _DUE, (cycle,)


def apply_due_handovers(
    tx: FundTransaction, read: tuple[int, list[Any]] | None = None
) -> list[Entry]:
    """Append every handover due by now, oldest first, for every pool. ``read``: the rows of
    :func:`due_handovers_read` for a cycle, read already in this transaction (used if that
    is the transaction's cycle)."""
    if read is not None and read[0] == tx.cycle.number:
        due = read[1]
    else:
        due = read_sql(tx.conn, *due_handovers_read(tx.cycle.number))
    if due:  # past cycles are about to be written down: from every persisted boundary
        tx.schedule = tx.boundaries.schedule(tx.conn, tx.now, reread=True)
        tx.cycle = tx.schedule.cycle_at(tx.now)
    handovers = []
    for slug, current in due:
        for number in range(current + 1, tx.cycle.number + 1):
            handovers.append(_hand_over(tx, slug, number))
    if handovers:
        tx.writer.request_checkpoint()
    return handovers


def _hand_over(tx: FundTransaction, pool: str, number: int) -> Entry:
    closing_cycle = tx.conn.execute(
        select(cycles).where(and_(cycles.c.pool == pool, cycles.c.number == number - 1))
    ).one()
    statement = _statement(tx, pool, closing_cycle)
    outgoing = closing_cycle.custodian
    incoming = custodian_of(tx.conn, pool, number)
    undecided = [
        gid
        for (gid,) in tx.conn.execute(
            select(grants.c.id)
            .where(and_(grants.c.pool == pool, grants.c.status == "proposed"))
            .order_by(grants.c.id)
        )
    ]
    voided: list[int] = []
    if outgoing != incoming and undecided:
        voided = [
            seq
            for (seq,) in tx.conn.execute(
                select(votes.c.seq)
                .where(
                    and_(
                        votes.c.grant_id.in_(undecided),
                        votes.c.void == 0,
                        votes.c.collective == outgoing,
                    )
                )
                .order_by(votes.c.seq)
            )
        ]
    approved = [
        gid
        for (gid,) in tx.conn.execute(
            select(grants.c.id)
            .where(and_(grants.c.pool == pool, grants.c.status == "approved"))
            .order_by(grants.c.id)
        )
    ]
    response = cycle_response(
        tx.conn,
        pool,
        number - 1,
        parse_ts(closing_cycle.starts_at),
        parse_ts(closing_cycle.ends_at),
    )
    data = {
        "pool": pool,
        "cycle": cycle_json(tx.schedule.cycle(number)),
        "closed": {"number": number - 1, "statement": statement, "response": response.data()},
        "from": outgoing,
        "to": incoming,
        "carried_over": undecided,
        "committed_grants": approved,
        "voided_votes": voided,
        "v": HANDOVER_DATA_VERSION,
    }
    return tx.emit("custody_transferred", data, "scheduler")


def _statement(tx: FundTransaction, pool: str, closing_cycle: Any) -> dict[str, dict[str, str]]:
    """Roll-forward per currency: opening + donations - disbursements + corrections."""
    opening: dict[str, str] = json.loads(closing_cycle.opening)
    flows = flows_of(tx.conn, pool, closing_cycle.number)
    statement = {}
    for currency in sorted(set(opening) | set(flows)):
        flow = flows.get(currency, {"donations": 0, "disbursements": 0, "corrections": 0})
        start = int(opening.get(currency, "0"))
        closing = start + flow["donations"] - flow["disbursements"] + flow["corrections"]
        available = balance(tx.conn, pool, currency, "available")
        committed = balance(tx.conn, pool, currency, "committed")
        if closing != available + committed:
            raise LedgerError(
                f"{pool} {currency}: roll-forward gives {closing} but the books hold "
                f"{available + committed}; refusing to hand over inconsistent books"
            )
        statement[currency] = {
            "opening": str(start),
            "donations": str(flow["donations"]),
            "disbursements": str(flow["disbursements"]),
            "corrections": str(flow["corrections"]),
            "closing": str(closing),
            "committed": str(committed),
            "available": str(available),
        }
    return statement
