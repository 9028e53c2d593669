"""Webhooks: subscriptions over the API, events derived from the log, signed deliveries.

A real HTTP server on loopback receives every delivery and verifies it with the
``standardwebhooks`` library. The worker's two notification tasks run step by step on the
test's ManualClock (so retries and deadlines take no real time); their signatures are made
with the system clock, as the library checks them against it. The last test runs real
``lunaria worker`` processes, two at once, and kills one with -9 in the middle of a delivery.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from api import db
from api.notifications import delivery_settings
from ledger.fund.delivery import Deliveries, DeliverySettings
from ledger.fund.events import Events, Links
from ledger.fund.lunar import new_moon_after
from ledger.fund.schema import (
    deliveries,
    notification_cursors,
    notification_events,
    webhook_endpoints,
)
from ledger.fund.webhooks import create_endpoint
from ledger.log.clock import ManualClock, SystemClock, format_ts, parse_ts
from tests.test_api_support import PROBLEM, Http, Story, build_story, proposal
from tests.test_worker import (  # (the fixture too: pytest finds it here)
    ADMIN,
    Deployment,
    deployment,
    donate,
    holder,
    open_pool,
    wait_until,
)

__all__ = ["deployment"]
PUBLIC_IP = "93.184.215.14"  # a public address (checked, never connected to)


# -- a receiver on loopback ---------------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    timestamp: int
    body: bytes
    secret: str | None  # the endpoint's secret that verifies it (None: none does)
    at: datetime  # the system clock on arrival (the worker stores its schedule by it too)

    @property
    def verified(self) -> bool:
        return self.secret is not None


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that verifies each request with the endpoints' secrets.

    ``answer`` gives the status for the n-th request (0-based); ``hold`` makes one request
    wait until ``release`` is set (to kill a worker in the middle of it)."""

    answer: Callable[[int], int] = lambda n: 200
    secrets: list[str] = field(default_factory=list)
    hold: int | None = None
    got: list[Received] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?x=1"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        headers = {name: request.headers[name] for name in request.headers}
        verified = None
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
                verified = secret
        n = len(self.got)
        self.got.append(
            Received(
                headers["webhook-id"],
                int(headers["webhook-timestamp"]),
                body,
                verified,
                datetime.now(UTC),
            )
        )
        if n == self.hold:
            self.holding.set()
            self.release.wait(30)
        status = self.answer(n)
        with contextlib.suppress(OSError):  # (a killed worker hears no answer)
            request.send_response(status)
            request.send_header("Content-Length", "0")
            request.end_headers()

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.got]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.stop()


# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner, clock: ManualClock) -> Story:
    # A day after a new moon: four weeks before the next handover. (Signatures use the
    # system clock, whatever the test's time.)
    clock.set(new_moon_after(clock.now()) + timedelta(days=1))
    return build_story(app, client, runner)


@dataclass
class Notifier:
    """The worker's notification tasks, run by hand at the test clock's ``now``."""

    app: Flask
    clock: ManualClock
    settings: DeliverySettings

    def __post_init__(self) -> None:
        with self.app.app_context():
            fund = db.get_fund()
        engine = fund.log.engine
        self.engine = engine
        self.events = Events(engine, Links("https://fund.example"), self.settings.poll)
        self.deliveries = Deliveries(engine, fund.vault, SystemClock(), self.settings)

    def step(self) -> list[str]:
        now = self.clock.now()
        return self.events.run(now) + self.deliveries.run(now)

    def until_quiet(self) -> list[str]:
        """Run until nothing is due now (retries later are left for the test)."""
        said: list[str] = []
        for _ in range(50):
            lines = self.step()
            if not lines:
                return said
            said += lines
        pytest.fail(f"still busy: {said[-5:]}")

    def next_attempt(self) -> datetime:
        return self.deliveries.next_at(self.clock.now())

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def notifier(app: Flask, clock: ManualClock, **settings: Any) -> Notifier:
    base = {"allow_private": True, "retry_base": timedelta(seconds=1), "timeout": 2.0}
    return Notifier(app, clock, DeliverySettings(**(base | settings)))


