"""Mail, optional: a member opts in with an address and a language (en, es, uk).

The address is personal data: it is sealed in the private, erasable store (a private record of
kind ``email``, :mod:`ledger.fund.privacy`) and only opened to send. Opting out erases it (the
vault key rotates, so no copy can be opened again). The mails carry the same public facts as
the webhooks' events, in the member's language, as plain text, sent with ``smtplib`` to
``LUNARIA_SMTP_URL`` (``smtp://host:port``, ``smtps://`` for TLS, ``smtp://user:pass@…``
to log in; ``?starttls=1`` upgrades a plain connection).
"""

from __future__ import annotations

import json
import re
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import Connection, Engine, and_, delete, insert, select, update

from ledger.errors import NotFound, RuleViolation
from ledger.fund.events import EVENT_TYPES, notification_write, start_cursors
from ledger.fund.money import format_major
from ledger.fund.privacy import PrivateRecord, commitment, erase, keep_private, new_salt
from ledger.fund.privacy import private_record as open_record
from ledger.fund.rules import Actor, require_role
from ledger.fund.schema import deliveries, email_subscriptions
from ledger.fund.vault import Vault
from ledger.fund.webhooks import check_event_types
from ledger.log.append import Log
from ledger.log.clock import format_ts, parse_ts

LANGUAGES = ("en", "es", "uk")
KIND = "email"
NO_ENTRY = -1  # the seq of a private record no entry wrote (an address given over the API)
MAX_ADDRESS = 254
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
# Mail about checkpoints every few seconds would be noise: not offered by mail.
MAIL_EVENTS = tuple(t for t in EVENT_TYPES if t != "checkpoint.signed")


class MailDisabled(RuleViolation):
    def __init__(self) -> None:
        super().__init__("this server sends no mail (LUNARIA_SMTP_URL is not set)", "mail_disabled")


@dataclass(frozen=True)
class SmtpSettings:
    """Where mail goes (``LUNARIA_SMTP_URL``) and who it is from (``LUNARIA_SMTP_FROM``)."""

    url: str
    sender: str
    timeout: float = 10.0


@dataclass(frozen=True)
class Subscription:
    """A member's opt-in as they see it: never the address."""

    member: str
    collective: str
    language: str
    events: list[str]
    created: str


def _check(address: str, language: str, events: list[str] | None) -> list[str]:
    if not isinstance(address, str) or len(address) > MAX_ADDRESS or not _ADDRESS.match(address):
        raise RuleViolation("not a mail address (name@domain)", "invalid_email")
    if language not in LANGUAGES:
        raise RuleViolation(f"language must be one of {', '.join(LANGUAGES)}", "invalid_language")
    types = check_event_types(list(MAIL_EVENTS) if events is None else events)
    if "checkpoint.signed" in types:
        raise RuleViolation("checkpoint.signed is not sent by mail", "unknown_event_type")
    return types


def subscribe(
    log: Log,
    vault: Vault,
    actor: Actor,
    *,
    address: str,
    language: str,
    events: list[str] | None,
    now: datetime,
    smtp: SmtpSettings | None,
) -> Subscription:
    """Opt in (a member, for themselves). A new address replaces the old one, which is erased;
    the same address again only changes the language and the events."""
    require_role(actor, "member")
    if smtp is None:
        raise MailDisabled()
    types = _check(address, language, events)
    assert actor.member is not None and actor.collective is not None
    before = subscription_row(log.engine, actor.member)
    if before is not None and _address(log.engine, vault, before.commitment) != address:
        unsubscribe(log, vault, actor)
        before = None
    values = {"language": language, "events": json.dumps(types), "collective": actor.collective}
    if before is not None:
        with log.writer() as writer:
            writer.conn.execute(
                update(email_subscriptions)
                .where(email_subscriptions.c.member == actor.member)
                .values(**values)
            )
    else:
        salt = new_salt()
        key = commitment(salt, address)
        with log.writer() as writer:  # (the write lock: no vault rotation while sealing)
            record = PrivateRecord(key, KIND, salt, {"email": address}, NO_ENTRY)
            keep_private(writer.conn, vault, [record])
            writer.conn.execute(
                insert(email_subscriptions).values(
                    member=actor.member, commitment=key, created_ts=format_ts(now), **values
                )
            )
            start_cursors(writer.conn)
    return my_subscription(log.engine, actor)


def subscription_row(engine: Engine, member: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(email_subscriptions).where(email_subscriptions.c.member == member)
        ).one_or_none()


