"""JSON (the report, typed) and JSONL (the cycle's raw entries with inclusion proofs).

Types, as in the log: amounts are strings of decimal digits in minor units (signed ones may
start with ``-``), sequence numbers and counts are integers, hashes are lowercase hex, times
RFC 3339 UTC with microseconds. Both are written with sorted keys and no floats, so the same
log gives the same bytes.

JSONL, for auditors who trust nothing: the first line describes the covering checkpoint (with
the signed note verbatim); each further line is ``{"seq", "entry_hash", "entry",
"inclusion_proof", "texts"}`` where ``entry`` is the entry object exactly as logged (its RFC
8785 bytes are what was hashed), the proof is RFC 9162 against the checkpoint's root, and
``texts`` holds the public texts the entry commits to (data version 2), each with its salt,
so that its commitment can be recomputed (text and salt null once redacted; ``{}`` for an
entry without any). ``python -m exports.verify`` checks a file offline. Format
``lunaria-cycle-entries/2``; version 1 had no ``texts``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, select

from exports.links import base_url, checkpoint_url, report_url
from exports.report import (
    Anchor,
    CycleReport,
    Decision,
    EntryRow,
    Event,
    GrantRow,
    Handover,
    VoteRow,
)
from exports.sink import Sink
from ledger.fund import public_text
from ledger.log import (
    InclusionProof,
    NodeId,
    entries,
    inclusion_plan,
    leaf_hash,
    merkle,
    read_nodes,
    read_transaction,
)

REPORT_FORMAT = "lunaria-cycle-report/1"
ENTRIES_FORMAT = "lunaria-cycle-entries/2"
PROOF_BATCH = 1000


@dataclass(frozen=True)
class PdfDigest:
    """The SHA-256 of the PDF of the same report (the JSON names it, so both can be checked)."""

    lang: str
    sha256: str
    size: int


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- JSON ---------------------------------------------------------------------------------


def report_json(
    report: CycleReport, pdf: PdfDigest | None = None, base: str | None = None
) -> dict[str, Any]:
    """The report as JSON-ready values."""
    r = report
    cp = r.checkpoint
    url = base_url(cp.origin, base)
    return {
        "format": REPORT_FORMAT,
        "pool": {"slug": r.pool, "name": r.pool_name, "currencies": list(r.currencies)},
        "cycle": {
            "number": r.cycle,
            "start": r.starts_at,
            "end": r.ends_at,
            "custodian": r.custodian,
            "status": "interim" if r.interim else "closed",
            "opening_seq": r.opening_seq,
            "closing_seq": r.closing_seq,
        },
        "checkpoint": {
            "origin": cp.origin,
            "size": cp.size,
            "root": cp.root.hex(),
            "root_base64": base64.b64encode(cp.root).decode(),
            "note": cp.note,
            "url": checkpoint_url(url, cp.size),
        },
        "anchor": None if r.anchor is None else _anchor(r.anchor),
        "roll_forward": {rf.currency: rf.amounts() for rf in r.roll_forward},
        "statement": None if r.statement is None else {c: dict(v) for c, v in r.statement.items()},
        "counts": _counts(r),
        "daily": {
            currency: [
                {
                    "day": d.day,
                    "start": d.start,
                    "donations": str(d.donations),
                    "disbursements": str(d.disbursements),
                }
                for d in days
            ]
            for currency, days in r.daily.items()
        },
        "donations": [_donation(row, r.corrected()) for row in r.donations],
        "grants": [_grant(g) for g in r.grants],
        "corrections": [_correction(row) for row in r.corrections],
        "custody": [_handover(h) for h in r.custody],
        "pdf": None if pdf is None else {"lang": pdf.lang, "sha256": pdf.sha256, "size": pdf.size},
        "links": {
            ext: report_url(url, r.pool, r.cycle, ext)
            for ext in ("pdf", "csv", "json", "jsonl", "beancount")
        },
    }


def write_json(
    report: CycleReport, out: Sink, pdf: PdfDigest | None = None, base: str | None = None
) -> None:
    out.write(_dumps(report_json(report, pdf, base)) + b"\n")


def _counts(r: CycleReport) -> dict[str, int]:
    counts = {"entries": len(r.entries), "grants": len(r.grants)}
    for kind in ("donation_recorded", "grant_disbursed", "correction", "vote_cast"):
        counts[kind] = r.count(kind)
    return counts


def _anchor(a: Anchor) -> dict[str, Any]:
    return {
        "seq": a.seq,
        "ts": a.ts,
        "entry_hash": a.entry_hash,
        "chain_id": a.chain_id,
        "contract": a.contract,
        "tx_hash": a.tx_hash,
        "block_number": a.block_number,
        "size": a.size,
        "root": a.root,
        "consistency_proof": list(a.consistency),
    }


def _ident(seq: int, ts: str, entry_hash: str) -> dict[str, Any]:
    return {"seq": seq, "ts": ts, "entry_hash": entry_hash}


def _donation(row: EntryRow, corrected: Mapping[int, int]) -> dict[str, Any]:
    return {
        **_ident(row.seq, row.ts, row.entry_hash),
        "amount": str(row.amount),
        "currency": row.currency,
        "channel": row.channel,
        "donor_commitment": row.donor,
        "donor_name": row.donor_name,
        "corrected_by": corrected.get(row.seq),
    }


def _vote(v: VoteRow) -> dict[str, Any]:
    return {
        **_ident(v.seq, v.ts, v.entry_hash),
        "member": v.member,
        "collective": v.collective,
        "vote": v.vote,
        "fast_lane": v.fast_lane,
        "void": v.void,
    }


def _decision(d: Decision) -> dict[str, Any]:
    return {
        **_ident(d.seq, d.ts, d.entry_hash),
        "decision": d.decision,
        "lane": d.lane,
        "quorum": d.quorum,
        "approvals": list(d.approvals),
        "rejections": list(d.rejections),
        "allowance_left": None if d.allowance_left is None else str(d.allowance_left),
    }


def _event(e: Event | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {**_ident(e.seq, e.ts, e.entry_hash), "amount": str(e.amount), "reason": e.reason}


def _grant(g: GrantRow) -> dict[str, Any]:
    return {
        "id": g.id,
        "proposal": {
            **_ident(g.id, g.proposed_ts, g.proposal_hash),
            "cycle": g.proposed_cycle,
            "in_this_cycle": g.proposed_in_cycle,
            "amount": str(g.amount),
            "currency": g.currency,
            "purpose": g.purpose,
            "urgency": g.urgency,
            "recipient": g.recipient,
            "proposer": g.proposer,
        },
        "votes": [_vote(v) for v in g.votes],
        "decision": None if g.decision is None else _decision(g.decision),
        "disbursement": _event(g.disbursement),
        "cancellation": _event(g.cancellation),
        "reversal": _event(g.reversal),
    }


def _correction(row: EntryRow) -> dict[str, Any]:
    return {
        **_ident(row.seq, row.ts, row.entry_hash),
        "corrects": row.corrects,
        "corrected_kind": row.decision,
        "grant": row.grant,
        "amount": str(row.amount),
        "currency": row.currency,
        "fund_change": str(row.fund_change),
        "reason": row.reason,
    }


def _handover(h: Handover) -> dict[str, Any]:
    return {
        **_ident(h.seq, h.ts, h.entry_hash),
        "role": h.role,
        "from": h.custodian_from,
        "to": h.custodian_to,
        "roster": list(h.roster),
        "carried_over": list(h.carried_over),
        "committed_grants": list(h.committed_grants),
        "voided_votes": list(h.voided_votes),
    }


# -- JSONL ----------------------------------------------------------------------------------


def jsonl_header(report: CycleReport) -> dict[str, Any]:
    cp = report.checkpoint
    return {
        "format": ENTRIES_FORMAT,
        "pool": report.pool,
        "cycle": report.cycle,
        "status": "interim" if report.interim else "closed",
        "entries": len(report.entries),
        "checkpoint": {
            "origin": cp.origin,
            "size": cp.size,
            "root": cp.root.hex(),
            "note": cp.note,
        },
    }


def write_jsonl(engine: Engine, report: CycleReport, out: Sink) -> None:
    """The header line, then each entry of the report with its inclusion proof."""
    out.write(_dumps(jsonl_header(report)) + b"\n")
    size = report.checkpoint.size
    seqs = report.seqs
    for start in range(0, len(seqs), PROOF_BATCH):
        for line in _entry_lines(engine, seqs[start : start + PROOF_BATCH], size):
            out.write(line)


def _entry_lines(engine: Engine, seqs: Sequence[int], size: int) -> Iterator[bytes]:
    """One read of the entries and one of every proof node for a batch of entries."""
    plans = {seq: inclusion_plan(seq, size) for seq in seqs}
    wanted: set[NodeId] = {node for plan in plans.values() for part in plan for node in part}
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(entries.c.seq, entries.c.body)
            .where(entries.c.seq.in_(bindparam("seqs", expanding=True)))
            .order_by(entries.c.seq),
            {"seqs": list(seqs)},
        ).all()
        found = read_nodes(conn, wanted)
        objects = [json.loads(bytes(body)) for _, body in rows]
        texts = public_text.load_entry_texts(conn, [(o["kind"], o["data"]) for o in objects])
    for (seq, body), entry, served in zip(rows, objects, texts, strict=True):
        proof = InclusionProof.of(
            seq, size, leaf_hash(bytes(body)), merkle.resolve(plans[seq], lambda _: found)
        )
        line = {
            "seq": seq,
            "entry_hash": proof.leaf_hash,
            "entry": entry,
            "inclusion_proof": proof.to_json(),
            "texts": served,
        }
        yield _dumps(line) + b"\n"
