"""Helpers for the API tests (no tests here): an HTTP driver and a small story to start from.

Everything goes over HTTP through pytest-flask's ``client``; the only other door is the CLI,
for the first admin token, exactly as an operator would do it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from werkzeug.test import TestResponse

from api import db

TOKEN = re.compile(r"lun_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")
PROBLEM = "application/problem+json"


def cli_admin_token(runner: FlaskCliRunner) -> str:
    """``lunaria init`` then ``lunaria token create --role admin``: the first token."""
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["token", "create", "--role", "admin"])
    assert result.exit_code == 0, result.output
    match = TOKEN.search(result.stdout)
    assert match is not None, result.output
    assert result.stdout.strip() == match.group(0)  # alone on stdout, for scripts
    return match.group(0)


class Http:
    """The API as a client sees it; every POST/PUT gets a fresh Idempotency-Key unless given."""

    def __init__(self, app: Flask, client: Any) -> None:
        self.app = app
        self.client = client

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        key: str | None = None,
        status: int | None = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if method in ("POST", "PUT") and "Idempotency-Key" not in sent and key != "":
            sent["Idempotency-Key"] = key or uuid.uuid4().hex  # key="" sends none
        kwargs: dict[str, Any] = {"headers": sent}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["content_type"] = sent.pop("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        response: TestResponse = self.client.open(f"/api/v1{path}", method=method, **kwargs)
        if status is not None:
            assert response.status_code == status, (method, path, response.get_json())
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, status=kwargs.pop("status", 200), **kwargs).get_json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, body, **kwargs)

    def size(self) -> int:
        """The number of entries in the log."""
        with self.app.app_context():
            return db.get_log().head().size

    def refused(
        self, method: str, path: str, body: Any, status: int, code: str, **kwargs: Any
    ) -> dict[str, Any]:
        """Send a request that must fail with ``status``/``code`` and write nothing."""
        before = self.size()
        response = self.request(method, path, body, **kwargs)
        problem = response.get_json()
        assert (response.status_code, problem and problem.get("code")) == (status, code), (
            method,
            path,
            body,
            problem,
        )
        assert response.mimetype == PROBLEM
        assert problem["status"] == status and problem["type"].endswith(code)
        assert problem["title"] and problem["detail"]
        assert self.size() == before, f"{code}: the log grew"
        return dict(problem)


def donation(amount: Any = "10000", ref: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "EUR",
        "channel": "bank",
        "external_reference": ref or f"bank-{uuid.uuid4().hex[:12]}",
        **extra,
    }


def proposal(amount: str = "20000", urgency: str = "normal", **extra: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "EUR",
        "purpose": "Rent support for a family",
        "urgency": urgency,
        "recipient": "family-7",
        **extra,
    }


@dataclass
class Story:
    """Two collectives (alba: a1 a2 a3; brisa: b1 b2) rotating custody of the pool ``food``
    (EUR and USDC; fast lane 5000 per grant, 8000 per cycle), with 300.00 EUR donated."""

    http: Http
    admin: str
    treasurer: str = ""
    applicant: str = ""
    members: dict[str, str] = field(default_factory=dict)

    def member(self, name: str) -> str:
        return self.members[name]

    def propose(self, amount: str = "20000", urgency: str = "normal", token: str = "") -> int:
        response = self.http.post(
            "/pools/food/grants", proposal(amount, urgency), token=token or self.applicant
        )
        assert response.status_code == 201, response.get_json()
        grant_id: int = response.get_json()["id"]
        return grant_id

    def vote(self, grant: int, member: str, vote: str = "approve", **extra: Any) -> Any:
        body = {"vote": vote, **extra}
        response = self.http.post(f"/grants/{grant}/votes", body, token=self.member(member))
        assert response.status_code == 201, response.get_json()
        return response.get_json()


def build_story(app: Flask, client: Any, runner: FlaskCliRunner, donations: int = 3) -> Story:
    http = Http(app, client)
    story = Story(http, cli_admin_token(runner))
    admin = story.admin
    for role in ("treasurer", "applicant"):
        issued = http.post("/tokens", {"role": role, "label": f"the {role}"}, token=admin)
        assert issued.status_code == 201, issued.get_json()
        setattr(story, role, issued.get_json()["token"])
    for slug, names in {"alba": ["a1", "a2", "a3"], "brisa": ["b1", "b2"]}.items():
        http.post("/collectives", {"slug": slug, "name": slug.title()}, token=admin, status=201)
        for name in names:
            added = http.post(
                f"/collectives/{slug}/members", {"member": name}, token=admin, status=201
            )
            story.members[name] = added.get_json()["token"]["token"]
    pool = {
        "slug": "food",
        "name": "Food bank",
        "currencies": ["EUR", "USDC"],
        "fast_lane_cap": {"EUR": "5000"},
        "cycle_allowance": {"EUR": "8000"},
    }
    http.post("/pools", pool, token=admin, status=201)
    http.put("/pools/food/roster", {"collectives": ["alba", "brisa"]}, token=admin, status=200)
    for _ in range(donations):
        http.post("/pools/food/donations", donation(), token=story.treasurer, status=201)
    return story
