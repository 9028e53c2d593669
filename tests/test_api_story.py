"""The whole story over HTTP, across three lunar cycles, ending with `lunaria verify`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from ledger.log.clock import ManualClock, parse_ts
from tests.test_api_support import Story, build_story, donation


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner)


def next_cycle(story: Story, clock: ManualClock) -> dict[str, Any]:
    end = story.http.get("/pools/food")["cycle"]["end"]
    clock.set(parse_ts(end) + timedelta(hours=3))
    pool: dict[str, Any] = story.http.get("/pools/food")
    return pool


def test_three_cycles(story: Story, clock: ManualClock, runner: FlaskCliRunner) -> None:
    http = story.http
    # Cycle 1, alba: quorum, fast lane, a proposal left undecided with one vote.
    rent = story.propose("20000")
    story.vote(rent, "a1")
    assert story.vote(rent, "a2")["status"] == "approved"
    medicine = story.propose("5000", "urgent")
    assert story.vote(medicine, "a3", fast_lane=True)["status"] == "approved"
    heating = story.propose("3000")
    story.vote(heating, "a1")

    # Cycle 2, brisa: the handover voids alba's vote; brisa disburses what alba approved.
    assert next_cycle(story, clock)["custodian"] == "brisa"
    for grant in (rent, medicine):
        http.post(
            f"/grants/{grant}/disbursements",
            {"payment_reference": f"SEPA-{grant}"},
            token=story.member("b1"),
            status=201,
        )
    detail = http.get(f"/grants/{heating}")
    assert [v["void"] for v in detail["votes"]] == [True]
    story.vote(heating, "b1")
    assert story.vote(heating, "b2")["status"] == "approved"
    mistaken = http.post(
        "/pools/food/donations", donation("900"), token=story.treasurer, status=201
    ).get_json()
    http.post(
        "/corrections",
        {"corrects": mistaken["seq"], "reason": "imported twice"},
        token=story.treasurer,
        status=201,
    )

    # Cycle 3, alba again: brisa can no longer act; alba disburses what brisa approved.
    assert next_cycle(story, clock)["custodian"] == "alba"
    body = {"payment_reference": "SEPA-heating"}
    http.refused(
        "POST",
        f"/grants/{heating}/disbursements",
        body,
        403,
        "not_custodian",
        token=story.member("b1"),
    )
    http.post(f"/grants/{heating}/disbursements", body, token=story.member("a2"), status=201)

    first, second, third = http.get("/pools/food/cycles")
    assert [c["custodian"] for c in (first, second, third)] == ["alba", "brisa", "alba"]
    for closed in (first, second):
        eur = {k: int(v) for k, v in closed["statement"]["EUR"].items()}
        assert (
            eur["opening"] + eur["donations"] - eur["disbursements"] + eur["corrections"]
            == (eur["closing"])
        )
        assert eur["closing"] == eur["available"] + eur["committed"]
    assert second["statement"]["EUR"]["opening"] == first["statement"]["EUR"]["closing"]
    assert second["statement"]["EUR"]["corrections"] == "-900"
    assert second["statement"]["EUR"]["disbursements"] == "25000"
    (eur,) = [b for b in http.get("/pools/food")["books"] if b["currency"] == "EUR"]
    assert (eur["disbursed"], eur["committed"], eur["available"]) == ("28000", "0", "2000")

    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "projection rows match" in result.output
