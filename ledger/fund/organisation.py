"""Pools (with their urgency policy, :mod:`ledger.fund.urgency`), collectives and their
members."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, select

from ledger.errors import NotFound, RuleViolation
from ledger.fund.money import check_currency, parse_amount
from ledger.fund.rules import (
    Actor,
    Outcome,
    check_pseudonym,
    check_public_text,
    check_slug,
    cycle_json,
    require_role,
)
from ledger.fund.schema import (
    collectives,
    members,
    pools,
)
from ledger.fund.state import require_collective
from ledger.fund.transaction import FundCommands, FundTransaction
from ledger.fund.urgency import DEFAULT_DEADLINE_HOURS, checked_policy
from ledger.log.entry import Entry


class OrganisationCommands(FundCommands):
    """Commands on pools, collectives and members."""

    def create_pool(
        self,
        actor: Actor,
        *,
        slug: str,
        name: str,
        currencies: Sequence[str],
        fast_lane_cap: Mapping[str, str] | None = None,
        cycle_allowance: Mapping[str, str] | None = None,
        urgent_deadline_hours: int = DEFAULT_DEADLINE_HOURS,
        overdue_approval: bool = False,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin")
        check_slug(slug, "slug")
        policy = checked_policy(urgent_deadline_hours, overdue_approval)
        check_public_text(name, "name", 200, one_line=True)
        if not currencies or len(set(currencies)) != len(currencies):
            raise RuleViolation(
                "currencies must be a non-empty list without repeats", "invalid_currencies"
            )
        for currency in currencies:
            check_currency(currency)
        caps = _amount_map(fast_lane_cap or {}, currencies, "fast_lane_cap")
        allowances = _amount_map(cycle_allowance or {}, currencies, "cycle_allowance")
        request = {
            "slug": slug,
            "name": name,
            "currencies": list(currencies),
            "fast_lane_cap": caps,
            "cycle_allowance": allowances,
            **policy.data(),
        }

        def command(tx: FundTransaction) -> Entry:
            if tx.conn.execute(select(pools.c.slug).where(pools.c.slug == slug)).first():
                raise RuleViolation(f"a pool {slug!r} exists already", code="duplicate")
            return tx.emit("pool_created", {**request, "cycle": cycle_json(tx.cycle)}, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def register_collective(
        self,
        actor: Actor,
        *,
        slug: str,
        name: str,
        quorum: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin")
        check_slug(slug, "slug")
        check_public_text(name, "name", 200, one_line=True)
        if quorum is not None and (isinstance(quorum, bool) or not 1 <= quorum <= 1000):
            raise RuleViolation("quorum must be a whole number from 1 to 1000", "invalid_quorum")
        request = {"slug": slug, "name": name, "quorum": quorum}

        def command(tx: FundTransaction) -> Entry:
            exists = tx.conn.execute(select(collectives.c.slug).where(collectives.c.slug == slug))
            if exists.first():
                raise RuleViolation(f"a collective {slug!r} exists already", code="duplicate")
            return tx.emit("collective_registered", request, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def add_member(
        self,
        actor: Actor,
        collective: str,
        *,
        member: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin")
        check_pseudonym(member, "member")
        request = {"collective": collective, "member": member}

        def command(tx: FundTransaction) -> Entry:
            require_collective(tx.conn, collective)
            if tx.conn.execute(select(members.c.id).where(members.c.id == member)).first():
                raise RuleViolation(f"a member {member!r} exists already", code="duplicate")
            return tx.emit("member_added", request, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def remove_member(
        self, actor: Actor, collective: str, member: str, idempotency_key: str | None = None
    ) -> Outcome:
        require_role(actor, "admin")
        request = {"collective": collective, "member": member}

        def command(tx: FundTransaction) -> Entry:
            row = tx.conn.execute(
                select(members).where(
                    and_(members.c.id == member, members.c.collective == collective)
                )
            ).one_or_none()
            if row is None or not row.active:
                raise NotFound(f"no active member {member!r} in {collective!r}")
            return tx.emit("member_removed", request, actor.id)

        return self._run(actor, idempotency_key, request, command)


def _amount_map(values: Mapping[str, Any], currencies: Sequence[str], field: str) -> dict[str, str]:
    result = {}
    for currency, amount in values.items():
        if currency not in currencies:
            raise RuleViolation(
                f"{field} names {currency!r}, which the pool does not take", "invalid_currencies"
            )
        result[currency] = str(parse_amount(amount, currency, f"{field}.{currency}"))
    return result
