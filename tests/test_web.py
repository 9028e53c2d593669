"""The public web pages on SQLite and PostgreSQL: content, languages, 404s, security headers,
markup rules (no inline script, no event handlers, nothing third-party), receipt downloads,
the proof endpoints the in-browser verifier fetches, and the committed translations."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask
from markupsafe import escape
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from api import create_app, db, web, witness
from ledger.fund import views
from ledger.fund.lunar import Cycle
from ledger.fund.rules import Actor
from ledger.log import merkle
from ledger.log.clock import ManualClock, parse_ts
from ledger.log.notes import Signer, open_checkpoint
from ledger.log.receipts import parse_receipt, verify_receipt
from tests.conftest import ORIGIN, RUN_ID, _postgres_schema_url
from tests.witness_support import SpecWitness

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADMIN = Actor("admin:test", "admin")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass
class Site:
    app: Flask

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        """A request from a fresh client: no cookie (such as the language) carries over."""
        return self.app.test_client().get(path, **kwargs)

    def html(self, path: str, status: int = 200, **kwargs: Any) -> str:
        response = self.get(path, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)[:500]
        assert response.mimetype == "text/html"
        return response.get_data(as_text=True)

    def ctx(self) -> Any:
        return self.app.app_context()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One living demo fund per database for the whole module (``lunaria init --demo``)."""
    directory = tmp_path_factory.mktemp("web")
    schema = None
    admin: Engine | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'lunaria.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin")
        schema = f"t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = _postgres_schema_url(schema)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "KEY_FILE": str(directory / "keys" / "log.key"),
            "ORIGIN": ORIGIN,
            "CLOCK": ManualClock(NOW),
            "CHECKPOINT_EVERY": 10,
        }
    )
    try:
        result = app.test_cli_runner().invoke(args=["init", "--demo"])
        assert result.exit_code == 0, result.output
        yield Site(app)
    finally:
        with app.app_context():
            db.get_engine().dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


class Markup(HTMLParser):
    """Every start tag with its attributes, and the text of inline scripts and styles."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.lang: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "html":
            self.lang = dict(attrs).get("lang")

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def text_of(page: str) -> str:
    """The page's text with tags removed and whitespace collapsed."""
    return re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", page)).strip()


def pages(site: Site) -> list[str]:
    with site.ctx():
        seq = db.get_log().head().size - 1
    return ["/", "/pools/food-bank", "/pools/legal-aid", f"/entries/{seq}", "/entries/0", "/verify"]


# -- content --------------------------------------------------------------------------------


def test_home_shows_pools_balances_custodian_moon_and_handover(site: Site) -> None:
    page = text_of(site.html("/"))
    with site.ctx():
        pools = views.list_pools(db.get_engine(), NOW)
        names = views.names(db.get_engine())
    assert [p.slug for p in pools] == ["food-bank", "legal-aid"]
    with site.app.test_request_context("/"):
        for pool in pools:
            assert pool.name in page
            assert f"Custodian now {names.collective(pool.custodian)}" in page
            assert f"Next custodian {names.collective(pool.next_custodian)}" in page
            for books in pool.books:
                assert f"Available {web.money(books.available, books.currency)}" in page
        span = pools[0].cycle
        cycle = Cycle(span.number, parse_ts(span.start), parse_ts(span.end))
        phase = web.moon_phase(cycle, NOW)
    assert f"Moon phase: {phase.name}" in page
    assert f"Lunar cycle {cycle.number} is {phase.percent}% through." in page
    assert "Next handover at the new moon:" in page and "(in 2 weeks)" in page


