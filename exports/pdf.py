"""The PDF report (reportlab): deterministic bytes for the same log and parameters.

The document: A4 pages with a header and footer, the cover and roll-forward
(:mod:`exports.pdf_sections`), the tables of entries (:mod:`exports.pdf_tables`) and how to
verify; page layout, fonts and the monospaced tables are :mod:`exports.pdf_layout`.

Determinism: ``invariant=1`` (a fixed document id), creation and modification dates from the
log (:attr:`exports.report.CycleReport.dated`), no wall-clock time, no randomness, fonts
shipped in ``exports/fonts`` (subsets embedded). "Page x of y" draws y from
a form XObject filled in once the page count is known.
"""

from __future__ import annotations

import base64
import calendar
import io
from collections.abc import Sequence
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import TimeStamp
from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import BaseDocTemplate, Frame, LongTable, PageTemplate, TableStyle

from exports import pdf_response, pdf_sections, pdf_tables
from exports.i18n import strings
from exports.links import base_url
from exports.pdf_layout import (
    BOLD,
    CHUNK_ROWS,
    DARK,
    FRAME_WIDTH,
    MARGIN,
    MONO,
    MONO_SIZE,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    SANS,
    Context,
    setup_reportlab,
    styles,
)
from exports.report import CycleReport
from ledger.log import parse_ts

PAGES_FORM = "lunaria-page-count"
PARTS = (
    pdf_sections.cover,
    pdf_sections.roll_forward,
    pdf_sections.charts,
    pdf_tables.donations,
    pdf_tables.grants,
    pdf_tables.corrections,
    pdf_tables.custody,
    pdf_response.response,
    pdf_sections.sign_off,
    pdf_sections.verify,
)
"""The document's parts, in order."""


def render_pdf(report: CycleReport, lang: str = "en", base: str | None = None) -> bytes:
    """The PDF bytes of ``report`` in ``lang`` (en, es, uk); same inputs, same bytes."""
    setup_reportlab()
    return _Builder(report, lang, base_url(report.checkpoint.origin, base)).build()


class _Builder:
    def __init__(self, report: CycleReport, lang: str, base: str) -> None:
        self.report = report
        self.lang = lang
        self.t = strings(lang)
        chars = int(FRAME_WIDTH / pdfmetrics.stringWidth("0", MONO, MONO_SIZE))
        self.ctx = Context(report, lang, self.t, base, styles(), chars)
        self.pages = 0

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
        _date(canvas, self.report.dated)
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
        for part in PARTS:
            story.extend(part(self.ctx))
        return story


def _date(canvas: Any, ts: str) -> None:
    """The document's CreationDate and ModDate: ``ts`` (UTC), the time the report is of.

    ``invariant=1`` would write reportlab's fixed 2000-01-01; reportlab reads the dates from
    the document's time stamp when it saves, so that is replaced here (per document: the
    process-wide SOURCE_DATE_EPOCH would race between threads rendering at once).
    """
    moment = parse_ts(ts).utctimetuple()
    stamp = TimeStamp(invariant=1)
    stamp.t, stamp.lt, stamp.YMDhms = calendar.timegm(moment), moment, tuple(moment)[:6]
    canvas._doc._timeStamp = stamp


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
