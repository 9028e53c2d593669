"""Bad input and abuse: every refusal is a 4xx problem+json with a stable code, and writes
nothing to the log. Both databases."""

from __future__ import annotations

import ast
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from api.errors import PROBLEMS
from ledger.log.clock import ManualClock
from tests.test_api_support import PROBLEM, Story, build_story, donation, proposal


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner)


def refuse_donation(story: Story, body: Any, status: int, code: str, **kwargs: Any) -> Any:
    """POST a donation as the treasurer; it must be refused with ``status``/``code``."""
    path = kwargs.pop("path", "/pools/food/donations")
    kwargs.setdefault("token", story.treasurer)
    return story.http.refused("POST", path, body, status, code, **kwargs)


def test_unknown_routes_and_methods_are_problems(app: Flask, client: Any) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert (response.status_code, response.mimetype) == (404, PROBLEM)
    assert response.get_json()["code"] == "not_found"
    response = client.delete("/api/v1/pools")
    assert (response.status_code, response.get_json()["code"]) == (405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    for path in ["/api/v1/grants/99999999999999999999", "/api/v1/pools/%00", "/api/v1/pools/Food"]:
        response = client.get(path)  # no route: past any seq, not a slug
        assert (response.status_code, response.get_json()["code"]) == (404, "not_found")
    response = client.get("/no-such-page")  # outside the API, Werkzeug renders its own
    assert response.status_code == 404 and response.mimetype != PROBLEM


def test_amounts_must_be_digit_strings(story: Story) -> None:
    http = story.http
    refused_by_the_ledger = ["-5", "0", "15.00", "1e3", "abc", "", " 15", "0015", "١٥", "１５"]
    for amount in refused_by_the_ledger:
        problem = refuse_donation(story, donation(amount), 422, "invalid_amount")
        assert "digits" in problem["detail"]
    for amount in [1500, 15.5, -5, 1e3, True, None, ["1500"]]:
        problem = refuse_donation(story, donation(amount), 422, "invalid_request")
        assert list(problem["errors"]) == ["amount"]
    too_long = "1" + "0" * 17  # 18 digits: more than 15 + 2 for EUR
    refuse_donation(story, donation(too_long), 422, "amount_too_large")
    http.refused(
        "POST",
        "/pools/food/grants",
        proposal("-100"),
        422,
        "invalid_amount",
        token=story.applicant,
    )
    pool = {"slug": "p2", "name": "P2", "currencies": ["EUR"], "fast_lane_cap": {"EUR": "5.0"}}
    http.refused("POST", "/pools", pool, 422, "invalid_amount", token=story.admin)


def test_currencies(story: Story) -> None:
    http = story.http
    for currency in ["XYZ", "eur", "EURO", ""]:
        body = {**donation(), "currency": currency}
        problem = refuse_donation(story, body, 422, "unknown_currency")
        assert "EUR" in problem["detail"]
    body = {**donation(), "currency": "GBP"}  # known, but not taken by this pool
    refuse_donation(story, body, 422, "currency_not_accepted")
    pool = {"slug": "p2", "name": "P2", "currencies": ["EUR", "DOGE"]}
    http.refused("POST", "/pools", pool, 422, "unknown_currency", token=story.admin)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": ',
        b'{"amount": "1500", "currency": "EUR",}',
        b'{"amount": NaN}',
        b'{"amount": "1", "amount": "2"}',
        b"[" * 20_000,
        b'{"amount": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b'{"amount": "\xff"}',
        b"\xef\xbb\xbf{}",
    ],
    ids=[
        "truncated",
        "trailing-comma",
        "nan",
        "duplicate-key",
        "deep",
        "deep-valid",
        "not-utf8",
        "bom",
    ],
)
def test_malformed_json(story: Story, raw: bytes) -> None:
    problem = story.http.refused(
        "POST",
        "/pools/food/donations",
        None,
        400,
        "malformed_json",
        raw=raw,
        token=story.treasurer,
    )
    assert "JSON" in problem["detail"]


