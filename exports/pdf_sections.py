"""The PDF's summary and closing sections: the cover (pool, cycle, checkpoint, anchor), the
roll-forward, the daily charts, and how to verify the report."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, KeepTogether, Paragraph, Spacer, Table, TableStyle

from exports.links import checkpoint_url, report_url
from exports.pdf_layout import (
    DARK,
    DISBURSEMENT_COLOUR,
    DONATION_COLOUR,
    FRAME_WIDTH,
    GREY,
    SANS,
    Context,
    qr,
    when,
)
from exports.report import STATEMENT_FIELDS
from ledger.fund import CURRENCY_EXPONENTS, format_major

JCS_PYTHON = 'json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()'


# -- cover ------------------------------------------------------------------------------------


def cover(ctx: Context) -> list[Any]:
    """Title, the pool and cycle, the covering checkpoint (with a QR code) and its anchor."""
    r, t, s = ctx.report, ctx.t, ctx.s
    title = t["title"] + (f" — {t['interim']}" if r.interim else "")
    note = (
        t["interim_note"].format(size=r.checkpoint.size)
        if r.interim
        else t["closed_note"].format(seq=r.closing_seq, size=r.checkpoint.size)
    )
    facts = [
        (t["pool"], f"{r.pool_name} ({r.pool})"),
        (t["cycle"], str(r.cycle)),
        (t["starts"], when(r.starts_at)),
        (t["ends"], when(r.ends_at)),
        (t["custodian"], r.collective(r.custodian) or t["none"]),
    ]
    return [
        Paragraph(escape(title), s.title),
        Paragraph(escape(f"{r.pool_name} · {t['cycle']} {r.cycle}"), s.heading),
        Paragraph(escape(note), s.body),
        Spacer(1, 4),
        _facts(ctx, facts),
        Paragraph(escape(t["checkpoint"]), s.heading),
        _checkpoint(ctx),
        Paragraph(escape(t["anchor"]), s.heading),
        _anchor(ctx),
    ]


def _facts(
    ctx: Context, rows: Sequence[tuple[str, str]], mono: bool = False, width: float | None = None
) -> Table:
    """Label and value pairs; ``width`` bounds the value column (default: the rest)."""
    style = ctx.s.code if mono else ctx.s.body
    data = [
        [Paragraph(escape(label), ctx.s.label), Paragraph(escape(value), style)]
        for label, value in rows
    ]
    table = Table(data, colWidths=[45 * mm, width], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), SANS, 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return table


def _checkpoint(ctx: Context) -> Table:
    cp, t = ctx.report.checkpoint, ctx.t
    url = checkpoint_url(ctx.base, cp.size)
    rows = [
        (t["origin"], cp.origin),
        (t["tree_size"], str(cp.size)),
        (t["root_b64"], base64.b64encode(cp.root).decode()),
        (t["root_hex"], cp.root.hex()),
        *((t["signature"], line) for line in cp.signature_lines),
        (t["receipt_url"], url),
    ]
    facts = _facts(ctx, rows, mono=True, width=FRAME_WIDTH - 45 * mm - 40 * mm)
    outer = Table([[facts, qr(url, 32 * mm)]], colWidths=[None, 36 * mm], hAlign="LEFT")
    outer.setStyle(
        TableStyle([("FONT", (0, 0), (-1, -1), SANS, 8), ("VALIGN", (0, 0), (-1, -1), "TOP")])
    )
    return outer


def _anchor(ctx: Context) -> Any:
    a, t = ctx.report.anchor, ctx.t
    if a is None:
        return Paragraph(escape(t["not_anchored"]), ctx.s.body)
    rows = [
        (t["chain_id"], str(a.chain_id)),
        (t["contract"], a.contract),
        (t["transaction"], a.tx_hash),
        (t["block"], str(a.block_number)),
        (t["anchored_size"], str(a.size)),
        (t["root_hex"], a.root),
        (t["anchor_entry"], f"seq {a.seq} · {a.entry_hash}"),
    ]
    return _facts(ctx, rows, mono=True)


# -- numbers ----------------------------------------------------------------------------------


def roll_forward(ctx: Context) -> list[Any]:
    """The roll-forward per currency, and whether it equals the handover statement."""
    r, t, s = ctx.report, ctx.t, ctx.s
    header = [Paragraph(escape(t["currency"]), s.label)] + [
        Paragraph(rf.currency, s.label) for rf in r.roll_forward
    ]
    data: list[list[Any]] = [header]
    for name in STATEMENT_FIELDS:
        data.append(
            [Paragraph(escape(t[name]), s.label)]
            + [
                Paragraph(format_major(getattr(rf, name), rf.currency), s.number)
                for rf in r.roll_forward
            ]
        )
    data.append(
        [Paragraph(escape(t["fast_lane"]), s.label)]
        + [
            Paragraph(
                f"{format_major(rf.fast_lane_used, rf.currency)} / "
                f"{format_major(rf.fast_lane_allowance, rf.currency)}",
                s.number,
            )
            for rf in r.roll_forward
        ]
    )
    table = Table(data, colWidths=[55 * mm] + [None] * len(r.roll_forward), hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), SANS, 8),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, DARK),
                ("LINEABOVE", (0, 5), (-1, 5), 0.5, DARK),
                ("BACKGROUND", (0, 5), (-1, 5), GREY),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    check = (
        t["statement_ok"].format(seq=r.closing_seq)
        if r.statement is not None
        else t["statement_none"]
    )
    return [
        KeepTogether(
            [
                Paragraph(escape(t["roll_forward"]), s.heading),
                table,
                Spacer(1, 3),
                Paragraph(escape(check), s.small),
            ]
        )
    ]


def charts(ctx: Context) -> list[Any]:
    """Donations and disbursements per day of the cycle, a bar chart per currency."""
    story: list[Any] = []
    for currency, days in ctx.report.daily.items():
        title = Paragraph(escape(ctx.t["chart"].format(currency=currency)), ctx.s.heading)
        story.append(KeepTogether([title, _chart(ctx, currency, days)]))
    return story


def _chart(ctx: Context, currency: str, days: Sequence[Any]) -> Drawing:
    scale = 10 ** CURRENCY_EXPONENTS[currency]
    donated = [d.donations / scale for d in days]
    disbursed = [d.disbursements / scale for d in days]
    drawing = Drawing(FRAME_WIDTH, 62 * mm)
    drawing.initialFontName = SANS  # else the graphics state starts in Helvetica
    chart = VerticalBarChart()
    chart.x, chart.y = 40, 30
    chart.width, chart.height = FRAME_WIDTH - 60, 62 * mm - 50
    chart.data = [donated, disbursed]
    chart.bars[0].fillColor = DONATION_COLOUR
    chart.bars[1].fillColor = DISBURSEMENT_COLOUR
    chart.bars.strokeWidth = 0
    chart.groupSpacing = 2
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max([*donated, *disbursed, 0]) * 1.1 or 1
    chart.valueAxis.labels.fontName = SANS
    chart.valueAxis.labels.fontSize = 6
    chart.valueAxis.labelTextFormat = "%.0f" if scale <= 100 else "%.2f"
    chart.categoryAxis.categoryNames = [
        str(d.day) if d.day == 1 or d.day % 5 == 0 else "" for d in days
    ]
    chart.categoryAxis.labels.fontName = SANS
    chart.categoryAxis.labels.fontSize = 6
    drawing.add(chart)
    drawing.add(
        String(
            chart.x + chart.width / 2,
            4,
            ctx.t["chart_day"],
            fontName=SANS,
            fontSize=7,
            textAnchor="middle",
        )
    )
    legend = Legend()
    legend.x, legend.y = chart.x + 6, chart.y + chart.height + 8
    legend.fontName, legend.fontSize = SANS, 7
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.deltax = 90
    legend.colorNamePairs = [
        (DONATION_COLOUR, ctx.t["legend_donations"]),
        (DISBURSEMENT_COLOUR, ctx.t["legend_disbursements"]),
    ]
    drawing.add(legend)
    return drawing


# -- sign-off -----------------------------------------------------------------------------------


def sign_off(ctx: Context) -> list[Any]:
    """The outgoing and incoming custodians' signatures, under what they sign for: the
    handover entry and the checkpoint, their hashes whole (to be typed into a verifier)."""
    r, t, s = ctx.report, ctx.t, ctx.s
    closing = next((h for h in r.custody if h.role == "closed"), None)
    story: list[Any] = [CondPageBreak(90 * mm), Paragraph(escape(t["signoff_title"]), s.heading)]
    if r.interim or closing is None:
        return [*story, Paragraph(escape(t["signoff_interim"]), s.body)]
    facts = [
        (t["signoff_handover"].format(seq=closing.seq), closing.entry_hash),
        (t["tree_size"], str(r.checkpoint.size)),
        (t["root_hex"], r.checkpoint.root.hex()),
    ]
    story += [Paragraph(escape(t["signoff_intro"]), s.body), Spacer(1, 4)]
    story += [_facts(ctx, facts, mono=True), Spacer(1, 8)]
    return [*story, KeepTogether([_signatures(ctx, closing.custodian_from, closing.custodian_to)])]


def _signatures(ctx: Context, outgoing: str | None, incoming: str | None) -> Table:
    """Two columns, outgoing and incoming: who, then lines to fill in by hand."""
    r, t, s = ctx.report, ctx.t, ctx.s
    cell = (FRAME_WIDTH - 6 * mm) / 2
    rows: list[list[Any]] = [
        [Paragraph(escape(t["signoff_outgoing"]), s.label),
         Paragraph(escape(t["signoff_incoming"]), s.label)],
        [Paragraph(escape(r.collective(outgoing) or t["none"]), s.body),
         Paragraph(escape(r.collective(incoming) or t["none"]), s.body)],
    ]  # fmt: skip
    for key in ("signoff_name", "signoff_signature", "signoff_date"):
        label = Paragraph(escape(t[key]), s.small)
        rows.append([Spacer(1, 16), Spacer(1, 16)])
        rows.append([label, label])
    table = Table(rows, colWidths=[cell, cell], hAlign="LEFT")
    lines = [("LINEBELOW", (0, n), (-1, n), 0.5, DARK) for n in range(2, len(rows), 2)]
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), SANS, 8),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 6 * mm),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                *lines,
            ]
        )
    )
    return table


# -- how to verify ----------------------------------------------------------------------------


def verify(ctx: Context) -> list[Any]:
    """How to check the report from the log alone, step by step, and the signed checkpoint."""
    r, t, s = ctx.report, ctx.t, ctx.s
    story: list[Any] = [
        CondPageBreak(60 * mm),
        Paragraph(escape(t["verify_title"]), s.heading),
        Paragraph(escape(t["verify_intro"]), s.body),
        Spacer(1, 4),
    ]
    for number, (text, commands) in enumerate(_verify_steps(ctx), 1):
        story.append(Paragraph(escape(f"{number}. {text}"), s.body))
        story.extend(Paragraph(escape(c), s.code) for c in commands)
        story.append(Spacer(1, 4))
    note = escape(r.checkpoint.note).replace("\n", "<br/>")
    return [*story, Paragraph(note, s.code)]


def _verify_steps(ctx: Context) -> list[tuple[str, tuple[str, ...]]]:
    """(text, commands) of each step; the anchor step only when there is an anchor."""
    r, t = ctx.report, ctx.t
    cp = r.checkpoint
    root = base64.b64encode(cp.root).decode()
    jsonl = report_url(ctx.base, r.pool, r.cycle, "jsonl")
    sums = t["verify_sums"].format(opening=r.opening_seq, pool=r.pool)
    if r.closing_seq is not None:
        sums += " " + t["verify_statement"].format(closing=r.closing_seq)
    pdf_name = f"{r.pool}-{r.cycle}-{ctx.lang}.pdf"
    steps = [
        (
            t["verify_get"],
            (
                f"curl -o cycle.jsonl {jsonl}",
                f"lunaria report {r.pool} {r.cycle} --format jsonl -o cycle.jsonl",
                "lunaria vkey > vkey.txt   # or from the operator; entry 0 has data.vkey",
            ),
        ),
        (t["verify_leaf"], (JCS_PYTHON,)),
        (
            t["verify_proof"].format(root=root, size=cp.size, origin=cp.origin),
            ('python -m exports.verify cycle.jsonl --vkey "$(cat vkey.txt)"',),
        ),
        (sums, ()),
        (
            t["verify_whole"],
            (
                "lunaria export log.jsonl && lunaria checkpoint > checkpoint.txt",
                "lunaria verify --export log.jsonl --checkpoint checkpoint.txt "
                '--vkey "$(cat vkey.txt)"',
            ),
        ),
    ]
    if r.anchor is not None:
        a = r.anchor
        text = t["verify_anchor"].format(
            chain_id=a.chain_id, contract=a.contract, root=a.root, size=a.size, tx=a.tx_hash
        )
        steps.append((text, ()))
    command = f"lunaria report {r.pool} {r.cycle} --format pdf --lang {ctx.lang}"
    steps.append((t["verify_pdf"], (f"{command} -o {pdf_name}", f"sha256sum {pdf_name}")))
    return steps
