"""From entries to the report's rows: the grants, the custody, the daily flows, one row each.

Functions of decoded entries (:class:`ledger.log.Entry`) that build the values of
:mod:`exports.report`; :mod:`exports.data` reads the entries and calls them. Public text (a
display name, a purpose, a note, a reason) is shown as the entry holds it (data version 1) or
from ``texts``, commitment -> text (version 2), and as ``[redacted]`` once it is not served.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from exports.cycle import GRANT_KINDS, closes_cycle
from exports.report import (
    Anchor,
    CheckpointInfo,
    DayFlow,
    Decision,
    EntryRow,
    Event,
    GrantRow,
    Handover,
    Posting,
    VoteRow,
)
from ledger.fund import public_text
from ledger.log import Entry, StoredCheckpoint, parse_checkpoint, parse_note

DAY = timedelta(days=1)
Texts = Mapping[str, str | None]
"""The public texts of a report's entries: commitment -> text (None once redacted)."""
NO_TEXTS: Texts = {}


def _text(value: Any, texts: Texts) -> str | None:
    return public_text.shown(value, texts)


# -- grants, custody, the checkpoint and the days ----------------------------------------------


def _ref(entry: Entry) -> tuple[int, str, str]:
    """seq, time and hash (hex) of an entry: the first fields of every row about one entry."""
    return entry.seq, entry.ts, entry.hash.hex()


def custodian_of(custody: Sequence[Entry]) -> str | None:
    """The custodian from the log: the opening handover's ``to``, or the first roster's."""
    first = custody[0]
    if first.kind == "custody_transferred":
        return None if first.data["to"] is None else str(first.data["to"])
    for entry in custody:
        if entry.kind == "roster_set" and entry.data.get("custodian_now") is not None:
            return str(entry.data["custodian_now"])
    return None


def grant_of(entry: Entry) -> int | None:
    """The grant an entry is about (a proposal: its own seq), or None."""
    if entry.kind == "grant_proposed":
        return entry.seq
    if entry.kind in GRANT_KINDS or (entry.kind == "correction" and "grant" in entry.data):
        return int(entry.data["grant"])
    return None


def _event(entry: Entry, texts: Texts) -> Event:
    d = entry.data
    reason = _text(d.get("reason"), texts)
    return Event(*_ref(entry), entry.kind, int(d["amount"]), reason)


def grant_row(
    proposal: Entry, events: Sequence[Entry], voided: set[int], texts: Texts = NO_TEXTS
) -> GrantRow:
    """A grant from its proposal and its entries in the cycle (``voided``: void votes' seqs)."""
    d = proposal.data
    votes: list[VoteRow] = []
    decision = disbursement = cancellation = reversal = None
    for entry in events:
        if entry.kind == "vote_cast":
            votes.append(_vote_row(entry, voided))
        elif entry.kind == "grant_decided":
            decision = _decision(entry)
        elif entry.kind == "grant_disbursed":
            disbursement = _event(entry, texts)
        elif entry.kind == "grant_cancelled":
            cancellation = _event(entry, texts)
        elif entry.kind == "correction":
            reversal = _event(entry, texts)
    return GrantRow(
        id=proposal.seq,
        proposed_ts=proposal.ts,
        proposed_cycle=int(d["cycle"]),
        proposal_hash=proposal.hash.hex(),
        amount=int(d["amount"]),
        currency=str(d["currency"]),
        purpose=str(_text(d["purpose"], texts)),
        urgency=str(d["urgency"]),
        recipient=str(d["recipient"]),
        proposer=proposal.actor,
        proposed_in_cycle=bool(events) and events[0].seq == proposal.seq,
        votes=tuple(votes),
        decision=decision,
        disbursement=disbursement,
        cancellation=cancellation,
        reversal=reversal,
    )


def _vote_row(entry: Entry, voided: set[int]) -> VoteRow:
    d = entry.data
    return VoteRow(
        *_ref(entry),
        member=str(d["member"]),
        collective=str(d["collective"]),
        vote=str(d["vote"]),
        fast_lane=bool(d.get("fast_lane")),
        void=entry.seq in voided,
    )


def _decision(entry: Entry) -> Decision:
    d = entry.data
    left = d.get("allowance_left")
    return Decision(
        *_ref(entry),
        decision=str(d["decision"]),
        lane=str(d["lane"]),
        quorum=d.get("quorum"),
        approvals=tuple(d.get("approvals", ())),
        rejections=tuple(d.get("rejections", ())),
        allowance_left=None if left is None else int(left),
    )


def handover_row(entry: Entry, number: int) -> Handover:
    """A custody entry of cycle ``number``: creation, roster or handover in or out."""
    d = entry.data
    ref = _ref(entry)
    if entry.kind == "pool_created":
        return Handover(*ref, "created", None, None)
    if entry.kind == "roster_set":
        return Handover(*ref, "roster", None, d.get("custodian_now"), tuple(d["collectives"]))
    return Handover(
        *ref,
        role="closed" if closes_cycle(entry, number) else "opened",
        custodian_from=d["from"],
        custodian_to=d["to"],
        carried_over=tuple(d["carried_over"]),
        committed_grants=tuple(d["committed_grants"]),
        voided_votes=tuple(d["voided_votes"]),
        response=d["closed"].get("response") if closes_cycle(entry, number) else None,
    )