def subscribe(http: Http, token: str, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} | ({} if events is None else {"events": events})
    response = http.post("/webhooks", body, token=token)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def payloads(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.got]


# -- the API --------------------------------------------------------------------------------------


def test_members_subscribe_their_collective_and_admins_the_fund(
    app: Flask, story: Story, receiver: Receiver
) -> None:
    http = story.http
    refused = http.refused("POST", "/webhooks", {"url": receiver.url}, 422, "private_target",
                           token=story.member("a1"))  # fmt: skip
    assert "127.0.0.1" in refused["detail"]
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    created = http.post("/webhooks", {"url": receiver.url}, token=story.member("a1"), key="k1")
    assert created.status_code == 201 and created.headers["Idempotent-Replayed"] == "false"
    hook = created.get_json()
    assert hook["secret"].startswith("whsec_") and hook["collective"] == "alba"
    assert len(base64.b64decode(hook["secret"].removeprefix("whsec_"))) == 24
    assert "checkpoint.signed" in hook["events"] and hook["disabled_at"] is None
    again = http.post("/webhooks", {"url": receiver.url}, token=story.member("a1"), key="k1")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() | {"secret": "-"} == hook | {"secret": "-"}
    assert again.get_json()["secret"] is None  # the secret is shown once
    conflict = http.post("/webhooks", {"url": receiver.url + "&y"}, token=story.member("a1"),
                         key="k1")  # fmt: skip
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_conflict"

    fund_wide = subscribe(http, story.admin, f"https://{PUBLIC_IP}/lunaria", ["grant.decided"])
    assert fund_wide["collective"] is None and fund_wide["events"] == ["grant.decided"]
    path = f"/webhooks/{hook['id']}"
    shown = http.get(path, token=story.member("a2"))  # the collective's, any member's
    assert "secret" not in shown and shown["url"] == receiver.url
    assert [h["id"] for h in http.get("/webhooks", token=story.member("a3"))] == [hook["id"]]
    assert {h["id"] for h in http.get("/webhooks", token=story.admin)} == {
        hook["id"],
        fund_wide["id"],
    }
    assert http.get("/webhooks", token=story.member("b1")) == []
    http.get(path, token=story.member("b1"), status=404)  # another collective's
    assert http.request("DELETE", path, token=story.member("b1")).status_code == 404
    assert http.get(f"{path}/deliveries", token=story.member("a1")) == []
    assert http.request("GET", "/webhooks").status_code == 401
    assert http.request("DELETE", path, token=story.member("a2")).status_code == 204
    http.get(path, token=story.admin, status=404)


BAD_BODIES = [
    ({"url": "ftp://example.org/x"}, "invalid_url"),
    ({"url": "example.org/hook"}, "invalid_url"),
    ({"url": f"http://user:pw@{PUBLIC_IP}/"}, "invalid_url"),
    ({"url": f"http://{PUBLIC_IP}/#frag"}, "invalid_url"),
    ({"url": f"http://{PUBLIC_IP}:99999/"}, "invalid_url"),
    ({"url": "http://no-such-host.invalid/"}, "invalid_url"),
    ({"url": "http://" + "a" * 2000 + ".org/"}, "invalid_url"),
    ({"url": f"http://{PUBLIC_IP}/", "events": ["grant.exploded"]}, "unknown_event_type"),
    ({"url": f"http://{PUBLIC_IP}/", "events": []}, "unknown_event_type"),
    ({"url": "http://127.0.0.1:8080/"}, "private_target"),
    ({"url": "http://localhost/"}, "private_target"),
    ({"url": "http://10.1.2.3/"}, "private_target"),
    ({"url": "http://192.168.0.10/"}, "private_target"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "private_target"),
    ({"url": "http://[::1]/"}, "private_target"),
    ({"url": "http://[::ffff:127.0.0.1]/"}, "private_target"),
    ({"url": "http://100.64.0.1/"}, "private_target"),
    ({"url": "http://224.0.0.251/"}, "private_target"),
    ({"url": "http://0.0.0.0/"}, "private_target"),
    ({"url": 7}, "invalid_request"),
    ({}, "invalid_request"),
    ({"url": f"http://{PUBLIC_IP}/", "secret": "mine"}, "invalid_request"),
]


