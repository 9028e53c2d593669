"""Mail: members opt in over the API with an address kept sealed, and get the events as mail
in their language from a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import func, select

from api import db
from api.notifications import delivery_settings
from ledger.fund.lunar import new_moon_after
from ledger.fund.schema import deliveries, email_subscriptions, grants, private_records
from ledger.log.clock import ManualClock, format_ts
from tests.test_api_support import Story
from tests.test_webhooks import notifier, story

__all__ = ["story"]


@dataclass
class Inbox:
    """What the SMTP server received: one parsed message per recipient."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            assert rcpt in parsed["To"]
            self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox(app: Flask) -> Iterator[Inbox]:
    found = Inbox()
    port = free_port()  # (aiosmtpd cannot take port 0: it connects back to check)
    controller = Controller(found, hostname="127.0.0.1", port=port)
    controller.start()
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    app.config["SMTP_FROM"] = "fondo@lunaria.example"
    yield found
    controller.stop()


def opt_in(story: Story, member: str, address: str, language: str) -> dict[str, Any]:
    body = {"email": address, "language": language}
    response = story.http.post("/notifications/email", body, token=story.member(member))
    assert response.status_code == 201, response.get_json()
    shown: dict[str, Any] = response.get_json()
    return shown


def count(app: Flask, table: Any, *where: Any) -> int:
    with app.app_context(), db.get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def test_the_custody_mail_arrives_in_the_language_each_member_chose(
    app: Flask, story: Story, clock: ManualClock, inbox: Inbox
) -> None:
    holding = story.http.get("/pools/food")["custodian"]
    taking = ({"alba", "brisa"} - {holding}).pop()
    newcomers = [m for m in story.members if m[0] == taking[0]]
    shown = opt_in(story, newcomers[0], "ana@example.org", "es")
    assert shown == shown | {"member": newcomers[0], "collective": taking, "language": "es"}
    assert "ana@example.org" not in str(shown) and "checkpoint.signed" not in shown["events"]
    opt_in(story, newcomers[1], "ben@example.org", "en")
    opt_in(story, next(m for m in story.members if m[0] == holding[0]), "oles@example.org", "uk")
    assert story.http.get("/notifications/email", token=story.member(newcomers[0])) == shown
    with app.app_context(), db.get_engine().connect() as conn:
        sealed = b"".join(conn.execute(select(private_records.c.sealed)).scalars())
    assert b"ana@example.org" not in sealed and b"example.org" not in sealed

    run = notifier(app, clock, smtp=_smtp(app))
    grant = story.propose("2500", urgency="urgent")
    run.until_quiet()
    assert sorted(m["Subject"] for m in inbox.to("oles@example.org")) == [
        f"Запропоновано грант {grant} у фонді food",
        f"Потрібен ваш голос: грант {grant} у фонді food",
    ]
    assert "25.00 EUR (терміновий)" in inbox.to("oles@example.org")[0].get_content()
    assert inbox.to("ana@example.org") == []  # (the grant is the holder's to decide)

    moon = new_moon_after(clock.now())
    clock.set(moon - timedelta(days=2))
    run.until_quiet()
    [upcoming] = inbox.to("ana@example.org")
    assert upcoming["Subject"] == f"{taking} recibe la custodia de food en la luna nueva"
    assert upcoming["Content-Language"] == "es" and upcoming["From"] == "fondo@lunaria.example"
    text = upcoming.get_content()
    assert f"En la luna nueva ({format_ts(moon)}) tu colectivo {taking} recibe la" in text
    assert "Página pública: https://fund.example/pools/food" in text
    [english] = inbox.to("ben@example.org")
    assert english["Subject"] == f"{taking} takes food at the new moon"
    assert not [m for m in inbox.to("oles@example.org") if "новий місяць" in m["Subject"]]
    overdue = inbox.to("oles@example.org")[-1]  # (72 hours passed: the grant is overdue)
    assert overdue["Subject"] == f"Терміновий грант {grant} у фонді food прострочено"

    clock.set(moon + timedelta(minutes=1))
    story.http.post("/pools/food/donations", {"amount": "100", "currency": "EUR",
                    "channel": "cash", "external_reference": "c-1"}, token=story.treasurer,
                    status=201)  # fmt: skip
    run.until_quiet()
    started, vote = inbox.to("ana@example.org")[1:]
    assert started["Subject"] == f"{taking} custodia ahora food"
    assert f"Subvenciones pendientes de decisión: {grant}." in started.get_content()
    assert vote["Subject"] == f"Se necesita tu voto: subvención {grant} en food"
    assert "25.00 EUR (urgente) espera tu voto" in vote.get_content()
    assert len({m["Message-ID"] for m in inbox.messages}) == len(inbox.messages)


