"""The public web pages: pools, one pool, one lunar cycle of a pool, one grant, one collective,
one entry, "verify my receipt", and the charts they show.

Server-rendered HTML for donors; it works without JavaScript everywhere except ``/verify``,
where ``static/verify.js`` recomputes the leaf hash, walks the inclusion proof, checks the
checkpoint signature (WebCrypto Ed25519) and consistency with the latest checkpoint in the
browser itself. The server only serves the page and the public proofs; it never says whether
a receipt is valid.

Pages say first, in words and in the reader's language, what happened ("Grant #38 approved
by Colectivo Alba …"); hashes and raw entries fold below. They name pools and collectives by
their names, never by slugs. Charts are SVG images drawn on the server (:mod:`api.charts`),
each with its figures in a table beside it.

Pages read through :mod:`ledger.fund.views` (and the log's anchors and version through
:mod:`ledger.log`), over public tables only (never ``private_records`` or ``tokens``); this
module only presents: it parses the URL, calls the read models and renders them. Public text
(a purpose, a display name, a note, a reason) of entry data version 2 is shown as served
beside its entry, with its salt and commitment on the entry's page; ``[redacted]`` once gone.

Interface in English, Spanish and Ukrainian (flask-babel): ``?lang=`` (remembered in a
cookie), else the best match of Accept-Language. Every response carries the security
headers; HTML gets a strict Content-Security-Policy (no inline script, nothing third-party).
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import numbers as babel_numbers
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    render_template,
    request,
    url_for,
)
from flask_babel import (  # type: ignore[import-untyped]
    Babel,
    force_locale,
    format_datetime,
    format_decimal,
    format_timedelta,
    get_locale,
    get_translations,
    gettext,
    lazy_gettext,
)
from markupsafe import Markup

from api import charts, db
from ledger.errors import LedgerError, NotFound, SchemaOutdated
from ledger.fund import (
    CURRENCY_EXPONENTS,
    Cycle,
    display_decimals,
    display_major,
    last_reconciliation,
    views,
)
from ledger.log import log_version, parse_ts, recent_anchors

bp = Blueprint("web", __name__)

LANGUAGES: Mapping[str, str] = {"en": "English", "es": "Español", "uk": "Українська"}
LANGUAGE_COOKIE = "lang"
_EXTENSION = "lunaria-web"
_PAGES = "lunaria-web-pages"
REPORT_FORMATS = ("pdf", "csv", "json", "jsonl", "beancount")
RECENT_ENTRIES = 20
RECENT_DECISIONS = 20
QUEUE_LENGTH = 50

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Sent when the public URL (LUNARIA_PUBLIC_URL) is https: browsers then refuse plain http to
# the host, and its subdomains, for a year.
HSTS = "max-age=31536000; includeSubDomains"

KIND_LABELS: Mapping[str, Any] = {
    "log_created": lazy_gettext("Log created"),
    "key_rotated": lazy_gettext("Key rotated"),
    "pool_created": lazy_gettext("Pool created"),
    "collective_registered": lazy_gettext("Collective registered"),
    "member_added": lazy_gettext("Member added"),
    "member_removed": lazy_gettext("Member removed"),
    "roster_set": lazy_gettext("Custody roster set"),
    "custody_transferred": lazy_gettext("Custody handed over"),
    "donation_recorded": lazy_gettext("Donation"),
    "grant_proposed": lazy_gettext("Grant proposed"),
    "vote_cast": lazy_gettext("Vote"),
    "grant_decided": lazy_gettext("Grant decided"),
    "grant_disbursed": lazy_gettext("Grant paid out"),
    "grant_cancelled": lazy_gettext("Grant cancelled"),
    "correction": lazy_gettext("Correction"),
    "checkpoint_anchored": lazy_gettext("Checkpoint anchored"),
    "text_redacted": lazy_gettext("Public text redacted"),
}
TEXT_LABELS: Mapping[str, Any] = {
    "donor.name": lazy_gettext("Display name"),
    "purpose": lazy_gettext("Purpose"),
    "note": lazy_gettext("Note"),
    "reason": lazy_gettext("Reason"),
}
STATUS_LABELS: Mapping[str, Any] = {
    "proposed": lazy_gettext("waiting for votes"),
    "approved": lazy_gettext("approved"),
    "rejected": lazy_gettext("rejected"),
    "disbursed": lazy_gettext("paid out"),
    "cancelled": lazy_gettext("cancelled"),
}
LANE_LABELS: Mapping[str, Any] = {
    "quorum": lazy_gettext("by quorum"),
    "fast_lane": lazy_gettext("fast lane"),
    "overdue": lazy_gettext("overdue, by one member"),
}
URGENCY_LABELS: Mapping[str, Any] = {
    "urgent": lazy_gettext("urgent"),
    "normal": lazy_gettext("normal"),
}
# What exactly failed in the browser's verifier: each English template of static/verify.js
# (its d("…") calls; tests/test_web.py checks the two lists agree) and its translation.
VERIFY_DETAILS: tuple[tuple[str, Any], ...] = (
    ("{what} is not hex: {value}", lazy_gettext("{what} is not hex: {value}")),
    ("{what} hash {i} is not {bytes} bytes", lazy_gettext("{what} hash {i} is not {bytes} bytes")),
    (
        "index {index} is not below tree size {size}",
        lazy_gettext("index {index} is not below tree size {size}"),
    ),
    (
        "inclusion proof has {count} hashes: too many for this size",
        lazy_gettext("inclusion proof has {count} hashes: too many for this size"),
    ),
    (
        "inclusion proof has {count} hashes: too few for this size",
        lazy_gettext("inclusion proof has {count} hashes: too few for this size"),
    ),
    (
        "old size {old} is larger than new size {new}",
        lazy_gettext("old size {old} is larger than new size {new}"),
    ),
    (
        "the root of the empty tree is {empty}, not {root}",
        lazy_gettext("the root of the empty tree is {empty}, not {root}"),
    ),
    (
        "a consistency proof between equal sizes must be empty",
        lazy_gettext("a consistency proof between equal sizes must be empty"),
    ),
    (
        "different roots for the same size {old}",
        lazy_gettext("different roots for the same size {old}"),
    ),
    (
        "a consistency proof from the empty tree must be empty",
        lazy_gettext("a consistency proof from the empty tree must be empty"),
    ),
    ("consistency proof is empty", lazy_gettext("consistency proof is empty")),
    ("consistency proof is too long", lazy_gettext("consistency proof is too long")),
    ("consistency proof is too short", lazy_gettext("consistency proof is too short")),
    (
        "proof gives old root {got}, expected {root}",
        lazy_gettext("proof gives old root {got}, expected {root}"),
    ),
    (
        "proof gives new root {got}, expected {want}",
        lazy_gettext("proof gives new root {got}, expected {want}"),
    ),
    ("no key given", lazy_gettext("no key given")),
    ("not <name>+<key id>+<key>: {value}", lazy_gettext("not <name>+<key id>+<key>: {value}")),
    ("invalid key name {value}", lazy_gettext("invalid key name {value}")),
    ("key id {value} is not 8 hex digits", lazy_gettext("key id {value} is not 8 hex digits")),
    (
        "the key is not canonical padded base64",
        lazy_gettext("the key is not canonical padded base64"),
    ),
    (
        "not an Ed25519 (0x01) key of 32 bytes",
        lazy_gettext("not an Ed25519 (0x01) key of 32 bytes"),
    ),
    (
        "not an Ed25519 cosignature (0x04) key of 32 bytes",
        lazy_gettext("not an Ed25519 cosignature (0x04) key of 32 bytes"),
    ),
    (
        "the line of {key} is not its Ed25519 cosignature of this checkpoint",
        lazy_gettext("the line of {key} is not its Ed25519 cosignature of this checkpoint"),
    ),
    (
        "key id {id} does not match the key, which has key id {expected}",
        lazy_gettext("key id {id} does not match the key, which has key id {expected}"),
    ),
    ("control character at offset {offset}", lazy_gettext("control character at offset {offset}")),
    (
        "no blank line separating text and signatures",
        lazy_gettext("no blank line separating text and signatures"),
    ),
    (
        "no signature lines after the last blank line",
        lazy_gettext("no signature lines after the last blank line"),
    ),
    ("the note does not end with a newline", lazy_gettext("the note does not end with a newline")),
    ("{count} signature lines", lazy_gettext("{count} signature lines")),
    (
        "signature line {line} does not start with an em dash and a space",
        lazy_gettext("signature line {line} does not start with an em dash and a space"),
    ),
    (
        "signature line {line} has an invalid key name",
        lazy_gettext("signature line {line} has an invalid key name"),
    ),
    (
        "signature line {line} is not canonical padded base64",
        lazy_gettext("signature line {line} is not canonical padded base64"),
    ),
    ("signature line {line} is too short", lazy_gettext("signature line {line} is too short")),
    (
        "the checkpoint does not end with a newline",
        lazy_gettext("the checkpoint does not end with a newline"),
    ),
    (
        "{count} lines; need origin, size and root hash",
        lazy_gettext("{count} lines; need origin, size and root hash"),
    ),
    ("empty origin", lazy_gettext("empty origin")),
    ("an empty extension line", lazy_gettext("an empty extension line")),
    (
        "tree size {value} is not a decimal without leading zeros",
        lazy_gettext("tree size {value} is not a decimal without leading zeros"),
    ),
    ("tree size {value} is too large", lazy_gettext("tree size {value} is too large")),
    (
        "root hash {value} is not 32 bytes of canonical base64",
        lazy_gettext("root hash {value} is not 32 bytes of canonical base64"),
    ),
    (
        "no signature by this key; signed by {found}",
        lazy_gettext("no signature by this key; signed by {found}"),
    ),
    (
        "the Ed25519 signature does not verify",
        lazy_gettext("the Ed25519 signature does not verify"),
    ),
    (
        "the entry holds a non-integer number {value}",
        lazy_gettext("the entry holds a non-integer number {value}"),
    ),
    (
        "{what} {value} is not a non-negative integer",
        lazy_gettext("{what} {value} is not a non-negative integer"),
    ),
    (
        "the entry is neither text nor an object",
        lazy_gettext("the entry is neither text nor an object"),
    ),
    (
        "the receipt shows {field} = {shown}; the hashed bytes hold {hashed}",
        lazy_gettext("the receipt shows {field} = {shown}; the hashed bytes hold {hashed}"),
    ),
    ("the receipt JSON is not an object", lazy_gettext("the receipt JSON is not an object")),
    (
        "entry_b64 is not canonical padded base64",
        lazy_gettext("entry_b64 is not canonical padded base64"),
    ),
    ("the receipt has no index", lazy_gettext("the receipt has no index")),
    (
        "the receipt's seq {index} differs from its proof index {proof_index}",
        lazy_gettext("the receipt's seq {index} differs from its proof index {proof_index}"),
    ),
    (
        "the receipt has no inclusion proof hashes",
        lazy_gettext("the receipt has no inclusion proof hashes"),
    ),
    ("the receipt has no signed checkpoint", lazy_gettext("the receipt has no signed checkpoint")),
    (
        "the receipt states two different leaf hashes",
        lazy_gettext("the receipt states two different leaf hashes"),
    ),
    ("the first line is not {header}", lazy_gettext("the first line is not {header}")),
    (
        "the extra line is not canonical base64",
        lazy_gettext("the extra line is not canonical base64"),
    ),
    (
        'line {line} is not "index N": {value}',
        lazy_gettext('line {line} is not "index N": {value}'),
    ),
    (
        "proof line {line} is not a base64 SHA-256 hash",
        lazy_gettext("proof line {line} is not a base64 SHA-256 hash"),
    ),
    ("no blank line before the checkpoint", lazy_gettext("no blank line before the checkpoint")),
    ("not valid JSON: {error}", lazy_gettext("not valid JSON: {error}")),
    ("it starts with {value}", lazy_gettext("it starts with {value}")),
    (
        "the entry holds {held} at {field}, the receipt serves {served}",
        lazy_gettext("the entry holds {held} at {field}, the receipt serves {served}"),
    ),
    ("the salt of {field} is not 32 bytes", lazy_gettext("the salt of {field} is not 32 bytes")),
    (
        "the text and salt give {got}, the entry holds {want}",
        lazy_gettext("the text and salt give {got}, the entry holds {want}"),
    ),
    ("HTTP {status}", lazy_gettext("HTTP {status}")),
    ("no signed note in the answer", lazy_gettext("no signed note in the answer")),
    (
        "the answer is not a proof for these sizes",
        lazy_gettext("the answer is not a proof for these sizes"),
    ),
    (
        "the entry hashes to {got}, the receipt says {want}",
        lazy_gettext("the entry hashes to {got}, the receipt says {want}"),
    ),
    ("the entry is not JSON: {error}", lazy_gettext("the entry is not JSON: {error}")),
    (
        "the receipt's tree size {size} is not the checkpoint's {checkpoint_size}",
        lazy_gettext("the receipt's tree size {size} is not the checkpoint's {checkpoint_size}"),
    ),
    (
        "the proof gives root {got}, the checkpoint says {want}",
        lazy_gettext("the proof gives root {got}, the checkpoint says {want}"),
    ),
)


# -- the moon ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoonPhase:
    """The moon's phase as drawn: its name, percent of the cycle elapsed and an SVG shape."""

    key: str  # one of views.MOON_PHASES
    name: Any  # a lazy translated string
    percent: int
    lit_path: str  # SVG path (viewBox 0 0 100 100) of the sunlit part, northern hemisphere


