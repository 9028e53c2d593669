"""Recurring pledges: a donor promises an amount per cycle to a pool, anonymously.

A pledge holds a pool, a currency and an amount (minor units per lunar cycle), and nothing
personal: no name, no email, no account. Making one gives the donor an id, a secret (their
link to see or end it) and a payment reference derived from both, ``LUN-XXXX-XXXX`` (Crockford
base32, the last character a Luhn mod 32 check digit, so a mistyped reference matches nothing
rather than another pledge). The donor writes the reference in the transfer's remittance
information (bank) or as the transaction's memo (chain). The table keeps only the SHA-256 of
the secret and an HMAC of the reference under the log's fingerprint key (migration 0015).

Matching: after a bank import or a chain scan records donations, :func:`match_payments`
looks for references in what the payer wrote and links each donation to its pledge in
``pledge_payments``. The link is private: published, it would let anyone follow one donor's
payments over time. Only aggregates per pool, currency and cycle leave this module
(:func:`pledge_figures`): pledged against received, active and lapsed pledges, the expected
income of the next cycle.

Definitions (a cycle is the pool's lunar cycle, new moon to new moon):

- a pledge *counts* in cycle N when it was made in N or before and not ended in N or before;
- *pledged* in N: the sum of the amounts of the pledges that count in N;
- *received* in N: the sum of the donations recorded in N that were matched to a pledge (a
  donation corrected away no longer counts);
- a pledge that counts in N is *lapsed* when a whole cycle has passed without a payment: it was
  made before cycle N-1 began, and no payment matched to it was recorded in N-1 or in N so far
  (a new payment makes it active again); otherwise it is *active*;
- *expected next cycle*: the sum of the amounts of the pledges active in N.

Ending a pledge (by its secret) is idempotent and keeps its row; its payments stay counted as
received in their cycles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ledger.errors import NotFound, RuleViolation
from ledger.fund.commands import Fund
from ledger.fund.money import check_currency, parse_amount
from ledger.fund.schema import donations
from ledger.fund.state import load_schedule, pool_row
from ledger.log.clock import format_ts, parse_ts
from ledger.log.db import read_transaction, write_transaction
from ledger.log.schema import metadata

REFERENCE_PREFIX = "LUN"
# Crockford's base32: no I, L, O, U (read as 1, 1, 0; U is left out).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READS_AS = {"O": "0", "I": "1", "L": "1"}
# What a bank may leave of a reference: any case, the dashes kept, dropped or made spaces.
_FOUND = re.compile(r"LUN[\s\-_./]?([0-9A-Z]{4})[\s\-_./]?([0-9A-Z]{4})(?![0-9A-Z])")
_SECRET = re.compile(r"[A-Za-z0-9_\-]{20,64}\Z")
MAX_MEMO = 1000  # characters of a remittance or memo searched for references

pledges = Table(
    "pledges",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("pool", String(64), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("secret_hash", LargeBinary(32), nullable=False, unique=True),
    Column("reference_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_ts", String(27), nullable=False),
    Column("created_cycle", Integer, nullable=False),
    Column("ended_ts", String(27), nullable=True),
    Index("ix_pledges_pool", "pool"),
)

pledge_payments = Table(
    "pledge_payments",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("pledge", String(16), nullable=False),
    Column("pool", String(64), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("matched_ts", String(27), nullable=False),
    Index("ix_pledge_payments_pledge", "pledge"),
    Index("ix_pledge_payments_pool_cycle", "pool", "cycle"),
)


@dataclass(frozen=True)
class NewPledge:
    """What the donor is given once: the id, the secret and the payment reference."""

    id: str
    secret: str
    reference: str
    pool: str
    currency: str
    amount: str
    created: str


@dataclass(frozen=True)
class PledgeStatus:
    """What the secret link shows: the pledge, whether it is active, lapsed or ended, and its
    matched payments per cycle (the donor's own; never public)."""

    id: str
    reference: str
    pool: str
    currency: str
    amount: str
    created: str
    ended: str | None
    state: str  # active, lapsed, ended
    payments: tuple[tuple[int, str], ...]  # (cycle, amount received), oldest first


@dataclass(frozen=True)
class PledgeFigures:
    """A pool's pledges in one currency and cycle, aggregates only (see the module's text)."""

    currency: str
    cycle: int
    pledged: int
    received: int
    active: int
    lapsed: int
    expected_next: int


# -- references -----------------------------------------------------------------------------


def _check_character(code: str) -> str:
    """Luhn mod 32 over Crockford base32: catches every single wrong character and every
    swap of two neighbours but 0 with Z."""
    factor, total = 2, 0
    for char in reversed(code):
        addend = factor * ALPHABET.index(char)
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return ALPHABET[(32 - total % 32) % 32]


def _valid(code: str) -> bool:
    return _check_character(code[:-1]) == code[-1]


def payment_reference(pledge_id: str, secret: str) -> str:
    """The reference a pledge's payments carry: seven characters of a hash of its id and
    secret, and a check character, as ``LUN-XXXX-XXXX``."""
    digest = hashlib.sha256(f"lunaria/pledge-reference\x00{pledge_id}\x00{secret}".encode())
    number = int.from_bytes(digest.digest()[:8], "big")
    body = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in range(7))
    code = body + _check_character(body)
    return f"{REFERENCE_PREFIX}-{code[:4]}-{code[4:]}"


