"""The fund's governance rules, replayed from the public entries alone (for ``lunaria audit``).

An auditor has the log and nothing else: no projections, no clock. What the append path
checked against its tables is checked again here against state rebuilt from the entries:

* custody: the custodian of a pool in cycle n is roster[(n - first cycle of the roster) mod
  len(roster)], from the rosters logged so far; every handover names it;
* votes: only active members of the pool's custodian in the pool's current cycle vote, as
  themselves, once per grant, never on their own proposal, and only on open grants;
* decisions: an approval by quorum counts at least the custodian's quorum (a fixed number or
  a majority of its active members) of the ballots logged; a rejection leaves too few members
  to reach it; a fast-lane approval is one urgent grant within the per-grant cap and what is
  left of the cycle's allowance; an overdue approval (lane ``overdue``, decision data version
  2) is one urgent grant within the cap, by one member, in a pool whose policy allows it, at or
  after the deadline the pool set (the decision's ``ts`` against the proposal's), which it
  records; each decision records exactly the ballots that counted;
* handovers: per currency, opening (the previous closing) + donations - disbursements +
  corrections = closing = available + committed, with every figure equal to the replay's;
  a handover of data version 2 states the closed cycle's response figures for urgent grants,
  equal to those recomputed from the entries' timestamps (:func:`ledger.fund.urgency.
  response_figures`), which the replay keeps for every closed cycle (``responses``);
* public text: the data of a kind with public text is of version 1 (texts inline) or 2
  (``{"commitment": hex}``), each commitment appears once; a ``text_redacted`` entry, by an
  admin or the operator, names a commitment an earlier entry holds in the field it says, not
  redacted before, with a known reason code.

:class:`GovernanceReplay` raises :class:`VerificationError` naming the entry and the rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.errors import RuleViolation, VerificationError
from ledger.fund.public_text import TEXT_FIELDS, checked_text_fields
from ledger.fund.redaction import OPERATOR, REASONS
from ledger.fund.rules import member_actor
from ledger.fund.urgency import (
    OVERDUE_LANE,
    ResponseFigures,
    UrgencyPolicy,
    UrgentCase,
    response_figures,
)
from ledger.log.clock import format_ts, parse_ts
from ledger.log.entry import Entry

FLOWS = ("donations", "disbursements", "corrections")


@dataclass
class _Collective:
    quorum: int | None  # a fixed number, or None: a majority of the active members
    members: set[str] = field(default_factory=set)

    def quorum_now(self) -> int:
        return self.quorum or len(self.members) // 2 + 1


@dataclass
class _Pool:
    cycle: int
    caps: dict[str, int]
    allowances: dict[str, int]
    opening: dict[str, int]  # of the current cycle: the previous cycle's closing
    policy: UrgencyPolicy
    span: tuple[datetime, datetime]  # start and end of the current cycle
    rosters: list[tuple[int, list[str]]] = field(default_factory=list)  # in log order

    def custodian(self, cycle: int) -> str | None:
        """The latest roster logged that is in force in ``cycle`` names the custodian."""
        for effective, order in reversed(self.rosters):
            if effective <= cycle:
                return order[(cycle - effective) % len(order)]
        return None


@dataclass(frozen=True)
class _Ballot:
    seq: int
    member: str
    collective: str
    vote: str
    fast_lane: bool


@dataclass
class _Grant:
    pool: str
    proposer: str
    amount: int
    currency: str
    urgent: bool
    proposed: datetime
    deadline: datetime
    status: str = "proposed"
    decided: datetime | None = None
    decided_cycle: int | None = None
    cancelled: datetime | None = None
    ballots: list[_Ballot] = field(default_factory=list)  # open ones: void ballots are removed


@dataclass
class _Text:
    """A committed public text: the entry and field holding it, and whether it was redacted."""

    seq: int
    field: str
    pool: Any
    redacted: bool = False


class GovernanceReplay:
    """Custody, votes, decisions and handovers, entry by entry.

    ``balances`` is the replay of postings by (account, currency) that the caller keeps
    (:class:`ledger.fund.audit.RuleReplay`), read at each handover.
    """

    def __init__(self, balances: Mapping[tuple[str, str], int]) -> None:
        self.balances = balances
        self.collectives: dict[str, _Collective] = {}
        self.pools: dict[str, _Pool] = {}
        self.grants: dict[int, _Grant] = {}
        self.flows: dict[tuple[str, int, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(FLOWS, 0)
        )
        self.fast_lane_used: dict[tuple[str, int, str], int] = defaultdict(int)
        self.texts: dict[str, _Text] = {}
        self.responses: dict[tuple[str, int], ResponseFigures] = {}
        self._rules: Mapping[str, Callable[[Entry, dict[str, Any]], None]] = {
            "collective_registered": self._collective_registered,
            "member_added": self._member_added,
            "member_removed": self._member_removed,
            "pool_created": self._pool_created,
            "roster_set": self._roster_set,
            "custody_transferred": self._custody_transferred,
            "donation_recorded": self._donation_recorded,
            "grant_proposed": self._grant_proposed,
            "vote_cast": self._vote_cast,
            "grant_decided": self._grant_decided,
            "grant_disbursed": self._grant_disbursed,
            "grant_cancelled": self._grant_cancelled,
            "correction": self._correction,
            "text_redacted": self._text_redacted,
        }

    def add(self, entry: Entry) -> None:
        rule = self._rules.get(entry.kind)
        if rule is None:
            return
        try:
            if entry.kind in TEXT_FIELDS:
                self._public_texts(entry)
            rule(entry, entry.data)
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            raise VerificationError(
                entry.seq, f"{entry.kind} data cannot be replayed: {type(exc).__name__} {exc}"
            ) from exc

    # -- organisation -------------------------------------------------------------------------

    def _collective_registered(self, entry: Entry, d: dict[str, Any]) -> None:
        self.collectives[d["slug"]] = _Collective(d["quorum"])

    def _member_added(self, entry: Entry, d: dict[str, Any]) -> None:
        self._collective(entry, d["collective"]).members.add(d["member"])

    def _member_removed(self, entry: Entry, d: dict[str, Any]) -> None:
        self._collective(entry, d["collective"]).members.discard(d["member"])

    def _pool_created(self, entry: Entry, d: dict[str, Any]) -> None:
        _require_version(entry, d, (None, 2))
        try:
            policy = UrgencyPolicy.of_pool_data(d)
        except RuleViolation as exc:
            raise VerificationError(entry.seq, f"pool_created: {exc}") from exc
        self.pools[d["slug"]] = _Pool(
            cycle=int(d["cycle"]["number"]),
            caps={c: int(a) for c, a in d["fast_lane_cap"].items()},
            allowances={c: int(a) for c, a in d["cycle_allowance"].items()},
            opening=dict.fromkeys(d["currencies"], 0),
            policy=policy,
            span=_span(d["cycle"]),
        )

    def _roster_set(self, entry: Entry, d: dict[str, Any]) -> None:
        order = list(d["collectives"])
        for slug in order:
            self._collective(entry, slug)
        if not order:
            raise VerificationError(entry.seq, "roster_set names no collective")
        self._pool(entry, d["pool"]).rosters.append((int(d["effective_cycle"]), order))

    # -- custody --------------------------------------------------------------------------------

    def _custody_transferred(self, entry: Entry, d: dict[str, Any]) -> None:
        pool, name = self._pool(entry, d["pool"]), d["pool"]
        closed = int(d["closed"]["number"])
        opened = int(d["cycle"]["number"])
        if closed != pool.cycle or opened != closed + 1:
            raise VerificationError(
                entry.seq,
                f"handover of {name} closes cycle {closed} and opens {opened}, but the pool "
                f"is in cycle {pool.cycle}",
            )
        for side, cycle in (("from", closed), ("to", opened)):
            if d[side] != pool.custodian(cycle):
                raise VerificationError(
                    entry.seq,
                    f"handover of {name} names {d[side]!r} as custodian of cycle {cycle}, but "
                    f"the roster gives {pool.custodian(cycle)!r}",
                )
        statement: dict[str, dict[str, str]] = d["closed"]["statement"]
        self._check_statement(entry, name, closed, statement)
        self._check_response(entry, name, d)
        self._void_outgoing_votes(entry, name, d)
        pool.opening = {currency: int(line["closing"]) for currency, line in statement.items()}
        pool.cycle = opened
        pool.span = _span(d["cycle"])

    def _check_response(self, entry: Entry, name: str, d: dict[str, Any]) -> None:
        """Recompute the closed cycle's response figures; a version-2 handover states them."""
        _require_version(entry, d, (None, 2))
        pool, closed = self.pools[name], int(d["closed"]["number"])
        cases = [
            UrgentCase(seq, g.proposed, g.deadline, g.decided, g.decided_cycle, g.cancelled)
            for seq, g in self.grants.items()
            if g.pool == name and g.urgent
        ]
        start, end = pool.span
        figures = response_figures(cases, closed, start, end, pool.policy.deadline_hours)
        self.responses[name, closed] = figures
        if d.get("v") == 2 and d["closed"]["response"] != figures.data():
            raise VerificationError(
                entry.seq,
                f"the {name} handover states response figures {d['closed']['response']} for "
                f"cycle {closed}, but the entries give {figures.data()}",
            )

    def _check_statement(
        self, entry: Entry, pool: str, cycle: int, statement: dict[str, dict[str, str]]
    ) -> None:
        """Each currency's roll-forward adds up, and agrees with the replayed books."""
        opening = self.pools[pool].opening
        moved = {c for (p, n, c) in self.flows if p == pool and n == cycle}
        holding = {c for c, amount in opening.items() if amount}
        missing = sorted((holding | moved) - set(statement))
        if missing:
            raise VerificationError(
                entry.seq, f"the {pool} statement for cycle {cycle} leaves out {missing}"
            )
        for currency, line in sorted(statement.items()):
            stated = {name: int(value) for name, value in line.items()}
            replayed = {
                "opening": opening.get(currency, 0),
                **self.flows.get((pool, cycle, currency), dict.fromkeys(FLOWS, 0)),
                "available": self.balances.get((f"{pool}:available", currency), 0),
                "committed": self.balances.get((f"{pool}:committed", currency), 0),
            }
            for name, value in replayed.items():
                if stated.get(name) != value:
                    raise VerificationError(
                        entry.seq,
                        f"the {pool} statement for cycle {cycle} says {currency} {name} "
                        f"{stated.get(name)}, but the log gives {value}",
                    )
            rolled = (
                stated["opening"]
                + stated["donations"]
                - stated["disbursements"]
                + stated["corrections"]
            )
            held = stated["available"] + stated["committed"]
            if not stated["closing"] == rolled == held:
                raise VerificationError(
                    entry.seq,
                    f"the {pool} statement for cycle {cycle} does not add up in {currency}: "
                    f"closing {stated['closing']}, opening + donations - disbursements + "
                    f"corrections = {rolled}, available + committed = {held}",
                )

    def _void_outgoing_votes(self, entry: Entry, pool: str, d: dict[str, Any]) -> None:
        """The outgoing collective's ballots on open proposals become void (if it changes)."""
        undecided = sorted(
            grant_id
            for grant_id, grant in self.grants.items()
            if grant.pool == pool and grant.status == "proposed"
        )
        if list(d["carried_over"]) != undecided:
            raise VerificationError(
                entry.seq,
                f"handover of {pool} carries over {d['carried_over']}, but {undecided} are open",
            )
        void = []
        if d["from"] != d["to"]:
            for grant_id in undecided:
                ballots = self.grants[grant_id].ballots
                void += [b.seq for b in ballots if b.collective == d["from"]]
                ballots[:] = [b for b in ballots if b.collective != d["from"]]
        if sorted(d["voided_votes"]) != sorted(void):
            raise VerificationError(
                entry.seq,
                f"handover of {pool} voids votes {d['voided_votes']}, but the outgoing "
                f"custodian's open votes are {sorted(void)}",
            )

    # -- money ----------------------------------------------------------------------------------

    def _flow(self, d: dict[str, Any], name: str, amount: int) -> None:
        self.flows[d["pool"], int(d["cycle"]), d["currency"]][name] += amount

    def _donation_recorded(self, entry: Entry, d: dict[str, Any]) -> None:
        self._flow(d, "donations", int(d["amount"]))

    def _grant_disbursed(self, entry: Entry, d: dict[str, Any]) -> None:
        grant = self._grant(entry, d["grant"])
        if grant.status != "approved":
            raise VerificationError(
                entry.seq, f"grant {d['grant']} is paid out while {grant.status}"
            )
        grant.status = "disbursed"
        self._flow(d, "disbursements", int(d["amount"]))

    def _grant_cancelled(self, entry: Entry, d: dict[str, Any]) -> None:
        grant = self._grant(entry, d["grant"])
        grant.status = "cancelled"
        grant.cancelled = parse_ts(entry.ts)

    def _correction(self, entry: Entry, d: dict[str, Any]) -> None:
        self._flow(d, "corrections", int(d["fund_change"]))
        if d["corrected_kind"] == "grant_disbursed":
            self._grant(entry, d["grant"]).status = "approved"  # committed again

    # -- grants, votes, decisions -----------------------------------------------------------

    def _grant_proposed(self, entry: Entry, d: dict[str, Any]) -> None:
        pool = self._pool(entry, d["pool"])
        proposed = parse_ts(entry.ts)
        self.grants[entry.seq] = _Grant(
            pool=d["pool"],
            proposer=entry.actor,
            amount=int(d["amount"]),
            currency=d["currency"],
            urgent=d["urgency"] == "urgent",
            proposed=proposed,
            deadline=proposed + pool.policy.deadline,
        )

    def _vote_cast(self, entry: Entry, d: dict[str, Any]) -> None:
        grant = self._grant(entry, d["grant"])
        member, collective = d["member"], d["collective"]
        custodian = self._custodian_now(entry, grant.pool, int(d["cycle"]))
        if collective != custodian:
            raise VerificationError(
                entry.seq,
                f"{member} votes for {collective!r}, but the custodian of {grant.pool} in "
                f"cycle {d['cycle']} is {custodian!r}",
            )
        if member not in self._collective(entry, custodian).members:
            raise VerificationError(
                entry.seq, f"{member!r} votes but is not an active member of {custodian}"
            )
        if entry.actor != member_actor(member):
            raise VerificationError(entry.seq, f"{entry.actor!r} casts {member!r}'s vote")
        if entry.actor == grant.proposer:
            raise VerificationError(entry.seq, f"{member} votes on their own proposal")
        if grant.status != "proposed":
            raise VerificationError(entry.seq, f"a vote on grant {d['grant']}, {grant.status}")
        if any(b.member == member for b in grant.ballots):
            raise VerificationError(entry.seq, f"{member} votes twice on grant {d['grant']}")
        grant.ballots.append(
            _Ballot(entry.seq, member, collective, d["vote"], bool(d["fast_lane"]))
        )

    def _grant_decided(self, entry: Entry, d: dict[str, Any]) -> None:
        grant = self._grant(entry, d["grant"])
        if grant.status != "proposed":
            raise VerificationError(
                entry.seq, f"grant {d['grant']} is decided while {grant.status}"
            )
        custodian = self._custodian_now(entry, grant.pool, int(d["cycle"]))
        _require_version(entry, d, (None, 2))
        if d["lane"] == "fast_lane":
            self._check_fast_lane(entry, d, grant)
        elif d["lane"] == OVERDUE_LANE and d.get("v") == 2:
            self._check_overdue(entry, d, grant, self._collective(entry, custodian))
        elif d["lane"] == "quorum":
            self._check_quorum(entry, d, grant, self._collective(entry, custodian))
        else:
            raise VerificationError(entry.seq, f"grant {d['grant']} decided in lane {d['lane']!r}")
        grant.status = d["decision"]
        grant.decided = parse_ts(entry.ts)
        grant.decided_cycle = int(d["cycle"])

    def _check_quorum(
        self, entry: Entry, d: dict[str, Any], grant: _Grant, custodian: _Collective
    ) -> None:
        approvals = sorted(b.member for b in grant.ballots if b.vote == "approve")
        rejections = sorted(b.member for b in grant.ballots if b.vote == "reject")
        if (list(d["approvals"]), list(d["rejections"])) != (approvals, rejections):
            raise VerificationError(
                entry.seq,
                f"grant {d['grant']} decided on approvals {d['approvals']} and rejections "
                f"{d['rejections']}, but the ballots are {approvals} and {rejections}",
            )
        quorum = custodian.quorum_now()
        if d["quorum"] != quorum:
            raise VerificationError(
                entry.seq, f"grant {d['grant']} decided with quorum {d['quorum']}, not {quorum}"
            )
        eligible = [m for m in custodian.members if member_actor(m) != grant.proposer]
        met = {
            "approved": len(approvals) >= quorum,
            "rejected": len(approvals) < quorum and len(eligible) - len(rejections) < quorum,
        }
        if not met.get(d["decision"], False):
            raise VerificationError(
                entry.seq,
                f"grant {d['grant']} {d['decision']} without quorum: {len(approvals)} for, "
                f"{len(rejections)} against, quorum {quorum} of {len(custodian.members)}",
            )

    def _check_fast_lane(self, entry: Entry, d: dict[str, Any], grant: _Grant) -> None:
        last = grant.ballots[-1] if grant.ballots else None
        if last is None or not last.fast_lane or list(d["approvals"]) != [last.member]:
            raise VerificationError(
                entry.seq, f"grant {d['grant']} approved in the fast lane without a fast-lane vote"
            )
        key = (grant.pool, int(d["cycle"]), grant.currency)
        pool = self.pools[grant.pool]
        cap, allowance = pool.caps.get(grant.currency, 0), pool.allowances.get(grant.currency, 0)
        left = allowance - self.fast_lane_used[key] - grant.amount
        if d["decision"] != "approved" or not grant.urgent or grant.amount > cap or left < 0:
            raise VerificationError(
                entry.seq,
                f"grant {d['grant']} ({grant.amount} {grant.currency}, "
                f"{'urgent' if grant.urgent else 'not urgent'}) does not fit the fast lane: "
                f"cap {cap}, {allowance - self.fast_lane_used[key]} left of the allowance",
            )
        if d["allowance_left"] != str(left):
            raise VerificationError(
                entry.seq, f"grant {d['grant']} records {d['allowance_left']} left, not {left}"
            )
        self.fast_lane_used[key] += grant.amount

    def _check_overdue(
        self, entry: Entry, d: dict[str, Any], grant: _Grant, custodian: _Collective
    ) -> None:
        """One custodian member approves alone an urgent grant past its pool's deadline."""
        pool = self.pools[grant.pool]
        last = grant.ballots[-1] if grant.ballots else None
        if last is None or not last.fast_lane or list(d["approvals"]) != [last.member]:
            raise VerificationError(
                entry.seq, f"grant {d['grant']} approved as overdue without a single approval"
            )
        if last.member not in custodian.members or d["rejections"]:
            raise VerificationError(
                entry.seq, f"grant {d['grant']} approved as overdue by {last.member}"
            )
        if not pool.policy.overdue_approval:
            raise VerificationError(
                entry.seq,
                f"grant {d['grant']} approved as overdue, but {grant.pool}'s policy does not "
                "allow it",
            )
        if parse_ts(entry.ts) < grant.deadline or d["deadline"] != format_ts(grant.deadline):
            raise VerificationError(
                entry.seq,
                f"grant {d['grant']} approved as overdue at {entry.ts} with deadline "
                f"{d['deadline']}, but its deadline is {format_ts(grant.deadline)}",
            )
        cap = pool.caps.get(grant.currency, 0)
        if d["decision"] != "approved" or not grant.urgent or grant.amount > cap:
            raise VerificationError(
                entry.seq,
                f"grant {d['grant']} ({grant.amount} {grant.currency}, "
                f"{'urgent' if grant.urgent else 'not urgent'}) does not fit the overdue lane: "
                f"cap {cap}",
            )

    # -- public text ------------------------------------------------------------------------

    def _public_texts(self, entry: Entry) -> None:
        for path, commitment in checked_text_fields(entry.seq, entry.kind, entry.data).items():
            if commitment in self.texts:
                raise VerificationError(
                    entry.seq,
                    f"{path} commits to {commitment}, which entry "
                    f"{self.texts[commitment].seq} holds already",
                )
            self.texts[commitment] = _Text(entry.seq, path, entry.data.get("pool"))

    def _text_redacted(self, entry: Entry, d: dict[str, Any]) -> None:
        if entry.actor != OPERATOR.id and not entry.actor.startswith("admin:"):
            raise VerificationError(entry.seq, f"{entry.actor!r} redacts, but is no admin")
        if d["reason"] not in REASONS:
            raise VerificationError(entry.seq, f"redaction reason {d['reason']!r} is unknown")
        text = self.texts.get(d["commitment"])
        if text is None:
            raise VerificationError(
                entry.seq, f"redacts {d['commitment']!r}, which no earlier entry commits to"
            )
        if (d["entry"], d["field"], d.get("pool")) != (text.seq, text.field, text.pool):
            raise VerificationError(
                entry.seq,
                f"redacts {d['commitment']} as {d['field']} of entry {d['entry']} "
                f"(pool {d.get('pool')}), but it is {text.field} of entry {text.seq} "
                f"(pool {text.pool})",
            )
        if text.redacted:
            raise VerificationError(entry.seq, f"redacts {d['commitment']} a second time")
        text.redacted = True

    # -- lookups ----------------------------------------------------------------------------

    def _custodian_now(self, entry: Entry, pool_name: str, cycle: int) -> str:
        pool = self._pool(entry, pool_name)
        if cycle != pool.cycle:
            raise VerificationError(
                entry.seq,
                f"{entry.kind} in cycle {cycle}, but {pool_name} is in cycle {pool.cycle}",
            )
        custodian = pool.custodian(cycle)
        if custodian is None:
            raise VerificationError(entry.seq, f"{pool_name} has no custodian in cycle {cycle}")
        return custodian

    def _collective(self, entry: Entry, slug: str) -> _Collective:
        if slug not in self.collectives:
            raise VerificationError(entry.seq, f"no collective {slug!r} was registered")
        return self.collectives[slug]

    def _pool(self, entry: Entry, slug: str) -> _Pool:
        if slug not in self.pools:
            raise VerificationError(entry.seq, f"no pool {slug!r} was created")
        return self.pools[slug]

    def _grant(self, entry: Entry, grant_id: int) -> _Grant:
        if grant_id not in self.grants:
            raise VerificationError(entry.seq, f"no grant {grant_id} was proposed")
        return self.grants[grant_id]


def _span(cycle: Mapping[str, Any]) -> tuple[datetime, datetime]:
    return parse_ts(cycle["start"]), parse_ts(cycle["end"])


def _require_version(entry: Entry, d: Mapping[str, Any], versions: tuple[int | None, ...]) -> None:
    if d.get("v") not in versions:
        raise VerificationError(entry.seq, f"{entry.kind} data version {d.get('v')!r} is unknown")
