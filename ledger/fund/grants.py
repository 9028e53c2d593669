"""Grants and votes: proposals, quorum and fast-lane decisions, disbursements,
cancellations and corrections.

A grant's purpose, a vote's note and the reason of a cancellation or correction are public
text: the entry (data version 2) commits to each, and the text goes to ``public_texts`` in the
same transaction (:mod:`ledger.fund.public_text`), so it can be redacted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ledger.errors import RuleViolation
from ledger.fund.money import check_currency, move, move_json, parse_amount, postings_json
from ledger.fund.privacy import PrivateRecord, commitment, keep_private, new_salt
from ledger.fund.public_text import DATA_VERSION, PublicText, keep_public
from ledger.fund.rules import (
    URGENCIES,
    VOTES,
    Actor,
    Outcome,
    check_pseudonym,
    check_public_text,
    check_text,
    member_actor,
    require_role,
)
from ledger.fund.schema import (
    donations,
)
from ledger.fund.state import (
    active_members,
    balance,
    custodian_of,
    flows_of,
    grant_row,
    open_votes,
    pool_row,
    quorum_of,
)
from ledger.fund.transaction import FundCommands, FundTransaction
from ledger.fund.urgency import OVERDUE_LANE, pool_policy, require_overdue
from ledger.log.clock import format_ts, parse_ts
from ledger.log.entry import Entry

DECISION_DATA_VERSION = 2
"""``grant_decided`` data version 2: the lane ``overdue`` (with ``deadline``) exists."""


class GrantCommands(FundCommands):
    """Commands on grants: propose, vote, disburse, cancel, correct."""

    def propose_grant(
        self,
        actor: Actor,
        pool: str,
        proposal: Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "member", "applicant", "admin")
        currency = check_currency(proposal.get("currency"))
        amount = parse_amount(proposal.get("amount"), currency)
        purpose = check_public_text(proposal.get("purpose"), "purpose", 2000, one_line=False)
        urgency = proposal.get("urgency", "normal")
        if urgency not in URGENCIES:
            raise RuleViolation(f"urgency must be one of {URGENCIES}", "invalid_urgency")
        recipient = check_pseudonym(proposal.get("recipient"), "recipient")
        details = proposal.get("recipient_details")
        if details is not None:
            check_text(details, "recipient_details", 2000)
        request = {"pool": pool, **dict(proposal)}

        def command(tx: FundTransaction) -> Entry:
            row = pool_row(tx.conn, pool)
            if currency not in json.loads(row.currencies):
                raise RuleViolation(
                    f"pool {pool!r} does not take {currency}", "currency_not_accepted"
                )
            text = PublicText.new(purpose)
            data = {
                "pool": pool,
                "amount": str(amount),
                "currency": currency,
                "purpose": text.field(),
                "urgency": urgency,
                "recipient": recipient,
                "cycle": tx.cycle.number,
                "v": DATA_VERSION,
            }
            entry = tx.emit("grant_proposed", data, actor.id)
            keep_public(tx.conn, [(text, entry.seq, "purpose")])
            if details is not None:
                salt = new_salt()
                payload = {"grant": entry.seq, "recipient_details": details}
                record = PrivateRecord(
                    commitment(salt, details), "recipient", salt, payload, entry.seq
                )
                keep_private(tx.conn, tx.vault, [record])
            return entry

        return self._run(actor, idempotency_key, request, command)

    def cast_vote(
        self,
        actor: Actor,
        grant_id: int,
        *,
        vote: str,
        note: str | None = None,
        fast_lane: bool = False,
        overdue: bool = False,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Vote on a grant. ``fast_lane``: approve an urgent grant alone within the cap and
        the cycle's allowance; ``overdue``: approve alone an urgent grant past its pool's
        deadline, within the cap, where the pool's policy allows it (:mod:`ledger.fund.urgency`)."""
        require_role(actor, "member")
        if vote not in VOTES:
            raise RuleViolation(f"vote must be one of {VOTES}", "invalid_vote")
        if note is not None:
            check_public_text(note, "note", 500, one_line=False)
        if (fast_lane or overdue) and vote != "approve":
            raise RuleViolation("the fast and overdue lanes only approve", "invalid_vote")
        request = {"grant": grant_id, "vote": vote, "note": note, "fast_lane": fast_lane}
        if overdue:  # only then, so the requests remembered before keep their fingerprint
            request["overdue"] = True

        def command(tx: FundTransaction) -> Entry:
            voting = _Voting(tx, actor, grant_row(tx.conn, grant_id))
            return voting.cast(vote, note, "overdue" if overdue else fast_lane)

        return self._run(actor, idempotency_key, request, command)

    def disburse(
        self,
        actor: Actor,
        grant_id: int,
        *,
        payment_reference: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "member", "treasurer")
        check_text(payment_reference, "payment_reference", 200)
        request = {"grant": grant_id, "payment_reference": payment_reference}

        def command(tx: FundTransaction) -> Entry:
            grant = grant_row(tx.conn, grant_id)
            if actor.role == "member":
                _require_custodian(tx, actor, grant.pool)
            if grant.status != "approved":
                raise RuleViolation(
                    f"grant {grant_id} is {grant.status}; only approved grants are disbursed",
                    code="grant_not_approved",
                )
            amount = int(grant.amount)
            salt = new_salt()
            reference = commitment(salt, payment_reference)
            data = {
                "grant": grant_id,
                "pool": grant.pool,
                "amount": grant.amount,
                "currency": grant.currency,
                "reference": reference,
                "cycle": tx.cycle.number,
                "postings": move_json(grant.pool, grant.currency, amount, "committed", "grants"),
            }
            entry = tx.emit("grant_disbursed", data, actor.id)
            payload = {"grant": grant_id, "payment_reference": payment_reference}
            record = PrivateRecord(reference, "payment", salt, payload, entry.seq)
            keep_private(tx.conn, tx.vault, [record])
            return entry

        return self._run(actor, idempotency_key, request, command)

    def cancel(
        self,
        actor: Actor,
        grant_id: int,
        *,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin", "member", "applicant")
        check_public_text(reason, "reason", 500, one_line=False)
        request = {"grant": grant_id, "reason": reason}

        def command(tx: FundTransaction) -> Entry:
            grant = grant_row(tx.conn, grant_id)
            if actor.role != "admin" and actor.id != grant.proposer:
                _require_custodian(tx, actor, grant.pool)
            if grant.status not in ("proposed", "approved"):
                raise RuleViolation(
                    f"grant {grant_id} is {grant.status}; it cannot be cancelled",
                    code="grant_not_open",
                )
            postings = []
            if grant.status == "approved":
                postings = move(
                    grant.pool, grant.currency, int(grant.amount), "committed", "available"
                )
            text = PublicText.new(reason)
            data = {
                "grant": grant_id,
                "pool": grant.pool,
                "amount": grant.amount,
                "currency": grant.currency,
                "reason": text.field(),
                "was": grant.status,
                "cycle": tx.cycle.number,
                "postings": postings_json(postings),
                "v": DATA_VERSION,
            }
            entry = tx.emit("grant_cancelled", data, actor.id)
            keep_public(tx.conn, [(text, entry.seq, "reason")])
            return entry

        return self._run(actor, idempotency_key, request, command)

    def correct(
        self,
        actor: Actor,
        *,
        corrects: int,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Reverse a mistaken donation or disbursement with a new entry; nothing is edited."""
        require_role(actor, "treasurer", "admin")
        check_public_text(reason, "reason", 500, one_line=False)
        request = {"corrects": corrects, "reason": reason}

        def command(tx: FundTransaction) -> Entry:
            target = self.log.entry(corrects, conn=tx.conn)
            data = _reversal(tx, target)
            text = PublicText.new(reason)
            data.update(reason=text.field(), v=DATA_VERSION)
            entry = tx.emit("correction", data, actor.id)
            keep_public(tx.conn, [(text, entry.seq, "reason")])
            return entry

        return self._run(actor, idempotency_key, request, command)


def _require_custodian(tx: FundTransaction, actor: Actor, pool: str) -> str:
    custodian = custodian_of(tx.conn, pool, tx.cycle.number)
    if actor.collective is None or actor.collective != custodian:
        raise RuleViolation(
            f"only members of the current custodian ({custodian or 'none yet'}) of {pool!r} "
            f"can do this in cycle {tx.cycle.number}",
            code="not_custodian",
        )
    active = active_members(tx.conn, custodian)
    if actor.member not in active:
        raise RuleViolation(f"member {actor.member!r} is not active", code="not_custodian")
    return custodian


class _Voting:
    """The vote rules: custodians only, once each, never on your own proposal, quorum."""

    def __init__(self, tx: FundTransaction, actor: Actor, grant: Any) -> None:
        self.tx, self.actor, self.grant = tx, actor, grant

    def cast(self, vote: str, note: str | None, alone: bool | str) -> Entry:
        """``alone``: False (quorum), True (fast lane) or ``"overdue"`` (overdue lane)."""
        tx, grant = self.tx, self.grant
        if grant.status != "proposed":
            raise RuleViolation(f"grant {grant.id} is {grant.status}", code="grant_not_open")
        collective = _require_custodian(tx, self.actor, grant.pool)
        if grant.proposer == self.actor.id:
            raise RuleViolation(
                "the proposer cannot vote on their own proposal", "proposer_cannot_vote"
            )
        cast = open_votes(tx.conn, grant.id)
        if any(v.member == self.actor.member for v in cast):
            raise RuleViolation(
                f"{self.actor.member} has already voted on grant {grant.id}", "already_voted"
            )
        if alone == OVERDUE_LANE:
            decision: dict[str, Any] | None = self._overdue()
        else:
            decision = self._fast_lane() if alone else self._quorum(cast, vote)
        data: dict[str, Any] = {
            "grant": grant.id,
            "pool": grant.pool,
            "member": self.actor.member,
            "collective": collective,
            "vote": vote,
            "fast_lane": bool(alone),  # the member approves alone: fast or overdue lane
            "cycle": tx.cycle.number,
        }
        text = None if note is None else PublicText.new(note)
        if text is not None:
            data["note"] = text.field()
        data["v"] = DATA_VERSION
        entry = tx.emit("vote_cast", data, self.actor.id)
        if text is not None:
            keep_public(tx.conn, [(text, entry.seq, "note")])
        if decision is not None:
            tx.emit("grant_decided", decision, self.actor.id)
        return entry

    def _base(self, decision: str, lane: str) -> dict[str, Any]:
        grant = self.grant
        postings: list[Any] = []
        if decision == "approved":
            amount = int(grant.amount)
            available = balance(self.tx.conn, grant.pool, grant.currency, "available")
            if amount > available:
                raise RuleViolation(
                    f"approving {grant.amount} {grant.currency} would overdraw {grant.pool}: "
                    f"{available} available",
                    code="insufficient_funds",
                )
            postings = move(grant.pool, grant.currency, amount, "available", "committed")
        return {
            "grant": grant.id,
            "pool": grant.pool,
            "amount": grant.amount,
            "currency": grant.currency,
            "decision": decision,
            "lane": lane,
            "cycle": self.tx.cycle.number,
            "postings": postings_json(postings),
            "v": DECISION_DATA_VERSION,
        }

    def _fast_lane(self) -> dict[str, Any]:
        tx, grant = self.tx, self.grant
        if grant.urgency != "urgent":
            raise RuleViolation("the fast lane is for urgent grants only", "fast_lane_not_urgent")
        pool = pool_row(tx.conn, grant.pool)
        cap = int(json.loads(pool.fast_lane_cap).get(grant.currency, "0"))
        allowance = int(json.loads(pool.cycle_allowance).get(grant.currency, "0"))
        amount = int(grant.amount)
        if amount > cap:
            raise RuleViolation(
                f"{grant.amount} {grant.currency} is over the fast-lane cap of {cap}",
                "fast_lane_cap_exceeded",
            )
        used = flows_of(tx.conn, grant.pool, tx.cycle.number).get(grant.currency, {})
        left = allowance - used.get("fast_lane_used", 0)
        if amount > left:
            raise RuleViolation(
                f"{grant.amount} {grant.currency} is over what is left of this cycle's "
                f"fast-lane allowance ({left})",
                "fast_lane_allowance_exceeded",
            )
        decision = self._base("approved", "fast_lane")
        decision.update(
            {
                "approvals": [self.actor.member],
                "rejections": [],
                "allowance_left": str(left - amount),
            }
        )
        return decision

    def _overdue(self) -> dict[str, Any]:
        """Past the pool's deadline, one member approves within the cap (no allowance)."""
        tx, grant = self.tx, self.grant
        if grant.urgency != "urgent":
            raise RuleViolation(
                "the overdue lane is for urgent grants only", "fast_lane_not_urgent"
            )
        proposed = parse_ts(grant.proposed_ts)
        deadline = require_overdue(pool_policy(tx.conn, grant.pool), proposed, tx.now)
        cap = int(json.loads(pool_row(tx.conn, grant.pool).fast_lane_cap).get(grant.currency, "0"))
        if int(grant.amount) > cap:
            raise RuleViolation(
                f"{grant.amount} {grant.currency} is over the fast-lane cap of {cap}",
                "fast_lane_cap_exceeded",
            )
        decision = self._base("approved", OVERDUE_LANE)
        decision.update(
            {"approvals": [self.actor.member], "rejections": [], "deadline": format_ts(deadline)}
        )
        return decision

    def _quorum(self, cast: list[Any], vote: str) -> dict[str, Any] | None:
        custodian = self.actor.collective
        assert custodian is not None
        ballots = [(v.member, v.vote) for v in cast] + [(self.actor.member, vote)]
        approvals = sorted(m for m, v in ballots if v == "approve")
        rejections = sorted(m for m, v in ballots if v == "reject")
        quorum = quorum_of(self.tx.conn, custodian)
        members_now = active_members(self.tx.conn, custodian)
        eligible = [m for m in members_now if member_actor(m) != self.grant.proposer]
        if len(approvals) >= quorum:
            decision = self._base("approved", "quorum")
        elif len(eligible) - len(rejections) < quorum:
            decision = self._base("rejected", "quorum")
        else:
            return None
        decision.update({"approvals": approvals, "rejections": rejections, "quorum": quorum})
        return decision


def _reversal(tx: FundTransaction, target: Entry) -> dict[str, Any]:
    d = target.data
    if target.kind == "donation_recorded":
        corrected = tx.conn.execute(
            select(donations.c.corrected_seq).where(donations.c.seq == target.seq)
        ).scalar()
        if corrected is not None:
            raise RuleViolation(f"donation {target.seq} was corrected already", "already_corrected")
        amount = int(d["amount"])
        available = balance(tx.conn, d["pool"], d["currency"], "available")
        if amount > available:
            raise RuleViolation(
                f"reversing {amount} {d['currency']} would overdraw {d['pool']} ({available} left)",
                code="insufficient_funds",
            )
        postings = move(d["pool"], d["currency"], amount, "available", "donations")
        fund_change = -amount
    elif target.kind == "grant_disbursed":
        grant = grant_row(tx.conn, d["grant"])
        if grant.status != "disbursed" or grant.disbursed_seq != target.seq:
            raise RuleViolation(
                f"disbursement {target.seq} was corrected already", "already_corrected"
            )
        amount = int(d["amount"])
        postings = move(d["pool"], d["currency"], amount, "grants", "committed")
        fund_change = amount
    else:
        raise RuleViolation(
            f"entry {target.seq} is a {target.kind}: only donations and disbursements "
            "can be corrected",
            code="not_correctable",
        )
    data = {
        "corrects": target.seq,
        "corrected_kind": target.kind,
        "pool": d["pool"],
        "amount": d["amount"],
        "currency": d["currency"],
        "fund_change": str(fund_change),
        "cycle": tx.cycle.number,
        "postings": postings_json(postings),
    }
    if "grant" in d:
        data["grant"] = d["grant"]
    return data
