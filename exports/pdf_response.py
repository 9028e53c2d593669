"""The PDF's section on urgent grants: how fast the pool answered them in the cycle, as the
handover that closed it states (``custody_transferred`` data version 2, computed by
:func:`ledger.fund.urgency.response_figures` and checked by ``lunaria audit``), and what the
handover did with the grants still open."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Paragraph

from exports.pdf_layout import Context


def response(ctx: Context) -> list[Any]:
    """The closed cycle's response figures and open grants passed on; a note otherwise."""
    r, t, s = ctx.report, ctx.t, ctx.s
    story: list[Any] = [CondPageBreak(40 * mm), Paragraph(escape(t["response_title"]), s.heading)]
    closing = next((h for h in r.custody if h.role == "closed"), None)
    if r.interim or closing is None or closing.response is None:
        return [*story, Paragraph(escape(t["response_unstated"]), s.body)]
    figures = closing.response
    lines = [t["response_on_time"].format(**figures)]
    median = figures["median_seconds"]
    if median is None:
        lines.append(t["response_no_median"])
    else:
        hours, minutes = median // 3600, median % 3600 // 60
        lines.append(
            t["response_median"].format(
                hours=hours, minutes=f"{minutes:02d}", seconds=median, decided=figures["decided"]
            )
        )
    lines.append(
        t["response_passed_on"].format(
            carried=len(closing.carried_over), voided=len(closing.voided_votes)
        )
    )
    story += [Paragraph(escape(line), s.body) for line in lines]
    return [*story, Paragraph(escape(t["response_definition"]), s.small)]
