"""Atom feeds (RFC 4287) of each pool's entries, for people who follow by feed reader.

``/api/v1/pools/<slug>/feed.atom``: the pool's latest entries, newest first, each titled in
plain words ("Donation of 15.00 EUR (bank)") and linked to its page ``/entries/<seq>``. The
words follow the reader's language like the web pages (``?lang=``, the language cookie, then
Accept-Language: en, es, uk; the catalogs of ``api/translations``); the feed says which in
``xml:lang`` and Content-Language, and varies by Accept-Language and Cookie. Ids
are tag URIs (RFC 4151) made of the log's origin and the entry's seq, so they never change
and never collide with another log's. Only what the public log says is shown, with the public
texts its entries commit to (entry data version 2) as served beside them: ``[redacted]`` once
redacted.

The XML is built with ``xml.etree`` (which escapes text); characters XML 1.0 cannot carry at
all are replaced, so the feed is well formed whatever a logged string holds.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

from flask import Response, request
from flask_babel import (  # type: ignore[import-untyped]
    get_locale,
    gettext,
    ngettext,
)
from sqlalchemy import Engine, select

from api import db, public_url
from api.ledger_api import Blueprint, revalidate
from ledger.fund import (
    CURRENCY_EXPONENTS,
    format_major,
    newest_pool_entries,
    pool_row,
    public_text,
)
from ledger.log import Entry, entries, load_head, read_transaction

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
FEED_LENGTH = 50
FEED_CACHE = "public, max-age=60"

blp = Blueprint(
    "feeds",
    __name__,
    url_prefix="/api/v1",
    description="Atom feeds of each pool's entries, newest first.",
)
blp.after_request(revalidate)


@blp.route("/pools/<slug:slug>/feed.atom", methods=["GET"])
@blp.response(200, {"type": "string"}, content_type="application/atom+xml", description="Atom")
def pool_feed(slug: str) -> Response:
    """The pool's latest 50 entries, newest first, as an Atom 1.0 feed (RFC 4287)."""
    feed = read_pool_feed(db.get_engine(), slug)
    site = public_url.get()  # never the Host header: a client chooses that
    body = render_feed(feed, site=site + "/", self_url=site + request.path)
    headers = {
        "Cache-Control": FEED_CACHE,
        "Content-Language": str(get_locale() or "en"),
        "Vary": "Accept-Language, Cookie",  # the words follow the reader's language
    }
    return Response(body, content_type=ATOM_TYPE, headers=headers)


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolFeed:
    origin: str
    log_created: str  # ts of the log_created entry: the date in every tag URI
    last_ts: str  # the log's newest entry
    slug: str
    name: str
    entries: tuple[Entry, ...]  # newest first
    texts: Mapping[str, str | None]  # their public texts: commitment -> text (None: redacted)


def read_pool_feed(engine: Engine, slug: str, limit: int = FEED_LENGTH) -> PoolFeed:
    """The pool's newest ``limit`` entries."""
    with read_transaction(engine) as conn:
        head = load_head(conn)
        pool = pool_row(conn, slug)
        created = conn.execute(select(entries.c.ts).where(entries.c.seq == 0)).scalar_one()
        mine = tuple(newest_pool_entries(conn, slug, limit))
        texts = public_text.texts_of(conn, mine)
    return PoolFeed(head.origin, created, head.last_ts, slug, pool.name, mine, texts)


# -- words --------------------------------------------------------------------------------------


def money(amount: Any, currency: Any) -> str:
    """``"1500", "EUR"`` -> ``15.00 EUR``; anything unexpected is shown as it is."""
    text = str(amount)
    if currency in CURRENCY_EXPONENTS and re.fullmatch(r"-?[0-9]{1,80}", text):
        return f"{format_major(int(text), str(currency))} {currency}"
    return f"{text} {currency}"


def _who(name: Any) -> str:
    return str(name) if name else gettext("no one")


