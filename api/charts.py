"""The pages' charts: SVG drawn on the server with pygal, served as images.

Each chart is a file the page shows with ``<img>`` (``img-src 'self'``), so the page's CSP
stays as it is. pygal always writes a configuration ``<script>`` and an inline ``<style>``;
the script is removed here (:func:`_without_script`), and the style is allowed by the SVG's
own response header alone (an SVG shown as an image runs no script and loads nothing). The
pages carry the text alternative of each chart: a sentence in ``alt`` and the figures as a
table beside it.

The figures come from the read models (:func:`ledger.fund.views.pool_cycles`,
:func:`ledger.fund.views.pool_detail`); amounts are drawn in major units, as read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pygal  # type: ignore[import-untyped]
from pygal.style import Style  # type: ignore[import-untyped]

from ledger.fund import CURRENCY_EXPONENTS, views

SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
SIZES = {"wide": (600, 340), "narrow": (400, 440)}
CHARTS = ("balance", "flows", "response")
HOUR = Decimal(3600)

# The charts take the site's colours (api/static/site.css) in both of its schemes: pygal's
# style names CSS custom properties, and the chart's own stylesheet sets them for light and,
# under prefers-color-scheme: dark, for dark (an SVG shown as an image follows the reader's
# scheme, as the page around it does).
LIGHT = {
    "bg": "#ffffff",  # --card
    "fg": "#1b1d29",  # --fg
    "subtle": "#d5d2c6",  # --line
    "c0": "#24408e",  # --accent
    "c1": "#c7500b",  # --focus
    "c2": "#1e6b34",  # --ok
    "c3": "#8a2a00",  # --urgent
}
DARK = {
    "bg": "#1b1e29",
    "fg": "#eceae3",
    "subtle": "#3a3e4f",
    "c0": "#9db4ff",
    "c1": "#ffb35c",
    "c2": "#8fe0a5",
    "c3": "#ffb27a",
}
CHART_ID = "lunaria"  # (pygal scopes its CSS by #chart-<id>: a random id by default)


def _palette(colours: dict[str, str]) -> str:
    return f"#chart-{CHART_ID}{{{''.join(f'--chart-{k}:{v};' for k, v in colours.items())}}}"


PALETTE_CSS = f"{_palette(LIGHT)}@media (prefers-color-scheme: dark){{{_palette(DARK)}}}"
STYLE = Style(
    background="var(--chart-bg)",
    plot_background="var(--chart-bg)",
    foreground="var(--chart-fg)",
    foreground_strong="var(--chart-fg)",
    foreground_subtle="var(--chart-subtle)",
    guide_stroke_color="var(--chart-fg)",
    major_guide_stroke_color="var(--chart-fg)",
    colors=tuple(f"var(--chart-c{i})" for i in range(4)),
    font_family='system-ui, "Noto Sans", "DejaVu Sans", sans-serif',
    label_font_size=14,
    major_label_font_size=14,
    value_font_size=13,
    legend_font_size=15,
    title_font_size=17,
    opacity=".35",
    opacity_hover=".35",
)


@dataclass(frozen=True)
class Series:
    """One line or set of bars: its label and a value (major units) per x label."""

    label: str
    values: tuple[Decimal | None, ...]


@dataclass(frozen=True)
class ChartData:
    """What one chart shows, and what its text alternative reads out."""

    title: str
    x_title: str
    currency: str  # "" when the figures are not money (hours)
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]


@dataclass(frozen=True)
class ChartLabels:
    """The words of the charts in the reader's language (translated in :mod:`api.web`)."""

    cycle: str  # "Lunar cycle": the title of the x axis (its labels are the numbers)
    now: str
    held: str
    donations: str
    paid: str
    balance_title: str  # "… %(currency)s"
    flows_title: str  # "… %(currency)s"
    response_title: str
    median: str
    deadline: str


def major(amount: str | int, currency: str) -> Decimal:
    """Minor units as a Decimal of major units (exact: the chart rounds only when drawing)."""
    return Decimal(int(amount)).scaleb(-CURRENCY_EXPONENTS.get(currency, 0))