def _smtp(app: Flask) -> Any:
    with app.app_context():
        return delivery_settings().smtp


def test_opting_out_erases_the_address_and_stops_the_mail(
    app: Flask, story: Story, clock: ManualClock, inbox: Inbox
) -> None:
    holding = story.http.get("/pools/food")["custodian"]
    member = next(m for m in story.members if m[0] == holding[0])
    opt_in(story, member, "ana@example.org", "es")
    opt_in(story, member, "ana@example.org", "uk")  # the same address: only the language
    assert count(app, private_records, private_records.c.kind == "email") == 1
    opt_in(story, member, "ana.nueva@example.org", "es")  # a new one: the old one erased
    assert count(app, private_records, private_records.c.kind == "email") == 1
    run = notifier(app, clock, smtp=_smtp(app))
    story.propose("1000")
    run.until_quiet()
    assert [m["To"] for m in inbox.messages] == ["ana.nueva@example.org"] * 2  # proposed, vote
    story.propose("1200")
    run.events.run(clock.now())  # (the deliveries are made, not yet sent)
    assert count(app, deliveries, deliveries.c.status == "pending") == 2

    gone = story.http.request("DELETE", "/notifications/email", token=story.member(member))
    assert gone.status_code == 204
    assert count(app, private_records, private_records.c.kind == "email") == 0
    assert count(app, email_subscriptions) == 0
    assert count(app, deliveries, deliveries.c.status == "pending") == 0
    missing = story.http.request("GET", "/notifications/email", token=story.member(member))
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"
    story.propose("1300")
    run.until_quiet()
    assert len(inbox.messages) == 2


BAD = [
    ({"email": "not-an-address", "language": "es"}, "invalid_email"),
    ({"email": "a@b@example.org", "language": "es"}, "invalid_email"),
    ({"email": "Ana <ana@example.org>", "language": "es"}, "invalid_email"),
    ({"email": "ana@example.org", "language": "fr"}, "invalid_language"),
    (
        {"email": "ana@example.org", "language": "es", "events": ["checkpoint.signed"]},
        "unknown_event_type",
    ),
    (
        {"email": "ana@example.org", "language": "es", "events": ["grant.lost"]},
        "unknown_event_type",
    ),
    ({"email": "ana@example.org"}, "invalid_request"),
    ({"email": 5, "language": "es"}, "invalid_request"),
]


def test_bad_opt_ins_are_refused_and_write_nothing(app: Flask, story: Story, inbox: Inbox) -> None:
    http = story.http
    before = count(app, private_records)
    for body, code in BAD:
        http.refused("POST", "/notifications/email", body, 422, code, token=story.member("a1"))
    good = {"email": "ana@example.org", "language": "es"}
    http.refused("POST", "/notifications/email", good, 403, "forbidden", token=story.admin)
    http.refused("POST", "/notifications/email", good, 401, "unauthorized")
    app.config["SMTP_URL"] = None
    http.refused("POST", "/notifications/email", good, 409, "mail_disabled",
                 token=story.member("a1"))  # fmt: skip
    assert count(app, email_subscriptions) == 0 and count(app, private_records) == before
    gone = http.request("DELETE", "/notifications/email", token=story.member("a1"))
    assert gone.status_code == 404


def test_mail_waits_for_the_smtp_server_and_is_retried(
    app: Flask, story: Story, clock: ManualClock
) -> None:
    port = free_port()  # nothing listens there yet
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    holding = story.http.get("/pools/food")["custodian"]
    opt_in(story, next(m for m in story.members if m[0] == holding[0]), "ana@example.org", "en")
    run = notifier(app, clock, smtp=_smtp(app))
    story.propose("1000")
    run.until_quiet()
    with app.app_context(), db.get_engine().connect() as conn:
        rows = conn.execute(select(deliveries.c.status, deliveries.c.last_error)).all()
    assert [r.status for r in rows] == ["pending", "pending"]
    assert all("Connection refused" in r.last_error for r in rows)
    found = Inbox()
    controller = Controller(found, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.set(run.next_attempt())
        run.until_quiet()
    finally:
        controller.stop()
    assert sorted(m["Subject"] for m in found.messages) == [
        "Grant " + str(_first_grant(app)) + " proposed in food",
        "Your vote is needed: grant " + str(_first_grant(app)) + " in food",
    ]


def _first_grant(app: Flask) -> int:
    with app.app_context(), db.get_engine().connect() as conn:
        return int(conn.execute(select(func.min(grants.c.id))).scalar())