def my_subscription(engine: Engine, actor: Actor) -> Subscription:
    require_role(actor, "member")
    assert actor.member is not None
    row = subscription_row(engine, actor.member)
    if row is None:
        raise NotFound("you have not opted in to mail")
    return Subscription(
        row.member, row.collective, row.language, json.loads(row.events), row.created_ts
    )


def unsubscribe(log: Log, vault: Vault, actor: Actor) -> None:
    """Opt out: the subscription and the mail not yet sent go, and the address is erased."""
    require_role(actor, "member")
    assert actor.member is not None
    row = subscription_row(log.engine, actor.member)
    if row is None:
        raise NotFound("you have not opted in to mail")
    with notification_write(log.engine) as conn:
        _forget(conn, actor.member)
    erase(log, vault, row.commitment)


def _forget(conn: Connection, member: str) -> None:
    conn.execute(
        delete(deliveries).where(
            and_(
                deliveries.c.channel == "email",
                deliveries.c.target == member,
                deliveries.c.status == "pending",
            )
        )
    )
    conn.execute(delete(email_subscriptions).where(email_subscriptions.c.member == member))


def _address(engine: Engine, vault: Vault, key: str) -> str | None:
    with engine.connect() as conn:
        record = open_record(conn, vault, key)
    return None if record is None else str(record.payload["email"])


def recipient(engine: Engine, vault: Vault, member: str) -> tuple[str, str] | None:
    """(address, language) of a member's opt-in, or None once they opted out."""
    row = subscription_row(engine, member)
    if row is None:
        return None
    address = _address(engine, vault, row.commitment)
    return None if address is None else (address, row.language)


# -- the mails ---------------------------------------------------------------------------------

# Subject and body per language and event type; the fields are the event's data (and the
# cycle's number, the grant's amount in major units with its currency).
TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "grant.proposed": (
            "Grant {grant} proposed in {pool}",
            "A grant of {money} ({urgency}) was proposed in the pool {pool}.",
        ),
        "vote.needed": (
            "Your vote is needed: grant {grant} in {pool}",
            "{custodian} holds {pool}: grant {grant} of {money} ({urgency}) waits for your vote.",
        ),
        "grant.decided": (
            "Grant {grant} in {pool}: {decision}",
            "Grant {grant} of {money} in {pool} was {decision} ({lane}).",
        ),
        "grant.disbursed": (
            "Grant {grant} in {pool} paid out",
            "Grant {grant} of {money} in {pool} was paid out.",
        ),
        "grant.urgent_overdue": (
            "Urgent grant {grant} in {pool} is overdue",
            "The urgent grant {grant} of {money} in {pool} is still undecided after its "
            "deadline ({deadline}). Please decide it now.",
        ),
        "custody.upcoming": (
            "{collective} takes {pool} at the new moon",
            "At the new moon ({start}) your collective {collective} takes custody of the pool "
            "{pool} for cycle {cycle}.",
        ),
        "custody.started": (
            "{collective} now holds {pool}",
            "Your collective {collective} holds the pool {pool} for cycle {cycle}. "
            "Grants waiting for a decision: {carried}.",
        ),
    },
    "es": {
        "grant.proposed": (
            "Nueva subvención {grant} propuesta en {pool}",
            "Se ha propuesto una subvención de {money} ({urgency}) en el fondo {pool}.",
        ),
        "vote.needed": (
            "Se necesita tu voto: subvención {grant} en {pool}",
            "{custodian} custodia {pool}: la subvención {grant} de {money} ({urgency}) "
            "espera tu voto.",
        ),
        "grant.decided": (
            "Subvención {grant} en {pool}: {decision}",
            "La subvención {grant} de {money} en {pool} se ha decidido: {decision} ({lane}).",
        ),
        "grant.disbursed": (
            "Subvención {grant} en {pool} pagada",
            "La subvención {grant} de {money} en {pool} se ha pagado.",
        ),
        "grant.urgent_overdue": (
            "La subvención urgente {grant} en {pool} está vencida",
            "La subvención urgente {grant} de {money} en {pool} sigue sin decidir después de "
            "su plazo ({deadline}). Por favor, decididla ya.",
        ),
        "custody.upcoming": (
            "{collective} recibe la custodia de {pool} en la luna nueva",
            "En la luna nueva ({start}) tu colectivo {collective} recibe la custodia del fondo "
            "{pool} para el ciclo {cycle}.",
        ),
        "custody.started": (
            "{collective} custodia ahora {pool}",
            "Tu colectivo {collective} custodia el fondo {pool} durante el ciclo {cycle}. "
            "Subvenciones pendientes de decisión: {carried}.",
        ),
    },
    "uk": {
        "grant.proposed": (
            "Запропоновано грант {grant} у фонді {pool}",
            "У фонді {pool} запропоновано грант на {money} ({urgency}).",
        ),
        "vote.needed": (
            "Потрібен ваш голос: грант {grant} у фонді {pool}",
            "{custodian} опікується фондом {pool}: грант {grant} на {money} ({urgency}) "
            "чекає на ваш голос.",
        ),
        "grant.decided": (
            "Грант {grant} у фонді {pool}: {decision}",
            "Щодо гранту {grant} на {money} у фонді {pool} ухвалено рішення: {decision} ({lane}).",
        ),
        "grant.disbursed": (
            "Грант {grant} у фонді {pool} виплачено",
            "Грант {grant} на {money} у фонді {pool} виплачено.",
        ),
        "grant.urgent_overdue": (
            "Терміновий грант {grant} у фонді {pool} прострочено",
            "Терміновий грант {grant} на {money} у фонді {pool} досі не вирішено після "
            "терміну ({deadline}). Будь ласка, ухваліть рішення зараз.",
        ),
        "custody.upcoming": (
            "{collective} отримує фонд {pool} у новий місяць",
            "У новий місяць ({start}) ваш колектив {collective} отримує опіку над фондом "
            "{pool} на цикл {cycle}.",
        ),
        "custody.started": (
            "{collective} тепер опікується фондом {pool}",
            "Ваш колектив {collective} опікується фондом {pool} протягом циклу {cycle}. "
            "Гранти, що чекають на рішення: {carried}.",
        ),
    },
}
WORDS: dict[str, dict[str, str]] = {
    "en": {"approved": "approved", "rejected": "rejected", "urgent": "urgent",
           "normal": "normal", "quorum": "quorum", "fast_lane": "fast lane", "none": "none",
           "footer": "Public page: {url}\nYou receive this because you opted in to Lunaria mail; "
           "opt out with DELETE /api/v1/notifications/email."},
    "es": {"approved": "aprobada", "rejected": "rechazada", "urgent": "urgente",
           "normal": "normal", "quorum": "quórum", "fast_lane": "vía rápida", "none": "ninguna",
           "footer": "Página pública: {url}\nRecibes esto porque te suscribiste al correo de "
           "Lunaria; date de baja con DELETE /api/v1/notifications/email."},
    "uk": {"approved": "схвалено", "rejected": "відхилено", "urgent": "терміновий",
           "normal": "звичайний", "quorum": "кворум", "fast_lane": "швидка смуга",
           "none": "немає",
           "footer": "Публічна сторінка: {url}\nВи отримуєте це, бо підписалися на листи "
           "Lunaria; відписатися: DELETE /api/v1/notifications/email."},
}  # fmt: skip