def balance_over_time(
    pool: views.PoolView, cycles: Sequence[views.CycleView], currency: str, labels: ChartLabels
) -> ChartData:
    """The fund held (available + committed) at the start of each cycle, and now."""
    x_labels = [str(c.number) for c in cycles] + [labels.now]
    held = [major(c.opening.get(currency, "0"), currency) for c in cycles]
    books = next(b for b in pool.books if b.currency == currency)
    held.append(major(int(books.available) + int(books.committed), currency))
    return ChartData(
        labels.balance_title % {"currency": currency},
        labels.cycle,
        currency,
        tuple(x_labels),
        (Series(labels.held, tuple(held)),),
    )


def donations_against_grants(
    cycles: Sequence[views.CycleView], currency: str, labels: ChartLabels
) -> ChartData:
    """Per cycle: donations received and grants paid out."""
    flows = [c.flows.get(currency, {}) for c in cycles]
    return ChartData(
        labels.flows_title % {"currency": currency},
        labels.cycle,
        currency,
        tuple(str(c.number) for c in cycles),
        (
            Series(labels.donations, tuple(major(f.get("donations", 0), currency) for f in flows)),
            Series(labels.paid, tuple(major(f.get("disbursements", 0), currency) for f in flows)),
        ),
    )


def urgent_response_times(responses: views.PoolResponses, labels: ChartLabels) -> ChartData:
    """Per cycle, oldest first: the median hours from an urgent grant's proposal to its
    decision (none without a decision) against the hours the pool promises."""
    cycles = list(reversed(responses.cycles))
    median = [
        None
        if r.figures.median_seconds is None
        else (Decimal(r.figures.median_seconds) / HOUR).quantize(Decimal("0.1"))
        for r in cycles
    ]
    promised = [Decimal(r.figures.deadline_hours) for r in cycles]
    return ChartData(
        labels.response_title,
        labels.cycle,
        "",
        tuple(str(r.cycle) for r in cycles),
        (Series(labels.median, tuple(median)), Series(labels.deadline, tuple(promised))),
    )


def render_svg(data: ChartData, kind: str, size: str, value_format: Any) -> str:
    """The chart as SVG text without any script; ``kind`` "area", "line" or "bar"."""
    width, height = SIZES[size]
    chart_type = pygal.Bar if kind == "bar" else pygal.Line
    chart = chart_type(
        width=width,
        height=height,
        style=STYLE,
        css=("file://style.css", "file://graph.css", "inline:" + PALETTE_CSS),
        js=[],
        truncate_legend=-1,
        disable_xml_declaration=True,
        truncate_label=-1,
        x_label_rotation=0,
        legend_at_bottom=True,
        legend_at_bottom_columns=len(data.series) if size == "wide" else 1,
        x_title=data.x_title,
        include_x_axis=True,
        show_y_guides=True,
        margin=16,
        margin_right=36,
        margin_left=24,
        range=(0, _top(data)),
        spacing=14,
        value_formatter=value_format,
        fill=kind == "area",
        dots_size=4,
        max_scale=7,
    )
    chart.uuid = CHART_ID
    chart.title = data.title
    chart.x_labels = list(data.x_labels)
    for series in data.series:
        chart.add(series.label, [None if v is None else float(v) for v in series.values])
    chart.add_xml_filter(_without_script)
    svg: str = chart.render(is_unicode=True)
    return _GENERATED.sub("", svg)


def _top(data: ChartData) -> float:
    """The value axis runs from 0 to a little above the largest figure (pygal would start
    it at the smallest and cut the largest off the labels)."""
    largest = max((v for s in data.series for v in s.values if v is not None), default=0)
    return float(largest) * 1.1 or 1.0


# pygal's comments carry the day of rendering and two web addresses: not needed, not stable.
_GENERATED = re.compile(r"<!--.*?-->", re.S)


def _without_script(root: ET.Element) -> ET.Element:
    """Drop every ``<script>`` pygal wrote (its tooltips need one; the page runs none)."""
    for parent in root.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root