PHASE_NAMES: Mapping[str, Any] = {
    "new": lazy_gettext("New moon"),
    "waxing_crescent": lazy_gettext("Waxing crescent"),
    "first_quarter": lazy_gettext("First quarter"),
    "waxing_gibbous": lazy_gettext("Waxing gibbous"),
    "full": lazy_gettext("Full moon"),
    "waning_gibbous": lazy_gettext("Waning gibbous"),
    "last_quarter": lazy_gettext("Last quarter"),
    "waning_crescent": lazy_gettext("Waning crescent"),
}


def _lit_path(fraction: float, r: float = 40.0, c: float = 50.0) -> str:
    """The sunlit part: the lit limb (a half circle), back along the terminator (a half
    ellipse of x-radius r·|cos 2πf|) on the limb's side for a crescent, opposite for gibbous."""
    rx = r * abs(math.cos(2 * math.pi * fraction))
    waxing = fraction < 0.5
    crescent = fraction < 0.25 or fraction >= 0.75
    limb_sweep = 1 if waxing else 0  # top to bottom via the right is clockwise (sweep 1)
    terminator_sweep = limb_sweep ^ 1 if crescent else limb_sweep
    top, bottom = f"{c:g} {c - r:g}", f"{c:g} {c + r:g}"
    return (
        f"M {top} A {r:g} {r:g} 0 0 {limb_sweep} {bottom} "
        f"A {rx:.2f} {r:g} 0 0 {terminator_sweep} {top} Z"
    )


