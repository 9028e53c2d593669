"""Grant requests from outside: asked without an account, kept out of the log until a member
of the pool's custodian proposes one as a grant (or declines it).

A request holds what a proposal needs (pool, amount, currency, urgency, a public purpose
screened as all public text is) and, apart, the requester's contact details, sealed in
``private_records`` (kind ``grant_request``, seq 0: no entry stands behind it) so they can be
erased like any other personal data. Only the custodian's members see the intake list and the
contact; proposing the request hands the contact on as the grant's private recipient details.
The requester keeps a secret status link; its SHA-256 is all the table holds of it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    insert,
    select,
    update,
)

from ledger.errors import NotFound, RuleViolation
from ledger.fund.commands import Fund
from ledger.fund.money import check_currency, parse_amount
from ledger.fund.privacy import PrivateRecord, commitment, keep_private, new_salt, private_record
from ledger.fund.rules import URGENCIES, Actor, Outcome, check_public_text, check_text
from ledger.fund.state import custodian_of, grant_row, load_schedule, pool_row
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.clock import format_ts
from ledger.log.db import write_transaction
from ledger.log.schema import metadata

INTAKE_STATUSES = ("received", "proposed", "declined")
MAX_PURPOSE = 2000
MAX_REASON = 200
MAX_CONTACT = 1000
_KEY = BigInteger().with_variant(Integer(), "sqlite")

grant_requests = Table(
    "grant_requests",
    metadata,
    Column("id", _KEY, primary_key=True, autoincrement=True),
    Column("pool", String(64), nullable=False, index=True),
    Column("amount", String(40), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("urgency", String(10), nullable=False),
    Column("urgency_reason", Text, nullable=True),
    Column("purpose", Text, nullable=False),
    Column("contact_commitment", String(64), nullable=False),
    Column("status_hash", LargeBinary(32), nullable=False, unique=True),
    Column("status", String(10), nullable=False),
    Column("grant_id", BigInteger, nullable=True),
    Column("created_ts", String(27), nullable=False),
    Column("decided_ts", String(27), nullable=True),
)


@dataclass(frozen=True)
class IntakeRequest:
    """A request as the custodian's members see it (the contact opened from the vault)."""

    id: int
    pool: str
    amount: str
    currency: str
    urgency: str
    urgency_reason: str | None
    purpose: str
    contact: str | None  # None once erased
    status: str
    grant_id: int | None
    created: str


@dataclass(frozen=True)
class RequestStatus:
    """What the requester's status link shows: received, proposed, decided, paid."""

    pool: str
    amount: str
    currency: str
    created: str
    step: str  # received, proposed, declined, approved, rejected, paid, cancelled
    grant_id: int | None


def _status_hash(secret: str) -> bytes:
    return hashlib.sha256(f"lunaria/grant-request\x00{secret}".encode()).digest()


def _checked(conn: Connection, pool: str, ask: Mapping[str, Any]) -> dict[str, Any]:
    currency = check_currency(ask.get("currency"))
    if currency not in json.loads(pool_row(conn, pool).currencies):
        raise RuleViolation(f"pool {pool!r} does not take {currency}", "currency_not_accepted")
    urgency = ask.get("urgency", "normal")
    if urgency not in URGENCIES:
        raise RuleViolation(f"urgency must be one of {URGENCIES}", "invalid_urgency")
    reason = ask.get("urgency_reason") or None
    if urgency == "urgent" and reason is None:
        raise RuleViolation("an urgent request says why in a few words", "invalid_text")
    if reason is not None:
        check_text(reason, "urgency_reason", MAX_REASON)
    return {
        "pool": pool,
        "amount": str(parse_amount(ask.get("amount"), currency)),
        "currency": currency,
        "urgency": urgency,
        "urgency_reason": reason,
        "purpose": check_public_text(ask.get("purpose"), "purpose", MAX_PURPOSE, one_line=False),
    }


def submit_request(
    log: Log, vault: Vault, pool: str, ask: Mapping[str, Any], now: datetime
) -> tuple[int, str]:
    """Keep a request from outside: ``(id, status secret)``. Nothing enters the log. The
    contact is sealed under the log's write lock, as every private record is (see
    :func:`ledger.fund.privacy.erase`)."""
    contact = check_text(ask.get("contact"), "contact", MAX_CONTACT)
    secret = secrets.token_urlsafe(32)
    salt = new_salt()
    contact_key = commitment(salt, contact)
    with log.writer() as writer:
        values = _checked(writer.conn, pool, ask)
        record = PrivateRecord(contact_key, "grant_request", salt, {"contact": contact}, 0)
        keep_private(writer.conn, vault, [record])
        found = writer.conn.execute(
            insert(grant_requests)
            .values(
                **values,
                contact_commitment=contact_key,
                status_hash=_status_hash(secret),
                status="received",
                created_ts=format_ts(now),
            )
            .returning(grant_requests.c.id)
        )
        request_id = int(found.scalar_one())
    return request_id, secret


