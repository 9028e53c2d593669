"""The README's API walkthrough, run as written: its shell lines, real curl, a real server.

The lines are read out of README.md (the ``sh`` block under "The API in ten lines") and run by
bash against the app served over HTTP on loopback, with the ``lunaria`` of this virtualenv:
if the README stops telling the truth, this test fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from api import db
from ledger.fund import views
from ledger.log import Verifier, parse_receipt, verify_receipt
from tests.test_api_support import Http, cli_admin_token

README = Path(__file__).parent.parent / "README.md"
WALKTHROUGH = "## The API in ten lines"


def walkthrough() -> str:
    """The first ``sh`` block after the walkthrough's heading."""
    text = README.read_text()
    section = text[text.index(WALKTHROUGH) :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None, "the walkthrough has no sh block"
    return match.group(1)


def test_walkthrough_is_ten_lines_of_token_donation_receipt_verify() -> None:
    lines = [line for line in walkthrough().splitlines() if not line.lstrip().startswith("#")]
    assert len(lines) <= 10, lines
    script = "\n".join(lines)
    for step in ("token create", "/donations", "/receipts/", "verify-receipt"):
        assert step in script, step


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app over HTTP on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def run_walkthrough(app: Flask, url: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "API": url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LUNARIA_DATABASE_URL": app.config["DATABASE_URL"],
        "LUNARIA_KEY_FILE": app.config["KEY_FILE"],
    }
    script = "set -euo pipefail\n" + walkthrough()
    return subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_readme_walkthrough_runs_as_written(
    app: Flask, client: Any, runner: Any, served: str, tmp_path: Path
) -> None:
    app.config["CHECKPOINT_EVERY"] = 1  # the receipt at once (make run: the worker, in 10 s)
    admin = cli_admin_token(runner)
    http = Http(app, client)
    pool = {"slug": "food-bank", "name": "Neighbourhood food bank", "currencies": ["EUR"]}
    http.post("/pools", pool, token=admin, status=201)  # as in the demo of `make run`
    size = http.size()

    done = run_walkthrough(app, served, tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("ok: entry "), done.stdout  # verify-receipt said so
    donation = json.loads((tmp_path / "donation.json").read_text())
    receipt = (tmp_path / "receipt.json").read_bytes()
    assert donation["amount"] == "2500" and donation["salt"]
    with app.app_context():
        vkey = views.published_vkey(db.get_engine())  # the key the log published
    assert vkey is not None
    verified = verify_receipt(parse_receipt(receipt), [Verifier.from_vkey(vkey)])
    assert verified.entry.seq == donation["seq"] and verified.entry.kind == "donation_recorded"
    assert f"ok: entry {donation['seq']} (donation_recorded" in done.stdout
    assert http.size() == size + 1