def test_bad_webhook_requests_are_refused_and_write_nothing(app: Flask, story: Story) -> None:
    http = story.http
    for body, code in BAD_BODIES:
        problem = http.refused("POST", "/webhooks", body, 422, code, token=story.admin)
        assert "Traceback" not in json.dumps(problem)
    assert http.get("/webhooks", token=story.admin) == []
    with app.app_context(), db.get_engine().connect() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_endpoints)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(notification_cursors)).scalar() == 0


def test_webhooks_are_for_members_and_admins_only(story: Story) -> None:
    http = story.http
    url = {"url": f"http://{PUBLIC_IP}/"}
    for token in (story.treasurer, story.applicant):
        response = http.post("/webhooks", url, token=token)
        assert response.status_code == 403 and response.mimetype == PROBLEM
        assert http.request("GET", "/webhooks", token=token).status_code == 403
    assert http.post("/webhooks", url).status_code == 401
    assert http.post("/webhooks", url, token=story.admin, key="").status_code == 400
    assert http.get("/webhooks", token=story.admin) == []


# -- events and deliveries ------------------------------------------------------------------------


def test_each_event_reaches_its_subscribers_once_signed_and_without_private_data(
    app: Flask, story: Story, clock: ManualClock, receiver: Receiver
) -> None:
    """A grant's life, a handover and time: an admin's endpoint hears every event, alba's
    only alba's (and checkpoints), brisa's only brisa's; every delivery verifies."""
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    http = story.http
    hooks = {
        name: subscribe(http, token, receiver.url)
        for name, token in (
            ("fund", story.admin),
            ("alba", story.member("a1")),
            ("brisa", story.member("b1")),
        )
    }
    receiver.secrets += [hook["secret"] for hook in hooks.values()]
    run = notifier(app, clock)
    pool = http.get("/pools/food")
    holding = pool["custodian"]
    taking = ({"alba", "brisa"} - {holding}).pop()
    voters = [m for m in story.members if m.startswith(holding[0])]
    grant = story.propose("3000")
    urgent = story.propose("4000", urgency="urgent")
    story.vote(grant, voters[0])
    story.vote(grant, voters[1])
    http.post(f"/grants/{grant}/disbursements", {"payment_reference": "IBAN-PAY-1"},
              token=story.treasurer, status=201)  # fmt: skip
    clock.advance(timedelta(hours=73))  # the urgent grant is overdue
    moon = new_moon_after(clock.now())
    clock.set(max(clock.now(), moon - timedelta(days=2)))  # custody.upcoming (3 days)
    run.until_quiet()
    clock.set(moon - timedelta(minutes=30))  # ...and (1 hour)
    run.until_quiet()
    clock.set(moon + timedelta(minutes=1))
    http.post("/pools/food/donations", {"amount": "100", "currency": "EUR", "channel": "cash",
              "external_reference": "cash-1"}, token=story.treasurer, status=201)  # fmt: skip
    run.until_quiet()

    assert all(r.verified for r in receiver.got)
    heard = {
        name: [json.loads(r.body) for r in receiver.got if r.secret == hook["secret"]]
        for name, hook in hooks.items()
    }
    types = {name: sorted({b["type"] for b in got}) for name, got in heard.items()}
    assert types["fund"] == sorted(
        {
            "grant.proposed",
            "vote.needed",
            "grant.decided",
            "grant.disbursed",
            "grant.urgent_overdue",
            "custody.upcoming",
            "custody.started",
            "checkpoint.signed",
        }
    )
    assert set(types[holding]) == set(types["fund"]) - {"custody.upcoming", "custody.started"}
    taker = {t for t in types[taking] if t != "checkpoint.signed"}
    assert taker == {"custody.upcoming", "custody.started", "vote.needed"}  # (the carried one)
    for name, got in heard.items():
        ids = [b["id"] for b in got]
        assert len(ids) == len(set(ids)), f"{name} heard an event twice"
    events = {b["id"]: b for b in heard["fund"]}
    decided = next(b for b in heard["fund"] if b["type"] == "grant.decided")
    seq = decided["data"]["seq"]
    assert decided["format"] == "lunaria-event/1" and decided["type"] == "grant.decided"
    assert decided["data"] | {"cycle": None} == {
        "grant": grant,
        "pool": "food",
        "amount": "3000",
        "currency": "EUR",
        "decision": "approved",
        "lane": "quorum",
        "custodian": holding,
        "seq": seq,
        "cycle": None,
        "url": f"https://fund.example/entries/{seq}",
        "grant_url": f"https://fund.example/entries/{grant}",
    }
    overdue = events[f"grant.urgent_overdue.{urgent}"]["data"]
    assert overdue["grant"] == urgent and overdue["urgency"] == "urgent"
    upcoming = [b for b in heard["fund"] if b["type"] == "custody.upcoming"]
    assert [u["data"]["lead"] for u in upcoming] == ["3d", "1h"]
    assert upcoming[1]["timestamp"] == format_ts(moon - timedelta(hours=1))
    assert upcoming[0]["data"]["collective"] == taking
    started = next(b for b in heard["fund"] if b["type"] == "custody.started")["data"]
    assert started["collective"] == taking and started["carried_over"] == [urgent]
    everything = b"".join(r.body for r in receiver.got).decode()
    for private in ("IBAN-PAY-1", "family-7", "cash-1", proposal()["purpose"]):
        assert private not in everything


