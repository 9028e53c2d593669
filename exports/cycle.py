"""A cycle's entries from the entries alone: which belong to it, and what they add up to.

Which entries a report covers (:func:`belongs_to_cycle`): for pool P and lunar cycle N,

* the entry that opened N for P: ``pool_created`` (data.cycle.number == N) or the
  ``custody_transferred`` that closed N-1 (data.cycle.number == N; it carries the opening
  balance as the closing statement of N-1);
* every entry with ``data.pool == P`` and ``data.cycle == N`` (donations, grant proposals,
  votes, decisions, disbursements, cancellations, corrections);
* ``roster_set`` entries for P written during N;
* the ``custody_transferred`` entry that closes N (data.closed.number == N), whose
  ``data.closed.statement`` the roll-forward must equal.

The roll-forward (:class:`RollForwardBuilder`) adds up the entries' amounts and postings in log
order. Nothing here reads the database: the report (:mod:`exports.data`) and the offline
check of a JSONL export (:mod:`exports.verify`) share it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from exports.errors import InconsistentLog
from exports.report import RollForward
from ledger.log import Entry

GRANT_KINDS = frozenset(
    {"grant_proposed", "vote_cast", "grant_decided", "grant_disbursed", "grant_cancelled"}
)
CUSTODY_KINDS = frozenset({"pool_created", "roster_set", "custody_transferred"})
MONEY_KINDS = frozenset(
    {"donation_recorded", "grant_decided", "grant_disbursed", "grant_cancelled", "correction"}
)
REPORT_KINDS = tuple(sorted(CUSTODY_KINDS | GRANT_KINDS | MONEY_KINDS))
"""Every kind of entry a cycle report may cover."""


# -- which entries belong to a cycle --------------------------------------------------------


def pool_of(entry: Entry) -> str | None:
    """The pool an entry is about (``pool_created``: the pool it creates), or None."""
    key = "slug" if entry.kind == "pool_created" else "pool"
    value = entry.data.get(key)
    return value if isinstance(value, str) else None


def cycle_of(entry: Entry) -> int | None:
    """The cycle an entry was written in (a handover: the cycle it opens)."""
    data = entry.data
    if entry.kind == "roster_set":
        # The first roster applies at once; any later one from the next cycle.
        effective = int(data["effective_cycle"])
        return effective if data.get("custodian_now") is not None else effective - 1
    value = data.get("cycle")
    if isinstance(value, dict):
        value = value.get("number")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def closes_cycle(entry: Entry, number: int) -> bool:
    """True for the handover that closes cycle ``number``."""
    return entry.kind == "custody_transferred" and entry.data["closed"]["number"] == number


def belongs_to_cycle(entry: Entry, pool: str, number: int) -> bool:
    """True for the entries of pool ``pool`` in cycle ``number`` (see the module docstring)."""
    if pool_of(entry) != pool:
        return False
    return cycle_of(entry) == number or closes_cycle(entry, number)


# -- the roll-forward ---------------------------------------------------------------------------


class RollForwardBuilder:
    """Adds up a cycle's entries one at a time (the first one opens the cycle)."""

    def __init__(self, pool: str, allowances: Mapping[str, str] | None = None) -> None:
        self.pool = pool
        self.allowances = allowances or {}
        self.opening: dict[str, dict[str, int]] | None = None
        self.sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, entry: Entry) -> None:
        if self.opening is None:
            self.opening = _opening(entry)
        _add_flows(entry, self.pool, self.sums)

    def result(self) -> tuple[RollForward, ...]:
        """Per currency; raises InconsistentLog if closing != committed + available."""
        opening = self.opening or {}
        return tuple(
            self._currency(currency, opening.get(currency, {}))
            for currency in sorted(set(opening) | set(self.sums))
        )

    def _currency(self, currency: str, start: Mapping[str, int]) -> RollForward:
        flow = self.sums[currency]
        opened = start.get("closing", 0)
        closing = opened + flow["donations"] - flow["disbursements"] + flow["corrections"]
        committed = start.get("committed", 0) + flow["committed"]
        available = start.get("available", 0) + flow["available"]
        if closing != committed + available:
            raise InconsistentLog(
                f"{self.pool} {currency}: the roll-forward gives {closing} but the postings "
                f"leave {committed} committed + {available} available"
            )
        return RollForward(
            currency=currency,
            opening=opened,
            donations=flow["donations"],
            disbursements=flow["disbursements"],
            corrections=flow["corrections"],
            closing=closing,
            committed=committed,
            available=available,
            opening_committed=start.get("committed", 0),
            opening_available=start.get("available", 0),
            fast_lane_used=flow["fast_lane_used"],
            fast_lane_allowance=int(self.allowances.get(currency, "0")),
        )


def compute_roll_forward(
    scanned: Iterable[Entry], pool: str, allowances: Mapping[str, str] | None = None
) -> tuple[RollForward, ...]:
    """The roll-forward of a cycle's entries, in log order (the first one opens the cycle)."""
    builder = RollForwardBuilder(pool, allowances)
    for entry in scanned:
        builder.add(entry)
    return builder.result()


def check_statement(
    pool: str,
    number: int,
    roll_forward: Sequence[RollForward],
    statement: Mapping[str, Mapping[str, str]],
) -> None:
    """Raise InconsistentLog unless the roll-forward equals the handover statement."""
    computed = {r.currency: r.statement() for r in roll_forward}
    if computed != {c: dict(v) for c, v in statement.items()}:
        raise InconsistentLog(
            f"{pool} cycle {number}: the entries give {computed}, but the handover statement "
            f"says {dict(statement)}"
        )


def closing_statement(closing: Entry) -> dict[str, dict[str, str]]:
    """``data.closed.statement`` of a handover, by currency."""
    statement: dict[str, dict[str, str]] = closing.data["closed"]["statement"]
    return {currency: dict(values) for currency, values in sorted(statement.items())}


def _opening(first: Entry) -> dict[str, dict[str, int]]:
    """Opening closing/committed/available per currency, from the entry that opened the cycle."""
    if first.kind == "pool_created":
        return {c: {"closing": 0, "committed": 0, "available": 0} for c in first.data["currencies"]}
    if first.kind != "custody_transferred":
        raise InconsistentLog(f"the cycle does not open with a handover: seq {first.seq}")
    statement = first.data["closed"]["statement"]
    return {
        currency: {name: int(values[name]) for name in ("closing", "committed", "available")}
        for currency, values in statement.items()
    }


def _add_flows(entry: Entry, pool: str, sums: dict[str, dict[str, int]]) -> None:
    """Add one entry's flows and its postings to ``available`` and ``committed``."""
    if entry.kind not in MONEY_KINDS:
        return
    data = entry.data
    flow = sums[data["currency"]]
    amount = int(data["amount"])
    if entry.kind == "donation_recorded":
        flow["donations"] += amount
    elif entry.kind == "grant_disbursed":
        flow["disbursements"] += amount
    elif entry.kind == "correction":
        flow["corrections"] += int(data["fund_change"])
    elif data.get("decision") == "approved" and data.get("lane") == "fast_lane":
        flow["fast_lane_used"] += amount
    for posting in data.get("postings", ()):
        owner, _, name = str(posting["account"]).partition(":")
        if owner == pool and name in ("available", "committed"):
            sums[str(posting["currency"])][name] += int(posting["amount"])