def _donation(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext(
        "Donation of %(amount)s (%(channel)s)",
        amount=money(d["amount"], d["currency"]),
        channel=d["channel"],
    )
    donor = d.get("donor") or {}
    if donor.get("name"):
        by = gettext("from %(name)s", name=donor["name"])
    else:
        by = gettext("from a donor who stays private")
    return title, gettext(
        "%(title)s, %(by)s, in lunar cycle %(cycle)s.", title=title, by=by, cycle=d["cycle"]
    )


def _proposal(d: Mapping[str, Any]) -> tuple[str, str]:
    words = {"amount": money(d["amount"], d["currency"]), "recipient": d["recipient"]}
    if d.get("urgency") == "urgent":
        title = gettext("Grant proposed: %(amount)s for %(recipient)s (urgent)", **words)
    else:
        title = gettext("Grant proposed: %(amount)s for %(recipient)s", **words)
    return title, gettext("%(title)s. Purpose: %(purpose)s", title=title, purpose=d["purpose"])


def _vote(d: Mapping[str, Any]) -> tuple[str, str]:
    words = {"member": d["member"], "collective": d["collective"], "grant": d["grant"]}
    if d["vote"] == "approve" and d.get("fast_lane"):
        title = gettext(
            "%(member)s of %(collective)s voted to approve grant %(grant)s in the fast lane",
            **words,
        )
    elif d["vote"] == "approve":
        title = gettext("%(member)s of %(collective)s voted to approve grant %(grant)s", **words)
    else:
        title = gettext("%(member)s of %(collective)s voted to reject grant %(grant)s", **words)
    note = d.get("note")
    if note:
        return title, gettext("%(title)s. Note: %(note)s", title=title, note=note)
    return title, gettext("%(title)s.", title=title)


def _decision(d: Mapping[str, Any]) -> tuple[str, str]:
    grant, lane, decision = d["grant"], d.get("lane"), d["decision"]
    if decision == "approved" and lane == "fast_lane":
        title = gettext("Grant %(grant)s approved in the fast lane", grant=grant)
    elif decision == "approved" and lane == "overdue":
        title = gettext(
            "Grant %(grant)s approved by one member, past its decision deadline", grant=grant
        )
    elif decision == "approved":
        title = gettext("Grant %(grant)s approved by quorum", grant=grant)
    else:
        title = gettext("Grant %(grant)s rejected by quorum", grant=grant)
    return title, gettext(
        "%(title)s: %(amount)s. Approved by %(approvals)s; rejected by %(rejections)s.",
        title=title,
        amount=money(d["amount"], d["currency"]),
        approvals=", ".join(d.get("approvals") or []) or gettext("no one"),
        rejections=", ".join(d.get("rejections") or []) or gettext("no one"),
    )


def _disbursed(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext(
        "Grant %(grant)s paid out: %(amount)s",
        grant=d["grant"],
        amount=money(d["amount"], d["currency"]),
    )
    return title, gettext("%(title)s.", title=title)


def _cancelled(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext(
        "Grant %(grant)s cancelled (%(amount)s)",
        grant=d["grant"],
        amount=money(d["amount"], d["currency"]),
    )
    return title, gettext("%(title)s. Reason: %(reason)s", title=title, reason=d["reason"])


def _correction(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext(
        "Correction of entry %(seq)s: the fund changes by %(change)s",
        seq=d["corrects"],
        change=money(d["fund_change"], d["currency"]),
    )
    return title, gettext("%(title)s. Reason: %(reason)s", title=title, reason=d["reason"])


def _redacted(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext("Public text of entry %(seq)s redacted", seq=d["entry"])
    return title, gettext(
        "%(title)s: its %(field)s is no longer served (reason: %(reason)s).",
        title=title,
        field=d["field"],
        reason=d["reason"],
    )


def _handover(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext(
        "Custody passed from %(outgoing)s to %(incoming)s",
        outgoing=_who(d.get("from")),
        incoming=_who(d.get("to")),
    )
    cycle = d["cycle"]
    summary = gettext(
        "%(title)s at the new moon of %(start)s (lunar cycle %(number)s).",
        title=title,
        start=cycle["start"],
        number=cycle["number"],
    )
    passed = len(d["carried_over"])
    if passed:
        summary += " " + ngettext(
            "%(num)s open grant passed on; %(void)s votes of the outgoing custodian void.",
            "%(num)s open grants passed on; %(void)s votes of the outgoing custodian void.",
            passed,
            void=len(d["voided_votes"]),
        )
    response = d["closed"].get("response")
    if response is not None:
        summary += " " + gettext(
            "Urgent grants decided within %(hours)s hours in cycle %(cycle)s: %(on_time)s of "
            "%(counted)s.",
            hours=response["deadline_hours"],
            cycle=d["closed"]["number"],
            on_time=response["on_time"],
            counted=response["counted"],
        )
    return title, summary


def _roster(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext("Custody order set: %(order)s", order=", ".join(d["collectives"]))
    return title, gettext(
        "%(title)s, from lunar cycle %(cycle)s.", title=title, cycle=d["effective_cycle"]
    )


def _pool(d: Mapping[str, Any]) -> tuple[str, str]:
    title = gettext("Pool created: %(name)s", name=d["name"])
    return title, gettext(
        "%(title)s, taking %(currencies)s.", title=title, currencies=", ".join(d["currencies"])
    )


DESCRIBE: Mapping[str, Callable[[Mapping[str, Any]], tuple[str, str]]] = {
    "donation_recorded": _donation,
    "grant_proposed": _proposal,
    "vote_cast": _vote,
    "grant_decided": _decision,
    "grant_disbursed": _disbursed,
    "grant_cancelled": _cancelled,
    "correction": _correction,
    "custody_transferred": _handover,
    "roster_set": _roster,
    "pool_created": _pool,
    "text_redacted": _redacted,
}


def describe(entry: Entry, texts: Mapping[str, str | None] | None = None) -> tuple[str, str]:
    """A title and a one-line summary in plain words; ``texts`` (commitment -> text) gives
    the public texts of entry data version 2."""
    fallback = gettext(
        "%(kind)s (entry %(seq)s)", kind=entry.kind.replace("_", " ").capitalize(), seq=entry.seq
    )
    words = DESCRIBE.get(entry.kind)
    if words is None:
        return fallback, fallback
    try:
        return words(public_text.shown_data(entry.kind, entry.data, texts or {}))
    except (KeyError, TypeError, ValueError, AttributeError):
        return fallback, fallback


# -- XML ----------------------------------------------------------------------------------------

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    """XML 1.0 cannot carry most control characters even escaped: replace them."""
    return _NOT_XML.sub("\ufffd", value)


def tag_uri(origin: str, created: str, path: str) -> str:
    """``tag:<host>,<YYYY-MM-DD>:<origin path>/<path>`` (RFC 4151), the date being the log's
    creation: the same origin and path give the same id forever."""
    authority, _, rest = origin.partition("/")
    host = authority.rsplit(":", 1)[0].lower() if ":" in authority else authority.lower()
    specific = f"{rest}/{path}" if rest else path
    return f"tag:{quote(host, safe='.-')},{created[:10]}:{quote(specific, safe='/-._~')}"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = _xml_text(text)
    return element


def render_feed(feed: PoolFeed, site: str, self_url: str) -> bytes:
    """The feed document; ``site`` is the base URL links are made absolute against."""
    # Every element below is in the Atom namespace; the words are in the reader's language.
    root = ET.Element("feed", {"xmlns": ATOM_NS, "xml:lang": str(get_locale() or "en")})
    _add(root, "id", tag_uri(feed.origin, feed.log_created, f"pools/{feed.slug}"))
    _add(root, "title", f"{feed.name} — Lunaria")
    _add(
        root,
        "subtitle",
        gettext(
            "Every entry of the pool %(pool)s in the log %(origin)s",
            pool=feed.slug,
            origin=feed.origin,
        ),
    )
    _add(root, "updated", feed.entries[0].ts if feed.entries else feed.last_ts)
    _add(root, "link", rel="self", type="application/atom+xml", href=_xml_text(self_url))
    _add(root, "link", rel="alternate", type="text/html", href=urljoin(site, f"/pools/{feed.slug}"))
    author = _add(root, "author")
    _add(author, "name", gettext("Lunaria log %(origin)s", origin=feed.origin))
    _add(root, "generator", "Lunaria")
    for entry in feed.entries:
        title, summary = describe(entry, feed.texts)
        item = _add(root, "entry")
        _add(item, "id", tag_uri(feed.origin, feed.log_created, f"entries/{entry.seq}"))
        _add(item, "title", title)
        _add(item, "updated", entry.ts)
        _add(item, "published", entry.ts)
        _add(item, "link", rel="alternate", href=urljoin(site, f"/entries/{entry.seq}"))
        _add(item, "category", term=entry.kind)
        _add(item, "summary", summary)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
