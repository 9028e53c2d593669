"""The donors' pages in a real browser (Debian's chromium through Playwright, SQLite demo):
every page in English, Spanish and Ukrainian at 1280 and 390 px wide, screenshotted, with no
sideways scrolling (measured in the page), every chart image drawn and nothing the CSP
refuses; axe-core finds no serious or critical accessibility violation on any public page;
/verify says what it verified, and which check failed, in the page's language."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from api import db
from ledger.fund import views
from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import VERDICT, Watched, covered_donation, receipt_json

ROOT = Path(__file__).parent.parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
LOCALES = {"en": "en-GB", "es": "es-ES", "uk": "uk-UA"}
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
VERIFIED = {"en": "Verified", "es": "Verificado", "uk": "Підтверджено"}


@dataclass(frozen=True)
class Sample:
    """Pages of the demo worth looking at: a grant decided by quorum, its decision, a closed
    cycle, the collective that held it."""

    grant: int
    decision: int
    pool: str
    cycle: int
    collective: str
    donation: int

    def pages(self) -> dict[str, str]:
        return {
            "home": "/",
            "pool": f"/pools/{self.pool}",
            "pool-usdc": "/pools/legal-aid",
            "grant": f"/grants/{self.grant}",
            "cycle": f"/pools/{self.pool}/cycles/{self.cycle}",
            "collective": f"/collectives/{self.collective}",
            "entry": f"/entries/{self.decision}",
            "verify": "/verify",
            "federation": "/federation",
        }


@pytest.fixture(scope="module")
def sample(live_server: LiveServer) -> Sample:
    with live_server.app.app_context():
        engine = db.get_engine()
        decided = views.recent_decisions(engine, "food-bank", 50)
        grant = next(g for g in decided if g.decision and g.decision.lane == "quorum")
        assert grant.decision is not None
        closed = [c for c in views.pool_cycles(engine, "food-bank") if c.statement]
        cycle = closed[-1]
        assert cycle.custodian is not None
    return Sample(
        grant.id,
        grant.decision.seq,
        "food-bank",
        cycle.number,
        cycle.custodian,
        covered_donation(live_server),
    )


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def open_page(
    browser: Browser, contexts: list[BrowserContext], server: LiveServer, lang: str, width: str
) -> Watched:
    w, h = WIDTHS[width]
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": w, "height": h})
    contexts.append(context)
    return Watched(context, server.url)


def verify_receipt(page: Page, base: str, receipt: dict[str, Any]) -> tuple[str, str]:
    page.goto(f"{base}/verify")
    page.wait_for_selector("#verify-form.ready")
    page.fill("#receipt-text", json.dumps(receipt))
    page.click("button[type=submit]")
    page.wait_for_selector(VERDICT, timeout=20_000)
    return page.inner_text("#verdict"), page.inner_text("#result")


def fits(page: Page) -> bool:
    """No sideways scrolling: the document is no wider than the window."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def tables_scrolling(page: Page) -> list[str]:
    """The tables that do not fit their box and scroll sideways inside it (none expected)."""
    scrolling: list[str] = page.evaluate(
        "[...document.querySelectorAll('.table-wrap')]"
        ".filter(w => w.offsetParent !== null && w.scrollWidth > w.clientWidth + 1)"
        ".map(w => w.getAttribute('aria-labelledby') || w.getAttribute('aria-label'))"
    )
    return scrolling


def images_drawn(page: Page) -> list[str]:
    """The images of the page that failed to load (none expected)."""
    page.evaluate(
        "Promise.all([...document.images].map(i => { i.loading = 'eager'; return i.decode()"
        ".catch(() => null); }))"
    )
    broken: list[str] = page.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.currentSrc || i.src)"
    )
    return broken


@pytest.mark.parametrize("lang", list(LOCALES))
def test_every_page_in_each_language_at_desktop_and_phone_width(
    browser: Browser,
    contexts: list[BrowserContext],
    live_server: LiveServer,
    sample: Sample,
    lang: str,
    output_dir: Path,
) -> None:
    shots = output_dir / "pages"
    shots.mkdir(exist_ok=True)
    receipt = receipt_json(live_server, sample.donation)
    for width in WIDTHS:
        watched = open_page(browser, contexts, live_server, lang, width)
        page = watched.page
        for name, path in sample.pages().items():
            if name == "verify":
                verdict, _ = verify_receipt(page, live_server.url, receipt)
                assert verdict.startswith(VERIFIED[lang]), verdict
            else:
                response = page.goto(live_server.url + path)
                assert response is not None and response.ok, path
            assert page.get_attribute("html", "lang") == lang, path
            assert fits(page), f"{path} at {width} in {lang} scrolls sideways"
            assert images_drawn(page) == [], path
            assert tables_scrolling(page) == [], f"{path} at {width} in {lang}"
            if name in ("grant", "cycle", "collective", "entry"):
                assert page.inner_text(".story").strip(), path
            file = shots / f"{name}-{lang}-{width}.png"
            page.screenshot(path=str(file), full_page=True)
            assert file.stat().st_size > 10_000
        watched.check_clean()