def _money(data: dict[str, Any]) -> str:
    return f"{format_major(int(data['amount']), data['currency'])} {data['currency']}"


def compose(event: dict[str, Any], language: str) -> tuple[str, str]:
    """(subject, body) of the mail telling ``event`` (its payload, parsed) in ``language``."""
    data = dict(event["data"])
    words = WORDS[language]
    subject, body = TEXTS[language][event["type"]]
    cycle = data.get("cycle") or {}
    fields = {**data, "cycle": cycle.get("number", ""), "start": cycle.get("start", "")}
    if "amount" in data:
        fields["money"] = _money(data)
    for name in ("decision", "urgency", "lane"):
        if name in data:
            fields[name] = words.get(str(data[name]), str(data[name]))
    carried = data.get("carried_over")
    fields["carried"] = ", ".join(map(str, carried)) if carried else words["none"]
    text = body.format(**fields) + "\n\n" + words["footer"].format(url=data.get("url", ""))
    return subject.format(**fields), text + "\n"


def send_mail(
    smtp: SmtpSettings, to: str, message_id: str, event: dict[str, Any], language: str
) -> None:
    """Send one event as mail; raises OSError or smtplib.SMTPException on failure. The
    Message-ID is the delivery's (``<event id>.<member>``), so a mail sent again after a
    crash can be recognised as the same."""
    subject, body = compose(event, language)
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(parse_ts(event["timestamp"]))
    message["Message-ID"] = f"<{message_id}@{smtp.sender.rpartition('@')[2] or 'lunaria'}>"
    message.set_content(body)
    message["Content-Language"] = language  # (after set_content, which drops Content-*)
    parts = urlsplit(smtp.url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise OSError(f"LUNARIA_SMTP_URL must be smtp:// or smtps://, not {smtp.url!r}")
    kind = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    with kind(parts.hostname, port, timeout=smtp.timeout) as client:
        if parse_qs(parts.query).get("starttls") == ["1"]:
            client.starttls()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