def anchor_row(entry: Entry, size: int, root: str, consistency: Iterable[bytes]) -> Anchor:
    """A ``checkpoint_anchored`` entry of tree ``size`` and ``root`` (hex), checked against the
    log, with the consistency proof from the covering checkpoint's tree to the anchored one."""
    d = entry.data
    return Anchor(
        *_ref(entry),
        chain_id=int(d["chain_id"]),
        contract=str(d["contract"]),
        tx_hash=str(d["tx_hash"]),
        block_number=int(d["block_number"]),
        size=size,
        root=root,
        consistency=tuple(h.hex() for h in consistency),
    )


def checkpoint_info(stored: StoredCheckpoint) -> CheckpointInfo:
    """The stored signed note, parsed: origin, size, root and its signature lines."""
    note = parse_note(stored.note)
    checkpoint = parse_checkpoint(note.text)
    lines = stored.note[len(note.text) + 1 :].splitlines()
    return CheckpointInfo(
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=checkpoint.root,
        note=stored.note,
        signature_lines=tuple(line for line in lines if line),
        ts=stored.ts,
    )


def daily_flows(
    rows: Iterable[EntryRow], start: datetime, end: datetime
) -> dict[str, tuple[DayFlow, ...]]:
    """Donations and disbursements per day of the cycle, per currency (days from ``start``)."""
    days = max(1, -(-(end - start) // DAY))
    totals: dict[str, list[list[int]]] = {}
    for row in rows:
        if row.kind not in ("donation_recorded", "grant_disbursed") or row.currency is None:
            continue
        per_day = totals.setdefault(row.currency, [[0, 0] for _ in range(days)])
        day = min(days - 1, max(0, (datetime.fromisoformat(row.ts) - start) // DAY))
        per_day[day][0 if row.kind == "donation_recorded" else 1] += row.amount or 0
    return {
        currency: tuple(
            DayFlow(i + 1, (start + i * DAY).strftime("%Y-%m-%d"), donated, disbursed)
            for i, (donated, disbursed) in enumerate(per_day)
        )
        for currency, per_day in sorted(totals.items())
    }


# -- one row per entry ----------------------------------------------------------------------


_ACCOUNTS = {name: name for name in ("available", "committed", "donations", "grants")}


def entry_row(entry: Entry, texts: Texts = NO_TEXTS) -> EntryRow:
    """The entry flattened to the report's typed columns."""
    columns: dict[str, Any] = {
        "seq": entry.seq,
        "ts": entry.ts,
        "kind": sys.intern(entry.kind),
        "entry_hash": entry.hash.hex(),
        "actor": sys.intern(entry.actor),
        "postings": tuple(_postings(entry)),
        **_columns(entry, texts),
    }
    return EntryRow(**columns)


def _postings(entry: Entry) -> Iterator[Posting]:
    for raw in entry.data.get("postings", ()):
        _, _, name = str(raw["account"]).partition(":")
        # One string object per account name, so 100,000 rows share four.
        currency = sys.intern(str(raw["currency"]))
        yield Posting(_ACCOUNTS.get(name, name), currency, int(raw["amount"]))


def _columns(entry: Entry, texts: Texts) -> dict[str, Any]:
    d = entry.data
    kind = entry.kind
    if kind == "donation_recorded":
        return {
            "currency": sys.intern(d["currency"]),
            "amount": int(d["amount"]),
            "fund_change": int(d["amount"]),
            "channel": sys.intern(d["channel"]),
            "donor": d["donor"]["commitment"],
            "donor_name": _text(d["donor"].get("name"), texts),
        }
    if kind in GRANT_KINDS:
        return _grant_columns(entry, texts)
    if kind == "correction":
        return {
            "currency": d["currency"],
            "amount": int(d["amount"]),
            "fund_change": int(d["fund_change"]),
            "grant": d.get("grant"),
            "corrects": d["corrects"],
            "decision": d["corrected_kind"],
            "reason": _text(d.get("reason"), texts),
        }
    if kind == "custody_transferred":
        return {"custodian_from": d["from"], "custodian_to": d["to"]}
    if kind == "roster_set":
        return {"custodian_to": d.get("custodian_now"), "reason": ",".join(d["collectives"])}
    return {}


def _grant_columns(entry: Entry, texts: Texts) -> dict[str, Any]:
    d = entry.data
    kind = entry.kind
    columns: dict[str, Any] = {"grant": entry.seq if kind == "grant_proposed" else d["grant"]}
    if "currency" in d:
        columns.update(currency=d["currency"], amount=int(d["amount"]))
    if kind == "grant_proposed":
        purpose = _text(d["purpose"], texts)
        columns.update(urgency=d["urgency"], purpose=purpose, recipient=d["recipient"])
    elif kind == "vote_cast":
        lane = "fast_lane" if d.get("fast_lane") else None
        note = _text(d.get("note"), texts)
        columns.update(member=d["member"], vote=d["vote"], lane=lane, reason=note)
    elif kind == "grant_decided":
        left = d.get("allowance_left")
        columns.update(
            decision=d["decision"],
            lane=d["lane"],
            quorum=d.get("quorum"),
            allowance_left=None if left is None else int(left),
        )
    elif kind == "grant_disbursed":
        columns.update(fund_change=-int(d["amount"]))
    elif kind == "grant_cancelled":
        reason = _text(d.get("reason"), texts)
        columns.update(decision=f"cancelled:{d['was']}", reason=reason)
    return columns
