"""Delivering the outbox: the worker task that sends due deliveries and retries them.

A delivery is tried when its ``next_attempt_ts`` comes. A webhook succeeds on a 2xx answer;
a mail once the SMTP server accepts it. A failure is retried after ``retry_base`` × 2^(n−1)
(n the attempts so far, at most an hour apart) while the retry falls within ``retry_for``
of the delivery's making; a failure with no retry left in that window is ``failed``. A
webhook endpoint whose attempts fail ``disable_after`` times in a row (any success resets
the count) is disabled: it says so (``disabled_at``, ``reason``), its pending deliveries
are cancelled, and no new ones are made for it.

A webhook is signed with the endpoint's secret, opened from the vault just then; a secret
that is not sealed, or does not open for its endpoint, is refused: nothing is sent, and the
attempt fails (and is retried) with the reason in the delivery log and the worker's output.

The attempt happens outside any transaction; its outcome is written afterwards. A worker
killed between the two sends the delivery again after the restart, with the same
``webhook-id`` and body: receivers deduplicate on ``webhook-id`` (Standard Webhooks).
"""

from __future__ import annotations

import json
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from ledger.fund.commands import Fund
from ledger.fund.events import Events, Links, notification_write
from ledger.fund.mail import SmtpSettings, recipient, send_mail
from ledger.fund.schema import deliveries, notification_events, webhook_endpoints
from ledger.fund.vault import Vault
from ledger.fund.webhooks import SecretRefused, Sent, open_secret, post_signed
from ledger.fund.worker import Task
from ledger.log.clock import Clock, format_ts, parse_ts

MAX_DELAY = timedelta(hours=1)
_IDLE = timedelta(minutes=1)
_BATCH = 20  # deliveries per run: the loop's other tasks get their turn in between


@dataclass(frozen=True)
class DeliverySettings:
    """The settings of delivery (``LUNARIA_WEBHOOK_*``, ``LUNARIA_NOTIFY_*``, SMTP)."""

    allow_private: bool = False
    timeout: float = 5.0
    retry_base: timedelta = timedelta(seconds=30)
    retry_for: timedelta = timedelta(hours=24)
    disable_after: int = 50
    poll: timedelta = timedelta(seconds=2)
    smtp: SmtpSettings | None = None
    public_url: str = ""

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        delay: timedelta = self.retry_base * 2 ** min(attempts - 1, 30)
        return min(delay, MAX_DELAY)


@dataclass(frozen=True)
class _Due:
    id: int
    event_id: str
    channel: str
    target: str
    created: datetime
    payload: str


def _due(conn: Connection, now: datetime) -> list[_Due]:
    rows = conn.execute(
        select(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.channel,
            deliveries.c.target,
            deliveries.c.created_ts,
            notification_events.c.payload,
        )
        .join(notification_events, notification_events.c.id == deliveries.c.event_id)
        .where(
            and_(deliveries.c.status == "pending", deliveries.c.next_attempt_ts <= format_ts(now))
        )
        .order_by(deliveries.c.next_attempt_ts, deliveries.c.id)
        .limit(_BATCH)
    )
    return [
        _Due(r.id, r.event_id, r.channel, r.target, parse_ts(r.created_ts), r.payload) for r in rows
    ]


