"""The PDF's tables of entries: donations, grants (with their votes and events), corrections
and custody, one monospaced line per entry (:func:`exports.pdf_layout.mono_tables`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Paragraph

from exports.pdf_layout import HASH_PREFIX, Column, Context, mono_tables, short, when
from exports.report import EntryRow, GrantRow, Handover
from ledger.fund import format_major

ColumnSpec = tuple[str, str, int]
"""A column: its title's key in the strings, alignment (``<`` or ``>``), most characters."""
SEQ: ColumnSpec = ("h_seq", ">", 12)
TIME: ColumnSpec = ("h_time", "<", 19)
HASH: ColumnSpec = ("h_hash", "<", HASH_PREFIX)


def donations(ctx: Context) -> list[Any]:
    """The cycle's donations, with the donor's name (if given) or whole commitment (a donor
    looks for theirs; the entry hashes are in the CSV and JSON)."""
    corrected = ctx.report.corrected()
    rows = [_donation_cells(row, corrected, ctx.t) for row in ctx.report.donations]
    columns = (
        SEQ,
        TIME,
        ("h_amount", ">", 40),
        ("h_currency", "<", 5),
        ("h_channel", "<", 7),
        ("h_donor", "<", 200),
    )
    return _table(ctx, "donations_title", len(rows), columns, rows)


def grants(ctx: Context) -> list[Any]:
    """One row per grant with an entry in the cycle: amount, urgency, recipient and where it
    stands, then its history (proposal, votes, decision, disbursement, cancellation, each with
    its time and seq) and the proposal's whole entry hash."""
    rows = [_grant_cells(grant, ctx.t) for grant in ctx.report.grants]
    columns = (
        ("h_grant", ">", 12),
        ("h_amount", ">", 40),
        ("h_currency", "<", 5),
        ("h_urgency", "<", 7),
        ("h_status", "<", 12),
        ("h_history", "<", 2000),
    )
    return _table(ctx, "grants_title", len(rows), columns, rows)


def corrections(ctx: Context) -> list[Any]:
    """The cycle's corrections: what each corrects and its change to the fund."""
    rows = [_correction_cells(row) for row in ctx.report.corrections]
    columns = (
        SEQ,
        TIME,
        ("h_corrects", ">", 12),
        ("h_kind", "<", 17),
        ("h_change", ">", 40),
        ("h_currency", "<", 5),
        HASH,
        ("h_reason", "<", 300),
    )
    return _table(ctx, "corrections_title", len(rows), columns, rows)


def custody(ctx: Context) -> list[Any]:
    """The pool's creation, rosters and handovers in the cycle."""
    rows = [_custody_cells(h, ctx.t) for h in ctx.report.custody]
    columns = (
        SEQ,
        TIME,
        ("h_event", "<", 22),
        ("h_from", "<", 24),
        ("h_to", "<", 24),
        HASH,
        ("h_detail", "<", 300),
    )
    return _table(ctx, "custody_title", len(rows), columns, rows)


def _table(
    ctx: Context,
    title: str,
    count: int,
    columns: Sequence[ColumnSpec],
    rows: Sequence[Sequence[str]],
    wrap_last: bool = True,
) -> list[Any]:
    """A titled section of ``count`` items: the rows as monospaced lines, or "no rows"."""
    t = ctx.t
    heading = Paragraph(
        escape(t[title]) + f' <font size="8">({escape(t["count"].format(count=count))})</font>',
        ctx.s.heading,
    )
    spec = [Column(t[key], align, limit) for key, align, limit in columns]
    tables = mono_tables(spec, rows, ctx.chars, wrap_last)
    body = tables or [Paragraph(escape(t["no_rows"]), ctx.s.body)]
    return [CondPageBreak(40 * mm), heading, *body]


# -- cells ------------------------------------------------------------------------------------


def _signed(amount: int, currency: str) -> str:
    text = format_major(amount, currency)
    return text if amount < 0 else "+" + text


def _donation_cells(row: EntryRow, corrected: Mapping[int, int], t: Mapping[str, str]) -> list[str]:
    assert row.currency is not None and row.amount is not None
    donor = row.donor_name if row.donor_name else row.donor or ""
    if row.seq in corrected:
        donor += " · " + t["corrected_by"].format(seq=corrected[row.seq])
    return [
        str(row.seq),
        when(row.ts),
        format_major(row.amount, row.currency),
        row.currency,
        row.channel or "",
        donor,
    ]


