"""Custody commands: the roster of collectives that hold a pool in turn, and ``rotate``,
which appends every handover that is due.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.errors import RuleViolation
from ledger.fund.handover import apply_due_handovers
from ledger.fund.rules import Actor, Outcome, require_role
from ledger.fund.state import custodian_of, pool_row, require_collective
from ledger.fund.transaction import FundCommands, FundTransaction
from ledger.log.entry import Entry


class CustodyCommands(FundCommands):
    """Commands on custody: who holds each pool, and the handovers due."""

    def rotate(self) -> list[Entry]:
        """Append every due handover (cron-safe: runs serialised on the log's write lock)."""
        with self.log.writer() as writer:
            tx = FundTransaction(writer, self.boundaries, self.vault)
            handovers = apply_due_handovers(tx)
            tx.persist_schedule()
            return handovers

    def set_roster(
        self,
        actor: Actor,
        pool: str,
        order: Sequence[str],
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Custody order; applies from the next cycle (at once for a pool with no custodian)."""
        require_role(actor, "admin")
        if not order or len(set(order)) != len(order):
            raise RuleViolation(
                "a roster is a non-empty list of distinct collectives", code="invalid_roster"
            )
        request = {"pool": pool, "collectives": list(order)}

        def command(tx: FundTransaction) -> Entry:
            pool_row(tx.conn, pool)
            for slug in order:
                require_collective(tx.conn, slug, code="unknown_collective")
            now = tx.cycle.number
            first = custodian_of(tx.conn, pool, now) is None
            data = {
                **request,
                "effective_cycle": now if first else now + 1,
                "custodian_now": order[0] if first else None,
            }
            return tx.emit("roster_set", data, actor.id)

        return self._run(actor, idempotency_key, request, command)