def _drawn(lunar: views.LunarNow) -> MoonPhase:
    return MoonPhase(
        lunar.phase, PHASE_NAMES[lunar.phase], lunar.percent, _lit_path(lunar.fraction)
    )


def moon_phase(cycle: Cycle, now: datetime) -> MoonPhase:
    """The phase for ``now`` from the fraction of the current cycle (new moon to new moon)."""
    return _drawn(views.lunar_position(cycle, now))


@dataclass(frozen=True)
class MoonPanel:
    """What ``web/_moon.html`` shows: the cycle, the moon drawn, the time to the handover."""

    cycle: Cycle
    phase: MoonPhase
    until_handover: timedelta


def _moon_panel(lunar: views.LunarNow) -> MoonPanel:
    return MoonPanel(lunar.cycle, _drawn(lunar), lunar.until_handover)


# -- formatting for templates -----------------------------------------------------------------


@bp.app_template_filter("money")
def money(amount: str | int, currency: str) -> str:
    """Minor units to the locale's digits, exactly (no floats), as people read money:
    "150000" EUR -> "1,500.00"; "88000000" USDC -> "88.00" (finer digits only when not zero)."""
    value = int(amount)
    if currency not in CURRENCY_EXPONENTS:
        return f"{value} {currency}"
    major = display_major(value, currency)
    sign = "-" if major.startswith("-") else ""
    whole, _, fraction = major.lstrip("-").partition(".")
    group, decimal = _number_symbols(str(get_locale()))
    grouped = re.sub(r"\B(?=(\d{3})+$)", lambda _: group, whole)
    return f"{sign}{grouped}{decimal + fraction if fraction else ''}\u00a0{currency}"


