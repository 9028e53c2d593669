"""The PDF's page, fonts, styles and monospaced tables: how every part of the report looks.

Fonts are shipped in ``exports/fonts`` (DejaVu: Latin, Cyrillic, Greek; subsets embedded).
Long tables are monospaced lines in 500-row chunks (:class:`MonoRows`) that split across pages
with the header repeated on each: one string per row and one text object per page keep
100,000 rows fast (a ``LongTable`` draws each cell with a text object of its own, several
times the cost; see ``bench/reports.py``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportlab import rl_config
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable

from exports.report import CycleReport

FONT_DIR = Path(__file__).parent / "fonts"
SANS, BOLD, MONO = "LunariaSans", "LunariaSans-Bold", "LunariaMono"
MONO_SIZE = 7.0
ROW_HEIGHT = 9.0
CHUNK_ROWS = 500
MARGIN = 15 * mm
PAGE_WIDTH, PAGE_HEIGHT = A4
FRAME_WIDTH = PAGE_WIDTH - 2 * MARGIN
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


@dataclass
class Styles:
    """The paragraph styles of the report, in the shipped fonts."""

    title: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    small: ParagraphStyle
    code: ParagraphStyle
    label: ParagraphStyle
    number: ParagraphStyle


def styles() -> Styles:
    """The report's styles, built fresh for each document."""
    body = ParagraphStyle("body", fontName=SANS, fontSize=9, leading=12)
    return Styles(
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


@dataclass(frozen=True)
class Context:
    """What every part of the document draws with: the report, its language and strings,
    the base of its links, the styles, and how many characters a monospaced line holds."""

    report: CycleReport
    lang: str
    t: Mapping[str, str]
    base: str
    s: Styles
    chars: int


# -- text -------------------------------------------------------------------------------------


def when(ts: str) -> str:
    """``2026-01-05T10:00:00.123456Z`` -> ``2026-01-05 10:00:00`` (UTC; exact in CSV/JSON)."""
    return f"{ts[:10]} {ts[11:19]}"


def short(entry_hash: str) -> str:
    """The first HASH_PREFIX hex digits of a hash (the JSON and CSV carry all of it)."""
    return entry_hash[:HASH_PREFIX]


# -- monospaced tables ------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of a monospaced table: title, alignment (``<`` or ``>``), most characters."""

    title: str
    align: str = "<"
    limit: int = 40


def mono_tables(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    chars: int,
    wrap_last: bool = False,
) -> list[Any]:
    """Monospaced lines in chunks of CHUNK_ROWS rows, the header repeated on each page."""
    if not rows:
        return []
    widths = _widths(columns, rows, chars)
    template = _template(widths, columns)
    header = template.format(*_fit([c.title for c in columns], widths)).rstrip()
    lines: list[str] = []
    for row in rows:
        lines.extend(_lines(row, widths, template, wrap_last))
    return [
        MonoRows(header, lines[start : start + CHUNK_ROWS])
        for start in range(0, len(lines), CHUNK_ROWS)
    ]


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
    """One line, or with ``wrap_last`` the last cell wrapped over continuation lines (a line
    of its own after each newline in it; hashes are cut, never shortened)."""
    last = row[-1]
    if not wrap_last or (len(last) <= widths[-1] and "\n" not in last):
        return [template.format(*_fit(row, widths)).rstrip()]
    pieces = [
        piece
        for paragraph in last.split("\n")
        for piece in textwrap.wrap(paragraph, widths[-1], break_long_words=True) or [""]
    ]
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


# -- QR codes ---------------------------------------------------------------------------------


def qr(url: str, size: float) -> Drawing:
    """A QR code of ``url``, ``size`` points square."""
    widget = QrCodeWidget(url)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.initialFontName = SANS
    drawing.add(widget)
    return drawing