def test_the_worker_links_to_the_public_url_lunaria_init_stored(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """The worker serves no request and may run without LUNARIA_PUBLIC_URL: its events link
    to the URL `lunaria init` stored, as reports and feeds do."""
    app.config["PUBLIC_URL"] = "https://fund.example"
    assert runner.invoke(args=["init"]).exit_code == 0
    app.config["PUBLIC_URL"] = None  # (the worker's environment does not say it)
    with app.app_context():
        assert delivery_settings().public_url == "https://fund.example"


def test_a_failing_receiver_sees_retries_with_growing_gaps_then_success(
    app: Flask, story: Story, clock: ManualClock
) -> None:
    """In real time (retry_base 0.2 s): the receiver answers 500 four times, then 204, all
    under the one webhook-id. After each failed attempt the worker plans the next one 0.2, 0.4,
    0.8 and 1.6 s later (the stored schedule, exactly), and no retry arrives before its time.
    (How late one arrives depends on how busy the machine is: no upper bound is asserted.)"""
    receiver = Receiver(answer=lambda n: 500 if n < 4 else 204)
    try:
        app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
        hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
        receiver.secrets.append(hook["secret"])
        run = notifier(app, clock, retry_base=timedelta(seconds=0.2))
        clock.set(datetime.now(UTC))
        story.propose("1000")
        run.events.run(datetime.now(UTC))
        schedule: dict[int, tuple[str, str | None]] = {}  # attempt: (its time, the next's)
        deadline = time.monotonic() + 30
        while len(receiver.got) < 5 and time.monotonic() < deadline:
            run.deliveries.run(datetime.now(UTC))
            log = story.http.get(f"/webhooks/{hook['id']}/deliveries", token=story.admin)
            if log[0]["attempts"]:
                schedule[log[0]["attempts"]] = (log[0]["last_attempt"], log[0]["next_attempt"])
            if len(receiver.got) == 5:
                break  # (nothing is pending now: the next wake-up is a whole poll away)
            assert log[0]["status"] == "pending" and log[0]["attempts"] == len(receiver.got)
            if len(receiver.got) == 1:
                assert log[0]["last_status"] == 500 and "500" in log[0]["last_error"]
                assert log[0]["event_type"] == "grant.proposed" and log[0]["next_attempt"]
            wake = run.deliveries.next_at(datetime.now(UTC))
            time.sleep(max((wake - datetime.now(UTC)).total_seconds(), 0.005))
        assert all(r.verified for r in receiver.got)
        assert len(set(receiver.ids())) == 1  # one event, one webhook-id on every attempt
        assert len({r.body for r in receiver.got}) == 1
        log = story.http.get(f"/webhooks/{hook['id']}/deliveries", token=story.admin)[0]
        assert (log["status"], log["attempts"], log["last_status"]) == ("delivered", 5, 204)
        assert log["next_attempt"] is None and log["delivered_at"] is not None
        shown = story.http.get(f"/webhooks/{hook['id']}", token=story.admin)
        assert shown["failures_in_a_row"] == 0 and shown["disabled_at"] is None
    finally:
        receiver.stop()
    assert sorted(schedule) == [1, 2, 3, 4, 5]  # each attempt seen in the log after it
    assert schedule[5][1] is None  # delivered: nothing more planned
    for attempt, planned in zip((1, 2, 3, 4), (0.2, 0.4, 0.8, 1.6), strict=True):
        tried, following = schedule[attempt]
        assert following is not None
        assert parse_ts(following) - parse_ts(tried) == timedelta(seconds=planned), schedule
        retry = receiver.got[attempt].at  # (0-based: the attempt after this one)
        assert retry >= parse_ts(following), (attempt, retry, following)  # never early
        assert parse_ts(schedule[attempt + 1][0]) >= parse_ts(following)
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(receiver.got)]
    print("gaps between arrivals:", [f"{g:.3f}" for g in gaps])