@lru_cache(maxsize=len(LANGUAGES))
def _number_symbols(locale: str) -> tuple[str, str]:
    """The locale's digit group and decimal symbols (Babel looks them up anew each time)."""
    return babel_numbers.get_group_symbol(locale), babel_numbers.get_decimal_symbol(locale)


@bp.app_template_filter("major_money")
def major_money(value: Decimal | None, currency: str) -> str:
    """A chart's figure (major units, exact) as :func:`money` shows it."""
    if value is None:
        return "—"
    return money(int(value.scaleb(CURRENCY_EXPONENTS.get(currency, 0))), currency)


@bp.app_template_filter("when")
def when(ts: str | datetime) -> Markup:
    """A ``<time>`` element in the reader's language, in UTC."""
    instant = parse_ts(ts) if isinstance(ts, str) else ts
    shown = str(format_datetime(instant, "medium"))
    return Markup('<time datetime="{}">{} UTC</time>').format(instant.isoformat(), shown)


@bp.app_template_filter("duration")
def duration(delta: timedelta) -> str:
    """A coarse, translated "in 5 days"."""
    return str(format_timedelta(delta, granularity="minute", add_direction=True))


@bp.app_template_filter("span")
def span(delta: timedelta) -> str:
    """A translated length of time, "3 days" (no direction)."""
    return str(format_timedelta(delta, granularity="second"))


