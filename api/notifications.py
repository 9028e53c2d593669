"""Notifications over the API: webhook endpoints and their delivery logs, and mail opt-ins.

A member's token subscribes its collective's webhooks and its own mail; an admin's token
subscribes webhooks for the whole fund. What is sent, and how, is ``ledger.fund``'s (events,
webhooks, mail, delivery); ``lunaria worker`` sends it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from api import db, public_url, schemas
from api.auth import authenticate_request, current_actor, idempotency_scope, replay_headers
from api.blueprint import Blueprint
from api.docs import TOKEN_READ
from ledger.fund import Actor, DeliverySettings, mail, webhooks

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/api/v1",
    description="Webhooks (a collective's members, or admins for the fund) and mail opt-ins "
    "(members): events signed per Standard Webhooks, delivered by lunaria worker.",
)

WEBHOOK = "/webhooks/<endpoint_id>"


def delivery_settings() -> DeliverySettings:
    """The delivery settings of the configuration (``LUNARIA_WEBHOOK_*``, ``_NOTIFY_*``,
    ``_SMTP_*``, ``_PUBLIC_URL``), for the API and ``lunaria worker`` alike."""
    config = current_app.config
    smtp_url = config["SMTP_URL"]
    return DeliverySettings(
        allow_private=str(config["WEBHOOK_ALLOW_PRIVATE"]).lower() in ("1", "true"),
        timeout=float(config["WEBHOOK_TIMEOUT"]),
        retry_base=timedelta(seconds=float(config["NOTIFY_RETRY_BASE"])),
        retry_for=timedelta(hours=float(config["NOTIFY_RETRY_HOURS"])),
        disable_after=int(config["WEBHOOK_DISABLE_AFTER"]),
        smtp=mail.SmtpSettings(smtp_url, str(config["SMTP_FROM"])) if smtp_url else None,
        public_url=public_url.get(),  # the stored one: the worker serves no request
    )


@blp.route("/webhooks", methods=["POST"])
@blp.arguments(schemas.NewWebhook)
@blp.response(201, schemas.CreatedWebhook)
def create_webhook(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Subscribe a URL (a member: its collective's events; an admin: the fund's). The target
    must resolve to public addresses. The signing secret is in the answer, this once."""
    created = webhooks.create_endpoint(
        db.get_engine(),
        db.get_vault(),
        current_actor(),
        url=body["url"],
        events=body.get("events"),
        now=db.get_clock().now(),
        allow_private=delivery_settings().allow_private,
        idempotency_scope=idempotency_scope(),
    )
    shown = {**vars(created.endpoint), "secret": created.secret}
    return shown, 201, replay_headers(created.replayed)


@blp.route("/webhooks", methods=["GET"])
@blp.doc(**TOKEN_READ)
@blp.response(200, schemas.Webhook(many=True))
def endpoints() -> list[webhooks.Endpoint]:
    """The endpoints the token may see: its collective's, or every one for an admin."""
    return webhooks.list_endpoints(db.get_engine(), _reader())


@blp.route(WEBHOOK, methods=["GET"])
@blp.doc(**TOKEN_READ)
@blp.response(200, schemas.Webhook)
def webhook(endpoint_id: str) -> webhooks.Endpoint:
    """One endpoint; ``disabled_at`` and ``disabled_reason`` say when and why it stopped."""
    return webhooks.get_endpoint(db.get_engine(), _reader(), endpoint_id)


@blp.route(WEBHOOK, methods=["DELETE"])
@blp.response(204)
def remove_webhook(endpoint_id: str) -> None:
    """Unsubscribe: the endpoint and its delivery log are removed."""
    webhooks.delete_endpoint(db.get_engine(), current_actor(), endpoint_id)


@blp.route(f"{WEBHOOK}/deliveries", methods=["GET"])
@blp.doc(**TOKEN_READ)
@blp.response(200, schemas.WebhookDelivery(many=True))
def deliveries(endpoint_id: str) -> list[webhooks.DeliveryView]:
    """The endpoint's last 100 deliveries, newest first: status, attempts, last error, next
    attempt."""
    return webhooks.endpoint_deliveries(db.get_engine(), _reader(), endpoint_id)


@blp.route("/notifications/email", methods=["POST"])
@blp.arguments(schemas.NewMailSubscription)
@blp.response(201, schemas.MailSubscription)
def opt_in(body: dict[str, Any]) -> mail.Subscription:
    """Opt in to mail (a member, for themselves). The address is sealed in the private
    store and erased on opting out; a new address replaces (and erases) the old one."""
    return mail.subscribe(
        db.get_log(),
        db.get_vault(),
        current_actor(),
        address=body["email"],
        language=body["language"],
        events=body.get("events"),
        now=db.get_clock().now(),
        smtp=delivery_settings().smtp,
    )


@blp.route("/notifications/email", methods=["GET"])
@blp.doc(**TOKEN_READ)
@blp.doc(responses={404: "NOT_FOUND"})  # not opted in
@blp.response(200, schemas.MailSubscription)
def mail_subscription() -> mail.Subscription:
    """The caller's opt-in (never the address)."""
    return mail.my_subscription(db.get_engine(), _reader())


@blp.route("/notifications/email", methods=["DELETE"])
@blp.response(204)
def opt_out() -> None:
    """Opt out: the address is erased for good (the vault key rotates)."""
    mail.unsubscribe(db.get_log(), db.get_vault(), current_actor())


def _reader() -> Actor:
    """The actor of a read that needs a token (``guard_writes`` checks only writes); its
    failures count against the client address as a write's do."""
    return authenticate_request().actor
