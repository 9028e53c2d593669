"""``lunaria publish DIR``: the demo published as a static site, read in Chromium from disk.

The page's balances must be the API's, every link must stay inside the folder, the "how to
verify" page's audit command (run as written) must verify the folder, a redacted text must
not be published again, and no private reference may reach any published file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flask import Flask
from flask.testing import FlaskCliRunner
from playwright.sync_api import Browser, Page

from api import db
from ledger.fund import CURRENCY_EXPONENTS, public_text, views
from ledger.log.clock import ManualClock
from tests.e2e.conftest import NOW
from tests.test_api_support import Http

BOOKS = ("available", "committed", "donations", "disbursed")
PRIVATE = {  # what a treasurer records and the log must never show
    "external_reference": "BANK-TX-99887766-PUBLISH",
    "donor_reference": "Maria Publishtest, Calle Mayor 5",
    "note": "Ring Maria on +34 600 000 000",
}


def minor_units(shown: str, currency: str) -> int:
    """A shown amount ("1,234.50 EUR", en) back to minor units, exactly."""
    number = shown.replace("\u00a0", " ").removesuffix(f" {currency}").replace(",", "")
    return int(Decimal(number).scaleb(CURRENCY_EXPONENTS[currency]))


def publish(runner: FlaskCliRunner, directory: Path) -> None:
    result = runner.invoke(args=["publish", str(directory)])
    assert result.exit_code == 0, result.output
    assert "site: index.html, verify.html, vkey.txt" in result.output


def open_page(browser: Browser, path: Path) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, errors


def check_balances(page: Page, pools: list[dict[str, Any]]) -> None:
    assert pools, "the demo has pools"
    for pool in pools:
        section = page.locator(f"#pool-{pool['slug']}-section")
        assert section.locator("h2").inner_text() == pool["name"]
        for books in pool["books"]:
            currency = books["currency"]
            row = section.locator(f"tr[data-currency={currency}]")
            for column in BOOKS:
                shown = row.locator(f"td.{column}").inner_text()
                assert minor_units(shown, currency) == int(books[column]), (pool, column)


def check_links_stay_inside(page: Page, directory: Path) -> None:
    targets = page.eval_on_selector_all(
        "a[href], link[href], img[src]", "els => els.map(e => e.getAttribute('href') ?? e.src)"
    )
    for target in targets:
        if target.startswith("#"):
            continue
        parsed = urlparse(target)
        assert parsed.scheme in ("", "file") and not target.startswith("/"), target
        path = Path(parsed.path) if parsed.scheme == "file" else directory / parsed.path
        assert path.resolve().is_relative_to(directory.resolve()) and path.is_file(), target


def run_audit_command(page: Page, directory: Path) -> str:
    """The audit command as the verify page prints it, run by bash in the folder."""
    page.goto((directory / "verify.html").as_uri())
    command = page.locator("#audit-command").inner_text()
    assert command.startswith("lunaria audit . --vkey")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", command], cwd=directory, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def grant_purpose_commitment(app: Flask, pool: str) -> tuple[int, str, str]:
    """The newest grant proposal of ``pool`` with a purpose: (seq, commitment, text)."""
    with app.app_context():
        engine = db.get_engine()
        for entry in views.pool_entries(engine, pool, 50):
            if entry.kind == "grant_proposed":
                commitment = public_text.text_commitments(entry.kind, entry.data)["purpose"]
                (texts,) = public_text.texts_beside(
                    engine, [{"kind": entry.kind, "data": entry.data}]
                )
                return entry.seq, commitment, texts["purpose"]["text"]
    raise AssertionError(f"no grant proposal in {pool}")


def test_publish_writes_a_site_that_matches_the_api_and_still_audits(
    app: Flask,
    client: Any,
    runner: FlaskCliRunner,
    clock: ManualClock,
    browser: Browser,
    tmp_path: Path,
    output_dir: Path,
) -> None:
    clock.set(NOW)
    assert runner.invoke(args=["init", "--demo"]).exit_code == 0
    token = runner.invoke(args=["token", "create", "--role", "treasurer"]).stdout.strip()
    donation = {"amount": "4200", "currency": "EUR", "channel": "bank", **PRIVATE}
    Http(app, client).post("/pools/food-bank/donations", donation, token=token, status=201)
    site = tmp_path / "site"
    publish(runner, site)

    page, errors = open_page(browser, site / "index.html")
    check_balances(page, client.get("/api/v1/pools").get_json())
    assert page.locator("header.site").evaluate("e => getComputedStyle(e).display") == "flex"
    check_links_stay_inside(page, site)
    entries = page.locator("#pool-food-bank-section ol.entries li")
    assert entries.first.inner_text().startswith("#")  # newest first: the donation above
    assert "42.00\u00a0EUR" in entries.first.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.screenshot(path=str(output_dir / "published-site-1280.png"), full_page=True)

    audited = run_audit_command(page, site)
    assert audited.startswith("ok: ") and "rules hold" in audited
    assert (site / "vkey.txt").read_text().strip() in page.locator("#vkey").inner_text()
    assert errors == [], "console errors"

    published = b"".join(p.read_bytes() for p in site.rglob("*") if p.is_file())
    for private in PRIVATE.values():
        assert private.encode() not in published, private

    seq, commitment, purpose = grant_purpose_commitment(app, "food-bank")
    result = runner.invoke(args=["redact", commitment, "--reason", "personal_data"])
    assert result.exit_code == 0, result.output
    publish(runner, site)  # again, into the same folder
    page.goto((site / "index.html").as_uri())
    item = page.locator("#pool-food-bank-section ol.entries li", has_text=f"#{seq} ")
    assert "[redacted]" in item.inner_text() and purpose not in item.inner_text()
    assert run_audit_command(page, site).startswith("ok: ")
    page.close()
