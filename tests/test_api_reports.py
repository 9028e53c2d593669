"""Report downloads over HTTP: formats, the SHA-256 header, determinism and bad input."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from ledger.log.clock import ManualClock, parse_ts
from tests.test_api_support import Story, build_story


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner, clock: ManualClock) -> Story:
    story = build_story(app, client, runner)
    grant = story.propose("5000", "urgent")
    story.vote(grant, "a1", fast_lane=True)
    end = story.http.get("/pools/food")["cycle"]["end"]
    clock.set(parse_ts(end) + timedelta(hours=1))
    assert runner.invoke(args=["rotate"]).exit_code == 0
    return story


def test_every_format_of_a_closed_cycle(story: Story, client: Any) -> None:
    (closed, _) = story.http.get("/pools/food/cycles")
    number = closed["number"]
    for fmt in ("pdf", "csv", "json", "jsonl", "beancount"):
        response = client.get(f"/api/v1/pools/food/reports/{number}.{fmt}")
        assert response.status_code == 200, (fmt, response.get_json())
        assert response.headers["X-Report-SHA256"] == hashlib.sha256(response.data).hexdigest()
    pdf = client.get(f"/api/v1/pools/food/reports/{number}.pdf")
    assert pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    again = client.get(f"/api/v1/pools/food/reports/{number}.pdf")
    assert again.data == pdf.data  # deterministic
    report = client.get(f"/api/v1/pools/food/reports/{number}.json").get_json()
    assert report["pdf"]["sha256"] == pdf.headers["X-Report-SHA256"]
    latest = client.get("/api/v1/pools/food/reports/latest.csv")
    assert latest.status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/pools/nowhere/reports/latest.pdf", 404, "not_found"),
        ("/api/v1/pools/food/reports/latest.docx", 404, "unknown_format"),
        ("/api/v1/pools/food/reports/99999.pdf", 404, "cycle_not_started"),
        ("/api/v1/pools/food/reports/10.pdf", 404, "cycle_before_pool"),
        ("/api/v1/pools/food/reports/soon.pdf", 400, "invalid_cycle"),
        ("/api/v1/pools/food/reports/latest.csv?fields=amount,nope", 400, "invalid_fields"),
    ],
)
def test_bad_report_requests(story: Story, client: Any, path: str, status: int, code: str) -> None:
    response = client.get(path)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