def test_body_shape_and_unknown_fields(story: Story) -> None:
    problem = refuse_donation(story, {**donation(), "colour": "red"}, 422, "invalid_request")
    assert problem["errors"] == {"colour": ["Unknown field."]}
    body = donation()
    del body["channel"]
    problem = refuse_donation(story, body, 422, "invalid_request")
    assert problem["errors"] == {"channel": ["Missing data for required field."]}
    batch = {"donations": [donation(), {**donation(), "iban": "DE00"}]}
    problem = refuse_donation(
        story, batch, 422, "invalid_request", path="/pools/food/donations:batch"
    )
    assert problem["errors"] == {"donations.1.iban": ["Unknown field."]}
    problem = refuse_donation(story, [donation()], 422, "invalid_request")
    for text in ["nul\x00byte", "lone \ud800 surrogate"]:
        problem = refuse_donation(story, donation(ref=text), 422, "invalid_request")
        assert list(problem["errors"]) == ["external_reference"]
    refuse_donation(
        story,
        None,
        415,
        "unsupported_media_type",
        raw=b"amount=1500",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    refuse_donation(story, {**donation(), "channel": "cheque"}, 422, "invalid_channel")


def test_missing_malformed_and_unknown_tokens(story: Story) -> None:
    http = story.http
    body = {"slug": "alba", "name": "Alba"}
    problem = http.refused("POST", "/collectives", body, 401, "unauthorized")
    assert "Bearer" in problem["detail"]
    response = http.post("/collectives", body)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="lunaria"'
    http.refused(
        "POST", "/collectives", body, 401, "unauthorized", headers={"Authorization": "Basic eDp5"}
    )
    http.refused("POST", "/collectives", body, 401, "unauthorized", token="lun_abc")
    forged = story.admin[:-4] + ("AAAA" if not story.admin.endswith("AAAA") else "BBBB")
    http.refused("POST", "/collectives", body, 401, "unauthorized", token=forged)
    unknown = "lun_0123456789abcdef_" + "A" * 43
    response = http.post("/collectives", body, token=unknown)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_wrong_roles(story: Story) -> None:
    http = story.http
    pool = {"slug": "p2", "name": "P2", "currencies": ["EUR"]}
    http.refused("POST", "/pools", pool, 403, "forbidden", token=story.applicant)
    http.refused("POST", "/pools", pool, 403, "forbidden", token=story.treasurer)
    http.refused("POST", "/pools", pool, 403, "forbidden", token=story.member("a1"))
    http.refused(
        "POST", "/pools/food/donations", donation(), 403, "forbidden", token=story.applicant
    )
    http.refused("POST", "/pools/food/grants", proposal(), 403, "forbidden", token=story.treasurer)
    grant = story.propose()
    http.refused(
        "POST",
        f"/grants/{grant}/votes",
        {"vote": "approve"},
        403,
        "forbidden",
        token=story.treasurer,
    )
    http.refused(
        "POST",
        "/tokens",
        {"role": "admin", "label": "me too"},
        403,
        "forbidden",
        token=story.treasurer,
    )
    http.refused(
        "POST",
        "/corrections",
        {"corrects": 1, "reason": "no"},
        403,
        "forbidden",
        token=story.applicant,
    )


def test_expired_and_revoked_tokens(story: Story, clock: ManualClock) -> None:
    http, admin = story.http, story.admin
    expires = (clock.now() + timedelta(days=1)).isoformat()
    issued = http.post(
        "/tokens", {"role": "treasurer", "label": "temp", "expires": expires}, token=admin
    ).get_json()
    http.post("/pools/food/donations", donation(), token=issued["token"], status=201)
    clock.advance(timedelta(days=2))
    problem = http.refused(
        "POST", "/pools/food/donations", donation(), 401, "token_expired", token=issued["token"]
    )
    assert issued["id"] in problem["detail"]

    second = http.post("/tokens", {"role": "treasurer", "label": "t2"}, token=admin).get_json()
    http.request("DELETE", f"/tokens/{second['id']}", token=admin, status=204)
    http.refused(
        "POST", "/pools/food/donations", donation(), 401, "token_revoked", token=second["token"]
    )


def test_voting_abuse(story: Story) -> None:
    http = story.http
    grant = story.propose("20000")
    vote = {"vote": "approve"}
    # brisa is not the custodian in this cycle
    http.refused(
        "POST", f"/grants/{grant}/votes", vote, 403, "not_custodian", token=story.member("b1")
    )
    story.vote(grant, "a1")
    http.refused(
        "POST", f"/grants/{grant}/votes", vote, 409, "already_voted", token=story.member("a1")
    )
    own = story.propose("1000", token=story.member("a3"))
    http.refused(
        "POST",
        f"/grants/{own}/votes",
        vote,
        403,
        "proposer_cannot_vote",
        token=story.member("a3"),
    )
    story.vote(grant, "a2")  # approved: 100.00 of 300.00 left available
    big = story.propose("15000")
    story.vote(big, "a1")
    http.refused(
        "POST", f"/grants/{big}/votes", vote, 409, "insufficient_funds", token=story.member("a2")
    )
    http.refused(
        "POST",
        f"/grants/{big}/disbursements",
        {"payment_reference": "PAY-1"},
        409,
        "grant_not_approved",
        token=story.treasurer,
    )
    http.refused("POST", "/grants/999999/votes", vote, 404, "not_found", token=story.member("a1"))


def test_fast_lane_limits(story: Story) -> None:
    http = story.http
    fast = {"vote": "approve", "fast_lane": True}
    a1 = story.member("a1")
    normal = story.propose("1000")
    http.refused("POST", f"/grants/{normal}/votes", fast, 409, "fast_lane_not_urgent", token=a1)
    over_cap = story.propose("6000", "urgent")
    http.refused("POST", f"/grants/{over_cap}/votes", fast, 409, "fast_lane_cap_exceeded", token=a1)
    first = story.propose("5000", "urgent")
    assert story.vote(first, "a1", fast_lane=True)["decision"]["allowance_left"] == "3000"
    over_allowance = story.propose("4000", "urgent")
    http.refused(
        "POST",
        f"/grants/{over_allowance}/votes",
        fast,
        409,
        "fast_lane_allowance_exceeded",
        token=a1,
    )
    reject_fast = {"vote": "reject", "fast_lane": True}
    http.refused(
        "POST", f"/grants/{over_allowance}/votes", reject_fast, 422, "invalid_vote", token=a1
    )
    http.refused(
        "POST",
        f"/grants/{over_allowance}/votes",
        {"vote": "approve", "fast_lane": 1},
        422,
        "invalid_request",
        token=a1,
    )


def test_idempotency_key_rules(story: Story) -> None:
    http, treasurer = story.http, story.treasurer
    problem = refuse_donation(story, donation(), 400, "idempotency_key_required", key="")
    assert "Idempotency-Key" in problem["detail"]
    for bad in ["k" * 129, "has space", "tab\tkey"]:
        refuse_donation(story, donation(), 400, "invalid_idempotency_key", key=bad)
    http.refused(
        "PUT",
        "/pools/food/roster",
        {"collectives": ["brisa"]},
        400,
        "idempotency_key_required",
        token=story.admin,
        key="",
    )
    http.post("/pools/food/donations", donation(), token=treasurer, key="k" * 128, status=201)


def test_idempotent_replay_and_conflict(story: Story) -> None:
    http, treasurer = story.http, story.treasurer
    body = donation("2500", donor_reference="donor-9")
    first = http.post("/pools/food/donations", body, token=treasurer, key="don-1", status=201)
    assert first.headers["Idempotent-Replayed"] == "false"
    size = http.size()
    again = http.post("/pools/food/donations", body, token=treasurer, key="don-1", status=201)
    assert again.get_json() == first.get_json()  # the salt too, read back from private records
    assert again.headers["Idempotent-Replayed"] == "true"
    assert http.size() == size
    # The same key from another client is another request (for another bank reference: the
    # same one would be a duplicate, see test_references.py).
    other = http.post("/tokens", {"role": "treasurer", "label": "t2"}, token=story.admin)
    theirs_body = {**body, "external_reference": "bank-another"}
    theirs = http.post(
        "/pools/food/donations", theirs_body, token=other.get_json()["token"], key="don-1"
    )
    assert theirs.status_code == 201
    assert theirs.get_json()["seq"] != first.get_json()["seq"]

    problem = refuse_donation(
        story, {**body, "amount": "2600"}, 409, "idempotency_conflict", key="don-1"
    )
    assert problem["fields"] == ["amount"]  # the field that differs, not the envelope
    http.post(
        "/collectives", {"slug": "cauce", "name": "Cauce"}, token=story.admin, key="c-1", status=201
    )
    problem = http.refused(
        "POST",
        "/collectives",
        {"slug": "cauce", "name": "Cauce Collective"},
        409,
        "idempotency_conflict",
        token=story.admin,
        key="c-1",
    )
    assert problem["fields"] == ["name"] and "name" in problem["detail"]


def test_body_limits_and_batches(story: Story) -> None:
    http, treasurer = story.http, story.treasurer
    huge = donation(note="x" * 70_000)
    problem = refuse_donation(story, huge, 413, "body_too_large")
    assert "65536" in problem["detail"]
    # A full batch is over 64 KiB: the batch endpoint takes up to 1 MiB, all or nothing.
    batch = {"donations": [donation("100", f"batch-{i:04d}") for i in range(1000)]}
    before = http.size()
    response = http.post("/pools/food/donations:batch", batch, token=treasurer, status=201)
    receipts = response.get_json()["receipts"]
    assert [r["seq"] for r in receipts] == list(
        range(receipts[0]["seq"], receipts[0]["seq"] + 1000)
    )
    assert http.size() == before + 1000
    assert all(len(r["salt"]) == 64 and r["receipt_id"] == r["seq"] for r in receipts)
    refuse_donation(
        story,
        {"donations": [donation("1")] * 1001},
        422,
        "invalid_batch",
        path="/pools/food/donations:batch",
    )
    refuse_donation(
        story, {"donations": []}, 422, "invalid_batch", path="/pools/food/donations:batch"
    )
    mixed = {"donations": [donation("100"), donation("100"), donation("1.00")]}
    problem = refuse_donation(
        story, mixed, 422, "invalid_amount", path="/pools/food/donations:batch"
    )
    assert "donations[2].amount" in problem["detail"]
    too_big = {"donations": [donation("1", note="n" * 499) for _ in range(2200)]}
    refuse_donation(story, too_big, 413, "body_too_large", path="/pools/food/donations:batch")


def test_roster_and_organisation_refusals(story: Story) -> None:
    http, admin = story.http, story.admin
    http.refused(
        "PUT",
        "/pools/food/roster",
        {"collectives": ["alba", "nowhere"]},
        422,
        "unknown_collective",
        token=admin,
    )
    http.refused(
        "PUT", "/pools/food/roster", {"collectives": []}, 422, "invalid_roster", token=admin
    )
    http.refused(
        "PUT", "/pools/nope/roster", {"collectives": ["alba"]}, 404, "not_found", token=admin
    )
    http.refused(
        "POST", "/collectives", {"slug": "alba", "name": "Again"}, 409, "duplicate", token=admin
    )
    http.refused(
        "POST",
        "/collectives",
        {"slug": "Not A Slug", "name": "x"},
        422,
        "invalid_slug",
        token=admin,
    )
    http.refused(
        "POST",
        "/collectives/alba/members",
        {"member": "ana@example.org"},
        422,
        "invalid_pseudonym",
        token=admin,
    )
    http.refused(
        "POST", "/collectives/nowhere/members", {"member": "zed"}, 404, "not_found", token=admin
    )
    http.refused(
        "POST",
        "/collectives",
        {"slug": "c2", "name": "C2", "quorum": 0},
        422,
        "invalid_quorum",
        token=admin,
    )
    http.refused(
        "POST",
        "/collectives",
        {"slug": "c2", "name": "C2", "quorum": "2"},
        422,
        "invalid_request",
        token=admin,
    )


def test_unexpected_errors_hide_their_cause(app: Flask, client: Any) -> None:
    def explode() -> None:
        raise RuntimeError("secret detail from deep inside")

    app.add_url_rule("/api/v1/explode", "explode", explode)
    response = client.get("/api/v1/explode")
    assert (response.status_code, response.mimetype) == (500, PROBLEM)
    problem = response.get_json()
    assert problem["code"] == "internal_error" and problem["status"] == 500
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def _codes_raised_in(path: Path) -> set[str]:
    """Every literal code the module's RuleViolation calls and error classes carry."""
    codes = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RuleViolation":
            given = [k.value for k in node.keywords if k.arg == "code"] + node.args[1:2]
            codes.update(c.value for c in given if isinstance(c, ast.Constant))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.Assign)
                    and [getattr(t, "id", None) for t in item.targets] == ["code"]
                    and isinstance(item.value, ast.Constant)
                ):
                    codes.add(item.value.value)
    return codes


