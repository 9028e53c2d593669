"""The API reference in a real browser: Swagger UI from this package, under the strict CSP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import Watched, fetch

SWAGGER_OPERATIONS = ".swagger-ui .opblock"


@pytest.fixture
def docs(browser: Browser, live_server: LiveServer) -> Iterator[Watched]:
    """A page whose console errors (CSP violations among them) and requests are recorded."""
    context = browser.new_context(locale="en-GB")
    watched = Watched(context, live_server.url)
    yield watched
    context.close()
    watched.check_clean()


def test_docs_page_renders_every_operation_offline_without_csp_errors(
    docs: Watched, live_server: LiveServer, output_dir: Path
) -> None:
    spec = json.loads(fetch(f"{live_server.url}/api/v1/openapi.json"))
    operations = sum(1 for item in spec["paths"].values() for m in item if m != "parameters")
    page = docs.page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.locator(SWAGGER_OPERATIONS)).to_have_count(operations)
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Lunaria")
    page.screenshot(path=str(output_dir / "api-docs-1280.png"))

    donation = page.locator("#operations-donations-post_api_v1_pools__slug__donations")
    donation.locator(".opblock-summary").click()
    examples = donation.locator(".examples-select select").first
    expect(examples).to_contain_text("25.00 EUR by bank transfer")
    expect(donation.locator(".body-param__example, .highlight-code").first).to_contain_text(
        "BANK-2026-11-0042"
    )
    examples.scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "api-docs-example-1280.png"))
    docs.check_clean()  # no CSP violation, nothing from another origin (see Watched)
    assert any(u.endswith("/static/vendor/swagger-ui/swagger-ui-bundle.js") for u in docs.requests)


def test_problem_type_links_land_on_their_row(docs: Watched, live_server: LiveServer) -> None:
    page = docs.page
    page.goto(f"{live_server.url}/api/v1/docs#problem-idempotency_conflict")
    expect(page.locator(SWAGGER_OPERATIONS).first).to_be_visible()
    row = page.locator("#problem-idempotency_conflict")
    expect(row).to_be_in_viewport()
    expect(row).to_contain_text("409")