def test_pool_page_books_cycles_queue_decisions_entries_reports(site: Site) -> None:
    html = site.html("/pools/food-bank")
    page = text_of(html)
    with site.ctx():
        detail = views.pool_detail(db.get_engine(), "food-bank", NOW)
        cycles = views.pool_cycles(db.get_engine(), "food-bank")
        queue = views.grant_queue(db.get_engine(), "food-bank", status="proposed").items
    assert "<h1>Neighbourhood food bank</h1>" in html
    assert detail.custodian == "alba" and detail.next_custodian == "brisa"
    assert "Custodian now Colectivo Alba " in page and "Next custodian Brisa Mutual Aid " in page
    assert "Rotation order Colectivo Alba → Brisa Mutual Aid → Cauce Collective" in page
    with site.app.test_request_context("/"):
        books = detail.books[0]
        assert f"EUR {web.money(books.available, 'EUR')}" in page
    for cycle in cycles:  # every cycle, with its custodian and five report formats
        link = f'<a href="/pools/food-bank/cycles/{cycle.number}">cycle {cycle.number}</a>'
        assert re.search(rf'<th scope="row" data-label="Cycle">{link}</th>', html)
        for fmt in ("pdf", "csv", "json", "jsonl", "beancount"):
            assert f'href="/api/v1/pools/food-bank/reports/{cycle.number}.{fmt}"' in html
    assert len(cycles) >= 6 and {c.custodian for c in cycles} == {"alba", "brisa", "cauce"}
    for grant in queue:
        assert f'href="/grants/{grant.id}">#{grant.id}</a>' in html
    assert "Proposals waiting for a decision, most urgent first" in page
    assert "Latest decisions, newest first" in page and "by quorum" in page
    assert "fast lane" in page and "left in the allowance" in page
    assert len(re.findall(r'<li>\s*<a href="/entries/\d+">#\d+</a>', html)) == web.RECENT_ENTRIES


def test_pool_page_links_its_atom_feed(site: Site) -> None:
    links = Markup(site.html("/pools/food-bank")).all("link")
    feeds = [link for link in links if link.get("type") == "application/atom+xml"]
    assert feeds == [
        {
            "rel": "alternate",
            "type": "application/atom+xml",
            "href": "/api/v1/pools/food-bank/feed.atom",
            "title": "Neighbourhood food bank",
        }
    ]
    feed = site.get(str(feeds[0]["href"]))
    assert feed.status_code == 200 and feed.mimetype == "application/atom+xml"
    assert "<title>Neighbourhood food bank — Lunaria</title>" in feed.get_data(as_text=True)


def test_entry_page_hash_chain_and_proof(site: Site) -> None:
    with site.ctx():
        log = db.get_log()
        checkpoint = log.latest_checkpoint()
        assert checkpoint is not None
        seq = checkpoint.size - 2
        entry, previous = log.entry(seq), log.entry(seq - 1)
        proof = log.inclusion_proof(seq, checkpoint.size)
        size = log.head().size
    html = site.html(f"/entries/{seq}")
    page = text_of(html)
    assert f"Entry {seq} of {size} in the log" in page
    assert merkle.leaf_hash(entry.raw).hex() in page
    assert entry.prev == previous.hash.hex() and entry.prev in page
    assert f'href="/entries/{seq - 1}"' in html and f'href="/entries/{seq + 1}"' in html
    assert all(h.hex() in page for h in proof)
    assert str(escape(entry.raw.decode())) in html  # the exact bytes, escaped
    assert f'href="/api/v1/receipts/{seq}" download="lunaria-{seq}.json"' in html
    first = text_of(site.html("/entries/0"))
    assert "the first entry has none" in first and "0" * 64 in first


@pytest.mark.parametrize(
    "path",
    ["/pools/nope", "/entries/99999999", "/entries/abc", "/entries/-1", "/entries/1.5"],
)
def test_unknown_pool_or_entry_is_a_404_page(site: Site, path: str) -> None:
    page = text_of(site.html(path, status=404))
    assert "Not found" in page
    assert "no such pool, grant, cycle, collective or entry." in page
    spanish = text_of(site.html(path + "?lang=es", status=404))
    assert "No encontrado" in spanish