def test_every_code_the_api_can_meet_has_a_status() -> None:
    ledger = Path(__file__).parent.parent / "ledger"
    codes: set[str] = set()
    commands = ("rules", "state", "handover", "transaction", "custody", "organisation")
    views = ("pool_views", "grant_views", "entry_views")
    fund = (*commands, "donations", "grants", "money", "access", *views)
    for path in (*(f"fund/{name}.py" for name in fund), "errors.py", "log/canonical.py"):
        codes |= _codes_raised_in(ledger / path)
    # Errors of verification and signing: never raised by a request.
    offline = {"ledger_error", "rule_violation", "verification_failed", "invalid_proof"}
    offline |= {"invalid_note", "invalid_signature", "invalid_key"}
    assert codes - offline <= set(PROBLEMS), sorted(codes - offline - set(PROBLEMS))
    assert len(codes) > 30


def test_refusals_on_a_fresh_key_each_time_still_write_nothing(story: Story) -> None:
    """A refused request does not consume its Idempotency-Key: the fixed request succeeds."""
    http, key = story.http, uuid.uuid4().hex
    http.refused(
        "POST",
        "/pools/food/donations",
        donation("-1"),
        422,
        "invalid_amount",
        token=story.treasurer,
        key=key,
    )
    http.post("/pools/food/donations", donation("1"), token=story.treasurer, key=key, status=201)


def test_problem_documents_are_complete(story: Story) -> None:
    response = story.http.post("/pools", {"slug": "x"}, token=story.admin)
    problem = response.get_json()
    assert response.mimetype == PROBLEM
    assert set(problem) >= {"type", "title", "status", "detail", "code", "instance"}
    assert problem["instance"] == "/api/v1/pools"
    assert problem["type"] == "/api/v1/docs#problem-invalid_request"
    assert set(problem["errors"]) == {"name", "currencies"}
