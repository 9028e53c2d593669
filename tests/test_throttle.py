"""Rate limits (api/throttle.py), each driven past its edge, on SQLite and PostgreSQL.

The limits count in the database under the app's clock, which these tests hold still and then
move: a window ends exactly when the clock passes it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine

from api import create_app, throttle
from ledger.log.clock import ManualClock
from tests.test_api_support import PROBLEM, Http, Story, build_story, cli_admin_token

LIMITS = {
    "RATE_LIMITS": True,
    "RATE_LIMIT_AUTH_FAILURES": "3 per minute",
    "RATE_LIMIT_WRITES": "4 per minute",
    "RATE_LIMIT_REPORTS": "2 per minute",
    "RATE_LIMIT_GRANT_REQUESTS": "2 per hour",
}
WRONG = "lun_0123456789abcdef_" + "A" * 43  # well formed, unknown


def limited(app: Flask) -> Flask:
    app.config.update(LIMITS)
    return app


def assert_rate_limited(response: Any, retry_after: int) -> dict[str, Any]:
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(retry_after)
    assert response.mimetype == PROBLEM
    problem: dict[str, Any] = response.get_json()
    assert problem["code"] == "rate_limited" and problem["status"] == 429
    assert problem["type"].endswith("rate_limited") and "retry in" in problem["detail"]
    return problem


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    """The story, written before the limits are turned on."""
    built = build_story(app, client, runner, donations=1)
    limited(app)
    return built


def collective(number: int) -> dict[str, str]:
    return {"slug": f"c{number}", "name": f"Collective {number}"}


def test_authentication_failures_per_address(story: Story, clock: ManualClock) -> None:
    http = story.http
    for number in range(3):
        http.refused("POST", "/collectives", collective(number), 401, "unauthorized", token=WRONG)
    before = http.size()
    past = http.post("/collectives", collective(9), token=WRONG)
    assert_rate_limited(past, 60)
    # The address is refused even with a good token now: guessing on learns nothing.
    clock.advance(timedelta(seconds=25))
    good = http.post("/collectives", collective(9), token=story.admin)
    assert_rate_limited(good, 35)
    # Another address has its own count; malformed tokens and revoked ones count too.
    other = {"REMOTE_ADDR": "192.0.2.7"}
    response = http.client.post(
        "/api/v1/collectives",
        json=collective(9),
        headers={"Authorization": "Bearer nonsense", "Idempotency-Key": "k1"},
        environ_base=other,
    )
    assert response.status_code == 401
    assert http.size() == before
    clock.advance(timedelta(seconds=36))  # the window has ended
    http.post("/collectives", collective(9), token=story.admin, status=201)


def test_token_reads_count_authentication_failures(story: Story, clock: ManualClock) -> None:
    """The reads that take a token (/me, webhooks, mail) count and refuse like writes."""
    for path in ("/webhooks", "/notifications/email", "/me"):
        response = story.http.request("GET", path, token=WRONG)
        assert response.status_code == 401, path
    assert_rate_limited(story.http.request("GET", "/webhooks", token=story.admin), 60)
    clock.advance(timedelta(seconds=60))
    assert story.http.request("GET", "/webhooks", token=story.admin).status_code == 200


def test_writes_per_token(story: Story, clock: ManualClock) -> None:
    http = story.http
    for number in range(4):
        http.post("/collectives", collective(number), token=story.admin, status=201)
    problem = http.refused(
        "POST", "/collectives", collective(4), 429, "rate_limited", token=story.admin
    )
    assert "writes with this token" in problem["detail"]
    assert_rate_limited(http.post("/collectives", collective(4), token=story.admin), 60)
    # Refusals count too (a flood stays refused), but only against that token.
    http.post("/tokens", {"role": "admin", "label": "spare"}, token=story.treasurer, status=403)
    clock.advance(timedelta(seconds=60))
    http.post("/collectives", collective(4), token=story.admin, status=201)


def test_report_renders_per_address(story: Story, client: Any, clock: ManualClock) -> None:
    path = "/api/v1/pools/food/reports/latest.csv"
    for _ in range(2):
        assert client.get(path).status_code == 200
    assert_rate_limited(client.get(path), 60)
    assert client.get(path, environ_base={"REMOTE_ADDR": "192.0.2.8"}).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert client.get(path).status_code == 200


def test_the_form_decorator(app: Flask, runner: FlaskCliRunner, clock: ManualClock) -> None:
    """What the grant-request form will use: a page answers a plain 429, the API problem+json."""
    form = Blueprint("form", __name__)

    @form.route("/pools/<slug>/request", methods=["POST"])
    @throttle.per_client_address(throttle.GRANT_REQUESTS)
    def grant_request(slug: str) -> tuple[str, int]:
        return f"thank you for asking {slug}", 201

    app.register_blueprint(form)
    limited(app)
    cli_admin_token(runner)
    client = app.test_client()
    for _ in range(2):
        assert client.post("/pools/food/request").status_code == 201
    page = client.post("/pools/food/request")
    assert (page.status_code, page.headers["Retry-After"]) == (429, "3600")
    assert page.mimetype == "text/html"
    clock.advance(timedelta(minutes=59, seconds=59))
    assert client.post("/pools/food/request").headers["Retry-After"] == "1"
    clock.advance(timedelta(seconds=1))
    assert client.post("/pools/food/request").status_code == 201


@pytest.mark.parametrize("hops", [0, 1])
def test_forwarded_for_only_behind_configured_proxies(
    db_url: str, tmp_path: Any, clock: ManualClock, hops: int
) -> None:
    """Without LUNARIA_PROXY_HOPS a client's X-Forwarded-For is ignored: all its requests
    count against its own address, whatever it claims; with one hop the proxy's header is
    the client's address."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": db_url,
            "KEY_FILE": str(tmp_path / "keys" / "log.key"),
            "CLOCK": clock,
            "PROXY_HOPS": hops,
            **LIMITS,
        }
    )
    cli_admin_token(app.test_cli_runner())
    http = Http(app, app.test_client())
    for number in range(4):
        forwarded = {"X-Forwarded-For": f"198.51.100.{number}"}
        response = http.post("/collectives", collective(number), token=WRONG, headers=forwarded)
        assert response.status_code == (401 if hops or number < 3 else 429)
    state = app.extensions["lunaria"]
    state.engine.dispose()


def test_the_database_storage(engine: Engine, clock: ManualClock) -> None:
    """Fixed windows: counts add up within one, a new one starts after it ends."""
    storage = throttle.DatabaseStorage(lambda: engine, lambda: clock.now().timestamp())
    start = clock.now().timestamp()
    assert storage.check()
    assert [storage.incr("k", 10) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("k", 10, amount=2) == 5
    assert (storage.get("k"), storage.get_expiry("k")) == (5, start + 10)
    assert storage.get("other") == 0
    clock.advance(timedelta(seconds=10))
    assert storage.get("k") == 0
    assert storage.incr("k", 10) == 1
    assert storage.get_expiry("k") == start + 20
    storage.clear("k")
    assert storage.get("k") == 0
    storage.incr("a", 5)
    storage.incr("b", 5)
    assert storage.reset() == 2
    assert storage.get("a") == 0
