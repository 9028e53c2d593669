"""The demo's response figures, recomputed here independently from ``lunaria export`` (the
entries' bytes and timestamps only), equal those of the pool page, the PDF reports (read back
with pypdf) and ``lunaria audit``; on SQLite and PostgreSQL.

The recomputation follows the definition in docs/formats.md, not ledger.fund.urgency."""

from __future__ import annotations

import io
import json
import math
import re
import statistics
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from pypdf import PdfReader

Figures = tuple[int, int, int, int, int | None]  # deadline h, on time, counted, decided, median
POOLS = ("food-bank", "legal-aid")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _seconds(delta: timedelta) -> int:
    return delta.days * 86400 + delta.seconds  # whole seconds, rounded down (delta >= 0)


def figures_from_export(path: Path) -> dict[tuple[str, int], Figures]:
    """Every closed cycle's figures, from the exported entries alone."""
    hours: dict[str, int] = {}
    spans: dict[tuple[str, int], tuple[datetime, datetime]] = {}
    urgent: dict[int, tuple[str, datetime]] = {}
    decided: dict[int, tuple[datetime, int]] = {}
    cancelled: dict[int, datetime] = {}
    closed: list[tuple[str, int]] = []
    for line in path.read_bytes().splitlines():
        entry = json.loads(line)
        kind, d, ts = entry["kind"], entry["data"], _ts(entry["ts"])
        if kind == "pool_created":
            hours[d["slug"]] = d.get("urgent_deadline_hours", 72)
            spans[d["slug"], d["cycle"]["number"]] = (
                _ts(d["cycle"]["start"]),
                _ts(d["cycle"]["end"]),
            )
        elif kind == "custody_transferred":
            spans[d["pool"], d["cycle"]["number"]] = (
                _ts(d["cycle"]["start"]),
                _ts(d["cycle"]["end"]),
            )
            closed.append((d["pool"], d["closed"]["number"]))
        elif kind == "grant_proposed" and d["urgency"] == "urgent":
            urgent[entry["seq"]] = (d["pool"], ts)
        elif kind == "grant_decided":
            decided[d["grant"]] = (ts, d["cycle"])
        elif kind == "grant_cancelled":
            cancelled[d["grant"]] = ts
    result = {}
    for pool, number in closed:
        start, end = spans[pool, number]
        on_time = late = 0
        waits = []
        for seq, (where, proposed) in urgent.items():
            if where != pool:
                continue
            due = proposed + timedelta(hours=hours[pool])
            answered, cycle = decided.get(seq, (None, None))
            in_time = answered is not None and answered < due
            withdrawn = seq in cancelled and cancelled[seq] < due
            if cycle == number and answered is not None:
                waits.append(_seconds(answered - proposed))
            if in_time and cycle == number:
                on_time += 1
            elif start <= due < end and not in_time and not withdrawn:
                late += 1
        median = math.floor(statistics.median(waits)) if waits else None
        result[pool, number] = (hours[pool], on_time, on_time + late, len(waits), median)
    return result


class _Rows(HTMLParser):
    """The ``data-`` figures of the pool page's response table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-cycle" in found:
            self.rows.append(found)


def figures_of_page(client: Any, pool: str) -> dict[tuple[str, int], Figures]:
    parser = _Rows()
    parser.feed(client.get(f"/pools/{pool}?lang=en").get_data(as_text=True))
    return {
        (pool, int(row["data-cycle"])): (
            int(row["data-deadline-hours"]),
            int(row["data-on-time"]),
            int(row["data-counted"]),
            int(row["data-decided"]),
            int(row["data-median-seconds"]) if row["data-median-seconds"] else None,
        )
        for row in parser.rows
        if row["data-closed"] == "true"
    }


PDF_ON_TIME = re.compile(r"within the deadline \((\d+) h\): (\d+) of (\d+)")
PDF_MEDIAN = re.compile(r"\((\d+) s\), over (\d+) decided|(none) \(no urgent grant decided\)")


def figures_of_report(client: Any, pool: str, number: int) -> Figures:
    response = client.get(f"/api/v1/pools/{pool}/reports/{number}.pdf?lang=en")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    text = " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(response.get_data())).pages
    )
    text = re.sub(r"\s+", " ", text)
    on_time, median = PDF_ON_TIME.search(text), PDF_MEDIAN.search(text)
    assert on_time is not None and median is not None, text[-1500:]
    seconds, decided, none = median.groups()
    return (
        int(on_time[1]),
        int(on_time[2]),
        int(on_time[3]),
        0 if none else int(decided),
        None if none else int(seconds),
    )


AUDIT_LINE = re.compile(
    r"response (\S+) cycle (\d+): (\d+) of (\d+) urgent grants decided within (\d+) h; "
    r"median time to a decision (\d+ s|none) over (\d+) decided"
)


def figures_of_audit(runner: FlaskCliRunner, out: Path) -> dict[tuple[str, int], Figures]:
    vkey = runner.invoke(args=["vkey"]).output.strip()
    assert runner.invoke(args=["publish", str(out)]).exit_code == 0
    result = runner.invoke(args=["audit", str(out), "--vkey", vkey])
    assert result.exit_code == 0, result.output
    found = {}
    for pool, number, on, counted, hours, median, decided in AUDIT_LINE.findall(result.output):
        seconds = None if median == "none" else int(median.removesuffix(" s"))
        found[pool, int(number)] = (int(hours), int(on), int(counted), int(decided), seconds)
    return found


@pytest.mark.slow
def test_the_demo_figures_agree_everywhere(
    runner: FlaskCliRunner, client: Any, tmp_path: Path
) -> None:
    assert runner.invoke(args=["init", "--demo"]).exit_code == 0
    export = tmp_path / "log.jsonl"
    assert runner.invoke(args=["export", str(export)]).exit_code == 0
    expected = figures_from_export(export)
    assert {pool for pool, _ in expected} == set(POOLS)
    assert {figures[0] for figures in expected.values()} == {72, 48}  # each pool's own deadline
    # the demo answers some urgent grants in time and lets others wait past the deadline
    assert sum(f[1] for f in expected.values()) > 0
    assert sum(f[2] - f[1] for f in expected.values()) > 0
    assert any(f[4] is not None and f[4] > 0 for f in expected.values())

    assert figures_of_audit(runner, tmp_path / "public") == expected
    page = {k: v for pool in POOLS for k, v in figures_of_page(client, pool).items()}
    assert page == expected
    for pool, number in expected:
        assert figures_of_report(client, pool, number) == expected[pool, number], (pool, number)
