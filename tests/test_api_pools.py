"""Pools, collectives and cycles over HTTP: books, custody across a new moon, the queue."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from ledger.log.clock import ManualClock, format_ts, parse_ts
from tests.test_api_support import Story, build_story, donation


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner)


def books(story: Story, currency: str = "EUR") -> dict[str, str]:
    pool = story.http.get("/pools/food")
    (found,) = [b for b in pool["books"] if b["currency"] == currency]
    return {k: v for k, v in found.items() if k != "currency"}


def test_pool_books_custody_and_handover(story: Story, clock: ManualClock) -> None:
    http = story.http
    (listed,) = http.get("/pools")
    pool = http.get("/pools/food")
    assert listed == pool
    assert pool["custodian"] == "alba" and pool["roster"] == ["alba", "brisa"]
    cycle = pool["cycle"]
    assert parse_ts(cycle["start"]) <= clock.now() < parse_ts(cycle["end"])
    assert pool["next_handover"] == cycle["end"]
    assert books(story) == {
        "donations": "30000",
        "committed": "0",
        "disbursed": "0",
        "available": "30000",
        "fast_lane_cap": "5000",
        "fast_lane_allowance": "8000",
        "fast_lane_left": "8000",
    }
    assert books(story, "USDC")["available"] == "0"

    grant = story.propose("20000")
    story.vote(grant, "a1")
    story.vote(grant, "a2")
    assert books(story)["committed"] == "20000" and books(story)["available"] == "10000"
    paid = http.post(
        f"/grants/{grant}/disbursements",
        {"payment_reference": "IBAN DE12 3456"},
        token=story.treasurer,
        status=201,
    ).get_json()
    assert paid["reference"] != "IBAN DE12 3456" and len(paid["reference"]) == 64
    urgent = story.propose("5000", "urgent")
    story.vote(urgent, "a3", fast_lane=True)
    assert books(story) == {
        "donations": "30000",
        "committed": "5000",
        "disbursed": "20000",
        "available": "5000",
        "fast_lane_cap": "5000",
        "fast_lane_allowance": "8000",
        "fast_lane_left": "3000",
    }

    # The next new moon: reads know the new custodian before any entry says so.
    clock.set(parse_ts(cycle["end"]) + timedelta(hours=1))
    size = http.size()
    pool = http.get("/pools/food")
    assert pool["custodian"] == "brisa"
    assert pool["cycle"]["number"] == cycle["number"] + 1
    assert pool["cycle"]["start"] == cycle["end"]
    assert books(story)["fast_lane_left"] == "8000"
    assert len(http.get("/pools/food/cycles")) == 1
    assert http.size() == size  # reads never write

    # The next write hands over first; the closed cycle carries its roll-forward statement.
    http.post("/pools/food/donations", donation("700"), token=story.treasurer, status=201)
    closed, current = http.get("/pools/food/cycles")
    assert (closed["custodian"], current["custodian"]) == ("alba", "brisa")
    assert closed["closed_seq"] == current["opened_seq"] and current["closed_seq"] is None
    assert closed["statement"]["EUR"] == {
        "opening": "0",
        "donations": "30000",
        "disbursements": "20000",
        "corrections": "0",
        "closing": "10000",
        "committed": "5000",
        "available": "5000",
    }
    assert current["opening"] == {"EUR": "10000", "USDC": "0"}
    assert current["flows"]["EUR"]["donations"] == "700"
    assert (current["start"], closed["end"]) == (cycle["end"], cycle["end"])

    # Custody moved: alba members no longer vote, brisa's do.
    fresh = story.propose("1000")
    vote = {"vote": "approve"}
    http.refused(
        "POST", f"/grants/{fresh}/votes", vote, 403, "not_custodian", token=story.member("a1")
    )
    assert story.vote(fresh, "b1")["collective"] == "brisa"


def test_cycles_advance_a_month_at_a_time(story: Story, clock: ManualClock) -> None:
    http = story.http
    numbers = []
    for _ in range(3):
        numbers.append(http.get("/pools/food")["cycle"]["number"])
        clock.advance(timedelta(days=30))
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]
    custodians = []
    for _ in range(2):
        http.post("/pools/food/donations", donation("100"), token=story.treasurer, status=201)
        custodians = [c["custodian"] for c in http.get("/pools/food/cycles")]
    assert custodians == ["alba", "brisa", "alba", "brisa"]
    cycles = http.get("/pools/food/cycles")
    for before, after in itertools.pairwise(cycles):
        assert before["end"] == after["start"]  # cycles tile time
        assert before["statement"]["EUR"]["closing"] == after["opening"]["EUR"]


def test_collectives(story: Story) -> None:
    http = story.http
    assert [c["slug"] for c in http.get("/collectives")] == ["alba", "brisa"]
    alba = http.get("/collectives/alba")
    assert alba["members"] == ["a1", "a2", "a3"]
    assert (alba["quorum"], alba["quorum_policy"]) == (2, "majority")
    created = http.post(
        "/collectives", {"slug": "cauce", "name": "Cauce", "quorum": 1}, token=story.admin
    )
    assert created.status_code == 201
    assert {k: created.get_json()[k] for k in ("slug", "name", "quorum")} == {
        "slug": "cauce",
        "name": "Cauce",
        "quorum": 1,
    }
    cauce = http.get("/collectives/cauce")
    assert (cauce["quorum"], cauce["quorum_policy"], cauce["members"]) == (1, "fixed", [])
    problem = http.get("/collectives/nowhere", status=404)
    assert problem["code"] == "not_found"


def test_roster_change_applies_from_the_next_cycle(story: Story, clock: ManualClock) -> None:
    http = story.http
    http.post("/collectives", {"slug": "cauce", "name": "Cauce"}, token=story.admin, status=201)
    response = http.put(
        "/pools/food/roster", {"collectives": ["cauce", "alba"]}, token=story.admin, status=200
    )
    now = http.get("/pools/food")["cycle"]["number"]
    assert response.get_json()["effective_cycle"] == now + 1
    assert response.get_json()["custodian_now"] is None
    assert http.get("/pools/food")["custodian"] == "alba"
    clock.advance(timedelta(days=30))
    assert http.get("/pools/food")["custodian"] == "cauce"


def test_grant_queue_urgent_first_then_oldest(story: Story) -> None:
    http = story.http
    n1 = story.propose("1000")
    u1 = story.propose("1000", "urgent")
    n2 = story.propose("1000")
    u2 = story.propose("1000", "urgent")
    page = http.get("/pools/food/grants")
    assert [g["id"] for g in page["items"]] == [u1, u2, n1, n2] and page["next"] is None
    first = http.get("/pools/food/grants?limit=3")
    assert [g["id"] for g in first["items"]] == [u1, u2, n1] and first["next"] == n1
    rest = http.get(f"/pools/food/grants?limit=3&after={first['next']}")
    assert [g["id"] for g in rest["items"]] == [n2] and rest["next"] is None
    story.vote(u1, "a1")
    story.vote(u1, "a2")
    approved = http.get("/pools/food/grants?status=approved")
    assert [g["id"] for g in approved["items"]] == [u1]
    assert approved["items"][0]["approvals"] == 2
    proposed = http.get("/pools/food/grants?status=proposed&_=cachebuster")
    assert [g["id"] for g in proposed["items"]] == [u2, n1, n2]
    assert http.get("/pools/food/grants?status=lost", status=422)["code"] == "invalid_status"
    assert http.get("/pools/food/grants?limit=0", status=422)["code"] == "invalid_limit"
    assert http.get("/pools/food/grants?limit=x", status=422)["code"] == "invalid_request"
    assert http.get("/pools/food/grants?after=1", status=422)["code"] == "invalid_cursor"
    assert http.get("/pools/nope/grants", status=404)["code"] == "not_found"
    assert http.get("/pools/nope", status=404)["code"] == "not_found"
    assert http.get("/pools/nope/cycles", status=404)["code"] == "not_found"


def test_a_pool_without_roster_has_no_custodian(story: Story, clock: ManualClock) -> None:
    http = story.http
    body = {"slug": "legal", "name": "Legal aid", "currencies": ["USDC"]}
    created = http.post("/pools", body, token=story.admin, status=201).get_json()
    assert created["cycle"]["start"] <= format_ts(clock.now()) < created["cycle"]["end"]
    legal = http.get("/pools/legal")
    assert (legal["custodian"], legal["roster"]) == (None, [])
    assert [p["slug"] for p in http.get("/pools")] == ["food", "legal"]
    http.refused("POST", "/pools", body, 409, "duplicate", token=story.admin)
    set_now = http.put("/pools/legal/roster", {"collectives": ["brisa"]}, token=story.admin)
    assert set_now.get_json()["custodian_now"] == "brisa"
    assert http.get("/pools/legal")["custodian"] == "brisa"