def test_usdc_reads_like_money_and_names_replace_slugs(
    browser: Browser, contexts: list[BrowserContext], live_server: LiveServer, sample: Sample
) -> None:
    page = open_page(browser, contexts, live_server, "en", "desktop").page
    page.goto(f"{live_server.url}/pools/legal-aid")
    text = page.inner_text("main")
    assert re.search(r"\d\.\d\d\u00a0USDC", text)
    assert not re.search(r"\d\.\d{6}\u00a0USDC", text), "USDC in six decimals"
    custody = page.inner_text("#custody-heading + dl")
    assert "Custodian now" in custody and "Next custodian" in custody
    assert not re.search(r"\b(alba|brisa|cauce)\b", custody), custody
    page.goto(f"{live_server.url}/entries/{sample.decision}")
    story = page.inner_text(".story")
    assert re.match(rf"Grant #{sample.grant} approved by [A-Z]", story), story
    assert page.locator("details.proof").get_attribute("open") is None  # the proof is folded


def test_verify_names_what_it_verified_and_the_changed_amount_in_each_language(
    browser: Browser, contexts: list[BrowserContext], live_server: LiveServer, sample: Sample
) -> None:
    receipt = receipt_json(live_server, sample.donation)
    data = receipt["entry"]["data"]
    amount, currency = data["amount"], data["currency"]
    with live_server.app.app_context():
        pool_name = views.names(db.get_engine()).pools[data["pool"]]
    tampered = json.loads(json.dumps(receipt))
    tampered["entry"]["data"]["amount"] = str(int(amount) * 100)  # the bytes stay as hashed
    changed = {
        "en": "Not verified: the entry in the receipt was changed after it was logged",
        "es": "No verificado: el asiento del recibo se cambió después de registrarse",
        "uk": "Не підтверджено: запис у квитанції змінили після того, як його внесли до журналу",
    }
    detail = {
        "en": "the receipt shows data.amount",
        "es": "el recibo muestra data.amount",
        "uk": "у квитанції data.amount",
    }
    for lang in LOCALES:
        watched = open_page(browser, contexts, live_server, lang, "desktop")
        verdict, result = verify_receipt(watched.page, live_server.url, receipt)
        assert verdict.startswith(VERIFIED[lang])
        what = watched.page.inner_text("#verified-what")
        assert f"entry {sample.donation}" in what or f" {sample.donation}:" in what, what
        assert pool_name in what, what
        assert re.search(rf"\d[.,]\d\d\u00a0{currency}", what), what
        verdict, result = verify_receipt(watched.page, live_server.url, tampered)
        assert verdict.startswith(changed[lang]), verdict
        assert "(data.amount)" in verdict
        assert detail[lang] in result, result
        watched.check_clean()


def test_a_flipped_proof_byte_is_explained_in_spanish(
    browser: Browser, contexts: list[BrowserContext], live_server: LiveServer, sample: Sample
) -> None:
    receipt = receipt_json(live_server, sample.donation)
    first = receipt["proof"]["hashes"][0]
    receipt["proof"]["hashes"][0] = f"{int(first[:2], 16) ^ 1:02x}{first[2:]}"
    watched = open_page(browser, contexts, live_server, "es", "phone")
    verdict, result = verify_receipt(watched.page, live_server.url, receipt)
    assert verdict.startswith("No verificado"), verdict
    assert "la prueba da la raíz" in result, result
    assert "the proof gives root" not in result


# -- accessibility --------------------------------------------------------------------------


def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now (axe is injected
    through the DevTools protocol, so the page keeps its own CSP)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(("lang", "width"), [("en", "desktop"), ("uk", "phone")])
def test_axe_finds_nothing_serious_on_any_public_page(
    browser: Browser,
    contexts: list[BrowserContext],
    live_server: LiveServer,
    sample: Sample,
    lang: str,
    width: str,
) -> None:
    assert AXE.is_file(), "run `make node_modules/.installed` (axe-core from npm)"
    watched = open_page(browser, contexts, live_server, lang, width)
    page = watched.page
    paths = {
        **sample.pages(),
        "donation": f"/entries/{sample.donation}",
        "genesis": "/entries/0",
        "not found": "/no/such/page",
    }
    found = {}
    for name, path in paths.items():
        page.goto(live_server.url + path)
        if name == "verify":
            verify_receipt(page, live_server.url, receipt_json(live_server, sample.donation))
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        found[name] = axe_violations(page)
    assert found == {name: [] for name in paths}