def find_references(text: str) -> list[str]:
    """The well-formed pledge references in what a payer wrote, canonical (``LUN-XXXX-XXXX``),
    in order and without repeats: any case, dashes kept, dropped or replaced by a space;
    O, I and L read as 0, 1 and 1; a wrong check character is no reference."""
    found: list[str] = []
    upper = text[:MAX_MEMO].upper()
    for match in _FOUND.finditer(upper):
        code = "".join(_READS_AS.get(c, c) for c in match.group(1) + match.group(2))
        if "U" in code or not _valid(code):
            continue
        reference = f"{REFERENCE_PREFIX}-{code[:4]}-{code[4:]}"
        if reference not in found:
            found.append(reference)
    return found


def _reference_hash(key: bytes, reference: str) -> bytes:
    return hmac.new(key, b"lunaria/pledge\x00" + reference.encode(), hashlib.sha256).digest()


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(f"lunaria/pledge-secret\x00{secret}".encode()).digest()


# -- making, seeing and ending a pledge -------------------------------------------------------


def create_pledge(fund: Fund, pool: str, currency: Any, amount: Any) -> NewPledge:
    """Keep a new pledge of ``amount`` (minor units, a digit string) of ``currency`` per cycle
    to ``pool``. Raises NotFound for an unknown pool, RuleViolation for a currency the pool
    does not take or an invalid amount; nothing is written then."""
    engine = fund.log.engine
    now = fund.log.clock.now()
    currency = check_currency(currency)
    digits = str(parse_amount(amount, currency))
    with read_transaction(engine) as conn:
        accepted = pool_row(conn, pool).currencies
        if currency not in _json_list(accepted):
            raise RuleViolation(f"pool {pool!r} does not take {currency}", "currency_not_accepted")
        cycle = load_schedule(conn).cycle_at(now).number
    for _ in range(8):  # a new reference that collides with another is drawn again
        pledge_id = "".join(secrets.choice(ALPHABET) for _ in range(10))
        secret = secrets.token_urlsafe(24)
        reference = payment_reference(pledge_id, secret)
        try:
            with write_transaction(engine) as conn:
                conn.execute(
                    insert(pledges).values(
                        id=pledge_id,
                        pool=pool,
                        currency=currency,
                        amount=digits,
                        secret_hash=_secret_hash(secret),
                        reference_hash=_reference_hash(fund.log.fingerprint_key, reference),
                        created_ts=format_ts(now),
                        created_cycle=cycle,
                        ended_ts=None,
                    )
                )
        except IntegrityError:
            continue
        return NewPledge(pledge_id, secret, reference, pool, currency, digits, format_ts(now))
    raise RuleViolation("no free payment reference was found; try again", "duplicate")


def _json_list(text: str) -> list[str]:
    value = json.loads(text)
    return [str(v) for v in value]


def _row_by_secret(conn: Connection, secret: str) -> Any:
    if not isinstance(secret, str) or not _SECRET.match(secret):
        raise NotFound("no pledge has that secret")
    row = conn.execute(
        select(pledges).where(pledges.c.secret_hash == _secret_hash(secret))
    ).one_or_none()
    if row is None:
        raise NotFound("no pledge has that secret")
    return row