def request_status(engine: Engine, secret: str) -> RequestStatus:
    """The status behind a requester's secret link."""
    with engine.connect() as conn:
        row = conn.execute(
            select(grant_requests).where(grant_requests.c.status_hash == _status_hash(secret))
        ).first()
        if row is None:
            raise NotFound("no grant request has this link")
        step = row.status
        if row.grant_id is not None:
            grant = grant_row(conn, int(row.grant_id))
            step = {"disbursed": "paid"}.get(grant.status, grant.status)
    return RequestStatus(
        row.pool,
        row.amount,
        row.currency,
        row.created_ts,
        step,
        None if row.grant_id is None else int(row.grant_id),
    )


def _custodian_pools(conn: Connection, collective: str, now: datetime) -> list[str]:
    number = load_schedule(conn).cycle_at(now).number
    slugs = conn.execute(select(grant_requests.c.pool).distinct()).scalars().all()
    return [p for p in slugs if custodian_of(conn, p, number) == collective]


def intake_list(engine: Engine, vault: Vault, actor: Actor, now: datetime) -> list[IntakeRequest]:
    """The requests waiting in the pools the actor's collective holds now, oldest first,
    urgent ones before (private: for the custodian's members only)."""
    if actor.collective is None:
        return []
    with engine.connect() as conn:
        held = _custodian_pools(conn, actor.collective, now)
        rows = conn.execute(
            select(grant_requests)
            .where(and_(grant_requests.c.pool.in_(held), grant_requests.c.status == "received"))
            .order_by(grant_requests.c.urgency.desc(), grant_requests.c.id)
        ).all()
        return [_intake(conn, vault, row) for row in rows]


def _intake(conn: Connection, vault: Vault, row: Any) -> IntakeRequest:
    record = private_record(conn, vault, row.contact_commitment)
    return IntakeRequest(
        id=int(row.id),
        pool=row.pool,
        amount=row.amount,
        currency=row.currency,
        urgency=row.urgency,
        urgency_reason=row.urgency_reason,
        purpose=row.purpose,
        contact=None if record is None else str(record.payload["contact"]),
        status=row.status,
        grant_id=None if row.grant_id is None else int(row.grant_id),
        created=row.created_ts,
    )


def _waiting(conn: Connection, actor: Actor, request_id: int, now: datetime) -> Any:
    """The request, still received, in a pool the actor's collective holds now."""
    row = conn.execute(select(grant_requests).where(grant_requests.c.id == request_id)).first()
    if row is None:
        raise NotFound(f"no grant request {request_id}")
    number = load_schedule(conn).cycle_at(now).number
    if actor.collective is None or custodian_of(conn, row.pool, number) != actor.collective:
        raise RuleViolation(
            "only members of the pool's current custodian handle its requests", "not_custodian"
        )
    if row.status != "received":
        raise RuleViolation(f"request {request_id} is {row.status} already", "request_closed")
    return row


def propose_request(
    fund: Fund, actor: Actor, request_id: int, recipient: str, now: datetime
) -> Outcome:
    """A custodian member proposes the request as a grant: its purpose goes to the log (as
    public text), its contact to the grant's private recipient details."""
    engine = fund.log.engine
    with engine.connect() as conn:
        row = _waiting(conn, actor, request_id, now)
        record = private_record(conn, fund.vault, row.contact_commitment)
    proposal = {
        "amount": row.amount,
        "currency": row.currency,
        "purpose": row.purpose,
        "urgency": row.urgency,
        "recipient": recipient,
        **({} if record is None else {"recipient_details": record.payload["contact"]}),
    }
    outcome = fund.propose_grant(actor, row.pool, proposal, f"grant-request|{request_id}")
    _close(engine, request_id, "proposed", now, grant_id=outcome.seq)
    return outcome


def decline_request(engine: Engine, actor: Actor, request_id: int, now: datetime) -> None:
    with engine.connect() as conn:
        _waiting(conn, actor, request_id, now)
    _close(engine, request_id, "declined", now)


def _close(
    engine: Engine, request_id: int, status: str, now: datetime, grant_id: int | None = None
) -> None:
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(grant_requests)
            .where(and_(grant_requests.c.id == request_id, grant_requests.c.status == "received"))
            .values(status=status, grant_id=grant_id, decided_ts=format_ts(now))
        )
    if done.rowcount != 1 and status == "declined":
        raise RuleViolation(f"request {request_id} was handled already", "request_closed")