@bp.app_template_filter("seconds_span")
def seconds_span(seconds: int) -> str:
    """Whole seconds as a translated length of time, "5 hours" (no direction)."""
    return str(format_timedelta(timedelta(seconds=seconds), granularity="minute"))


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    def switch_url(code: str) -> str:
        args = dict(request.view_args or {})
        args.update({k: v for k, v in request.args.items() if k != "lang"})
        endpoint = request.endpoint or "web.index"
        return url_for(endpoint, **args, lang=code)

    return {
        "languages": LANGUAGES,
        "locale": str(get_locale() or "en"),
        "switch_url": switch_url,
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "lane_labels": LANE_LABELS,
        "urgency_labels": URGENCY_LABELS,
        "text_labels": TEXT_LABELS,
        "report_formats": REPORT_FORMATS,
        "response_time": views.response_time,
    }


# -- rendered pages, kept while the log and the minute stay the same ---------------------------


class PageCache:
    """The latest rendered pages, each under the state it shows.

    What a page shows follows from the log (every change to a pool, grant, cycle or anchor is
    an entry; a new checkpoint gives receipts), the URL, the reader's language and the time to
    the minute ("in 5 days, 3 hours"; the moon's phase in percent). Under that key a pool page
    is rendered once per new entry, checkpoint or minute, not once per reader: rendering one
    costs milliseconds (most in templating), reading the log's head a fraction of one. The
    head is read before the page, so a page is never older than its key says."""

    def __init__(self, capacity: int = 128) -> None:
        self._pages: OrderedDict[Hashable, str] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()  # (the server's threads share the cache)

    def get(self, key: Hashable, render: Callable[[], str]) -> str:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
        page = render()  # (outside the lock: two readers may both render a new page)
        with self._lock:
            self._pages[key] = page
            if len(self._pages) > self._capacity:
                self._pages.popitem(last=False)
        return page