def pledge_status(fund: Fund, secret: str) -> PledgeStatus:
    """The pledge whose secret is ``secret`` (NotFound otherwise), with its payments."""
    now = fund.log.clock.now()
    with read_transaction(fund.log.engine) as conn:
        row = _row_by_secret(conn, secret)
        return _status(conn, row, secret, now)


def end_pledge(fund: Fund, secret: str) -> PledgeStatus:
    """End the pledge whose secret is ``secret``; ending it again changes nothing."""
    now = fund.log.clock.now()
    with write_transaction(fund.log.engine) as conn:
        row = _row_by_secret(conn, secret)
        if row.ended_ts is None:
            conn.execute(
                update(pledges)
                .where(pledges.c.id == row.id, pledges.c.ended_ts.is_(None))
                .values(ended_ts=format_ts(now))
            )
            row = conn.execute(select(pledges).where(pledges.c.id == row.id)).one()
        return _status(conn, row, secret, now)


def _status(conn: Connection, row: Any, secret: str, now: datetime) -> PledgeStatus:
    received = _received_by_cycle(conn, [row.id])
    mine = received.get(row.id, {})
    schedule = load_schedule(conn)
    cycle = schedule.cycle_at(now).number
    if row.ended_ts is not None:
        state = "ended"
    elif _lapsed(row.created_cycle, mine, cycle):
        state = "lapsed"
    else:
        state = "active"
    return PledgeStatus(
        id=row.id,
        reference=payment_reference(row.id, secret),
        pool=row.pool,
        currency=row.currency,
        amount=row.amount,
        created=row.created_ts,
        ended=row.ended_ts,
        state=state,
        payments=tuple((c, str(amount)) for c, amount in sorted(mine.items())),
    )


def _lapsed(created_cycle: int, paid: Mapping[int, int], cycle: int) -> bool:
    """Made before the last full cycle began, and nothing matched in it nor in this one."""
    return created_cycle < cycle - 1 and not (paid.get(cycle - 1) or paid.get(cycle))


def _received_by_cycle(conn: Connection, ids: Sequence[str]) -> dict[str, dict[int, int]]:
    """Per pledge, the matched donations per cycle (those not corrected away)."""
    query = (
        select(pledge_payments.c.pledge, pledge_payments.c.cycle, pledge_payments.c.amount)
        .join(donations, donations.c.seq == pledge_payments.c.seq)
        .where(pledge_payments.c.pledge.in_(ids), donations.c.corrected_seq.is_(None))
    )
    found: dict[str, dict[int, int]] = {}
    for pledge, cycle, amount in conn.execute(query).all():
        per_cycle = found.setdefault(pledge, {})
        per_cycle[int(cycle)] = per_cycle.get(int(cycle), 0) + int(amount)
    return found


# -- matching ---------------------------------------------------------------------------------


def match_payments(fund: Fund, pool: str, paid: Iterable[tuple[int, str]]) -> int:
    """Link each recorded donation of ``pool`` (its seq, and what the payer wrote) whose text
    holds a pledge's reference to that pledge, in the pledge's currency; a donation already
    linked stays as it is (so matching again, e.g. on re-importing a statement, is safe).
    Returns the number of new links."""
    key = fund.log.fingerprint_key
    wanted: dict[int, list[bytes]] = {}
    for seq, text in paid:
        hashes = [_reference_hash(key, r) for r in find_references(text or "")]
        if hashes:
            wanted[int(seq)] = hashes
    if not wanted:
        return 0
    now = format_ts(fund.log.clock.now())
    with write_transaction(fund.log.engine) as conn:
        linked = set(
            conn.execute(
                select(pledge_payments.c.seq).where(pledge_payments.c.seq.in_(list(wanted)))
            ).scalars()
        )
        recorded = {
            int(r.seq): r
            for r in conn.execute(
                select(
                    donations.c.seq, donations.c.currency, donations.c.amount, donations.c.cycle
                ).where(donations.c.seq.in_(list(wanted)), donations.c.pool == pool)
            ).all()
        }
        all_hashes = {h for hashes in wanted.values() for h in hashes}
        owners = {
            bytes(r.reference_hash): r
            for r in conn.execute(
                select(pledges.c.id, pledges.c.currency, pledges.c.reference_hash).where(
                    pledges.c.reference_hash.in_(list(all_hashes)), pledges.c.pool == pool
                )
            ).all()
        }
        rows = []
        for seq, hashes in wanted.items():
            donation = recorded.get(seq)
            if seq in linked or donation is None:
                continue
            for h in hashes:
                owner = owners.get(h)
                if owner is not None and owner.currency == donation.currency:
                    rows.append(
                        {
                            "seq": seq,
                            "pledge": owner.id,
                            "pool": pool,
                            "currency": donation.currency,
                            "amount": donation.amount,
                            "cycle": int(donation.cycle),
                            "matched_ts": now,
                        }
                    )
                    break
        if rows:
            conn.execute(insert(pledge_payments), rows)
    return len(rows)


