"""Notification events: derived from the log and from time, written once into an outbox.

An event is what a subscriber is told (format ``lunaria-event/1``, docs/formats.md): its type,
the instant it happened and public facts only (ids, pool and collective slugs, amounts, seqs,
links to the public pages). Entry-driven events are read from the log after a durable cursor;
the transaction that advances the cursor also writes the events and one delivery row per
matching subscription, so a crash leaves either all of it or none. Each event's id derives
from its cause (``e42.grant.proposed``, ``c17.checkpoint.signed``,
``custody.upcoming.food.325.1h``): deriving it again, after a crash or by a second worker,
finds the row and adds nothing, and every retry of a delivery sends the same id and bytes.

Who hears what: an event names the collectives it concerns (its *audience*: the custodian
that must vote, the collective taking a pool). A fund-wide (admin) webhook gets every event of
its types; a collective's webhook gets the events concerning its collective, and the events
concerning no collective in particular (``checkpoint.signed``); a member's mail gets the events
concerning their collective.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ledger.fund.schema import (
    deliveries,
    email_subscriptions,
    notification_cursors,
    notification_events,
    pools,
    webhook_endpoints,
)
from ledger.fund.state import custodian_of, grant_row, load_schedule
from ledger.fund.urgency import overdue_urgent_grants
from ledger.log.clock import format_ts
from ledger.log.db import WRITE_OPTION, read_sql, write_sql
from ledger.log.entry import Entry, decode_entry
from ledger.log.storage import entry_bodies, latest_checkpoint, load_head

FORMAT = "lunaria-event/1"
EVENT_TYPES = (
    "grant.proposed",
    "vote.needed",
    "grant.decided",
    "grant.disbursed",
    "grant.urgent_overdue",
    "custody.upcoming",
    "custody.started",
    "checkpoint.signed",
)
# custody.upcoming is sent this long before a collective takes a pool: once per lead.
UPCOMING_LEADS = {"3d": timedelta(days=3), "1h": timedelta(hours=1)}
_BATCH = 500  # entries (and checkpoints) read per transaction
# Before the first subscription the cursors do not exist; the first events after one are
# derived at most this late (from the cursors it set, so none is lost).
_UNSUBSCRIBED_POLL = timedelta(seconds=30)
_CURSORS = ("entries", "checkpoints")


@dataclass(frozen=True)
class Links:
    """Absolute links to the public pages, under ``LUNARIA_PUBLIC_URL`` (relative without)."""

    base: str = ""

    def pool(self, slug: str) -> str:
        return f"{self.base.rstrip('/')}/pools/{slug}"

    def entry(self, seq: int) -> str:
        return f"{self.base.rstrip('/')}/entries/{seq}"

    def checkpoint(self, size: int) -> str:
        return f"{self.base.rstrip('/')}/api/v1/ledger/checkpoints/{size}"


@dataclass(frozen=True)
class Event:
    """One event; ``payload`` is the exact body every delivery of it sends."""

    id: str
    type: str
    ts: str
    data: dict[str, Any]
    audience: tuple[str, ...] = field(default=())  # collectives concerned; () the whole fund

    def payload(self) -> str:
        body: dict[str, Any] = {"format": FORMAT, "id": self.id, "type": self.type}
        body |= {"timestamp": self.ts, "data": self.data}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def notification_write(engine: Engine) -> Iterator[Connection]:
    """A short write transaction on the notification tables (SQLite: ``BEGIN IMMEDIATE``, so
    it never fails to upgrade a stale read; it does not take the log's write lock)."""
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        yield conn


def start_cursors(conn: Connection) -> None:
    """Begin deriving events from the log's current end (the first subscription calls this):
    the history before anybody listened is not turned into events."""
    head = load_head(conn)
    checkpoint = latest_checkpoint(conn)
    positions = {"entries": head.size - 1, "checkpoints": checkpoint.size if checkpoint else 0}
    for name, position in positions.items():
        write_sql(
            conn,
            "INSERT INTO notification_cursors (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (name, position),
        )


# -- what the log says -------------------------------------------------------------------------


def _money(data: dict[str, Any]) -> dict[str, Any]:
    return {"pool": data["pool"], "amount": data["amount"], "currency": data["currency"]}


def _cycle(cycle: Any) -> dict[str, Any]:
    """A cycle number (most kinds) or whole cycle object (custody) as the payload's object."""
    return {"number": cycle} if isinstance(cycle, int) else dict(cycle)


def entry_events(conn: Connection, entry: Entry, links: Links) -> list[Event]:
    """The events an entry causes (none for most kinds)."""
    data, seq, kind = entry.data, entry.seq, entry.kind
    if kind == "custody_transferred":
        return _custody_events(conn, entry, links)
    if kind not in ("grant_proposed", "grant_decided", "grant_disbursed"):
        return []
    grant = seq if kind == "grant_proposed" else int(data["grant"])
    custodian = custodian_of(conn, data["pool"], int(data["cycle"]))
    facts = {"grant": grant, **_money(data), "cycle": _cycle(data["cycle"]), "seq": seq}
    facts |= {"custodian": custodian, "url": links.entry(seq), "grant_url": links.entry(grant)}
    audience = (custodian,) if custodian else ()
    if kind == "grant_decided":
        facts |= {"decision": data["decision"], "lane": data["lane"]}
        return [Event(f"e{seq}.grant.decided", "grant.decided", entry.ts, facts, audience)]
    if kind == "grant_disbursed":
        return [Event(f"e{seq}.grant.disbursed", "grant.disbursed", entry.ts, facts, audience)]
    facts["urgency"] = data["urgency"]
    events = [Event(f"e{seq}.grant.proposed", "grant.proposed", entry.ts, facts, audience)]
    if custodian:
        events.append(Event(f"e{seq}.vote.needed", "vote.needed", entry.ts, facts, audience))
    return events


def _custody_events(conn: Connection, entry: Entry, links: Links) -> list[Event]:
    data, seq = entry.data, entry.seq
    incoming, pool = data["to"], data["pool"]
    facts = {
        "pool": pool,
        "collective": incoming,
        "previous": data["from"],
        "cycle": _cycle(data["cycle"]),
        "carried_over": list(data["carried_over"]),
        "seq": seq,
        "url": links.pool(pool),
    }
    audience = (incoming,) if incoming else ()
    events = [Event(f"e{seq}.custody.started", "custody.started", entry.ts, facts, audience)]
    if incoming and incoming != data["from"]:  # the new custodian must vote on these now
        for grant in data["carried_over"]:
            row = grant_row(conn, int(grant))
            need = {"grant": int(grant), "pool": pool, "amount": row.amount}
            need |= {"currency": row.currency, "urgency": row.urgency, "custodian": incoming}
            need |= {"cycle": {"number": data["cycle"]["number"]}, "seq": seq}
            need |= {"url": links.entry(seq), "grant_url": links.entry(int(grant))}
            event_id = f"e{seq}.vote.needed.{grant}"
            events.append(Event(event_id, "vote.needed", entry.ts, need, audience))
    return events


def checkpoint_event(size: int, root: bytes, ts: str, links: Links) -> Event:
    data = {"size": size, "root": root.hex(), "url": links.checkpoint(size)}
    return Event(f"c{size}.checkpoint.signed", "checkpoint.signed", ts, data)


# -- what time says ----------------------------------------------------------------------------


def upcoming_events(conn: Connection, now: datetime, links: Links) -> list[Event]:
    """``custody.upcoming`` for every pool whose custodian changes at the next new moon, at
    the shortest lead already reached (a worker started an hour before says "1h", not both)."""
    schedule = load_schedule(conn)
    current = schedule.cycle_at(now)
    coming = schedule.cycle(current.number + 1)
    reached = [
        (lead, label) for label, lead in UPCOMING_LEADS.items() if coming.start - lead <= now
    ]
    if not reached:
        return []
    lead, label = min(reached)
    events = []
    for (pool,) in conn.execute(select(pools.c.slug).order_by(pools.c.slug)):
        incoming = custodian_of(conn, pool, coming.number)
        if incoming is None or incoming == custodian_of(conn, pool, current.number):
            continue
        data = {
            "pool": pool,
            "collective": incoming,
            "cycle": {"number": coming.number, "start": format_ts(coming.start)},
            "lead": label,
            "url": links.pool(pool),
        }
        event_id = f"custody.upcoming.{pool}.{coming.number}.{label}"
        ts = format_ts(coming.start - lead)
        events.append(Event(event_id, "custody.upcoming", ts, data, (incoming,)))
    return events


def next_upcoming_at(conn: Connection, now: datetime) -> datetime:
    """The next instant a lead of ``custody.upcoming`` is reached (for the worker's sleep)."""
    schedule = load_schedule(conn)
    coming = schedule.cycle(schedule.cycle_at(now).number + 1)
    ahead = [coming.start - lead for lead in UPCOMING_LEADS.values() if coming.start - lead > now]
    return min(ahead, default=coming.start + min(UPCOMING_LEADS.values()))


def overdue_events(conn: Connection, now: datetime, links: Links) -> list[Event]:
    """``grant.urgent_overdue`` once per urgent grant still open past its deadline."""
    events = []
    schedule = load_schedule(conn)
    cycle = schedule.cycle_at(now).number
    for overdue in overdue_urgent_grants(conn, now):
        row = grant_row(conn, overdue.grant_id)
        custodian = custodian_of(conn, overdue.pool, cycle)
        data = {"grant": overdue.grant_id, "pool": overdue.pool, "amount": row.amount}
        data |= {"currency": row.currency, "urgency": "urgent", "custodian": custodian}
        data |= {"proposed_at": format_ts(overdue.proposed_at)}
        data |= {"deadline": format_ts(overdue.deadline), "url": links.entry(overdue.grant_id)}
        event_id = f"grant.urgent_overdue.{overdue.grant_id}"
        ts = format_ts(overdue.deadline)
        audience = (custodian,) if custodian else ()
        events.append(Event(event_id, "grant.urgent_overdue", ts, data, audience))
    return events


# -- the outbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subscribers:
    webhooks: list[tuple[str, str | None, frozenset[str]]]  # (id, collective, types)
    mail: list[tuple[str, str, frozenset[str]]]  # (member, collective, types)

    @classmethod
    def load(cls, conn: Connection) -> _Subscribers:
        hooks = conn.execute(
            select(
                webhook_endpoints.c.id, webhook_endpoints.c.collective, webhook_endpoints.c.events
            )
            .where(webhook_endpoints.c.disabled_ts.is_(None))
            .order_by(webhook_endpoints.c.id)
        )
        mail = conn.execute(
            select(
                email_subscriptions.c.member,
                email_subscriptions.c.collective,
                email_subscriptions.c.events,
            ).order_by(email_subscriptions.c.member)
        )
        return cls(
            [(i, c, frozenset(json.loads(t))) for i, c, t in hooks],
            [(m, c, frozenset(json.loads(t))) for m, c, t in mail],
        )

    def targets(self, event: Event) -> list[tuple[str, str]]:
        found = [
            ("webhook", hook)
            for hook, collective, types in self.webhooks
            if event.type in types
            and (collective is None or not event.audience or collective in event.audience)
        ]
        found += [
            ("email", member)
            for member, collective, types in self.mail
            if event.type in types and collective in event.audience
        ]
        return found


def record(conn: Connection, events: Sequence[Event], now: datetime) -> int:
    """Write the events that are new and have someone to tell, with their deliveries; the
    number written."""
    subscribers = _Subscribers.load(conn)
    written = 0
    created = format_ts(now)
    for event in events:
        targets = subscribers.targets(event)
        if not targets or _known(conn, event.id):
            continue
        conn.execute(
            insert(notification_events).values(
                id=event.id, type=event.type, created_ts=created, payload=event.payload()
            )
        )
        conn.execute(
            insert(deliveries),
            [
                {
                    "event_id": event.id,
                    "channel": channel,
                    "target": target,
                    "status": "pending",
                    "attempts": 0,
                    "created_ts": created,
                    "next_attempt_ts": created,
                }
                for channel, target in targets
            ],
        )
        written += 1
    return written


def _known(conn: Connection, event_id: str) -> bool:
    return bool(read_sql(conn, "SELECT 1 FROM notification_events WHERE id = ?", (event_id,)))


@dataclass
class _Found:
    """What a look at the log and the time found: the events, and the cursors past them."""

    start: dict[str, int]  # the cursors as read
    cursors: dict[str, int]
    events: list[Event]
    more: bool  # a full batch was read: look again at once


def _look(conn: Connection, now: datetime, links: Links, *, lock: bool) -> _Found | None:
    """Read the log after the cursors and look at the time; None before any subscription."""
    query = select(notification_cursors.c.name, notification_cursors.c.position)
    if lock:  # (PostgreSQL: one deriver at a time; SQLite's write lock is held already)
        query = query.with_for_update()
    rows = conn.execute(query.order_by(notification_cursors.c.name)).all()
    start = {name: int(position) for name, position in rows}
    if set(start) != set(_CURSORS):
        return None
    cursors = dict(start)
    bodies = entry_bodies(conn, cursors["entries"], _BATCH)
    signed = read_sql(
        conn,
        "SELECT size, root, ts FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?",
        (cursors["checkpoints"], _BATCH),
    )
    events: list[Event] = []
    for body in bodies:
        entry = decode_entry(body)
        events += entry_events(conn, entry, links)
        cursors["entries"] = entry.seq
    for size, root, ts in signed:
        events.append(checkpoint_event(int(size), bytes(root), ts, links))
        cursors["checkpoints"] = int(size)
    events += upcoming_events(conn, now, links) + overdue_events(conn, now, links)
    more = len(bodies) == _BATCH or len(signed) == _BATCH
    return _Found(start, cursors, events, more)


def _new(conn: Connection, found: _Found) -> bool:
    """Whether ``found`` changes anything: a cursor moves, or an event is new to someone."""
    if found.cursors != found.start:
        return True
    subscribers = _Subscribers.load(conn)
    return any(subscribers.targets(e) and not _known(conn, e.id) for e in found.events)


def derive(engine: Engine, now: datetime, links: Links) -> tuple[int, bool] | None:
    """Read the log after the cursors, look at the time, and record the events, all in one
    transaction. Returns (events written, whether entries or checkpoints are left to read);
    None before the first subscription.

    A read-only look comes first: with nothing new (the usual case, every few seconds) no
    write transaction is opened, so an idle worker never takes SQLite's write lock."""
    with engine.connect() as conn:
        found = _look(conn, now, links, lock=False)
        if found is None:
            return None
        if not _new(conn, found):
            return 0, False
    with notification_write(engine) as conn:
        found = _look(conn, now, links, lock=True)
        if found is None:
            return None
        written = record(conn, found.events, now)
        for name, position in found.cursors.items():
            conn.execute(
                update(notification_cursors)
                .where(notification_cursors.c.name == name)
                .values(position=position)
            )
        return written, found.more


class Events:
    """The worker task that derives events: every ``poll``, and at once while a backlog is
    left or a ``custody.upcoming`` lead is reached (every 30 s before any subscription)."""

    name = "events"

    def __init__(self, engine: Engine, links: Links, poll: timedelta) -> None:
        self.engine = engine
        self.links = links
        self.poll = poll
        self._next: datetime | None = None

    def next_at(self, now: datetime) -> datetime:
        return now if self._next is None else self._next

    def run(self, now: datetime) -> list[str]:
        found = derive(self.engine, now, self.links)
        if found is None:  # nobody subscribed: an idle worker stays idle
            self._next = now + _UNSUBSCRIBED_POLL
            return []
        written, more = found
        with self.engine.connect() as conn:
            upcoming = next_upcoming_at(conn, now)
        self._next = now if more else min(now + self.poll, upcoming)
        return [f"events: {written} new"] if written else []