def cached_page(view: Callable[..., str]) -> Callable[..., str]:
    """Serve ``view``'s page from the app's PageCache (see there for the key)."""

    @functools.wraps(view)
    def serve(**kwargs: Any) -> str:
        return _cached(lambda: view(**kwargs))

    return serve


def _cached(render: Callable[[], str]) -> str:
    """What ``render`` gives for this URL, language, log and minute, rendered once."""
    minute = int(db.get_clock().now().timestamp()) // 60
    key = (request.full_path, str(get_locale()), log_version(db.get_engine()), minute)
    pages: PageCache = current_app.extensions[_PAGES]
    return pages.get(key, render)


# -- routes -----------------------------------------------------------------------------------


@bp.route("/", methods=["GET"])
@cached_page
def index() -> str:
    engine = db.get_engine()
    now = db.get_clock().now()
    return render_template(
        "web/index.html",
        pools=views.list_pools(engine, now),
        names=views.names(engine),
        lunar=_moon_panel(views.lunar_now(engine, now)),
        anchors=recent_anchors(engine),
    )


@bp.route("/pools/<slug>", methods=["GET"])
@cached_page
def pool(slug: str) -> str:
    engine = db.get_engine()
    now = db.get_clock().now()
    detail = views.pool_detail(engine, slug, now)
    cycles = views.pool_cycles(engine, slug)
    responses = views.pool_responses(engine, slug, now)
    return render_template(
        "web/pool.html",
        pool=detail,
        names=views.names(engine),
        quorum=views.custodian_quorum(engine, detail),
        lunar=_moon_panel(views.lunar_now(engine, now)),
        charts=_pool_charts(detail, cycles, responses),
        cycles=list(reversed(cycles)),
        queue=views.grant_queue(engine, slug, status="proposed", limit=QUEUE_LENGTH, now=now).items,
        responses=responses,
        decisions=views.recent_decisions(engine, slug, RECENT_DECISIONS),
        recent=views.pool_entries(engine, slug, RECENT_ENTRIES),
        reconciled=last_reconciliation(engine, slug),
    )


def _seq(text: str) -> int:
    """A path's entry number; anything but a plain decimal is a 404, like an unknown seq."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        abort(404)
    return int(text)


@bp.route("/entries/<seq>", methods=["GET"])
@cached_page
def entry(seq: str) -> str:
    log = db.get_log()
    place = views.entry_place(log, _seq(seq))
    about = views.entry_about(log.engine, place.entry)
    return render_template("web/entry.html", place=place, about=about)


@bp.route("/grants/<grant_id>", methods=["GET"])
@cached_page
def grant(grant_id: str) -> str:
    story = views.grant_story(db.get_engine(), _seq(grant_id), db.get_clock().now())
    return render_template("web/grant.html", story=story)


@bp.route("/pools/<slug>/cycles/<number>", methods=["GET"])
@cached_page
def cycle(slug: str, number: str) -> str:
    story = views.cycle_story(db.get_engine(), slug, _seq(number))
    return render_template("web/cycle.html", story=story)


@bp.route("/collectives/<slug>", methods=["GET"])
@cached_page
def collective(slug: str) -> str:
    story = views.collective_story(db.get_engine(), slug)
    return render_template("web/collective.html", story=story)


# -- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartLink:
    """A chart as a page shows it: its image URLs (wide and narrow) and its figures."""

    url: str
    narrow_url: str
    data: charts.ChartData


def _chart_labels() -> charts.ChartLabels:
    return charts.ChartLabels(
        cycle=gettext("Lunar cycle"),
        now=gettext("now"),
        held=gettext("Fund held"),
        donations=gettext("Donations"),
        paid=gettext("Paid out in grants"),
        balance_title=gettext("Fund held at the start of each cycle, %(currency)s"),
        flows_title=gettext("Donations against grants paid out per cycle, %(currency)s"),
        response_title=gettext("Urgent grants: hours from the proposal to a decision"),
        median=gettext("Median"),
        deadline=gettext("Promised deadline"),
    )


@dataclass(frozen=True)
class PoolFigures:
    """What a pool's charts are drawn from."""

    pool: views.PoolView
    cycles: list[views.CycleView]
    responses: views.PoolResponses

    def chart_names(self) -> list[str]:
        """ "balance-EUR", "flows-EUR" per currency; "response" once an urgent grant counts."""
        if not self.cycles:
            return []
        names = [
            f"{c}-{currency}" for currency in self.pool.currencies for c in ("balance", "flows")
        ]
        if any(r.figures.counted or r.figures.decided for r in self.responses.cycles):
            names.append("response")
        return names

    def chart(self, name: str) -> charts.ChartData | None:
        """The chart called ``name`` (see :meth:`chart_names`); None for no such chart."""
        if name not in self.chart_names():
            return None
        chart, _, currency = name.partition("-")
        labels = _chart_labels()
        if chart == "balance":
            return charts.balance_over_time(self.pool, self.cycles, currency, labels)
        if chart == "flows":
            return charts.donations_against_grants(self.cycles, currency, labels)
        return charts.urgent_response_times(self.responses, labels)