def grant_status(grant: GrantRow) -> str:
    """Where the grant stands at the end of the report: the last of its events."""
    if grant.reversal is not None:
        return "reversed"
    if grant.cancellation is not None:
        return "cancelled"
    if grant.disbursement is not None:
        return "disbursed"
    return grant.decision.decision if grant.decision is not None else "open"


def _grant_cells(grant: GrantRow, t: Mapping[str, str]) -> list[str]:
    """The grant's row: its history one event a line, in log order, after the purpose."""
    proposed = (
        t["ev_proposed"]
        if grant.proposed_in_cycle
        else t["ev_proposed_earlier"].format(cycle=grant.proposed_cycle)
    )
    history = [
        f"→ {grant.recipient} · {grant.purpose}",
        _event_line(grant.proposed_ts, grant.id, proposed, t["proposed_by"].format(
            who=grant.proposer)),
    ]  # fmt: skip
    events: list[tuple[int, str]] = []
    for vote in grant.votes:
        text = f"{vote.member} ({vote.collective}): {vote.vote}"
        if vote.fast_lane:
            text += " · fast_lane"
        if vote.void:
            text += " · " + t["void"]
        events.append((vote.seq, _event_line(vote.ts, vote.seq, t["ev_vote"], text)))
    if grant.decision is not None:
        events.append((grant.decision.seq, _decision_line(grant, t)))
    labels = (
        (grant.disbursement, "ev_disbursed"),
        (grant.cancellation, "ev_cancelled"),
        (grant.reversal, "ev_reversed"),
    )
    for event, key in labels:
        if event is not None:
            text = f"{format_major(event.amount, grant.currency)} {grant.currency}"
            if event.reason:
                text += f" · {event.reason}"
            events.append((event.seq, _event_line(event.ts, event.seq, t[key], text)))
    history.extend(line for _, line in sorted(events))
    history.append(t["proposal_hash"].format(hash=grant.proposal_hash))
    return [
        str(grant.id),
        format_major(grant.amount, grant.currency),
        grant.currency,
        grant.urgency,
        t.get("st_" + grant_status(grant), grant_status(grant)),
        "\n".join(history) + "\n",  # (a blank line between grants)
    ]


def _event_line(ts: str, seq: int, event: str, detail: str) -> str:
    return f"{when(ts)}  #{seq}  {event}: {detail}"


def _decision_line(grant: GrantRow, t: Mapping[str, str]) -> str:
    d = grant.decision
    assert d is not None
    if d.lane == "fast_lane":
        lane = t["fast_lane_left"].format(
            left=format_major(d.allowance_left or 0, grant.currency), currency=grant.currency
        )
    else:
        lane = t["quorum"].format(quorum=d.quorum)
    text = f"{d.decision} · {lane}"
    if d.approvals:
        text += " · " + t["approvals"].format(names=", ".join(d.approvals))
    if d.rejections:
        text += " · " + t["rejections"].format(names=", ".join(d.rejections))
    return _event_line(d.ts, d.seq, t["ev_decided"], text)


def _correction_cells(row: EntryRow) -> list[str]:
    assert row.currency is not None and row.fund_change is not None
    return [
        str(row.seq),
        when(row.ts),
        str(row.corrects),
        row.decision or "",
        _signed(row.fund_change, row.currency),
        row.currency,
        short(row.entry_hash),
        row.reason or "",
    ]


def _custody_cells(h: Handover, t: Mapping[str, str]) -> list[str]:
    event = {
        "created": t["ev_pool_created"],
        "roster": t["ev_roster"],
        "opened": t["ev_opened"],
        "closed": t["ev_closed"],
    }[h.role]
    if h.role == "roster":
        detail = " → ".join(h.roster)
    elif h.role == "created":
        detail = ""
    else:
        detail = t["custody_detail"].format(
            carried=len(h.carried_over),
            committed=len(h.committed_grants),
            voided=len(h.voided_votes),
        )
    return [
        str(h.seq),
        when(h.ts),
        event,
        h.custodian_from or "—",
        h.custodian_to or "—",
        short(h.entry_hash),
        detail,
    ]
