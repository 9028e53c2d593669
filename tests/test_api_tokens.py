"""Tokens: the CLI's first admin token, API-issued tokens, replays, revocation, storage."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from api import db
from ledger.fund.schema import tokens
from ledger.log.clock import ManualClock
from tests.test_api_support import TOKEN, Http, Story, build_story, cli_admin_token, donation


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner, donations=1)


def test_cli_token_commands(app: Flask, client: Any, runner: FlaskCliRunner) -> None:
    early = runner.invoke(args=["token", "create", "--role", "admin"])
    assert early.exit_code == 1 and "lunaria init" in early.output
    admin = cli_admin_token(runner)
    http = Http(app, client)
    http.post("/collectives", {"slug": "alba", "name": "Alba"}, token=admin, status=201)
    http.post("/collectives/alba/members", {"member": "a1"}, token=admin, status=201)
    made = runner.invoke(
        args=["token", "create", "--role", "member", "--collective", "alba", "--member", "a1"]
    )
    assert made.exit_code == 0, made.output
    member = made.stdout.strip()
    assert TOKEN.fullmatch(member)
    bad = runner.invoke(args=["token", "create", "--role", "member", "--member", "zed"])
    assert bad.exit_code == 1 and "error:" in bad.output
    timed = runner.invoke(args=["token", "create", "--role", "treasurer", "--expires-in-days", "7"])
    assert timed.exit_code == 0
    listing = runner.invoke(args=["token", "list"]).output
    admin_id, member_id = admin.split("_")[1], member.split("_")[1]
    assert admin_id in listing and "a1@alba" in listing and "active until" in listing
    assert admin.split("_", 2)[2] not in listing  # never a secret (it may hold "_" itself)
    revoked = runner.invoke(args=["token", "revoke", member_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert f"{member_id}  member" in runner.invoke(args=["token", "list"]).output
    assert "revoked" in runner.invoke(args=["token", "list"]).output
    grant_body = {"amount": "1", "currency": "EUR", "purpose": "x", "recipient": "r"}
    http.refused("POST", "/pools/none/grants", grant_body, 401, "token_revoked", token=member)
    missing = runner.invoke(args=["token", "revoke", "0123456789abcdef"])
    assert missing.exit_code == 1 and "no token" in missing.output


def test_tokens_are_stored_hashed(story: Story, app: Flask) -> None:
    with app.app_context(), db.get_engine().connect() as conn:
        rows = conn.execute(select(tokens)).all()
    stored = {row.id: row for row in rows}
    for token in [story.admin, story.treasurer, story.applicant, *story.members.values()]:
        _, token_id, secret = token.split("_", 2)
        row = stored[token_id]
        assert bytes(row.secret_hash) == hashlib.sha256(secret.encode()).digest()
        assert secret not in str(tuple(row))
    members = {row.member: row for row in rows if row.role == "member"}
    assert set(members) == {"a1", "a2", "a3", "b1", "b2"}
    assert members["b2"].collective == "brisa"


def test_issue_replay_and_conflict(story: Story) -> None:
    http = story.http
    body = {"role": "applicant", "label": "neighbourhood association"}
    first = http.post("/tokens", body, token=story.admin, key="tok-1", status=201)
    issued = first.get_json()
    assert TOKEN.fullmatch(issued["token"]) and issued["token"].split("_")[1] == issued["id"]
    assert (issued["role"], issued["collective"], issued["expires"]) == ("applicant", None, None)
    again = http.post("/tokens", body, token=story.admin, key="tok-1", status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == {**issued, "token": None}  # the secret is shown once only
    problem = http.refused(
        "POST",
        "/tokens",
        {**body, "label": "another"},
        409,
        "idempotency_conflict",
        token=story.admin,
        key="tok-1",
    )
    assert problem["fields"] == ["label"]
    http.post(
        "/pools/food/grants",
        {
            "amount": "100",
            "currency": "EUR",
            "purpose": "Books",
            "recipient": "school-3",
        },
        token=issued["token"],
        status=201,
    )


def test_member_creation_replay(story: Story) -> None:
    http = story.http
    first = http.post(
        "/collectives/alba/members", {"member": "a4"}, token=story.admin, key="m-4", status=201
    ).get_json()
    token = first["token"]
    assert (first["member"], first["collective"]) == ("a4", "alba")
    assert (token["role"], token["member"], token["collective"]) == ("member", "a4", "alba")
    size = http.size()
    again = http.post(
        "/collectives/alba/members", {"member": "a4"}, token=story.admin, key="m-4", status=201
    ).get_json()
    assert again == {**first, "token": {**token, "token": None}}
    assert http.size() == size
    grant = story.propose("100")
    assert (
        story.http.post(
            f"/grants/{grant}/votes", {"vote": "approve"}, token=token["token"]
        ).status_code
        == 201
    )


def test_token_requests_are_checked(story: Story, clock: ManualClock) -> None:
    http, admin = story.http, story.admin
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"role": "member", "label": "x"}, 422, "invalid_role"),
        (
            {"role": "member", "label": "x", "collective": "alba", "member": "b1"},
            422,
            "unknown_member",
        ),
        ({"role": "treasurer", "label": "x", "member": "a1"}, 422, "invalid_role"),
        ({"role": "root", "label": "x"}, 422, "invalid_role"),
        ({"role": "admin", "label": " "}, 422, "invalid_text"),
        ({"role": "admin", "label": "x", "expires": "2025-01-01T00:00:00Z"}, 422, "invalid_expiry"),
        ({"role": "admin", "label": "x", "expires": "2030-01-01T00:00:00"}, 422, "invalid_request"),
        ({"role": "admin"}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        http.refused("POST", "/tokens", body, status, code, token=admin)
    future = (clock.now() + timedelta(days=90)).isoformat()
    issued = http.post(
        "/tokens", {"role": "admin", "label": "x", "expires": future}, token=admin, status=201
    ).get_json()
    assert issued["expires"].startswith(future[:10])


def test_revocation_rules(story: Story) -> None:
    http = story.http
    applicant_id = story.applicant.split("_")[1]
    treasurer_id = story.treasurer.split("_")[1]
    http.refused(
        "POST", f"/tokens/{applicant_id}/revoke", None, 403, "forbidden", token=story.treasurer
    )
    http.request("DELETE", f"/tokens/{applicant_id}", token=story.treasurer, status=403)
    own = http.post(f"/tokens/{treasurer_id}/revoke", token=story.treasurer, status=200)
    assert own.get_json()["id"] == treasurer_id and own.get_json()["revoked"] is not None
    http.refused(
        "POST", "/pools/food/donations", donation(), 401, "token_revoked", token=story.treasurer
    )
    twice = http.post(f"/tokens/{treasurer_id}/revoke", token=story.admin, status=200)
    assert twice.get_json()["revoked"] == own.get_json()["revoked"]
    http.request("DELETE", "/tokens/0123456789abcdef", token=story.admin, status=404)
    http.request("DELETE", "/tokens/not-an-id", token=story.admin, status=404)