def pledged_currencies(engine: Engine) -> set[tuple[str, str]]:
    """The (pool, currency) pairs that have a pledge: where a payment could be a pledge's (a
    chain scan reads transactions' memos only there)."""
    with engine.connect() as conn:
        rows = conn.execute(select(pledges.c.pool, pledges.c.currency).distinct()).all()
    return {(str(pool), str(currency)) for pool, currency in rows}


# -- aggregates -------------------------------------------------------------------------------


def pledge_figures(
    conn: Connection, pool: str, cycle: int, currencies: Sequence[str]
) -> list[PledgeFigures]:
    """Per currency of ``currencies``, the pool's pledges in ``cycle``: pledged against
    received, active and lapsed, expected next cycle (definitions in the module's text).
    Aggregates only: nothing here tells one pledge, or one donor, from another."""
    schedule = load_schedule(conn)
    rows = conn.execute(
        select(
            pledges.c.id,
            pledges.c.currency,
            pledges.c.amount,
            pledges.c.created_cycle,
            pledges.c.ended_ts,
        ).where(pledges.c.pool == pool, pledges.c.created_cycle <= cycle)
    ).all()
    counting = [
        r
        for r in rows
        if r.ended_ts is None or schedule.cycle_at(parse_ts(r.ended_ts)).number > cycle
    ]
    paid = _received_by_cycle(conn, [r.id for r in counting])
    figures = {c: PledgeFigures(c, cycle, 0, 0, 0, 0, 0) for c in currencies}
    for r in counting:
        f = figures.get(r.currency)
        if f is None:
            continue
        amount = int(r.amount)
        lapsed = _lapsed(int(r.created_cycle), paid.get(r.id, {}), cycle)
        figures[r.currency] = PledgeFigures(
            f.currency,
            cycle,
            f.pledged + amount,
            f.received,
            f.active + (0 if lapsed else 1),
            f.lapsed + (1 if lapsed else 0),
            f.expected_next + (0 if lapsed else amount),
        )
    received = conn.execute(
        select(pledge_payments.c.currency, pledge_payments.c.amount)
        .join(donations, donations.c.seq == pledge_payments.c.seq)
        .where(
            pledge_payments.c.pool == pool,
            pledge_payments.c.cycle == cycle,
            donations.c.corrected_seq.is_(None),
        )
    ).all()
    for currency, amount in received:
        f = figures.get(currency)
        if f is not None:
            figures[currency] = PledgeFigures(
                f.currency,
                f.cycle,
                f.pledged,
                f.received + int(amount),
                f.active,
                f.lapsed,
                f.expected_next,
            )
    return [figures[c] for c in currencies]


def pool_pledge_figures(engine: Engine, pool: str, now: datetime) -> list[PledgeFigures]:
    """:func:`pledge_figures` of the cycle in force at ``now``, in the pool's currencies
    (NotFound for an unknown pool)."""
    with read_transaction(engine) as conn:
        row = pool_row(conn, pool)
        cycle = load_schedule(conn).cycle_at(now).number
        return pledge_figures(conn, pool, cycle, _json_list(row.currencies))


def cycle_pledge_figures(engine: Engine, pool: str, cycle: int) -> list[PledgeFigures]:
    """:func:`pledge_figures` of cycle ``cycle`` (for the handover statement of a cycle)."""
    with read_transaction(engine) as conn:
        row = pool_row(conn, pool)
        return pledge_figures(conn, pool, cycle, _json_list(row.currencies))