def test_retries_stop_after_the_retry_window(app: Flask, story: Story, clock: ManualClock,
                                             receiver: Receiver) -> None:  # fmt: skip
    receiver.answer = lambda n: 503
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
    run = notifier(app, clock, retry_for=timedelta(seconds=20), disable_after=100)
    story.propose("1000")
    run.until_quiet()
    for _ in range(10):
        with run.engine.connect() as conn:
            pending = conn.execute(
                select(func.count()).where(deliveries.c.status == "pending")
            ).scalar()
        if not pending:
            break
        clock.set(run.next_attempt())
        run.step()
    log = story.http.get(f"/webhooks/{hook['id']}/deliveries", token=story.admin)[0]
    assert log["status"] == "failed" and log["next_attempt"] is None
    assert log["attempts"] == len(receiver.got) == 5  # at 0, 1, 3, 7, 15 s; then 31 > 20


def test_an_endpoint_failing_n_times_in_a_row_is_disabled_and_gets_nothing_more(
    app: Flask, story: Story, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.answer = lambda n: 500
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
    run = notifier(app, clock, disable_after=3)
    story.propose("1000")
    story.propose("1100")
    run.until_quiet()  # two failures
    clock.set(run.next_attempt())
    run.step()  # the third: disabled
    shown = story.http.get(f"/webhooks/{hook['id']}", token=story.admin)
    assert shown["disabled_at"] is not None
    assert shown["failures_in_a_row"] == 3
    assert shown["disabled_reason"].startswith("3 failed attempts in a row; the last: HTTP 500")
    assert len(receiver.got) == 3
    statuses = {d["status"] for d in story.http.get(f"/webhooks/{hook['id']}/deliveries",
                                                      token=story.admin)}  # fmt: skip
    assert statuses == {"cancelled"}
    story.propose("1200")  # a new event: nothing is made for the disabled endpoint
    clock.advance(timedelta(hours=2))
    run.until_quiet()
    assert len(receiver.got) == 3
    assert run.count(deliveries, deliveries.c.status == "pending") == 0
    assert run.count(notification_events) == 2


def test_a_target_that_turns_private_is_not_called(
    app: Flask, story: Story, clock: ManualClock, receiver: Receiver
) -> None:
    """Subscribed while private targets were allowed, delivered after they no longer are:
    the check at delivery time refuses it, and the log says why."""
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
    run = notifier(app, clock, allow_private=False)
    story.propose("1000")
    run.until_quiet()
    assert receiver.got == []
    log = story.http.get(f"/webhooks/{hook['id']}/deliveries", token=story.admin)[0]
    assert log["status"] == "pending" and "not a public address" in log["last_error"]


def test_redirects_are_not_followed(app: Flask, story: Story, clock: ManualClock,
                                    receiver: Receiver) -> None:  # fmt: skip
    receiver.answer = lambda n: 307
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
    run = notifier(app, clock)
    story.propose("1000")
    run.until_quiet()
    log = story.http.get(f"/webhooks/{hook['id']}/deliveries", token=story.admin)[0]
    assert (log["status"], log["last_status"]) == ("pending", 307)
    assert log["last_error"] == "redirects are not followed" and len(receiver.got) == 1


# -- real workers -----------------------------------------------------------------------------


def test_two_workers_and_a_kill_deliver_every_webhook_under_one_id(
    deployment: Deployment, receiver: Receiver
) -> None:
    """Two ``lunaria worker`` processes; the one holding the lock is killed with -9 while a
    delivery waits for its answer. The other takes over and sends it again (same id, same
    bytes); the killed one restarted waits its turn. Every event arrives; none under two ids."""
    deployment.env |= {"LUNARIA_WEBHOOK_ALLOW_PRIVATE": "1", "LUNARIA_NOTIFY_RETRY_BASE": "0.2"}
    fund = deployment.fund()
    engine = deployment.engine()
    created = create_endpoint(engine, fund.vault, ADMIN, url=receiver.url,
                              events=["checkpoint.signed"],
                              now=datetime.now(UTC), allow_private=True,
                              idempotency_scope="kill-test")  # fmt: skip
    receiver.secrets.append(created.secret or "")
    receiver.hold = 1  # the second delivery hangs until released
    started = [deployment.worker(1), deployment.worker(1)]
    active = holder(started, 90)  # (a loaded machine takes its time to start them)
    standby = next(w for w in started if w is not active)
    open_pool(fund)
    donate(fund, "KILL-1")
    time.sleep(1.5)
    donate(fund, "KILL-2")
    assert receiver.holding.wait(60), "the second delivery never came"
    active.process.kill()
    assert active.process.wait(timeout=10) == -signal.SIGKILL
    receiver.release.set()  # (its answer goes to a dead socket)
    restarted = deployment.worker(1)
    held = receiver.got[1].webhook_id
    wait_until(lambda: receiver.ids().count(held) >= 2, 60, "the held delivery sent again")
    assert holder([standby, restarted], 60) is standby
    for n in range(3, 6):
        seq = donate(fund, f"KILL-{n}")
        wait_until(lambda seq=seq: _covered(receiver, seq), 60, f"a checkpoint over {seq}")
    wait_until(lambda: _all_delivered(deployment), 60, "every delivery recorded")
    restarted.wait_for("waiting: another worker holds the lock", 60)  # (then it can stop)
    for worker in (standby, restarted):
        assert worker.stop() == 0
    with engine.connect() as conn:
        rows = conn.execute(select(notification_events.c.id, notification_events.c.payload))
        stored = {row.id: row.payload for row in rows}
        statuses = conn.execute(select(deliveries.c.status)).scalars().all()
    assert all(r.verified for r in receiver.got)
    ids = receiver.ids()
    assert set(ids) == set(stored) and len(stored) == len(statuses)
    for got in receiver.got:  # the same id always carries the same bytes
        assert got.body.decode() == stored[got.webhook_id]
    sizes = [json.loads(body)["data"]["size"] for body in stored.values()]
    assert len(sizes) == len(set(sizes))  # one event (one id) per checkpoint
    assert ids.count(held) == 2 and len(ids) == len(set(ids)) + 1
    lines = [line for w in (*started, restarted) for line in w.lines]
    assert not [line for line in lines if "error" in line]
    assert [line for line in standby.lines if f"{held}: delivered" in line]


def _covered(receiver: Receiver, seq: int) -> bool:
    return any(json.loads(r.body)["data"]["size"] > seq for r in receiver.got)


def _all_delivered(deployment: Deployment) -> bool:
    with deployment.engine().connect() as conn:
        statuses = set(conn.execute(select(deliveries.c.status)).scalars())
    return statuses == {"delivered"}