def test_entry_not_yet_covered_has_no_receipt_links(site: Site) -> None:
    with site.ctx():
        log = db.get_log()
        # one more entry, at the same instant: no checkpoint is due for it yet
        db.get_fund().register_collective(ADMIN, slug="late", name="Late Collective")
        checkpoint = log.latest_checkpoint()
        size = log.head().size
    assert checkpoint is not None and checkpoint.size < size
    html = site.html(f"/entries/{size - 1}")
    assert "No checkpoint covers this entry yet" in text_of(html)
    assert "/api/v1/receipts/" not in html


def test_pages_follow_new_entries_checkpoints_and_the_clock(site: Site) -> None:
    """Pages are rendered once and served again (PageCache) only while nothing they show
    changed: a new entry, a new checkpoint and a later minute each show at once."""
    assert site.html("/pools/food-bank") == site.html("/pools/food-bank")  # served again
    with site.ctx():
        log, fund = db.get_log(), db.get_fund()
        outcome = fund.record_donation(
            ADMIN,
            "food-bank",
            {"amount": "777", "currency": "EUR", "channel": "cash", "external_reference": "r-1"},
        )
    page = site.html("/pools/food-bank")
    assert f"#{outcome.seq}" in text_of(page)

    entry_page = f"/entries/{outcome.seq}"
    assert "No checkpoint covers this entry yet" in text_of(site.html(entry_page))
    with site.ctx():
        log.checkpoint_now()
    assert f"/api/v1/receipts/{outcome.seq}" in site.html(entry_page)

    clock: ManualClock = site.app.config["CLOCK"]
    before = text_of(site.html("/pools/food-bank"))
    try:
        clock.advance(timedelta(days=2))
        later = text_of(site.html("/pools/food-bank"))
    finally:
        clock.set(NOW)
    assert later != before and "through" in later
    assert text_of(site.html("/pools/food-bank")) == before


# -- languages ------------------------------------------------------------------------------


