"""The PDF report (reportlab): deterministic bytes for the same log and parameters.

Determinism: ``invariant=1`` (fixed creation date and document id), no wall-clock time, no
randomness, fonts shipped in ``exports/fonts`` (subsets embedded). Long tables are monospaced
lines in 500-row chunks (:class:`MonoRows`) that split across pages with the header repeated
on each: one string per row and one text object per page keep 100,000 rows fast (a
``LongTable`` draws each cell with a text object of its own, several times the cost; see
``bench/reports.py``). "Page x of y" draws y from a form XObject filled in once the page count
is known.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    LongTable,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from exports.i18n import strings
from exports.links import base_url, checkpoint_url, report_url
from exports.report import CycleReport, EntryRow, GrantRow, Handover
from ledger.fund import CURRENCY_EXPONENTS, format_major

FONT_DIR = Path(__file__).parent / "fonts"
SANS, BOLD, MONO = "LunariaSans", "LunariaSans-Bold", "LunariaMono"
MONO_SIZE = 7.0
ROW_HEIGHT = 9.0
CHUNK_ROWS = 500
MARGIN = 15 * mm
PAGE_WIDTH, PAGE_HEIGHT = A4
FRAME_WIDTH = PAGE_WIDTH - 2 * MARGIN
PAGES_FORM = "lunaria-page-count"
HASH_PREFIX = 16
GREY = colors.Color(0.93, 0.93, 0.93)
DARK = colors.Color(0.2, 0.2, 0.3)
DONATION_COLOUR = colors.Color(0.18, 0.49, 0.20)
DISBURSEMENT_COLOUR = colors.Color(0.75, 0.35, 0.10)


def setup_reportlab() -> None:
    """Register the shipped DejaVu fonts (Latin, Cyrillic, Greek) and drop ASCII85.

    Without the optional rl_accel extension, reportlab's pure-Python ASCII85 encoder takes half
    the time of a large report; binary Flate streams are as valid and smaller. The setting is
    process-wide and set the same way before every render, so output stays deterministic.
    """
    rl_config.useA85 = 0
    registered = pdfmetrics.getRegisteredFontNames()
    for name, filename in (
        (SANS, "DejaVuSans.ttf"),
        (BOLD, "DejaVuSans-Bold.ttf"),
        (MONO, "DejaVuSansMono.ttf"),
    ):
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / filename)))


@dataclass(frozen=True)
class Column:
    """A column of a monospaced table: title, alignment (``<`` or ``>``), most characters."""

    title: str
    align: str = "<"
    limit: int = 40


@dataclass
class _Styles:
    title: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    small: ParagraphStyle
    code: ParagraphStyle
    label: ParagraphStyle
    number: ParagraphStyle


def _styles() -> _Styles:
    body = ParagraphStyle("body", fontName=SANS, fontSize=9, leading=12)
    return _Styles(
        title=ParagraphStyle("title", parent=body, fontName=BOLD, fontSize=18, leading=22),
        heading=ParagraphStyle(
            "heading",
            parent=body,
            fontName=BOLD,
            fontSize=12,
            leading=15,
            spaceBefore=8,
            spaceAfter=4,
        ),
        body=body,
        small=ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5),
        code=ParagraphStyle(
            "code",
            parent=body,
            fontName=MONO,
            fontSize=7,
            leading=9,
            wordWrap="CJK",
            leftIndent=8,
            textColor=DARK,
        ),
        label=ParagraphStyle("label", parent=body, fontName=BOLD, fontSize=8, leading=10),
        number=ParagraphStyle(
            "number", parent=body, fontName=MONO, fontSize=8, leading=10, alignment=TA_RIGHT
        ),
    )


def render_pdf(report: CycleReport, lang: str = "en", base: str | None = None) -> bytes:
    """The PDF bytes of ``report`` in ``lang`` (en, es, uk); same inputs, same bytes."""
    setup_reportlab()
    return _Builder(report, lang, base_url(report.checkpoint.origin, base)).build()


class _Builder:
    def __init__(self, report: CycleReport, lang: str, base: str) -> None:
        self.report = report
        self.lang = lang
        self.t = strings(lang)
        self.base = base
        self.s = _styles()
        self.pages = 0
        self.chars = int(FRAME_WIDTH / pdfmetrics.stringWidth("0", MONO, MONO_SIZE))

    # -- document ---------------------------------------------------------------------------

    def build(self) -> bytes:
        out = io.BytesIO()
        doc = self._document(out)
        doc._doSave = 0  # we save, after the page-count form is drawn
        doc.build(self._story())
        canvas = doc.canv
        canvas.beginForm(PAGES_FORM)
        canvas.setFont(SANS, 7)
        canvas.drawString(0, 0, str(self.pages))
        canvas.endForm()
        canvas.save()
        return out.getvalue()

    def _document(self, out: io.BytesIO) -> BaseDocTemplate:
        """A4 pages with header and footer; title, subject, keywords and language set."""
        r, cp = self.report, self.report.checkpoint
        values = {"pool": r.pool, "pool_name": r.pool_name, "cycle": r.cycle}
        status = "interim" if r.interim else "closed"
        doc = BaseDocTemplate(
            out,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN + 6 * mm,
            bottomMargin=MARGIN + 4 * mm,
            title=self.t["doc_title"].format(**values),
            subject=self.t["doc_subject"].format(**values, size=cp.size, origin=cp.origin),
            keywords=f"Lunaria, {r.pool}, cycle {r.cycle}, checkpoint {cp.size}, {status}, "
            "transparency log",
            author="Lunaria",
            creator="Lunaria exports",
            lang=self.lang,
            initialFontName=SANS,
            initialFontSize=9,
            invariant=1,
            pageCompression=1,
        )
        frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
        doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=self._decorate)])
        return doc

    def _decorate(self, canvas: Any, doc: Any) -> None:
        """Header and footer of every page: what this is, and page x of y."""
        r = self.report
        page = canvas.getPageNumber()
        self.pages = max(self.pages, page)
        canvas.saveState()
        canvas.setFont(SANS, 7)
        canvas.setFillColor(DARK)
        top = PAGE_HEIGHT - MARGIN
        canvas.drawString(MARGIN, top, f"Lunaria · {r.pool_name} ({r.pool}) · {r.cycle}")
        status = self.t["interim"] if r.interim else self.t["closed"]
        canvas.setFont(BOLD, 7)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top, status)
        canvas.setFont(SANS, 7)
        root = base64.b64encode(r.checkpoint.root).decode()
        canvas.drawString(
            MARGIN, MARGIN, f"{r.checkpoint.origin} · {r.checkpoint.size} · {root[:16]}…"
        )
        prefix = self.t["page"].format(page=page, pages="")
        x = PAGE_WIDTH - MARGIN - 95
        canvas.drawString(x, MARGIN, prefix)
        canvas.translate(x + pdfmetrics.stringWidth(prefix, SANS, 7), MARGIN)
        canvas.doForm(PAGES_FORM)
        canvas.restoreState()

    def _story(self) -> list[Any]:
        story: list[Any] = []
        for part in (
            self._cover,
            self._roll_forward,
            self._charts,
            self._donations,
            self._grants,
            self._corrections,
            self._custody,
            self._verify,
        ):
            story.extend(part())
        return story

    # -- cover ------------------------------------------------------------------------------

    def _cover(self) -> list[Any]:
        r, t, s = self.report, self.t, self.s
        title = t["title"] + (f" — {t['interim']}" if r.interim else "")
        note = (
            t["interim_note"].format(size=r.checkpoint.size)
            if r.interim
            else t["closed_note"].format(seq=r.closing_seq, size=r.checkpoint.size)
        )
        facts = [
            (t["pool"], f"{r.pool_name} ({r.pool})"),
            (t["cycle"], str(r.cycle)),
            (t["starts"], _when(r.starts_at)),
            (t["ends"], _when(r.ends_at)),
            (t["custodian"], r.custodian or t["none"]),
        ]
        return [
            Paragraph(escape(title), s.title),
            Paragraph(escape(f"{r.pool_name} · {t['cycle']} {r.cycle}"), s.heading),
            Paragraph(escape(note), s.body),
            Spacer(1, 4),
            self._facts(facts),
            Paragraph(escape(t["checkpoint"]), s.heading),
            self._checkpoint(),
            Paragraph(escape(t["anchor"]), s.heading),
            self._anchor(),
        ]

    def _facts(
        self, rows: Sequence[tuple[str, str]], mono: bool = False, width: float | None = None
    ) -> Table:
        """Label and value pairs; ``width`` bounds the value column (default: the rest)."""
        style = self.s.code if mono else self.s.body
        data = [
            [Paragraph(escape(label), self.s.label), Paragraph(escape(value), style)]
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

    def _checkpoint(self) -> Table:
        cp, t = self.report.checkpoint, self.t
        url = checkpoint_url(self.base, cp.size)
        rows = [
            (t["origin"], cp.origin),
            (t["tree_size"], str(cp.size)),
            (t["root_b64"], base64.b64encode(cp.root).decode()),
            (t["root_hex"], cp.root.hex()),
            *((t["signature"], line) for line in cp.signature_lines),
            (t["receipt_url"], url),
        ]
        facts = self._facts(rows, mono=True, width=FRAME_WIDTH - 45 * mm - 40 * mm)
        outer = Table([[facts, _qr(url, 32 * mm)]], colWidths=[None, 36 * mm], hAlign="LEFT")
        outer.setStyle(
            TableStyle([("FONT", (0, 0), (-1, -1), SANS, 8), ("VALIGN", (0, 0), (-1, -1), "TOP")])
        )
        return outer

    def _anchor(self) -> Any:
        a, t = self.report.anchor, self.t
        if a is None:
            return Paragraph(escape(t["not_anchored"]), self.s.body)
        rows = [
            (t["chain_id"], str(a.chain_id)),
            (t["contract"], a.contract),
            (t["transaction"], a.tx_hash),
            (t["block"], str(a.block_number)),
            (t["anchored_size"], str(a.size)),
            (t["root_hex"], a.root),
            (t["anchor_entry"], f"seq {a.seq} · {a.entry_hash[:HASH_PREFIX]}"),
        ]
        return self._facts(rows, mono=True)

    # -- numbers ----------------------------------------------------------------------------

    def _roll_forward(self) -> list[Any]:
        r, t, s = self.report, self.t, self.s
        fields = (
            ("opening", "opening"),
            ("donations", "donations"),
            ("disbursements", "disbursements"),
            ("corrections", "corrections"),
            ("closing", "closing"),
            ("committed", "committed"),
            ("available", "available"),
        )
        header = [Paragraph(escape(t["currency"]), s.label)] + [
            Paragraph(rf.currency, s.label) for rf in r.roll_forward
        ]
        data: list[list[Any]] = [header]
        for key, attribute in fields:
            data.append(
                [Paragraph(escape(t[key]), s.label)]
                + [
                    Paragraph(_money(getattr(rf, attribute), rf.currency), s.number)
                    for rf in r.roll_forward
                ]
            )
        data.append(
            [Paragraph(escape(t["fast_lane"]), s.label)]
            + [
                Paragraph(
                    f"{_money(rf.fast_lane_used, rf.currency)} / "
                    f"{_money(rf.fast_lane_allowance, rf.currency)}",
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

    def _charts(self) -> list[Any]:
        story: list[Any] = []
        for currency, days in self.report.daily.items():
            title = Paragraph(escape(self.t["chart"].format(currency=currency)), self.s.heading)
            story.append(KeepTogether([title, self._chart(currency, days)]))
        return story

    def _chart(self, currency: str, days: Sequence[Any]) -> Drawing:
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
                self.t["chart_day"],
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
            (DONATION_COLOUR, self.t["legend_donations"]),
            (DISBURSEMENT_COLOUR, self.t["legend_disbursements"]),
        ]
        drawing.add(legend)
        return drawing

    # -- tables -----------------------------------------------------------------------------

    def _section(self, title: str, count: int, tables: list[Any]) -> list[Any]:
        heading = Paragraph(
            escape(title) + f' <font size="8">({escape(self.t["count"].format(count=count))})'
            "</font>",
            self.s.heading,
        )
        body = tables or [Paragraph(escape(self.t["no_rows"]), self.s.body)]
        return [CondPageBreak(40 * mm), heading, *body]

    def _donations(self) -> list[Any]:
        t = self.t
        corrected = self.report.corrected()
        columns = [
            Column(t["h_seq"], ">", 12),
            Column(t["h_time"], "<", 19),
            Column(t["h_amount"], ">", 40),
            Column(t["h_currency"], "<", 5),
            Column(t["h_channel"], "<", 7),
            Column(t["h_hash"], "<", HASH_PREFIX),
            Column(t["h_donor"], "<", 200),
        ]
        rows = [_donation_cells(row, corrected, t) for row in self.report.donations]
        return self._section(t["donations_title"], len(rows), self._mono(columns, rows))

    def _grants(self) -> list[Any]:
        t = self.t
        columns = [
            Column(t["h_grant"], ">", 12),
            Column(t["h_seq"], ">", 12),
            Column(t["h_time"], "<", 19),
            Column(t["h_event"], "<", 26),
            Column(t["h_hash"], "<", HASH_PREFIX),
            Column(t["h_detail"], "<", 400),
        ]
        rows: list[list[str]] = []
        for grant in self.report.grants:
            rows.extend(_grant_cells(grant, t))
        tables = self._mono(columns, rows, wrap_last=True)
        return self._section(t["grants_title"], len(self.report.grants), tables)

    def _corrections(self) -> list[Any]:
        t = self.t
        columns = [
            Column(t["h_seq"], ">", 12),
            Column(t["h_time"], "<", 19),
            Column(t["h_corrects"], ">", 12),
            Column(t["h_kind"], "<", 17),
            Column(t["h_change"], ">", 40),
            Column(t["h_currency"], "<", 5),
            Column(t["h_hash"], "<", HASH_PREFIX),
            Column(t["h_reason"], "<", 300),
        ]
        rows = [_correction_cells(row) for row in self.report.corrections]
        tables = self._mono(columns, rows, wrap_last=True)
        return self._section(t["corrections_title"], len(rows), tables)

    def _custody(self) -> list[Any]:
        t = self.t
        columns = [
            Column(t["h_seq"], ">", 12),
            Column(t["h_time"], "<", 19),
            Column(t["h_event"], "<", 22),
            Column(t["h_from"], "<", 24),
            Column(t["h_to"], "<", 24),
            Column(t["h_hash"], "<", HASH_PREFIX),
            Column(t["h_detail"], "<", 300),
        ]
        rows = [_custody_cells(h, t) for h in self.report.custody]
        tables = self._mono(columns, rows, wrap_last=True)
        return self._section(t["custody_title"], len(rows), tables)

    def _mono(
        self, columns: Sequence[Column], rows: Sequence[Sequence[str]], wrap_last: bool = False
    ) -> list[Any]:
        """Monospaced lines in chunks of CHUNK_ROWS rows, the header repeated on each page."""
        if not rows:
            return []
        widths = _widths(columns, rows, self.chars)
        template = _template(widths, columns)
        header = template.format(*_fit([c.title for c in columns], widths)).rstrip()
        lines: list[str] = []
        for row in rows:
            lines.extend(_lines(row, widths, template, wrap_last))
        return [
            MonoRows(header, lines[start : start + CHUNK_ROWS])
            for start in range(0, len(lines), CHUNK_ROWS)
        ]

    # -- how to verify ------------------------------------------------------------------------

    def _verify(self) -> list[Any]:
        r, t, s = self.report, self.t, self.s
        story: list[Any] = [
            CondPageBreak(60 * mm),
            Paragraph(escape(t["verify_title"]), s.heading),
            Paragraph(escape(t["verify_intro"]), s.body),
            Spacer(1, 4),
        ]
        for number, (text, commands) in enumerate(self._verify_steps(), 1):
            story.append(Paragraph(escape(f"{number}. {text}"), s.body))
            story.extend(Paragraph(escape(c), s.code) for c in commands)
            story.append(Spacer(1, 4))
        note = escape(r.checkpoint.note).replace("\n", "<br/>")
        return [*story, Paragraph(note, s.code)]

    def _verify_steps(self) -> list[tuple[str, tuple[str, ...]]]:
        """(text, commands) of each step; the anchor step only when there is an anchor."""
        r, t = self.report, self.t
        cp = r.checkpoint
        root = base64.b64encode(cp.root).decode()
        jsonl = report_url(self.base, r.pool, r.cycle, "jsonl")
        sums = t["verify_sums"].format(opening=r.opening_seq, pool=r.pool)
        if r.closing_seq is not None:
            sums += " " + t["verify_statement"].format(closing=r.closing_seq)
        pdf_name = f"{r.pool}-{r.cycle}-{self.lang}.pdf"
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
        command = f"lunaria report {r.pool} {r.cycle} --format pdf --lang {self.lang}"
        steps.append((t["verify_pdf"], (f"{command} -o {pdf_name}", f"sha256sum {pdf_name}")))
        return steps


JCS_PYTHON = 'json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()'


# -- cells ------------------------------------------------------------------------------------


def _when(ts: str) -> str:
    """``2026-01-05T10:00:00.123456Z`` -> ``2026-01-05 10:00:00`` (UTC; exact in CSV/JSON)."""
    return f"{ts[:10]} {ts[11:19]}"


def _short(entry_hash: str) -> str:
    return entry_hash[:HASH_PREFIX]


def _money(amount: int, currency: str) -> str:
    return format_major(amount, currency)


def _signed(amount: int, currency: str) -> str:
    text = format_major(amount, currency)
    return text if amount < 0 else "+" + text


def _donation_cells(row: EntryRow, corrected: Mapping[int, int], t: Mapping[str, str]) -> list[str]:
    assert row.currency is not None and row.amount is not None
    donor = row.donor_name if row.donor_name else f"{(row.donor or '')[:HASH_PREFIX]}…"
    if row.seq in corrected:
        donor += " · " + t["corrected_by"].format(seq=corrected[row.seq])
    return [
        str(row.seq),
        _when(row.ts),
        format_major(row.amount, row.currency),
        row.currency,
        row.channel or "",
        _short(row.entry_hash),
        donor,
    ]


def _grant_cells(grant: GrantRow, t: Mapping[str, str]) -> list[list[str]]:
    gid = str(grant.id)
    amount = f"{format_major(grant.amount, grant.currency)} {grant.currency}"
    event = (
        t["ev_proposed"]
        if grant.proposed_in_cycle
        else t["ev_proposed_earlier"].format(cycle=grant.proposed_cycle)
    )
    detail = f"{amount} · {grant.urgency} · → {grant.recipient} · {grant.purpose}"
    first = [gid, str(grant.id), _when(grant.proposed_ts), event, _short(grant.proposal_hash)]
    rows = [[*first, detail]]
    for vote in grant.votes:
        text = f"{vote.member} ({vote.collective}): {vote.vote}"
        if vote.fast_lane:
            text += " · fast_lane"
        if vote.void:
            text += " · " + t["void"]
        rows.append(
            ["", str(vote.seq), _when(vote.ts), t["ev_vote"], _short(vote.entry_hash), text]
        )
    if grant.decision is not None:
        d = grant.decision
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
        rows.append(["", str(d.seq), _when(d.ts), t["ev_decided"], _short(d.entry_hash), text])
    labels = (
        (grant.disbursement, "ev_disbursed"),
        (grant.cancellation, "ev_cancelled"),
        (grant.reversal, "ev_reversed"),
    )
    for event_row, key in labels:
        if event_row is not None:
            text = f"{format_major(event_row.amount, grant.currency)} {grant.currency}"
            if event_row.reason:
                text += f" · {event_row.reason}"
            seq, when = str(event_row.seq), _when(event_row.ts)
            rows.append(["", seq, when, t[key], _short(event_row.entry_hash), text])
    return rows


def _correction_cells(row: EntryRow) -> list[str]:
    assert row.currency is not None and row.fund_change is not None
    return [
        str(row.seq),
        _when(row.ts),
        str(row.corrects),
        row.decision or "",
        _signed(row.fund_change, row.currency),
        row.currency,
        _short(row.entry_hash),
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
        _when(h.ts),
        event,
        h.custodian_from or "—",
        h.custodian_to or "—",
        _short(h.entry_hash),
        detail,
    ]


# -- monospaced tables ------------------------------------------------------------------------


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], chars: int) -> list[int]:
    """Each column as wide as its widest cell (up to its limit); the last takes what is left."""
    widths = [
        min(column.limit, max(len(column.title), *(len(row[i]) for row in rows)))
        for i, column in enumerate(columns)
    ]
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(8, min(widths[-1], chars - fixed))
    return widths


def _template(widths: Sequence[int], columns: Sequence[Column]) -> str:
    """A format string that pads each cell to its column (cells are cut to fit first)."""
    return "  ".join(
        f"{{:{column.align}{width}}}" for width, column in zip(widths, columns, strict=True)
    )


def _fit(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    return [
        cell if len(cell) <= width else cell[: width - 1] + "…"
        for cell, width in zip(cells, widths, strict=True)
    ]


def _lines(row: Sequence[str], widths: Sequence[int], template: str, wrap_last: bool) -> list[str]:
    """One line, or with ``wrap_last`` the last cell wrapped over continuation lines."""
    last = row[-1]
    if not wrap_last or len(last) <= widths[-1]:
        return [template.format(*_fit(row, widths)).rstrip()]
    pieces = textwrap.wrap(last, widths[-1], break_long_words=True) or [""]
    blank = [""] * (len(row) - 1)
    return [template.format(*_fit([*row[:-1], pieces[0]], widths)).rstrip()] + [
        template.format(*blank, piece).rstrip() for piece in pieces[1:]
    ]


class MonoRows(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """Monospaced lines under a header line; split across pages, the header on each part.

    One text object per page and one string per row: a LongTable draws each cell with its
    own text object and position, which costs several times more for 100,000 rows.
    """

    def __init__(self, header: str, lines: Sequence[str]) -> None:
        super().__init__()
        self.header = header
        self.lines = lines

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width = FRAME_WIDTH
        self.height = (len(self.lines) + 1) * ROW_HEIGHT + _EXTRA
        return self.width, self.height

    def split(self, available_width: float, available_height: float) -> list[MonoRows]:
        fits = int((available_height - _EXTRA) // ROW_HEIGHT) - 1
        if fits < 1:
            return []
        if fits >= len(self.lines):
            return [self]
        return [MonoRows(self.header, self.lines[:fits]), MonoRows(self.header, self.lines[fits:])]

    def draw(self) -> None:
        canvas = self.canv
        rule = self.height - ROW_HEIGHT - 1.5  # under the header band
        canvas.setFillColor(GREY)
        canvas.rect(0, rule, FRAME_WIDTH, self.height - rule, stroke=0, fill=1)
        canvas.setStrokeColor(DARK)
        canvas.setLineWidth(0.5)
        canvas.line(0, rule, FRAME_WIDTH, rule)
        canvas.setFillColor(colors.black)
        canvas.setFont(MONO, MONO_SIZE)
        canvas.drawString(2, rule + 3, self.header)
        text = canvas.beginText(2, rule - ROW_HEIGHT + 2)
        text.setFont(MONO, MONO_SIZE, ROW_HEIGHT)
        for line in self.lines:
            text.textLine(line)
        canvas.drawText(text)


_EXTRA = 4.0  # points beyond the rows: the header's rule and the last row's descenders


def _qr(url: str, size: float) -> Drawing:
    widget = QrCodeWidget(url)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.initialFontName = SANS
    drawing.add(widget)
    return drawing


def bare_table_pdf(rows: Sequence[Sequence[str]]) -> bytes:
    """The baseline of the benchmark: reportlab alone, the same rows as plain 500-row
    LongTables (one cell per value, standard font, repeatRows=1), no report around them."""
    out = io.BytesIO()
    doc = BaseDocTemplate(out, pagesize=A4, invariant=1)
    frame = Frame(MARGIN, MARGIN, FRAME_WIDTH, PAGE_HEIGHT - 2 * MARGIN)
    doc.addPageTemplates([PageTemplate(frames=[frame])])
    style = TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 7)])
    story = [
        LongTable([list(rows[0]), *rows[start : start + CHUNK_ROWS]], repeatRows=1, style=style)
        for start in range(1, len(rows), CHUNK_ROWS)
    ]
    doc.build(story)
    return out.getvalue()