def _pool_charts(
    pool: views.PoolView, cycles: list[views.CycleView], responses: views.PoolResponses
) -> list[ChartLink]:
    figures = PoolFigures(pool, cycles, responses)
    links = []
    for name in figures.chart_names():
        data = figures.chart(name)
        assert data is not None
        url = url_for("web.pool_chart", slug=pool.slug, name=name, hl=str(get_locale()))
        links.append(ChartLink(url, url + "&size=narrow", data))
    return links


@bp.route("/pools/<slug>/charts/<name>.svg", methods=["GET"])
def pool_chart(slug: str, name: str) -> Response:
    """One of a pool's charts as SVG in the language ``?hl=`` (``?size=narrow`` for phones)."""
    size = request.args.get("size", "wide")
    language = request.args.get("hl", "en")  # (not ?lang=: an image sets no cookie)
    if size not in charts.SIZES or language not in LANGUAGES:
        abort(404)
    with force_locale(language):
        svg = _cached(lambda: _pool_chart_svg(slug, name, size))
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = charts.SVG_CSP
    return response


def _pool_chart_svg(slug: str, name: str, size: str) -> str:
    engine = db.get_engine()
    now = db.get_clock().now()
    figures = PoolFigures(
        views.pool_detail(engine, slug, now),
        views.pool_cycles(engine, slug),
        views.pool_responses(engine, slug, now),
    )
    data = figures.chart(name)
    if data is None:
        abort(404)
    if name == "response":
        return charts.render_svg(data, "line", size, _chart_hours)
    kind = "area" if name.startswith("balance-") else "bar"
    return charts.render_svg(data, kind, size, _chart_number)


def _chart_number(value: float) -> str:
    """An axis or value label in the reader's digits, whole units (a chart is no ledger)."""
    return str(format_decimal(round(value), format="#,##0"))


def _chart_hours(value: float) -> str:
    return str(format_decimal(value, format="#,##0.#"))


@bp.app_template_filter("hours")
def hours(value: Decimal | None) -> str:
    """A chart's figure in hours, as its table shows it."""
    if value is None:
        return "—"
    return str(gettext("%(hours)s h", hours=format_decimal(value, format="#,##0.#")))


@bp.route("/verify", methods=["GET"])
def verify() -> str:
    log = db.get_log()
    vkey = views.published_vkey(log.engine)
    from api import witness  # (not at the top: api.witness -> api.errors -> api.web)

    witness_vkeys, quorum = _configured_witness_quorum()
    cosigner = witness.load_cosigner()
    return render_template(
        "web/verify.html",
        origin=log.origin,
        vkey=vkey,
        witness_vkeys=witness_vkeys,
        witness_quorum=quorum,
        own_witness_vkey=None if cosigner is None else cosigner.verifier().vkey(),
        pool_names=json.dumps(dict(views.names(log.engine).pools), ensure_ascii=False),
        money=json.dumps(
            {
                currency: {"exponent": exponent, "decimals": display_decimals(currency)}
                for currency, exponent in CURRENCY_EXPONENTS.items()
            }
        ),
        details=VERIFY_DETAILS,
    )