def test_language_switch_es_and_uk(site: Site) -> None:
    client = site.app.test_client()
    english = client.get("/")
    assert Markup(english.get_data(as_text=True)).lang == "en"
    assert "Set-Cookie" not in english.headers

    spanish = client.get("/?lang=es")
    assert Markup(spanish.get_data(as_text=True)).lang == "es"
    assert "Fondos" in spanish.get_data(as_text=True)
    cookie = spanish.headers["Set-Cookie"]
    assert cookie.startswith("lang=es;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # the cookie keeps the choice on the next page, over Accept-Language
    later = client.get("/pools/food-bank", headers={"Accept-Language": "uk"})
    assert Markup(later.get_data(as_text=True)).lang == "es"
    assert "Historial de ciclos" in later.get_data(as_text=True)

    ukrainian = client.get("/pools/food-bank?lang=uk")
    page = ukrainian.get_data(as_text=True)
    assert Markup(page).lang == "uk" and "Історія циклів" in page and "Черга грантів" in page
    assert "Поточний розпорядник" in page
    assert ukrainian.headers["Set-Cookie"].startswith("lang=uk;")


def test_accept_language_best_match_and_switch_links(site: Site) -> None:
    client = site.app.test_client()
    for header, lang in (("uk-UA,uk;q=0.9,en;q=0.5", "uk"), ("es-MX,es;q=0.9", "es"), ("fr", "en")):
        page = client.get("/verify", headers={"Accept-Language": header}).get_data(as_text=True)
        assert Markup(page).lang == lang
    page = client.get("/pools/legal-aid?lang=xx").get_data(as_text=True)
    assert Markup(page).lang == "en"
    links = {a["hreflang"]: a["href"] for a in Markup(page).all("a") if a.get("hreflang")}
    assert links == {
        "en": "/pools/legal-aid?lang=en",
        "es": "/pools/legal-aid?lang=es",
        "uk": "/pools/legal-aid?lang=uk",
    }


def test_amounts_and_dates_in_each_language(site: Site) -> None:
    expected = {"en": "1,234,567.89\u00a0EUR", "es": "1.234.567,89\u00a0EUR"}
    for lang, amount in expected.items():
        with site.app.test_request_context(f"/?lang={lang}"):
            assert web.money("123456789", "EUR") == amount
    with site.app.test_request_context("/?lang=uk"):
        assert web.money("123456789", "EUR") == "1\u00a0234\u00a0567,89\u00a0EUR"
        assert web.money("1000000000000000001", "ETH") == "1,000000000000000001\u00a0ETH"
        assert web.money("5", "JPY") == "5\u00a0JPY"
        assert "через" in web.duration(timedelta(days=3))
    with site.app.test_request_context("/?lang=en"):
        assert web.money("-150", "USD") == "-1.50\u00a0USD"
        assert str(web.when("2026-11-23T10:00:00.000000Z")).startswith(
            '<time datetime="2026-11-23T10:00:00+00:00">Nov 23, 2026'
        )


# -- security -------------------------------------------------------------------------------


def test_security_headers_on_every_page(site: Site) -> None:
    for path in [*pages(site), "/pools/nope"]:
        response = site.get(path)
        assert response.headers["Content-Security-Policy"] == CSP, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Accept-Language" in response.headers["Vary"]
    for path in ("/static/site.css", "/static/verify.js", "/api/v1/pools"):
        response = site.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_no_inline_script_no_handlers_no_inline_style_nothing_third_party(site: Site) -> None:
    for path in pages(site):
        html = site.html(path)
        markup = Markup(html)
        for attrs in markup.all("script"):
            assert attrs.get("src", "").startswith("/static/"), path  # type: ignore[union-attr]
        assert markup.all("style") == [], path
        for tag, attrs in markup.tags:
            for name, value in attrs.items():
                assert not name.startswith("on"), f"{path}: <{tag} {name}>"
                assert name != "style", f"{path}: <{tag} style>"
                if name in ("href", "src", "action", "srcset", "data", "poster", "formaction"):
                    assert value is not None and not re.match(r"[a-z][a-z0-9+.-]*:|//", value), (
                        f"{path}: <{tag} {name}={value!r}> leaves the site"
                    )
        assert "javascript:" not in html.lower()
    scripts = [m for m in (ROOT / "api/static").iterdir() if m.suffix in (".js", ".css", ".svg")]
    for static in scripts:
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", static.read_text()), static
        assert "@import" not in static.read_text()


def test_only_the_verifier_runs_javascript(site: Site) -> None:
    for path in pages(site):
        scripts = Markup(site.html(path)).all("script")
        if path == "/verify":
            assert scripts == [{"type": "module", "src": "/static/verify.js"}]
        else:
            assert scripts == [], path


def test_verify_page_offers_the_published_key_and_labels_every_field(site: Site) -> None:
    html = site.html("/verify")
    markup = Markup(html)
    with site.ctx():
        signer = db.load_signer()
    assert signer is not None
    vkey = next(a for a in markup.all("input") if a.get("id") == "vkey")
    assert vkey["value"] == signer.verifier().vkey()
    form = markup.all("form")[0]
    assert form["data-origin"] == ORIGIN
    labelled = {a["for"] for a in markup.all("label")}
    fields = {a["id"] for a in markup.all("textarea") + markup.all("input")}
    assert fields <= labelled
    assert [a for a in markup.all("button")] == [{"type": "submit", "disabled": None}]
    noscript = html.split("<noscript>")[1].split("</noscript>")[0]
    for said in (
        "lunaria verify-receipt RECEIPT --vkey KEY",
        "--witness VKEY",
        "--witness-quorum K",
    ):
        assert said in noscript
    for lang, receipt in (("es", "RECIBO"), ("uk", "КВИТАНЦІЯ")):
        translated = site.html(f"/verify?lang={lang}").split("<noscript>")[1]
        translated = translated.split("</noscript>")[0]
        assert f"lunaria verify-receipt {receipt} --vkey" in translated, lang
        assert "--witness " in translated and "--witness-quorum " in translated, lang


def test_verify_page_offers_the_logs_witnesses_and_its_own_witness_key(
    site: Site, tmp_path: Path
) -> None:
    witnesses = [SpecWitness.generate(f"w{i}.example/witness") for i in range(3)]
    listing = tmp_path / "witnesses"
    listing.write_text(
        "# the witnesses of this log\n"
        + "".join(f"{w.vkey()} https://w{i}.example/witness\n" for i, w in enumerate(witnesses))
    )

    def fields(page: str) -> tuple[str, str | None]:
        markup = Markup(page)
        quorum = next(a for a in markup.all("input") if a.get("id") == "quorum")
        shown = page.split('id="witnesses"', 1)[1].split(">", 1)[1].split("</textarea>")[0]
        return shown, quorum["value"]

    with site.ctx():
        cosigner = witness.load_cosigner()
    assert cosigner is not None
    page = site.html("/verify")
    assert fields(page) == ("", "")
    assert f'<code id="own-witness-vkey" class="hash">{cosigner.verifier().vkey()}</code>' in page
    config = site.app.config
    try:
        config["WITNESSES"] = str(listing)
        assert fields(site.html("/verify")) == ("\n".join(w.vkey() for w in witnesses), "2")
        config["WITNESS_QUORUM"] = "3"
        assert fields(site.html("/verify?lang=uk"))[1] == "3"
        config["WITNESS_QUORUM"] = "4"  # more than the file names: nothing is offered
        assert fields(site.html("/verify")) == ("", "")
        config["WITNESSES"] = str(tmp_path / "missing")
        assert fields(site.html("/verify")) == ("", "")
    finally:
        config["WITNESSES"] = config["WITNESS_QUORUM"] = None


# -- receipts and proofs the verifier uses --------------------------------------------------


def test_receipt_links_serve_receipts_that_verify_offline(site: Site) -> None:
    with site.ctx():
        checkpoint = db.get_log().latest_checkpoint()
        signer = db.load_signer()
    assert checkpoint is not None and signer is not None
    seq = checkpoint.size - 1
    links = [a["href"] for a in Markup(site.html(f"/entries/{seq}")).all("a") if "download" in a]
    assert links == [f"/api/v1/receipts/{seq}", f"/api/v1/receipts/{seq}.tlog-proof"]
    for link in links:
        response = site.get(str(link))
        assert response.status_code == 200
        verified = verify_receipt(parse_receipt(response.get_data()), [signer.verifier()])
        assert verified.entry.seq == seq and verified.checkpoint.size == checkpoint.size


def test_the_endpoints_the_verifier_fetches(site: Site) -> None:
    """verify.js reads /api/v1/ledger/checkpoint (a signed note) and
    /api/v1/ledger/proofs/consistency?from=M&to=N ({"from", "to", "hashes": [hex]})."""
    with site.ctx():
        log = db.get_log()
        checkpoints = log.checkpoints()
        signer = db.load_signer()
    assert signer is not None and len(checkpoints) > 2
    response = site.get("/api/v1/ledger/checkpoint")
    assert response.status_code == 200
    note = response.get_json()["note"] if response.is_json else response.get_data(as_text=True)
    latest = open_checkpoint(note, [signer.verifier()], ORIGIN)
    assert latest.size == checkpoints[-1].size
    old = checkpoints[len(checkpoints) // 2]
    proof = site.get(f"/api/v1/ledger/proofs/consistency?from={old.size}&to={latest.size}")
    body = proof.get_json()
    assert (body["from"], body["to"]) == (old.size, latest.size)
    hashes = [bytes.fromhex(h) for h in body["hashes"]]
    merkle.verify_consistency(old.size, latest.size, hashes, old.root, latest.root)
    for query in ("from=5&to=2", "from=1&to=99999999", "from=x&to=3", "to=3"):
        refused = site.get(f"/api/v1/ledger/proofs/consistency?{query}")
        assert refused.status_code in (400, 404, 422), query
        assert refused.mimetype == "application/problem+json"


# -- pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "key"),
    [
        (0.0, "new"),
        (0.06, "new"),
        (0.1, "waxing_crescent"),
        (0.25, "first_quarter"),
        (0.4, "waxing_gibbous"),
        (0.5, "full"),
        (0.6, "waning_gibbous"),
        (0.75, "last_quarter"),
        (0.85, "waning_crescent"),
        (0.97, "new"),
    ],
)
def test_moon_phase(fraction: float, key: str) -> None:
    start = datetime(2026, 11, 9, 0, 51, tzinfo=UTC)
    cycle = Cycle(332, start, start + timedelta(days=29.5))
    phase = web.moon_phase(cycle, start + (cycle.end - cycle.start) * fraction)
    assert phase.key == key
    assert phase.percent == int(fraction * 100)
    assert phase.lit_path.startswith("M 50 10 A 40 40 0 0 ")


def test_moon_shapes() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cycle = Cycle(1, start, start + timedelta(days=28))
    at = {f: web.moon_phase(cycle, start + timedelta(days=28 * f)).lit_path for f in (0.5, 0.25)}
    # full: the left limb down, back up along a full half circle on the right
    assert at[0.5] == "M 50 10 A 40 40 0 0 0 50 90 A 40.00 40 0 0 0 50 10 Z"
    # first quarter: the terminator is a straight line (x-radius 0)
    assert at[0.25] == "M 50 10 A 40 40 0 0 1 50 90 A 0.00 40 0 0 1 50 10 Z"


def test_not_initialised_database_gets_a_clear_page(app: Flask) -> None:
    response = app.test_client().get("/")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert "no ledger yet" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == CSP


def _mo_messages(mo: BinaryIO) -> dict[tuple[Any, Any], Any]:
    """Message by (context, id); a plural's ids and strings come as lists (made tuples)."""

    def frozen(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    return {(m.context, frozen(m.id)): frozen(m.string) for m in read_mo(mo)}


def test_committed_mo_files_match_a_fresh_compile_and_cover_every_message() -> None:
    method_map, options_map = parse_mapping_cfg(io.StringIO((ROOT / "babel.cfg").read_text()))
    keywords = {"_": None, "gettext": None, "lazy_gettext": None}
    messages = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }
    assert len(messages) > 100
    for lang in ("es", "uk"):
        directory = ROOT / "api" / "translations" / lang / "LC_MESSAGES"
        with (directory / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=lang)
        fresh = io.BytesIO()
        write_mo(fresh, catalog)
        fresh.seek(0)
        with (directory / "messages.mo").open("rb") as committed:
            # Compared as messages, not bytes: Babel's releases lay out .mo files differently.
            assert _mo_messages(committed) == _mo_messages(fresh), (
                f"{lang}: messages.mo is stale; run `make translations`"
            )
        translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
        assert messages <= translated, f"{lang} lacks {sorted(messages - translated)[:5]}"
        for message in catalog:
            if message.id and "python-format" in message.flags:  # same placeholders
                assert set(re.findall(r"%\(\w+\)s", str(message.id))) == set(
                    re.findall(r"%\(\w+\)s", str(message.string))
                ), message.id
            if message.id and isinstance(message.id, str):
                assert set(re.findall(r"\{\w+\}", message.id)) == set(
                    re.findall(r"\{\w+\}", str(message.string))
                ), message.id


def test_signing_key_is_never_exposed(site: Site) -> None:
    with site.ctx():
        signer = Signer.load(Path(site.app.config["KEY_FILE"]))
    secret = signer.skey().split("+", 4)[4]
    for path in pages(site):
        assert secret not in site.html(path)
