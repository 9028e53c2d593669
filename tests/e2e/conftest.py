"""A real Lunaria (SQLite, demo history) served over HTTP, and Debian's chromium driven by
Playwright. Without chromium the browser tests skip, or fail when LUNARIA_FORBID_SKIPS=1."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask
from playwright.sync_api import Browser, sync_playwright
from werkzeug.serving import make_server

from api import create_app
from ledger.log.clock import ManualClock
from tests.conftest import ORIGIN

CHROMIUM = os.environ.get("LUNARIA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# A fixed "now" for the demo and the pages: screenshots and phases do not drift.
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class LiveServer:
    app: Flask
    url: str
    clock: ManualClock


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app over HTTP on 127.0.0.1 (a free port), after ``lunaria init --demo``."""
    directory = tmp_path_factory.mktemp("e2e")
    clock = ManualClock(NOW)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{directory / 'lunaria.db'}",
            "KEY_FILE": str(directory / "keys" / "log.key"),
            "ORIGIN": ORIGIN,
            "CLOCK": clock,
            "CHECKPOINT_EVERY": 10,
        }
    )
    result = app.test_cli_runner().invoke(args=["init", "--demo"])
    assert result.exit_code == 0, result.output
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(app, f"http://127.0.0.1:{server.server_port}", clock)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _chromium_or_skip() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        message = f"chromium is not installed at {CHROMIUM} (run `make chromium`)"
        if os.environ.get("LUNARIA_FORBID_SKIPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium through Playwright's sync API (Playwright's own browser download fails here)."""
    executable = _chromium_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
