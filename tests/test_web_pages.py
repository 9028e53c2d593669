"""The pages told in words, on SQLite and PostgreSQL: grant, cycle and collective pages, the
sentence that opens each entry page, names instead of slugs, redacted purposes, the charts
(SVG without script, under the page's unchanged CSP), money in its usual precision, the
styled 404 and 500 pages, and the verifier's translated detail lines."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from flask import Flask
from markupsafe import escape

from api import charts, db, web
from ledger.fund import display_major, views
from ledger.fund.rules import Actor
from tests.test_web import CSP, NOW, Markup, Site, site, text_of

__all__ = ["site"]  # (the module's demo fund, one per database)

ROOT = Path(__file__).parent.parent
ADMIN = Actor("admin:test", "admin")


def decided_by_quorum(site: Site) -> views.GrantView:
    with site.ctx():
        decided = views.recent_decisions(db.get_engine(), "food-bank", 50)
    return next(g for g in decided if g.decision and g.decision.lane == "quorum")


def closed_cycle(site: Site) -> views.CycleView:
    with site.ctx():
        return [c for c in views.pool_cycles(db.get_engine(), "food-bank") if c.statement][-1]


# -- grant, cycle, collective ---------------------------------------------------------------


def test_grant_page_tells_the_decision_votes_and_history(site: Site) -> None:
    grant = decided_by_quorum(site)
    assert grant.decision is not None
    html = site.html(f"/grants/{grant.id}")
    page = text_of(html)
    approvals = len(grant.decision.approvals)
    assert f"Grant #{grant.id} approved by Colectivo Alba" in page or (
        f"Grant #{grant.id} approved by" in page and "alba" not in page.split("approved by")[1][:8]
    )
    assert f"{approvals} votes for and" in page
    assert f"({grant.decision.quorum} needed)" in page
    for vote in grant.votes:
        assert f'href="/entries/{vote.seq}"' in html
        assert vote.member in page
    for seq in (grant.id, grant.decision.seq, grant.disbursed_seq):
        assert f'href="/entries/{seq}">#{seq}</a>' in html
    with site.app.test_request_context("/"):
        assert web.money(grant.amount, grant.currency) in page
    if grant.urgency == "urgent":
        assert "Decision deadline" in page
    assert "Time to a decision" in page


def test_cycle_page_custody_statement_decisions_and_reports(site: Site) -> None:
    cycle = closed_cycle(site)
    assert cycle.statement is not None and cycle.custodian is not None
    html = site.html(f"/pools/food-bank/cycles/{cycle.number}")
    page = text_of(html)
    with site.ctx():
        story = views.cycle_story(db.get_engine(), "food-bank", cycle.number)
        names = views.names(db.get_engine())
    assert f"<h1>Cycle {cycle.number} of Neighbourhood food bank</h1>" in html
    assert f"{names.collective(cycle.custodian)} held custody of Neighbourhood food bank" in page
    assert f"then {names.collective(story.next_custodian)} took over" in page
    with site.app.test_request_context("/"):
        for currency, line in cycle.statement.items():
            for figure in ("opening", "donations", "disbursements", "closing"):
                assert web.money(line[figure], currency) in page
    assert f'href="/entries/{cycle.closed_seq}"' in html  # the handover entry
    for grant, waited in story.response_times:
        assert f'href="/grants/{grant.id}"' in html
        assert waited.total_seconds() >= 0
    for fmt in web.REPORT_FORMATS:
        assert f'href="/api/v1/pools/food-bank/reports/{cycle.number}.{fmt}"' in html
    running = text_of(site.html(f"/pools/food-bank/cycles/{story.last_cycle}"))
    assert "takes over" in running and "holds custody" in running


def test_collective_page_custody_history_and_decisions(site: Site) -> None:
    html = site.html("/collectives/alba")
    page = text_of(html)
    with site.ctx():
        story = views.collective_story(db.get_engine(), "alba")
        cycles = [
            c
            for pool in ("food-bank", "legal-aid")
            for c in views.pool_cycles(db.get_engine(), pool)
            if c.custodian == "alba"
        ]
    assert "<h1>Colectivo Alba</h1>" in html
    assert len(story.custody) == len(cycles) > 0
    for span in story.custody:
        assert f'href="/pools/{span.pool}/cycles/{span.cycle}"' in html
    assert {g.pool for g in story.decisions} <= {"food-bank", "legal-aid"}
    for grant in story.decisions:
        assert f'href="/grants/{grant.id}"' in html
    assert f"decided {len(story.decisions)} grants in them" in page


def test_pages_name_collectives_and_link_them(site: Site) -> None:
    for path in ("/", "/pools/food-bank", "/pools/legal-aid"):
        html = site.html(path)
        assert 'href="/collectives/alba">Colectivo Alba</a>' in html, path
        assert not re.search(r"<dd>(alba|brisa|cauce)</dd>", html), path


def test_entry_pages_open_with_a_sentence_in_the_readers_language(site: Site) -> None:
    grant = decided_by_quorum(site)
    assert grant.decision is not None and grant.disbursed_seq is not None
    with site.ctx():
        handover = closed_cycle(site).closed_seq
    expected = {
        grant.id: f"Grant #{grant.id} proposed to Neighbourhood food bank",
        grant.votes[0].seq: f"{grant.votes[0].member} of ",
        grant.decision.seq: f"Grant #{grant.id} approved by ",
        grant.disbursed_seq: f"Grant #{grant.id} paid out from Neighbourhood food bank",
        handover: "At the new moon, ",
        0: "The log was created.",
    }
    for seq, start in expected.items():
        story = re.search(r'<p class="lede story">(.*?)</p>', site.html(f"/entries/{seq}"), re.S)
        assert story is not None, seq
        assert text_of(story.group(1)).startswith(start), (seq, text_of(story.group(1)))
    spanish = text_of(site.html(f"/entries/{grant.decision.seq}?lang=es"))
    assert f"Ayuda n.º {grant.id} aprobada por " in spanish
    ukrainian = text_of(site.html(f"/entries/{grant.decision.seq}?lang=uk"))
    assert f"Грант №{grant.id} схвалив колектив " in ukrainian
    html = site.html(f"/entries/{grant.decision.seq}")
    assert html.index('class="lede story"') < html.index('<details class="proof">')
    assert html.index('<details class="proof">') < html.index("Entry hash")


def test_a_redacted_purpose_shows_as_redacted_on_every_page(site: Site) -> None:
    with site.ctx():
        engine = db.get_engine()
        queue = views.grant_queue(engine, "legal-aid", status="proposed").items
        grant = queue[0]  # (shown in the pool page's queue)
        proposal = db.get_log().entry(grant.id)
        commitment = proposal.data["purpose"]["commitment"]
        db.get_fund().redact_text(ADMIN, commitment, "personal_data")
    for path in (f"/grants/{grant.id}", f"/entries/{grant.id}", "/pools/legal-aid"):
        html = site.html(path)
        row = html[html.index(f'href="/grants/{grant.id}"') :] if "/pools/" in path else html
        assert "[purpose redacted]" in text_of(row[:3000]), path
    for path in (f"/grants/{grant.id}", f"/entries/{grant.id}"):
        # the text is gone from the page (only its commitment remains)
        assert grant.purpose not in text_of(site.html(path)), path


# -- 404 and 500 ----------------------------------------------------------------------------


def test_unknown_things_are_styled_404_pages_in_the_readers_language(site: Site) -> None:
    for path in (
        "/grants/abc",
        "/grants/999999999",
        "/pools/food-bank/cycles/1",
        "/pools/food-bank/cycles/x",
        "/pools/nope/cycles/1",
        "/collectives/nope",
        "/pools/food-bank/charts/nope.svg",
        "/pools/food-bank/charts/balance-USDC.svg",
        "/no/such/page",
    ):
        html = site.html(path, status=404, headers={"Accept-Language": "es"})
        assert "<h1>No encontrado</h1>" in html, path
        assert '<link rel="stylesheet" href="/static/site.css">' in html
        assert site.get(path).headers["Content-Security-Policy"] == CSP
    problem = site.get("/api/v1/no/such/thing")
    assert problem.status_code == 404 and problem.mimetype == "application/problem+json"


def test_a_failing_page_is_a_styled_500_in_the_readers_language(app: Flask) -> None:
    def boom() -> str:
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", "boom", boom)
    response = app.test_client().get("/boom", headers={"Accept-Language": "uk"})
    assert response.status_code == 500 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'lang="uk"' in html and "<h1>Щось пішло не так</h1>" in html
    assert "a bug" not in html and "Traceback" not in html


# -- charts ---------------------------------------------------------------------------------


def test_charts_are_svg_images_without_script_each_with_its_figures(site: Site) -> None:
    html = site.html("/pools/food-bank?lang=es")
    markup = Markup(html)
    images = [i for i in markup.all("img") if "/charts/" in str(i.get("src"))]
    assert len(images) == 3  # balance and flows in EUR, urgent response times
    assert all(i.get("alt") for i in images)
    sources = [s["srcset"] for s in markup.all("source") if "/charts/" in str(s.get("srcset"))]
    assert len(sources) == 3 and all("size=narrow" in str(s) for s in sources)
    assert html.count("<details>\n        <summary>Cifras de este gráfico</summary>") == 3
    titles = []
    for url in [str(i["src"]) for i in images] + [str(s) for s in sources]:
        response = site.get(url.replace("&amp;", "&"))
        assert response.status_code == 200 and response.mimetype == "image/svg+xml", url
        assert response.headers["Content-Security-Policy"] == charts.SVG_CSP
        svg = response.get_data(as_text=True)
        assert "<script" not in svg and "http://pygal.org" not in svg
        # Its colours are the site's, light and dark (the image follows the reader's scheme).
        dark = svg.split("prefers-color-scheme", 1)[1]
        assert all(f"--chart-{k}:{v}" in dark for k, v in charts.DARK.items())
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        titles.append(svg)
    assert any("Fondos al comienzo de cada ciclo, EUR" in t for t in titles)
    assert any("Donaciones frente a ayudas pagadas por ciclo, EUR" in t for t in titles)
    assert site.get(str(images[0]["src"])).headers.get("Set-Cookie") is None
    assert site.get("/pools/food-bank").headers["Content-Security-Policy"] == CSP


def test_chart_figures_are_the_books(site: Site) -> None:
    with site.ctx():
        engine = db.get_engine()
        pool = views.pool_detail(engine, "food-bank", NOW)
        cycles = views.pool_cycles(engine, "food-bank")
        responses = views.pool_responses(engine, "food-bank", NOW)
    with site.app.test_request_context("/"):
        figures = web.PoolFigures(pool, cycles, responses)
        assert figures.chart_names() == ["balance-EUR", "flows-EUR", "response"]
        balance = figures.chart("balance-EUR")
        flows = figures.chart("flows-EUR")
        assert figures.chart("balance-USDC") is None
    assert balance is not None and flows is not None
    books = pool.books[0]
    held = charts.major(int(books.available) + int(books.committed), "EUR")
    assert balance.series[0].values[-1] == held
    assert [v for v in balance.series[0].values[:-1]] == [
        charts.major(c.opening.get("EUR", "0"), "EUR") for c in cycles
    ]
    assert flows.series[0].values == tuple(
        charts.major(c.flows["EUR"]["donations"], "EUR") for c in cycles
    )


# -- money ----------------------------------------------------------------------------------


def test_money_reads_like_money_and_stays_exact() -> None:
    assert display_major(88_000_000, "USDC") == "88.00"
    assert display_major(88_123_400, "USDC") == "88.1234"
    assert display_major(1, "USDC") == "0.000001"
    assert display_major(-5_000_000, "USDC") == "-5.00"
    assert display_major(10**18, "ETH") == "1.00"
    assert display_major(150, "EUR") == "1.50"
    assert display_major(5, "JPY") == "5"


def test_usdc_pages_show_two_decimals_and_the_api_keeps_minor_units(site: Site) -> None:
    page = text_of(site.html("/pools/legal-aid"))
    assert re.search(r"\d\.\d\d\u00a0USDC", page)
    assert not re.search(r"\d\.\d{6}\u00a0USDC", page)
    books = site.get("/api/v1/pools/legal-aid").get_json()["books"][0]
    assert books["currency"] == "USDC" and re.fullmatch(r"\d+", books["available"])


# -- /verify --------------------------------------------------------------------------------


def test_every_verifier_detail_has_its_translation_on_the_page(site: Site) -> None:
    script = (ROOT / "api" / "static" / "verify.js").read_text(encoding="utf-8")
    found = re.findall(r'(?<![\w.])d\("((?:[^"\\]|\\.)*)"', script)
    in_script = [json.loads(f'"{template}"') for template in found]
    templates = [template for template, _ in web.VERIFY_DETAILS]
    assert sorted(set(in_script)) == sorted(templates)
    spanish = site.html("/verify?lang=es")
    for template in templates:
        assert f'data-template="{escape(template)}"' in spanish
    assert (
        'data-template="the proof gives root {got}, the checkpoint says {want}">'
        + ("la prueba da la raíz {got}; el punto de control dice {want}</li>")
        in spanish
    )
    assert '"food-bank": "Neighbourhood food bank"' in spanish.replace("&#34;", '"')
