"""Urgency that is kept: each pool's decision deadline and policy, the overdue lane, the queue
that puts overdue grants first, and the response figures a handover states (SQLite and
PostgreSQL through the fixtures)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from api import db
from ledger import migrate
from ledger.errors import VerificationError
from ledger.fund.audit import audit_rules
from ledger.fund.commands import Fund
from ledger.fund.replay import check_replay
from ledger.fund.rules import Actor, member_actor
from ledger.fund.schema import grants
from ledger.fund.urgency import UrgentCase, response_figures
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.clock import ManualClock, format_ts, parse_ts
from ledger.log.entry import Entry, checked_entry
from tests.test_api_support import Story, build_story, donation, proposal

URGENT_POOL = {
    "slug": "relief",
    "name": "Relief",
    "currencies": ["EUR"],
    "fast_lane_cap": {"EUR": "5000"},
    "cycle_allowance": {"EUR": "5000"},
    "urgent_deadline_hours": 24,
    "overdue_approval": True,
}


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    story = build_story(app, client, runner)
    http = story.http
    http.post("/pools", URGENT_POOL, token=story.admin, status=201)
    http.put("/pools/relief/roster", {"collectives": ["alba", "brisa"]}, token=story.admin)
    for _ in range(3):
        http.post("/pools/relief/donations", donation(), token=story.treasurer, status=201)
    return story


def propose(story: Story, amount: str, pool: str = "relief") -> int:
    response = story.http.post(
        f"/pools/{pool}/grants", proposal(amount, "urgent"), token=story.applicant
    )
    assert response.status_code == 201, response.get_json()
    grant: int = response.get_json()["id"]
    return grant


def entries(app: Flask) -> list[Entry]:
    with app.app_context():
        return [checked_entry(raw) for raw in db.get_log().iter_raw()]


# -- the pool's policy --------------------------------------------------------------------------


def test_a_pool_states_its_deadline_and_policy_in_data_version_2(story: Story, app: Flask) -> None:
    created = {e.data["slug"]: e.data for e in entries(app) if e.kind == "pool_created"}
    assert created["relief"]["urgent_deadline_hours"] == 24
    assert created["relief"]["overdue_approval"] is True
    assert created["relief"]["v"] == 2
    assert (created["food"]["urgent_deadline_hours"], created["food"]["overdue_approval"]) == (
        72,
        False,
    )
    policy = story.http.get("/pools/relief/response")["policy"]
    assert policy == {"deadline_hours": 24, "overdue_approval": True}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"urgent_deadline_hours": 0}, "invalid_deadline"),
        ({"urgent_deadline_hours": 721}, "invalid_deadline"),
        ({"urgent_deadline_hours": "24"}, "invalid_deadline"),
        ({"urgent_deadline_hours": True}, "invalid_deadline"),
        ({"urgent_deadline_hours": 2.5}, "invalid_deadline"),
        ({"overdue_approval": "yes"}, "invalid_policy"),
        ({"overdue_approval": 1}, "invalid_policy"),
    ],
)
def test_a_bad_policy_is_refused_and_nothing_written(
    story: Story, change: dict[str, Any], code: str
) -> None:
    pool = {**URGENT_POOL, "slug": "other", **change}
    story.http.refused("POST", "/pools", pool, 422, code, token=story.admin)


# -- the overdue lane ---------------------------------------------------------------------------


def test_overdue_lane_after_the_deadline_only(story: Story, clock: ManualClock) -> None:
    http = story.http
    spent = propose(story, "5000")
    story.vote(spent, "a1", fast_lane=True)  # the cycle's whole fast-lane allowance
    grant = propose(story, "4000")
    vote = {"vote": "approve", "fast_lane": True}
    http.refused(
        "POST", f"/grants/{grant}/votes", vote, 409, "fast_lane_allowance_exceeded",
        token=story.member("a2"),
    )  # fmt: skip
    overdue = {"vote": "approve", "overdue": True}
    http.refused(
        "POST", f"/grants/{grant}/votes", overdue, 409, "not_overdue", token=story.member("a2")
    )
    clock.advance(timedelta(hours=23, minutes=59))
    http.refused(
        "POST", f"/grants/{grant}/votes", overdue, 409, "not_overdue", token=story.member("a2")
    )
    clock.advance(timedelta(minutes=1))
    http.refused(
        "POST", f"/grants/{grant}/votes", overdue, 403, "not_custodian", token=story.member("b1")
    )
    http.refused(
        "POST",
        f"/grants/{grant}/votes",
        {"vote": "reject", "overdue": True},
        422,
        "invalid_vote",
        token=story.member("a2"),
    )
    result = story.vote(grant, "a2", overdue=True)
    assert (result["status"], result["decision"]["lane"]) == ("approved", "overdue")
    assert result["decision"]["approvals"] == ["a2"]


def test_decision_entry_records_the_lane_and_deadline(
    story: Story, app: Flask, clock: ManualClock
) -> None:
    grant = propose(story, "3000")
    clock.advance(timedelta(hours=25))
    story.vote(grant, "a3", overdue=True)
    decided = [e for e in entries(app) if e.kind == "grant_decided"][-1]
    proposed = next(e for e in entries(app) if e.seq == grant)
    assert decided.data["lane"] == "overdue" and decided.data["v"] == 2
    assert decided.data["deadline"] == format_ts(parse_ts(proposed.ts) + timedelta(hours=24))
    assert audit_rules(entries(app)).entries == len(entries(app))


def test_overdue_lane_keeps_the_cap_and_the_policy(story: Story, clock: ManualClock) -> None:
    http = story.http
    big = propose(story, "6000")
    elsewhere = propose(story, "1000", pool="food")  # food's policy: no overdue approval
    normal = story.http.post("/pools/relief/grants", proposal("1000"), token=story.applicant)
    clock.advance(timedelta(hours=80))
    overdue = {"vote": "approve", "overdue": True}
    a1 = story.member("a1")
    http.refused("POST", f"/grants/{big}/votes", overdue, 409, "fast_lane_cap_exceeded", token=a1)
    http.refused(
        "POST", f"/grants/{elsewhere}/votes", overdue, 409, "overdue_lane_not_allowed", token=a1
    )
    normal_id = normal.get_json()["id"]
    http.refused(
        "POST", f"/grants/{normal_id}/votes", overdue, 409, "fast_lane_not_urgent", token=a1
    )


def test_audit_catches_an_overdue_approval_forged_before_the_deadline(
    story: Story, app: Flask, clock: ManualClock
) -> None:
    grant = propose(story, "3000")
    clock.advance(timedelta(hours=30))
    story.vote(grant, "a1", overdue=True)
    log = entries(app)
    assert audit_rules(log).entries == len(log)
    early = format_ts(parse_ts(log[grant].ts) + timedelta(hours=2))
    forged = [
        dataclasses.replace(e, ts=early) if e.seq > grant and e.data.get("grant") == grant else e
        for e in log
    ]
    with pytest.raises(VerificationError, match="approved as overdue at"):
        audit_rules(forged)
    no_policy = [
        _with_data(e, overdue_approval=False) if e.kind == "pool_created" else e for e in log
    ]
    with pytest.raises(VerificationError, match="policy does not allow it"):
        audit_rules(no_policy)


def _with_data(entry: Entry, **changes: Any) -> Entry:
    return dataclasses.replace(entry, data={**entry.data, **changes})


# -- the queue ----------------------------------------------------------------------------------


def test_overdue_urgent_grants_lead_the_queue_with_age_and_deadline(
    story: Story, clock: ManualClock
) -> None:
    http = story.http
    normal = http.post("/pools/relief/grants", proposal("1000"), token=story.applicant)
    old = propose(story, "1000")
    clock.advance(timedelta(hours=30))
    fresh = propose(story, "1000")
    queue = http.get("/pools/relief/grants?status=proposed")["items"]
    assert [g["id"] for g in queue] == [old, fresh, normal.get_json()["id"]]
    first, second, third = queue
    assert (first["overdue"], first["age_seconds"]) == (True, 30 * 3600)
    assert first["deadline"] == format_ts(parse_ts(first["proposed_at"]) + timedelta(hours=24))
    assert (second["overdue"], second["age_seconds"]) == (False, 0)
    assert (third["overdue"], third["deadline"]) == (False, None)
    page = http.get("/pools/relief/grants?status=proposed&limit=1")
    assert [g["id"] for g in page["items"]] == [old]
    rest = http.get(f"/pools/relief/grants?status=proposed&after={page['next']}")
    assert [g["id"] for g in rest["items"]] == [fresh, normal.get_json()["id"]]


# -- response figures ---------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def case(n: int, proposed: int, decided: float | None = None, cycle: int | None = None,
         cancelled: float | None = None) -> UrgentCase:  # fmt: skip
    start = T0 + proposed * DAY
    return UrgentCase(
        n,
        start,
        start + DAY,
        None if decided is None else start + decided * DAY,
        cycle,
        None if cancelled is None else start + cancelled * DAY,
    )


def test_response_figures_count_each_urgent_grant_once() -> None:
    cases = [
        case(1, 0, decided=0.5, cycle=1),  # on time in cycle 1
        case(2, 1, decided=0.25, cycle=1),  # on time in cycle 1
        case(3, 2),  # due in cycle 1, never decided: late
        case(4, 3, decided=20, cycle=2),  # due in cycle 1, decided in cycle 2: late in 1
        case(5, 4, cancelled=0.5),  # withdrawn in time: not counted
        case(6, 5, cancelled=3),  # cancelled after its deadline: late
        case(7, 9),  # due in cycle 2
    ]
    one = response_figures(cases, 1, T0, T0 + 10 * DAY, 24)
    assert one.data() == {
        "deadline_hours": 24,
        "on_time": 2,
        "counted": 5,
        "decided": 2,
        "median_seconds": int(0.375 * 86400),
    }
    two = response_figures(cases, 2, T0 + 10 * DAY, T0 + 40 * DAY, 24)
    assert (two.on_time, two.counted, two.decided, two.median_seconds) == (0, 1, 1, 20 * 86400)
    empty = response_figures([], 3, T0, T0 + DAY, 72)
    assert (empty.counted, empty.median_seconds) == (0, None)


def test_the_handover_states_the_figures_and_the_grants_it_passes_on(
    story: Story, app: Flask, clock: ManualClock
) -> None:
    http = story.http
    quick = propose(story, "1000")
    story.vote(quick, "a1", fast_lane=True)
    waiting = propose(story, "2000")
    story.vote(waiting, "a2")  # a quorum ballot that never completes
    clock.advance(timedelta(days=30))
    http.post("/pools/relief/donations", donation("100"), token=story.treasurer, status=201)
    handover = next(
        e for e in entries(app) if e.kind == "custody_transferred" and e.data["pool"] == "relief"
    )
    assert handover.data["v"] == 2
    stated = handover.data["closed"]["response"]
    assert (stated["on_time"], stated["counted"], stated["decided"]) == (1, 2, 1)
    assert handover.data["carried_over"] == [waiting]
    assert len(handover.data["voided_votes"]) == 1
    closed = http.get("/pools/relief/response")["cycles"][1]
    assert closed["figures"] == stated and closed["stated"] is True
    assert closed["carried_over"] == [waiting] and closed["handover_seq"] == handover.seq
    replayed = audit_rules(entries(app)).responses
    assert replayed["relief", handover.data["closed"]["number"]].data() == stated
    forged = json.loads(json.dumps(handover.data))
    forged["closed"]["response"]["on_time"] = 2
    tampered = [
        dataclasses.replace(e, data=forged) if e.seq == handover.seq else e for e in entries(app)
    ]
    with pytest.raises(VerificationError, match="states response figures"):
        audit_rules(tampered)


def test_the_pool_page_shows_overdue_grants_and_the_figures(
    story: Story, client: Any, clock: ManualClock
) -> None:
    quick = propose(story, "1000")
    story.vote(quick, "a1", fast_lane=True)
    late = propose(story, "2000")
    clock.advance(timedelta(hours=30))
    page = client.get("/pools/relief?lang=en").get_data(as_text=True)
    queue = page.split('id="queue-heading"')[1].split("</section>")[0]
    assert f"#{late}" in queue and "overdue" in queue and "waiting 1 day" in queue
    response = page.split('id="response-heading"')[1].split("</section>")[0]
    assert "within 24 hours" in response
    assert "any single member of the custodian may approve" in response
    assert "1 of 2" in response  # one on time, one past its deadline


# -- migration 0009 -----------------------------------------------------------------------------


def test_0009_fills_the_timestamps_from_the_entries(
    log: Log, vault: Vault, clock: ManualClock
) -> None:
    """A database upgraded through 0009 gets the decision and cancellation ``ts`` of the grants
    already written from their entries, so a replay of the log finds the same rows."""
    fund = Fund(log, vault)
    admin, applicant = Actor("admin:t", "admin"), Actor("applicant:t", "applicant")
    fund.register_collective(admin, slug="alba", name="Alba")
    fund.add_member(admin, "alba", member="a1")
    fund.create_pool(admin, slug="p", name="P", currencies=["EUR"], fast_lane_cap={"EUR": "900"},
                     cycle_allowance={"EUR": "900"})  # fmt: skip
    fund.set_roster(admin, "p", ["alba"])
    fund.record_donation(
        Actor("treasurer:t", "treasurer"),
        "p",
        {"amount": "1000", "currency": "EUR", "channel": "cash", "external_reference": "r1"},
    )
    voter = Actor(member_actor("a1"), "member", collective="alba", member="a1")
    asked = {"amount": "500", "currency": "EUR", "purpose": "Rent", "recipient": "r-1"}
    decided = fund.propose_grant(applicant, "p", {**asked, "urgency": "urgent"}).seq
    clock.advance(timedelta(hours=5))
    fund.cast_vote(voter, decided, vote="approve", fast_lane=True)
    withdrawn = fund.propose_grant(applicant, "p", asked).seq
    clock.advance(timedelta(hours=1))
    fund.cancel(admin, withdrawn, reason="asked twice")
    stamps = {e.seq: e.ts for e in map(checked_entry, log.iter_raw())}

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with log.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
        conn.commit()
    migrate.upgrade(log.engine)
    with log.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(grants))}
    assert rows[decided].decided_ts == stamps[rows[decided].decided_seq]
    assert rows[withdrawn].closed_ts == stamps[rows[withdrawn].closed_seq]
    assert rows[decided].closed_ts is None and rows[withdrawn].decided_ts is None
    assert check_replay(log.engine).rows["grants"] == 2  # (it raises on any difference)


def test_data_version_1_still_audits_with_the_defaults(
    story: Story, app: Flask, clock: ManualClock
) -> None:
    """Entries written before data version 2 (no policy, no lane overdue, no figures) replay
    with a 72-hour deadline and no overdue approval; an unknown data version is refused."""
    grant = propose(story, "1000", pool="food")
    story.vote(grant, "a1", fast_lane=True)
    clock.advance(timedelta(days=30))
    story.http.post("/pools/food/donations", donation("100"), token=story.treasurer, status=201)
    history = [e for e in entries(app) if e.kind != "pool_created" or e.data["slug"] == "food"]
    history = [e for e in history if e.data.get("pool", e.data.get("slug")) != "relief"]
    old = [_version_1(e) for e in history]
    assert all("v" not in e.data for e in old if e.kind in V2_KINDS)
    replayed = audit_rules(old)
    closed = next(e for e in old if e.kind == "custody_transferred").data["closed"]["number"]
    assert replayed.responses["food", closed].deadline_hours == 72
    for kind in V2_KINDS:
        at = next(i for i, e in enumerate(history) if e.kind == kind)
        unknown = [*history[:at], _with_data(history[at], v=3), *history[at + 1 :]]
        with pytest.raises(VerificationError, match="data version 3 is unknown"):
            audit_rules(unknown)


V2_KINDS = ("pool_created", "grant_decided", "custody_transferred")


def _version_1(entry: Entry) -> Entry:
    if entry.kind not in V2_KINDS:
        return entry
    data = {k: v for k, v in entry.data.items() if k not in ("v", "urgent_deadline_hours",
                                                              "overdue_approval")}  # fmt: skip
    if entry.kind == "custody_transferred":
        data["closed"] = {k: v for k, v in data["closed"].items() if k != "response"}
    return dataclasses.replace(entry, data=data)