def _configured_witness_quorum() -> tuple[list[str], int | None]:
    """The witness keys this log asks to cosign (LUNARIA_WITNESSES) and the quorum it aims for
    (LUNARIA_WITNESS_QUORUM, by default a majority): what /verify offers to check. A broken
    setting offers nothing (the worker says what is wrong with it)."""
    from api import witness  # (see verify)

    try:
        vkeys = [endpoint.verifier.vkey() for endpoint in witness.configured_witnesses()]
        return vkeys, witness.configured_quorum(len(vkeys)) if vkeys else None
    except (LedgerError, OSError, ValueError):
        current_app.logger.warning("LUNARIA_WITNESSES or LUNARIA_WITNESS_QUORUM is not usable")
        return [], None


@bp.errorhandler(404)
@bp.errorhandler(NotFound)
def not_found(exc: Exception) -> tuple[str, int]:
    return render_template("web/error.html", status=404), 404


def error_page(status: int) -> Response | None:
    """The site's own page for an HTTP error outside the API (an unknown URL, a failure),
    in the reader's language; None if even that page cannot be drawn."""
    shown = status if status in (404, 503) else 500
    try:
        page = render_template("web/error.html", status=shown)
    except Exception:  # (the page of last resort must not fail in turn)
        current_app.logger.exception("the error page failed")
        return None
    return Response(page, status=status, mimetype="text/html")


@bp.errorhandler(LedgerError)
def ledger_error(exc: LedgerError) -> tuple[str, int]:
    if isinstance(exc, SchemaOutdated):
        current_app.logger.error("%s", exc.message)
        return render_template("web/error.html", status=503, upgrading=True), 503
    current_app.logger.error("web page failed", exc_info=exc)
    return render_template("web/error.html", status=500), 500


@bp.before_request
def require_log() -> tuple[str, int] | None:
    """A database without a log (``lunaria init`` not run yet) gets a clear 503 page."""
    state: dict[str, bool] = current_app.extensions[_EXTENSION]
    if not state.get("ready"):
        if db.stored_origin(db.get_engine()) is None:
            return render_template("web/error.html", status=503), 503
        state["ready"] = True  # a log, once created, never goes away
    return None


# -- wiring -----------------------------------------------------------------------------------


def select_locale() -> str:
    """``?lang=``, then the language cookie, then the best Accept-Language match; else en."""
    for wanted in (request.args.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if wanted in LANGUAGES:
            return str(wanted)
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def security_headers(response: Response) -> Response:
    """nosniff and no-referrer everywhere, HSTS when served over https; the strict CSP on HTML
    unless a page set its own."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if str(current_app.config["PUBLIC_URL"] or "").startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.vary.update(("Accept-Language", "Cookie"))
    chosen = request.args.get("lang")
    if chosen in LANGUAGES and request.blueprint == bp.name:
        response.set_cookie(
            LANGUAGE_COOKIE,
            str(chosen),
            max_age=365 * 24 * 3600,
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


def _translations() -> Any:
    """The request's message catalog, found once: flask-babel's template callables look it
    up again for every message (a pool page has hundreds)."""
    catalog = g.get("lunaria_translations")
    if catalog is None:
        catalog = g.lunaria_translations = get_translations()
    return catalog


def init_app(app: Flask) -> None:
    """Register the pages, flask-babel (en, es, uk) and the security headers."""
    Babel(app, locale_selector=select_locale)
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda message: _translations().ugettext(message),
        ngettext=lambda singular, plural, n: _translations().ungettext(singular, plural, n),
        newstyle=True,
    )
    app.extensions[_EXTENSION] = {}
    app.extensions[_PAGES] = PageCache()
    app.register_blueprint(bp)
    app.after_request(security_headers)
