"""The cycle report as a value: what every format (PDF, CSV, JSON, beancount) renders.

:func:`exports.data.gather` builds one :class:`CycleReport` from the log; nothing here reads
the database. Amounts are integers in minor units, hashes lowercase hex, times RFC 3339 UTC
strings as logged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

STATEMENT_FIELDS = (
    "opening",
    "donations",
    "disbursements",
    "corrections",
    "closing",
    "committed",
    "available",
)
"""The figures of a handover's closing statement (``data.closed.statement[currency]``)."""
AMOUNT_FIELDS = (
    *STATEMENT_FIELDS,
    "opening_committed",
    "opening_available",
    "fast_lane_used",
    "fast_lane_allowance",
)
"""Every figure of a :class:`RollForward`: the statement's, then the opening split and the
fast lane."""


class Posting(NamedTuple):
    """A leg of the entry's double-entry postings on one of the pool's accounts."""

    account: str  # available, committed, donations or grants
    currency: str
    amount: int


class EntryRow(NamedTuple):
    """One entry of the cycle, flattened to typed columns (None where a kind has no value).

    A named tuple rather than a frozen dataclass: a cycle may hold 100,000 of them, and a
    tuple is built several times faster and is smaller.

    ``fund_change`` is the entry's signed effect on the fund (available + committed) in
    ``currency``: +amount for a donation, -amount for a disbursement, the correction's
    ``fund_change``; None for entries that move nothing in or out of the fund. Summed over a
    cycle (per currency) it is closing - opening.
    """

    seq: int
    ts: str
    kind: str
    entry_hash: str
    actor: str
    currency: str | None = None
    amount: int | None = None
    fund_change: int | None = None
    channel: str | None = None
    donor: str | None = None
    donor_name: str | None = None
    grant: int | None = None
    urgency: str | None = None
    purpose: str | None = None
    recipient: str | None = None
    member: str | None = None
    vote: str | None = None
    decision: str | None = None
    lane: str | None = None
    quorum: int | None = None
    allowance_left: int | None = None
    corrects: int | None = None
    reason: str | None = None
    custodian_from: str | None = None
    custodian_to: str | None = None
    postings: tuple[Posting, ...] = ()


@dataclass(frozen=True, slots=True)
class RollForward:
    """opening + donations - disbursements + corrections = closing = committed + available."""

    currency: str
    opening: int
    donations: int
    disbursements: int
    corrections: int
    closing: int
    committed: int
    available: int
    opening_committed: int
    opening_available: int
    fast_lane_used: int
    fast_lane_allowance: int

    def statement(self) -> dict[str, str]:
        """The shape of a handover's ``data.closed.statement[currency]``."""
        return {name: str(getattr(self, name)) for name in STATEMENT_FIELDS}

    def amounts(self) -> dict[str, str]:
        """Every figure (:data:`AMOUNT_FIELDS`) as a string of decimal digits."""
        return {name: str(getattr(self, name)) for name in AMOUNT_FIELDS}


@dataclass(frozen=True, slots=True)
class Event:
    """A grant's entry in the cycle: disbursement, cancellation or reversal (a correction)."""

    seq: int
    ts: str
    entry_hash: str
    kind: str
    amount: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VoteRow:
    """A vote on a grant; ``void`` when the handover closing the cycle voided it."""

    seq: int
    ts: str
    entry_hash: str
    member: str
    collective: str
    vote: str
    fast_lane: bool
    void: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """A grant's decision: by quorum (with the quorum) or fast lane (with what is left)."""

    seq: int
    ts: str
    entry_hash: str
    decision: str
    lane: str
    quorum: int | None
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    allowance_left: int | None


@dataclass(frozen=True, slots=True)
class GrantRow:
    """A grant with an entry in the cycle; the proposal may be from an earlier cycle."""

    id: int
    proposed_ts: str
    proposed_cycle: int
    proposal_hash: str
    amount: int
    currency: str
    purpose: str
    urgency: str
    recipient: str
    proposer: str
    proposed_in_cycle: bool
    votes: tuple[VoteRow, ...]
    decision: Decision | None
    disbursement: Event | None
    cancellation: Event | None
    reversal: Event | None


@dataclass(frozen=True, slots=True)
class Handover:
    """An entry about custody: the pool's creation, a roster, or a handover in or out.

    ``role`` is ``created``, ``roster``, ``opened`` (the handover that opened the cycle) or
    ``closed`` (the one that closed it).
    """

    seq: int
    ts: str
    entry_hash: str
    role: str
    custodian_from: str | None
    custodian_to: str | None
    roster: tuple[str, ...] = ()
    carried_over: tuple[int, ...] = ()
    committed_grants: tuple[int, ...] = ()
    voided_votes: tuple[int, ...] = ()
    response: Mapping[str, int | None] | None = None  # the closed cycle's figures (data v2)


@dataclass(frozen=True, slots=True)
class DayFlow:
    """Donations and disbursements on day ``day`` (1-based) of the cycle, from ``start``."""

    day: int
    start: str
    donations: int
    disbursements: int


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """The signed checkpoint that covers the report (C2SP tlog-checkpoint, signed note)."""

    origin: str
    size: int
    root: bytes
    note: str
    signature_lines: tuple[str, ...]
    ts: str  # when it was signed (RFC 3339 UTC, as stored)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A ``checkpoint_anchored`` entry for the covering checkpoint or a later one.

    When the anchored tree is larger than the checkpoint, ``consistency`` proves (RFC 9162)
    that the checkpoint's tree is a prefix of the anchored one.
    """

    seq: int
    ts: str
    entry_hash: str
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    size: int
    root: str
    consistency: tuple[str, ...]


@dataclass(frozen=True)
class CycleReport:
    """What every format renders: one pool, one lunar cycle, covered by one checkpoint."""

    pool: str
    pool_name: str
    currencies: tuple[str, ...]
    cycle: int
    starts_at: str
    ends_at: str
    custodian: str | None
    interim: bool
    checkpoint: CheckpointInfo
    anchor: Anchor | None
    opening_seq: int
    closing_seq: int | None
    roll_forward: tuple[RollForward, ...]
    statement: Mapping[str, Mapping[str, str]] | None
    entries: tuple[EntryRow, ...]
    grants: tuple[GrantRow, ...]
    custody: tuple[Handover, ...]
    daily: Mapping[str, tuple[DayFlow, ...]] = field(default_factory=dict)
    collective_names: Mapping[str, str] = field(default_factory=dict)  # slug -> name

    def collective(self, slug: str | None) -> str | None:
        """``Colectivo Alba (alba)``: a custodian by name, with its slug."""
        if slug is None:
            return None
        name = self.collective_names.get(slug, slug)
        return slug if name == slug else f"{name} ({slug})"

    @property
    def seqs(self) -> list[int]:
        return [row.seq for row in self.entries]

    @property
    def donations(self) -> Iterator[EntryRow]:
        return (row for row in self.entries if row.kind == "donation_recorded")

    @property
    def corrections(self) -> Iterator[EntryRow]:
        return (row for row in self.entries if row.kind == "correction")

    @property
    def dated(self) -> str:
        """The time the report is of (its PDF's dates): the handover that closed the cycle,
        or for an interim report the covering checkpoint's signing."""
        closing = [h for h in self.custody if h.role == "closed"]
        return closing[-1].ts if closing else self.checkpoint.ts

    def count(self, kind: str) -> int:
        return sum(1 for row in self.entries if row.kind == kind)

    def corrected(self) -> dict[int, int]:
        """seq of a corrected entry -> seq of the correction, within the cycle."""
        return {r.corrects: r.seq for r in self.corrections if r.corrects is not None}