class Deliveries:
    """The worker task that sends what is due (see the module)."""

    name = "deliveries"

    def __init__(
        self, engine: Engine, vault: Vault, clock: Clock, settings: DeliverySettings
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.clock = clock  # (the signature's timestamp is the moment of each attempt)
        self.settings = settings

    def next_at(self, now: datetime) -> datetime:
        with self.engine.connect() as conn:
            first = conn.execute(
                select(func.min(deliveries.c.next_attempt_ts)).where(
                    deliveries.c.status == "pending"
                )
            ).scalar()
        # With nothing pending, only the Events task makes work, and the loop asks this again
        # right after it ran: no need to look before a minute.
        return now + _IDLE if first is None else parse_ts(first)

    def run(self, now: datetime) -> list[str]:
        with self.engine.connect() as conn:
            due = _due(conn, now)
        return [self._attempt(delivery, now) for delivery in due]

    def _attempt(self, delivery: _Due, now: datetime) -> str:
        sent = self._post(delivery) if delivery.channel == "webhook" else self._mail(delivery)
        return self._record(delivery, sent, now)

    def _post(self, delivery: _Due) -> Sent:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(webhook_endpoints.c.url, webhook_endpoints.c.disabled_ts).where(
                    webhook_endpoints.c.id == delivery.target
                )
            ).one_or_none()
        if row is None or row.disabled_ts is not None:  # (since this batch was read)
            return Sent(False, error="the endpoint was deleted or disabled")
        try:
            secret = open_secret(self.engine, self.vault, delivery.target)
        except SecretRefused as exc:  # (in the worker's output and the delivery log)
            return Sent(False, error=exc.message[:500])
        return post_signed(
            row.url,
            secret,
            delivery.event_id,
            self.clock.now(),
            delivery.payload.encode(),
            timeout=self.settings.timeout,
            allow_private=self.settings.allow_private,
        )

    def _mail(self, delivery: _Due) -> Sent:
        smtp = self.settings.smtp
        if smtp is None:
            return Sent(False, error="LUNARIA_SMTP_URL is not set")
        found = recipient(self.engine, self.vault, delivery.target)
        if found is None:
            return Sent(False, error="the member opted out")
        address, language = found
        try:
            message_id = f"{delivery.event_id}.{delivery.target}"
            send_mail(smtp, address, message_id, json.loads(delivery.payload), language)
        except (OSError, smtplib.SMTPException) as exc:
            return Sent(False, error=f"{type(exc).__name__}: {exc}"[:500])
        return Sent(True)

    def _record(self, delivery: _Due, sent: Sent, now: datetime) -> str:
        what = f"{delivery.channel} {delivery.target}: {delivery.event_id}"
        with notification_write(self.engine) as conn:
            status = conn.execute(
                select(deliveries.c.status, deliveries.c.attempts).where(
                    deliveries.c.id == delivery.id
                )
            ).one_or_none()
            if status is None or status.status != "pending":
                return f"{what}: no longer pending"
            attempts = int(status.attempts) + 1
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_attempt_ts": format_ts(now),
                "last_status": sent.status,
                "last_error": sent.error,
            }
            if sent.ok:
                values |= {"status": "delivered", "delivered_ts": format_ts(now)}
                values["next_attempt_ts"] = None
                line = f"{what}: delivered"
            elif now + self.settings.delay(attempts) > delivery.created + self.settings.retry_for:
                values |= {"status": "failed", "next_attempt_ts": None}  # (no retry in time)
                line = f"{what}: failed for good ({sent.error})"
            else:
                delay = self.settings.delay(attempts)
                values["next_attempt_ts"] = format_ts(now + delay)
                line = f"{what}: {sent.error}; retrying in {delay.total_seconds():g} s"
            conn.execute(update(deliveries).where(deliveries.c.id == delivery.id).values(values))
            if delivery.channel == "webhook":
                line += self._count(conn, delivery.target, sent, now)
        return line

    def _count(self, conn: Connection, endpoint: str, sent: Sent, now: datetime) -> str:
        """Keep the endpoint's failures in a row; disable it at ``disable_after``."""
        row = conn.execute(
            select(webhook_endpoints.c.failures_in_a_row, webhook_endpoints.c.disabled_ts).where(
                webhook_endpoints.c.id == endpoint
            )
        ).one_or_none()
        if row is None or row.disabled_ts is not None:
            return ""
        failures = 0 if sent.ok else int(row.failures_in_a_row) + 1
        values: dict[str, Any] = {"failures_in_a_row": failures}
        disable = failures >= self.settings.disable_after
        if disable:
            values["disabled_ts"] = format_ts(now)
            values["disabled_reason"] = (
                f"{failures} failed attempts in a row; the last: {sent.error}"[:1000]
            )
            conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.channel == "webhook",
                        deliveries.c.target == endpoint,
                        deliveries.c.status == "pending",
                    )
                )
                .values(status="cancelled", next_attempt_ts=None, last_error="endpoint disabled")
            )
        conn.execute(
            update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint).values(values)
        )
        return (
            f" (endpoint {endpoint} disabled after {failures} failures in a row)" if disable else ""
        )


def notification_tasks(fund: Fund, settings: DeliverySettings) -> list[Task]:
    """The worker's two notification tasks: derive events, then deliver them."""
    engine = fund.log.engine
    return [
        Events(engine, Links(settings.public_url), settings.poll),
        Deliveries(engine, fund.vault, fund.log.clock, settings),
    ]
