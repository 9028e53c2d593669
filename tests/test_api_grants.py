"""Grants over HTTP: proposals, votes and their replays, fast lane, payout, cancel, corrections."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from ledger.log.clock import ManualClock
from tests.test_api_support import Story, build_story, donation, proposal


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner)


def available(story: Story) -> str:
    (eur,) = [b for b in story.http.get("/pools/food")["books"] if b["currency"] == "EUR"]
    return str(eur["available"])


def test_proposal_is_public_but_recipient_details_are_not(story: Story) -> None:
    http = story.http
    body = proposal("2500", recipient_details="Ana Pérez, IBAN ES91 2100 0418 4502 0005 1332")
    created = http.post("/pools/food/grants", body, token=story.applicant, status=201).get_json()
    assert created["id"] == created["seq"] and created["status"] == "proposed"
    assert "recipient_details" not in created
    grant = http.get(f"/grants/{created['id']}")
    assert (grant["recipient"], grant["amount"], grant["status"]) == (
        "family-7",
        "2500",
        "proposed",
    )
    assert grant["proposer"].startswith("applicant:") and grant["votes"] == []
    assert "Ana" not in str(grant) and "IBAN" not in str(created)
    assert http.get("/grants/424242", status=404)["code"] == "not_found"


def test_votes_reach_quorum_and_replays_render_the_first_answer(story: Story) -> None:
    http = story.http
    grant = story.propose("20000")
    first = http.post(
        f"/grants/{grant}/votes",
        {"vote": "approve", "note": "ok"},
        token=story.member("a1"),
        key="vote-a1",
    )
    assert first.status_code == 201
    ballot = first.get_json()
    assert ballot["status"] == "proposed" and ballot["decision"] is None
    assert (ballot["approvals"], ballot["rejections"], ballot["note"]) == (["a1"], [], "ok")
    second = story.vote(grant, "a2")
    assert second["status"] == "approved" and second["decision"]["lane"] == "quorum"
    assert second["decision"]["approvals"] == ["a1", "a2"] and second["decision"]["quorum"] == 2
    # The replay of a1's vote answers what the vote did then, not what the grant is now.
    size = http.size()
    again = http.post(
        f"/grants/{grant}/votes",
        {"vote": "approve", "note": "ok"},
        token=story.member("a1"),
        key="vote-a1",
    )
    assert (again.status_code, again.get_json()) == (201, ballot)
    assert again.headers["Idempotent-Replayed"] == "true" and http.size() == size
    detail = http.get(f"/grants/{grant}")
    assert detail["status"] == "approved" and [v["member"] for v in detail["votes"]] == ["a1", "a2"]
    assert detail["decision"]["seq"] == second["decision"]["seq"] == detail["decided_seq"]
    assert (
        http.post(
            f"/grants/{grant}/votes", {"vote": "approve"}, token=story.member("a3")
        ).get_json()["code"]
        == "grant_not_open"
    )


def test_rejection_by_quorum(story: Story) -> None:
    grant = story.propose("1000")
    story.vote(grant, "a1", vote="reject")
    result = story.vote(grant, "a2", vote="reject")
    assert result["status"] == "rejected" and result["rejections"] == ["a1", "a2"]
    assert available(story) == "30000"


def test_undecided_votes_are_void_after_handover(story: Story, clock: ManualClock) -> None:
    http = story.http
    grant = story.propose("1000")
    story.vote(grant, "a1")
    clock.advance(timedelta(days=30))
    http.post("/pools/food/donations", donation("100"), token=story.treasurer, status=201)
    votes = http.get(f"/grants/{grant}")["votes"]
    assert [(v["member"], v["void"]) for v in votes] == [("a1", True)]
    assert http.get(f"/grants/{grant}")["approvals"] == 0
    first = story.vote(grant, "b1")
    assert (first["status"], first["approvals"]) == ("proposed", ["b1"])
    assert story.vote(grant, "b2")["status"] == "approved"


def test_fast_lane_then_cancel_returns_the_commitment(story: Story) -> None:
    http = story.http
    grant = story.propose("4000", "urgent")
    result = story.vote(grant, "a2", fast_lane=True)
    decision = result["decision"]
    assert (result["status"], decision["lane"], decision["allowance_left"]) == (
        "approved",
        "fast_lane",
        "4000",
    )
    assert available(story) == "26000"
    cancelled = http.post(
        f"/grants/{grant}/cancel", {"reason": "paid by another fund"}, token=story.admin
    )
    assert cancelled.status_code == 200
    body = cancelled.get_json()
    assert (body["was"], body["amount"], body["grant"]) == ("approved", "4000", grant)
    assert {p["account"] for p in body["postings"]} == {"food:committed", "food:available"}
    assert available(story) == "30000"
    assert http.get(f"/grants/{grant}")["status"] == "cancelled"
    http.refused(
        "POST",
        f"/grants/{grant}/cancel",
        {"reason": "again"},
        409,
        "grant_not_open",
        token=story.admin,
    )
    other = story.propose("1000")
    http.refused(
        "POST",
        f"/grants/{other}/cancel",
        {"reason": "not mine"},
        403,
        "not_custodian",
        token=story.member("b1"),
    )
    assert (
        http.post(
            f"/grants/{other}/cancel", {"reason": "withdrawn"}, token=story.applicant
        ).status_code
        == 200
    )


def test_disbursement_by_custodian_member_and_corrections(story: Story) -> None:
    http = story.http
    grant = story.propose("10000")
    story.vote(grant, "a1")
    story.vote(grant, "a2")
    http.refused(
        "POST",
        f"/grants/{grant}/disbursements",
        {"payment_reference": "PAY-1"},
        403,
        "not_custodian",
        token=story.member("b1"),
    )
    paid = http.post(
        f"/grants/{grant}/disbursements",
        {"payment_reference": "PAY-1"},
        token=story.member("a3"),
        status=201,
    ).get_json()
    assert paid["grant"] == grant and http.get(f"/grants/{grant}")["status"] == "disbursed"
    http.refused(
        "POST",
        f"/grants/{grant}/disbursements",
        {"payment_reference": "PAY-2"},
        409,
        "grant_not_approved",
        token=story.treasurer,
    )

    # Reverse the disbursement: the grant is committed again.
    reversal = http.post(
        "/corrections",
        {"corrects": paid["seq"], "reason": "bank returned it"},
        token=story.treasurer,
        status=201,
    ).get_json()
    assert (reversal["corrects"], reversal["corrected_kind"], reversal["fund_change"]) == (
        paid["seq"],
        "grant_disbursed",
        "10000",
    )
    assert http.get(f"/grants/{grant}")["status"] == "approved"
    http.refused(
        "POST",
        "/corrections",
        {"corrects": paid["seq"], "reason": "twice"},
        409,
        "already_corrected",
        token=story.treasurer,
    )

    # Reverse a donation: the fund shrinks, by a new entry.
    gift = http.post(
        "/pools/food/donations", donation("500"), token=story.treasurer, status=201
    ).get_json()
    before = available(story)
    undone = http.post(
        "/corrections",
        {"corrects": gift["seq"], "reason": "imported twice"},
        token=story.admin,
        status=201,
    ).get_json()
    assert undone["fund_change"] == "-500"
    assert int(available(story)) == int(before) - 500
    http.refused(
        "POST",
        "/corrections",
        {"corrects": grant, "reason": "a proposal"},
        422,
        "not_correctable",
        token=story.treasurer,
    )
    http.refused(
        "POST",
        "/corrections",
        {"corrects": 10**9, "reason": "nothing"},
        404,
        "not_found",
        token=story.treasurer,
    )
    http.refused(
        "POST",
        "/corrections",
        {"corrects": 2**60, "reason": "too big"},
        422,
        "invalid_request",
        token=story.treasurer,
    )


def test_donation_receipts(story: Story) -> None:
    http = story.http
    body = donation("1500", donor_reference="donor-ana", display_name="Ana from the bakery")
    receipt = http.post("/pools/food/donations", body, token=story.treasurer, status=201).get_json()
    assert receipt["receipt_id"] == receipt["seq"]
    assert (receipt["amount"], receipt["currency"], receipt["display_name"]) == (
        "1500",
        "EUR",
        "Ana from the bakery",
    )
    salt = bytes.fromhex(receipt["salt"])
    assert hashlib.sha256(salt + b"donor-ana").hexdigest() == receipt["commitment"]
    assert len(receipt["entry_hash"]) == 64
