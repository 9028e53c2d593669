"""The fund: pools, collectives, lunar custody, donations and grants, as log entries.

Every command runs in one write transaction on the log: first any handover that is due (so
custody is always current), then the rule checks against the projections, then the entry,
applied to the projections by :func:`ledger.projections.apply_entry`. A broken rule raises
:class:`RuleViolation` with a stable code, and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, select

from ledger.clock import format_ts, parse_ts
from ledger.db import read_sql, write_sql
from ledger.entry import CanonicalData, Entry, encode_data
from ledger.errors import LedgerError, NotFound, RuleViolation
from ledger.group_commit import GroupCommit, RetryAlone
from ledger.log import Log, LogWriter
from ledger.lunar import Cycle, LunarSchedule
from ledger.money import check_currency, move, move_json, parse_amount, postings_json
from ledger.privacy import PrivateRecord, commitment, keep_private, new_salt, new_salts
from ledger.projections import apply_entries, apply_entry
from ledger.schema import (
    balances,
    collectives,
    cycle_flows,
    cycles,
    donations,
    grants,
    members,
    pools,
    rosters,
    votes,
)

ROLES = ("admin", "treasurer", "member", "applicant")
CHANNELS = ("bank", "crypto", "cash")
URGENCIES = ("normal", "urgent")
VOTES = ("approve", "reject")
MAX_BATCH = 1000
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
_PSEUDONYM = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?\Z")
_EMAILISH = re.compile(r"@|\d{6,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Actor:
    """Who asks: the pseudonymous id written in the log, the role, and a member's collective."""

    id: str
    role: str
    collective: str | None = None
    member: str | None = None


def member_actor(member: str) -> str:
    """The log's actor id for a member: their public pseudonym."""
    return f"member:{member}"


@dataclass(frozen=True)
class Outcome:
    """The first entry a command wrote (or, replayed by idempotency key, wrote before).

    Donations also carry what their receipts need, so the answer is built without reading
    back what was just written: the entries and their receipt salts by seq (both empty when
    replayed)."""

    seq: int
    replayed: bool
    written: tuple[Entry, ...] = ()
    salts: Mapping[int, bytes] = field(default_factory=dict)


def check_slug(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise RuleViolation(
            f"{field} must be 1-64 lowercase letters, digits or '-', got {value!r}",
            code="invalid_slug",
        )
    return value


def check_pseudonym(value: Any, field: str) -> str:
    """Pseudonyms reach the public log: refuse what looks like an email or account number."""
    if not isinstance(value, str) or not _PSEUDONYM.match(value) or _EMAILISH.search(value):
        raise RuleViolation(
            f"{field} must be a pseudonym of 1-64 characters [a-z0-9._-] with no email address "
            f"or long number in it, got {value!r}",
            code="invalid_pseudonym",
        )
    return value


def check_text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise RuleViolation(f"{field} must be 1-{limit} characters", code="invalid_text")
    if _CONTROL.search(value):
        raise RuleViolation(f"{field} contains control characters", code="invalid_text")
    return value


def require_role(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise RuleViolation(
            f"this needs the role {' or '.join(roles)}; the token has {actor.role}",
            code="forbidden",
        )


def cycle_json(cycle: Cycle) -> dict[str, Any]:
    return {"number": cycle.number, "start": format_ts(cycle.start), "end": format_ts(cycle.end)}


# -- reads used by the rules (and the API) --------------------------------------------------


@lru_cache(maxsize=4096)
def _boundary_instant(text: str) -> datetime:
    """parse_ts for persisted boundaries, which every write transaction reads and never change."""
    return parse_ts(text)


def persisted_boundaries(conn: Connection) -> dict[int, datetime]:
    rows = read_sql(conn, "SELECT lunation, starts_at FROM lunar_boundaries")
    return {number: _boundary_instant(ts) for number, ts in rows}


def load_schedule(conn: Connection) -> LunarSchedule:
    return LunarSchedule(persisted_boundaries(conn))


class KnownBoundaries:
    """The persisted lunar boundaries as last read, so a write need not read them every time.

    ``lunar_boundaries`` is append-only (triggers refuse UPDATE and DELETE), so a row once read
    stays true; only rows added since can be missing, and a schedule that lacks one (it would
    compute it) reads the table again rather than trust its own computation.
    """

    def __init__(self) -> None:
        self._known: dict[int, datetime] = {}

    def _settled(self, now: datetime) -> LunarSchedule | None:
        """A schedule of the boundaries read so far, if they settle the cycle at ``now``."""
        schedule = LunarSchedule(self._known)
        schedule.cycle_at(now)
        return None if schedule.new_boundaries else schedule

    def cycle_number(self, now: datetime) -> int | None:
        """The cycle at ``now`` if the boundaries read so far settle it, else None (only a
        write transaction, which reads them, can tell)."""
        schedule = self._settled(now)
        return None if schedule is None else schedule.cycle_at(now).number

    def schedule(self, conn: Connection, now: datetime, *, reread: bool = False) -> LunarSchedule:
        """A schedule holding every persisted boundary it needs around ``now``."""
        schedule = None if reread else self._settled(now)
        if schedule is None:
            self._known = persisted_boundaries(conn)
            schedule = LunarSchedule(self._known)
        return schedule


class PoolRow(NamedTuple):
    """A row of ``pools`` (JSON columns as stored)."""

    slug: str
    name: str
    currencies: str
    fast_lane_cap: str
    cycle_allowance: str
    created_seq: int
    created_cycle: int
    current_cycle: int


# Every write names its pool: one plain statement rather than a SQLAlchemy select.
_POOL = f"SELECT {', '.join(PoolRow._fields)} FROM pools WHERE slug = ?"


def pool_row(conn: Connection, slug: str) -> PoolRow:
    rows = read_sql(conn, _POOL, (slug,))
    if not rows:
        raise NotFound(f"no pool {slug!r}")
    return PoolRow(*rows[0])


def grant_row(conn: Connection, grant_id: int) -> Any:
    row = conn.execute(select(grants).where(grants.c.id == grant_id)).one_or_none()
    if row is None:
        raise NotFound(f"no grant {grant_id}")
    return row


def roster_for(conn: Connection, pool: str, cycle: int) -> Any:
    """The roster in force in ``cycle``: the latest one effective at or before it."""
    return conn.execute(
        select(rosters)
        .where(and_(rosters.c.pool == pool, rosters.c.effective_cycle <= cycle))
        .order_by(rosters.c.seq.desc())
        .limit(1)
    ).one_or_none()


def custodian_of(conn: Connection, pool: str, cycle: int) -> str | None:
    """roster[(n - first cycle of the roster) mod len(roster)], or None with no roster."""
    roster = roster_for(conn, pool, cycle)
    if roster is None:
        return None
    order: list[str] = json.loads(roster.collectives)
    return str(order[(cycle - roster.effective_cycle) % len(order)])


def active_members(conn: Connection, collective: str) -> list[str]:
    rows = conn.execute(
        select(members.c.id).where(and_(members.c.collective == collective, members.c.active == 1))
    )
    return sorted(member for (member,) in rows)


def quorum_of(conn: Connection, collective: str) -> int:
    """The collective's policy: a fixed number, or a majority of its active members."""
    fixed = conn.execute(
        select(collectives.c.quorum).where(collectives.c.slug == collective)
    ).scalar()
    return int(fixed) if fixed else len(active_members(conn, collective)) // 2 + 1


def balance(conn: Connection, pool: str, currency: str, account: str) -> int:
    amount = conn.execute(
        select(balances.c.amount).where(
            and_(
                balances.c.pool == pool,
                balances.c.currency == currency,
                balances.c.account == account,
            )
        )
    ).scalar()
    return int(amount or 0)


def flows_of(conn: Connection, pool: str, cycle: int) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        select(cycle_flows).where(and_(cycle_flows.c.pool == pool, cycle_flows.c.cycle == cycle))
    )
    return {
        r.currency: {
            "donations": int(r.donations),
            "disbursements": int(r.disbursements),
            "corrections": int(r.corrections),
            "fast_lane_used": int(r.fast_lane_used),
        }
        for r in rows
    }


def open_votes(conn: Connection, grant_id: int) -> list[Any]:
    return list(
        conn.execute(
            select(votes)
            .where(and_(votes.c.grant_id == grant_id, votes.c.void == 0))
            .order_by(votes.c.seq)
        )
    )


# -- the write transaction ------------------------------------------------------------------


class FundTransaction:
    """A log write transaction that also keeps the projections and lunar custody current."""

    def __init__(self, writer: LogWriter, boundaries: KnownBoundaries) -> None:
        self.writer = writer
        self.conn = writer.conn
        self.now: datetime = writer.now
        self._boundaries = boundaries
        self.schedule = boundaries.schedule(self.conn, self.now)
        self.cycle = self.schedule.cycle_at(self.now)

    def emit(self, kind: str, data: dict[str, Any], actor: str) -> Entry:
        entry = self.writer.append(kind, data, actor)
        apply_entry(self.conn, entry)
        return entry

    def emit_all(
        self, kind: str, items: Iterable[dict[str, Any] | CanonicalData], actor: str
    ) -> list[Entry]:
        """Append one entry per item, in order, then apply them to the projections together
        (a batch writes each projection row once). An item that fails to check or encode
        stops it, with nothing written, as emitting them one by one would."""
        append = self.writer.append
        entries = [append(kind, data, actor) for data in items]
        apply_entries(self.conn, entries)
        return entries

    def apply_due_handovers(self) -> list[Entry]:
        """Append every handover due by now, oldest first, for every pool."""
        due = read_sql(
            self.conn,
            "SELECT slug, current_cycle FROM pools WHERE current_cycle < ? ORDER BY slug",
            (self.cycle.number,),
        )
        if due:  # past cycles are about to be written down: from every persisted boundary
            self.schedule = self._boundaries.schedule(self.conn, self.now, reread=True)
            self.cycle = self.schedule.cycle_at(self.now)
        handovers = []
        for slug, current in due:
            for number in range(current + 1, self.cycle.number + 1):
                handovers.append(self._hand_over(slug, number))
        if handovers:
            self.writer.request_checkpoint()
        return handovers

    def _hand_over(self, pool: str, number: int) -> Entry:
        closing_cycle = self.conn.execute(
            select(cycles).where(and_(cycles.c.pool == pool, cycles.c.number == number - 1))
        ).one()
        statement = self._statement(pool, closing_cycle)
        outgoing = closing_cycle.custodian
        incoming = custodian_of(self.conn, pool, number)
        undecided = [
            gid
            for (gid,) in self.conn.execute(
                select(grants.c.id)
                .where(and_(grants.c.pool == pool, grants.c.status == "proposed"))
                .order_by(grants.c.id)
            )
        ]
        voided: list[int] = []
        if outgoing != incoming and undecided:
            voided = [
                seq
                for (seq,) in self.conn.execute(
                    select(votes.c.seq)
                    .where(
                        and_(
                            votes.c.grant_id.in_(undecided),
                            votes.c.void == 0,
                            votes.c.collective == outgoing,
                        )
                    )
                    .order_by(votes.c.seq)
                )
            ]
        approved = [
            gid
            for (gid,) in self.conn.execute(
                select(grants.c.id)
                .where(and_(grants.c.pool == pool, grants.c.status == "approved"))
                .order_by(grants.c.id)
            )
        ]
        data = {
            "pool": pool,
            "cycle": cycle_json(self.schedule.cycle(number)),
            "closed": {"number": number - 1, "statement": statement},
            "from": outgoing,
            "to": incoming,
            "carried_over": undecided,
            "committed_grants": approved,
            "voided_votes": voided,
        }
        return self.emit("custody_transferred", data, "scheduler")

    def _statement(self, pool: str, closing_cycle: Any) -> dict[str, dict[str, str]]:
        """Roll-forward per currency: opening + donations - disbursements + corrections."""
        opening: dict[str, str] = json.loads(closing_cycle.opening)
        flows = flows_of(self.conn, pool, closing_cycle.number)
        statement = {}
        for currency in sorted(set(opening) | set(flows)):
            flow = flows.get(currency, {"donations": 0, "disbursements": 0, "corrections": 0})
            start = int(opening.get(currency, "0"))
            closing = start + flow["donations"] - flow["disbursements"] + flow["corrections"]
            available = balance(self.conn, pool, currency, "available")
            committed = balance(self.conn, pool, currency, "committed")
            if closing != available + committed:
                raise LedgerError(
                    f"{pool} {currency}: roll-forward gives {closing} but the books hold "
                    f"{available + committed}; refusing to hand over inconsistent books"
                )
            statement[currency] = {
                "opening": str(start),
                "donations": str(flow["donations"]),
                "disbursements": str(flow["disbursements"]),
                "corrections": str(flow["corrections"]),
                "closing": str(closing),
                "committed": str(committed),
                "available": str(available),
            }
        return statement

    def persist_schedule(self) -> None:
        """Freeze newly computed new-moon boundaries: a later ephem must never move them."""
        computed = self.schedule.new_boundaries
        if not computed:
            return
        known = set(persisted_boundaries(self.conn))
        fresh = [(n, format_ts(start)) for n, start in computed.items() if n not in known]
        if fresh:
            write_sql(
                self.conn,
                "INSERT INTO lunar_boundaries (lunation, starts_at) VALUES (?, ?)",
                fresh,
                many=True,
            )


class Fund:
    """Commands on the fund. Each returns the :class:`Outcome` of its first entry."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.boundaries = KnownBoundaries()
        self._singles = GroupCommit(self._record_singles, limit=MAX_BATCH)

    @contextmanager
    def transaction(self) -> Iterator[FundTransaction]:
        with self.log.writer() as writer:
            tx = FundTransaction(writer, self.boundaries)
            tx.apply_due_handovers()
            yield tx
            tx.persist_schedule()

    def _run(
        self,
        actor: Actor,
        idempotency_key: str | None,
        request: Mapping[str, Any],
        command: Callable[[FundTransaction], Entry],
    ) -> Outcome:
        scoped = _scoped_key(actor, idempotency_key)
        with self.transaction() as tx:
            if scoped is not None:
                seq = tx.writer.find_idempotent(scoped, request)
                if seq is not None:
                    return Outcome(seq, replayed=True)
            entry = command(tx)
            if scoped is not None:
                tx.writer.remember(scoped, request, entry.seq)
            return Outcome(entry.seq, replayed=False)

    def rotate(self) -> list[Entry]:
        """Append every due handover (cron-safe: runs serialised on the log's write lock)."""
        with self.log.writer() as writer:
            tx = FundTransaction(writer, self.boundaries)
            handovers = tx.apply_due_handovers()
            tx.persist_schedule()
            return handovers

    # -- organisation ---------------------------------------------------------------------

    def create_pool(
        self,
        actor: Actor,
        *,
        slug: str,
        name: str,
        currencies: Sequence[str],
        fast_lane_cap: Mapping[str, str] | None = None,
        cycle_allowance: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin")
        check_slug(slug, "slug")
        check_text(name, "name", 200)
        if not currencies or len(set(currencies)) != len(currencies):
            raise RuleViolation(
                "currencies must be a non-empty list without repeats", "invalid_currencies"
            )
        for currency in currencies:
            check_currency(currency)
        caps = _amount_map(fast_lane_cap or {}, currencies, "fast_lane_cap")
        allowances = _amount_map(cycle_allowance or {}, currencies, "cycle_allowance")
        request = {
            "slug": slug,
            "name": name,
            "currencies": list(currencies),
            "fast_lane_cap": caps,
            "cycle_allowance": allowances,
        }

        def command(tx: FundTransaction) -> Entry:
            if tx.conn.execute(select(pools.c.slug).where(pools.c.slug == slug)).first():
                raise RuleViolation(f"a pool {slug!r} exists already", code="duplicate")
            return tx.emit("pool_created", {**request, "cycle": cycle_json(tx.cycle)}, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def register_collective(
        self,
        actor: Actor,
        *,
        slug: str,
        name: str,
        quorum: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin")
        check_slug(slug, "slug")
        check_text(name, "name", 200)
        if quorum is not None and (isinstance(quorum, bool) or not 1 <= quorum <= 1000):
            raise RuleViolation("quorum must be a whole number from 1 to 1000", "invalid_quorum")
        request = {"slug": slug, "name": name, "quorum": quorum}

        def command(tx: FundTransaction) -> Entry:
            exists = tx.conn.execute(select(collectives.c.slug).where(collectives.c.slug == slug))
            if exists.first():
                raise RuleViolation(f"a collective {slug!r} exists already", code="duplicate")
            return tx.emit("collective_registered", request, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def add_member(
        self,
        actor: Actor,
        collective: str,
        *,
        member: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin")
        check_pseudonym(member, "member")
        request = {"collective": collective, "member": member}

        def command(tx: FundTransaction) -> Entry:
            _collective_exists(tx.conn, collective)
            if tx.conn.execute(select(members.c.id).where(members.c.id == member)).first():
                raise RuleViolation(f"a member {member!r} exists already", code="duplicate")
            return tx.emit("member_added", request, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def remove_member(
        self, actor: Actor, collective: str, member: str, idempotency_key: str | None = None
    ) -> Outcome:
        require_role(actor, "admin")
        request = {"collective": collective, "member": member}

        def command(tx: FundTransaction) -> Entry:
            row = tx.conn.execute(
                select(members).where(
                    and_(members.c.id == member, members.c.collective == collective)
                )
            ).one_or_none()
            if row is None or not row.active:
                raise NotFound(f"no active member {member!r} in {collective!r}")
            return tx.emit("member_removed", request, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def set_roster(
        self,
        actor: Actor,
        pool: str,
        order: Sequence[str],
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Custody order; applies from the next cycle (at once for a pool with no custodian)."""
        require_role(actor, "admin")
        if not order or len(set(order)) != len(order):
            raise RuleViolation(
                "a roster is a non-empty list of distinct collectives", code="invalid_roster"
            )
        request = {"pool": pool, "collectives": list(order)}

        def command(tx: FundTransaction) -> Entry:
            pool_row(tx.conn, pool)
            for slug in order:
                _collective_exists(tx.conn, slug, code="unknown_collective")
            now = tx.cycle.number
            first = custodian_of(tx.conn, pool, now) is None
            data = {
                **request,
                "effective_cycle": now if first else now + 1,
                "custodian_now": order[0] if first else None,
            }
            return tx.emit("roster_set", data, actor.id)

        return self._run(actor, idempotency_key, request, command)

    # -- money in -------------------------------------------------------------------------

    def record_donation(
        self,
        actor: Actor,
        pool: str,
        donation: Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Outcome:
        """One donation; the receipt's salt is in the private record keyed by its commitment.

        Concurrent single donations share a write transaction (see GroupCommit); each is
        checked, written and answered as if it were alone."""
        require_role(actor, "treasurer", "admin")
        salt = new_salt()
        try:  # (checked before the write lock is taken; see record_donations)
            cycle = self._expected_cycle()
            prepared: _Donation | None = _donation(pool, donation, "", salt, None, cycle)
        except Exception:
            prepared = None
        request = {"pool": pool, **donation}  # per field, so a conflict names the field
        key = _scoped_key(actor, idempotency_key)
        return self._singles.submit(
            _SingleDonation(actor, pool, donation, key, request, salt, prepared)
        )

    def _expected_cycle(self) -> int | None:
        """The cycle a write now would be in, if known without reading (see KnownBoundaries)."""
        return self.boundaries.cycle_number(self.log.clock.now())

    def _record_singles(self, singles: Sequence[_SingleDonation]) -> list[Outcome | Exception]:
        with self.transaction() as tx:
            try:
                group = _DonationGroup(tx, {s.key for s in singles if s.key is not None})
                outcomes = [group.add(single) for single in singles]
                group.write()
            except Exception as exc:  # (rolled back: nothing of the group is written)
                raise RetryAlone(exc) from exc
        return outcomes

    def record_donations(
        self,
        actor: Actor,
        pool: str,
        batch: Sequence[Mapping[str, Any]],
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Up to MAX_BATCH donations, all or nothing; the outcome's seq is the first one."""
        require_role(actor, "treasurer", "admin")
        if not 1 <= len(batch) <= MAX_BATCH:
            raise RuleViolation(
                f"a batch holds 1 to {MAX_BATCH} donations, not {len(batch)}", "invalid_batch"
            )
        request = {"pool": pool, "donations": [dict(d) for d in batch]}
        salts = new_salts(len(batch))

        def checked(accepted: Sequence[str] | None, cycle: int | None) -> list[_Donation]:
            return [
                _donation(pool, item, f"donations[{i}].", salt, accepted, cycle)
                for i, (item, salt) in enumerate(zip(batch, salts, strict=True))
            ]

        # What each donation says by itself is checked (and its entry built) before the write
        # lock is taken, so other writers need not wait for it. The rules' order puts a
        # missing pool (and an idempotent replay or conflict) first: a batch that fails here
        # is checked again in the transaction, in that order, which raises the right error.
        try:
            prepared: list[_Donation] | None = checked(None, self._expected_cycle())
        except Exception:
            prepared = None
        written: list[Entry] = []

        def command(tx: FundTransaction) -> Entry:
            accepted = json.loads(pool_row(tx.conn, pool).currencies)
            donations = checked(accepted, None) if prepared is None else prepared
            for donation in donations:
                _check_accepted(pool, accepted, donation.currency)
            items = [d.entry_data(tx.cycle.number) for d in donations]
            written.extend(tx.emit_all("donation_recorded", items, actor.id))
            records = [d.private_record(e.seq) for d, e in zip(donations, written, strict=True)]
            keep_private(tx.conn, records)
            return written[0]

        outcome = self._run(actor, idempotency_key, request, command)
        if outcome.replayed:
            return outcome
        seqs = (entry.seq for entry in written)
        return replace(outcome, written=tuple(written), salts=dict(zip(seqs, salts, strict=True)))

    # -- grants ---------------------------------------------------------------------------

    def propose_grant(
        self,
        actor: Actor,
        pool: str,
        proposal: Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "member", "applicant", "admin")
        currency = check_currency(proposal.get("currency"))
        amount = parse_amount(proposal.get("amount"), currency)
        purpose = check_text(proposal.get("purpose"), "purpose", 2000)
        urgency = proposal.get("urgency", "normal")
        if urgency not in URGENCIES:
            raise RuleViolation(f"urgency must be one of {URGENCIES}", "invalid_urgency")
        recipient = check_pseudonym(proposal.get("recipient"), "recipient")
        details = proposal.get("recipient_details")
        if details is not None:
            check_text(details, "recipient_details", 2000)
        request = {"pool": pool, **dict(proposal)}

        def command(tx: FundTransaction) -> Entry:
            row = pool_row(tx.conn, pool)
            if currency not in json.loads(row.currencies):
                raise RuleViolation(
                    f"pool {pool!r} does not take {currency}", "currency_not_accepted"
                )
            data = {
                "pool": pool,
                "amount": str(amount),
                "currency": currency,
                "purpose": purpose,
                "urgency": urgency,
                "recipient": recipient,
                "cycle": tx.cycle.number,
            }
            entry = tx.emit("grant_proposed", data, actor.id)
            if details is not None:
                salt = new_salt()
                payload = {"grant": entry.seq, "recipient_details": details}
                record = PrivateRecord(
                    commitment(salt, details), "recipient", salt, payload, entry.seq
                )
                keep_private(tx.conn, [record])
            return entry

        return self._run(actor, idempotency_key, request, command)

    def cast_vote(
        self,
        actor: Actor,
        grant_id: int,
        *,
        vote: str,
        note: str | None = None,
        fast_lane: bool = False,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "member")
        if vote not in VOTES:
            raise RuleViolation(f"vote must be one of {VOTES}", "invalid_vote")
        if note is not None:
            check_text(note, "note", 500)
        if fast_lane and vote != "approve":
            raise RuleViolation("the fast lane only approves", "invalid_vote")
        request = {"grant": grant_id, "vote": vote, "note": note, "fast_lane": fast_lane}

        def command(tx: FundTransaction) -> Entry:
            return _Voting(tx, actor, grant_row(tx.conn, grant_id)).cast(vote, note, fast_lane)

        return self._run(actor, idempotency_key, request, command)

    def disburse(
        self,
        actor: Actor,
        grant_id: int,
        *,
        payment_reference: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "member", "treasurer")
        check_text(payment_reference, "payment_reference", 200)
        request = {"grant": grant_id, "payment_reference": payment_reference}

        def command(tx: FundTransaction) -> Entry:
            grant = grant_row(tx.conn, grant_id)
            if actor.role == "member":
                _require_custodian(tx, actor, grant.pool)
            if grant.status != "approved":
                raise RuleViolation(
                    f"grant {grant_id} is {grant.status}; only approved grants are disbursed",
                    code="grant_not_approved",
                )
            amount = int(grant.amount)
            salt = new_salt()
            reference = commitment(salt, payment_reference)
            data = {
                "grant": grant_id,
                "pool": grant.pool,
                "amount": grant.amount,
                "currency": grant.currency,
                "reference": reference,
                "cycle": tx.cycle.number,
                "postings": move_json(grant.pool, grant.currency, amount, "committed", "grants"),
            }
            entry = tx.emit("grant_disbursed", data, actor.id)
            payload = {"grant": grant_id, "payment_reference": payment_reference}
            keep_private(tx.conn, [PrivateRecord(reference, "payment", salt, payload, entry.seq)])
            return entry

        return self._run(actor, idempotency_key, request, command)

    def cancel(
        self,
        actor: Actor,
        grant_id: int,
        *,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        require_role(actor, "admin", "member", "applicant")
        check_text(reason, "reason", 500)
        request = {"grant": grant_id, "reason": reason}

        def command(tx: FundTransaction) -> Entry:
            grant = grant_row(tx.conn, grant_id)
            if actor.role != "admin" and actor.id != grant.proposer:
                _require_custodian(tx, actor, grant.pool)
            if grant.status not in ("proposed", "approved"):
                raise RuleViolation(
                    f"grant {grant_id} is {grant.status}; it cannot be cancelled",
                    code="grant_not_open",
                )
            postings = []
            if grant.status == "approved":
                postings = move(
                    grant.pool, grant.currency, int(grant.amount), "committed", "available"
                )
            data = {
                "grant": grant_id,
                "pool": grant.pool,
                "amount": grant.amount,
                "currency": grant.currency,
                "reason": reason,
                "was": grant.status,
                "cycle": tx.cycle.number,
                "postings": postings_json(postings),
            }
            return tx.emit("grant_cancelled", data, actor.id)

        return self._run(actor, idempotency_key, request, command)

    def correct(
        self,
        actor: Actor,
        *,
        corrects: int,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Reverse a mistaken donation or disbursement with a new entry; nothing is edited."""
        require_role(actor, "treasurer", "admin")
        check_text(reason, "reason", 500)
        request = {"corrects": corrects, "reason": reason}

        def command(tx: FundTransaction) -> Entry:
            target = self.log.entry(corrects, conn=tx.conn)
            data = _reversal(tx, target)
            return tx.emit("correction", {**data, "reason": reason}, actor.id)

        return self._run(actor, idempotency_key, request, command)


def _amount_map(values: Mapping[str, Any], currencies: Sequence[str], field: str) -> dict[str, str]:
    result = {}
    for currency, amount in values.items():
        if currency not in currencies:
            raise RuleViolation(
                f"{field} names {currency!r}, which the pool does not take", "invalid_currencies"
            )
        result[currency] = str(parse_amount(amount, currency, f"{field}.{currency}"))
    return result


class _Donation(NamedTuple):
    """A checked donation: its currency, its entry's data but the cycle (known when it is
    written), its receipt's salt, what goes to the private table, and the entry's data
    encoded for the cycle expected (None if not known)."""

    currency: str
    data: dict[str, Any]
    salt: bytes
    private: dict[str, Any]
    encoded: CanonicalData | None

    def entry_data(self, cycle: int) -> CanonicalData:
        """The entry's data in ``cycle``: encoded before the write lock was taken, unless the
        cycle was not known then or has turned since."""
        if self.encoded is not None and self.encoded.value["cycle"] == cycle:
            return self.encoded
        return encode_data({**self.data, "cycle": cycle})

    def private_record(self, seq: int) -> PrivateRecord:
        commitment_hex = self.data["donor"]["commitment"]
        return PrivateRecord(commitment_hex, "donation", self.salt, self.private, seq)


def _scoped_key(actor: Actor, idempotency_key: str | None) -> str | None:
    """Keys are per caller; hashed so any client key fits the column."""
    if not idempotency_key:
        return None
    return hashlib.sha256(f"{actor.id}|{idempotency_key}".encode()).hexdigest()


class _SingleDonation(NamedTuple):
    """A single donation waiting for its group's transaction: the request as it came, its
    idempotency key (scoped) and receipt salt, and its donation if it checked out alone."""

    actor: Actor
    pool: str
    item: Mapping[str, Any]
    key: str | None
    request: Mapping[str, Any]
    salt: bytes
    prepared: _Donation | None


class _DonationGroup:
    """Single donations in one transaction: each checked in turn, in the rules' order, as if
    alone (a later one sees the earlier ones' idempotency keys); their projections, private
    records and keys written together at the end."""

    def __init__(self, tx: FundTransaction, keys: Collection[str]) -> None:
        self.tx = tx
        self.seen = tx.writer.remembered(keys)
        self.currencies: dict[str, list[str]] = {}
        self.entries: list[Entry] = []
        self.records: list[PrivateRecord] = []
        self.keys: list[tuple[str, int, str]] = []

    def add(self, single: _SingleDonation) -> Outcome | Exception:
        """The donation's outcome, or the rule it broke (then nothing of it is written)."""
        try:
            return self._add(single)
        except LedgerError as exc:
            return exc

    def _add(self, single: _SingleDonation) -> Outcome:
        writer, key = self.tx.writer, single.key
        if key is not None and key in self.seen:
            return Outcome(writer.replay(key, single.request, self.seen[key]), replayed=True)
        accepted = self._accepted(single.pool)
        donation = single.prepared
        if donation is None:  # raises what is wrong with it, now in the rules' order
            donation = _donation(single.pool, single.item, "", single.salt, accepted)
        _check_accepted(single.pool, accepted, donation.currency)
        data = donation.entry_data(self.tx.cycle.number)
        entry = writer.append("donation_recorded", data, single.actor.id)
        self.entries.append(entry)
        self.records.append(donation.private_record(entry.seq))
        if key is not None:
            self.seen[key] = (entry.seq, writer.fingerprint(single.request))
            self.keys.append((key, *self.seen[key]))
        return Outcome(entry.seq, replayed=False, written=(entry,), salts={entry.seq: single.salt})

    def _accepted(self, pool: str) -> list[str]:
        if pool not in self.currencies:
            self.currencies[pool] = json.loads(pool_row(self.tx.conn, pool).currencies)
        return self.currencies[pool]

    def write(self) -> None:
        apply_entries(self.tx.conn, self.entries)
        keep_private(self.tx.conn, self.records)
        self.tx.writer.remember_all(self.keys)


def _check_accepted(pool: str, accepted: Sequence[str], currency: str) -> None:
    if currency not in accepted:
        raise RuleViolation(
            f"pool {pool!r} takes {', '.join(accepted)}, not {currency}",
            "currency_not_accepted",
        )


def _donation(
    pool: str,
    item: Mapping[str, Any],
    where: str,
    salt: bytes,
    accepted: Sequence[str] | None,
    cycle: int | None = None,
) -> _Donation:
    """Check one donation (``where`` prefixes the field names of a batch item) and build it;
    the pool's ``accepted`` currencies too, in the rules' order, unless None (not known yet);
    its entry's data is encoded for ``cycle`` unless None."""
    currency = check_currency(item.get("currency"))
    if accepted is not None:
        _check_accepted(pool, accepted, currency)
    amount = parse_amount(item.get("amount"), currency, f"{where}amount")
    channel = item.get("channel")
    if channel not in CHANNELS:
        raise RuleViolation(f"{where}channel must be one of {CHANNELS}", "invalid_channel")
    reference = check_text(item.get("external_reference"), f"{where}external_reference", 200)
    donor_reference = item.get("donor_reference")
    if donor_reference is not None:
        check_text(donor_reference, f"{where}donor_reference", 200)
    display_name = item.get("display_name")
    donor = {"commitment": commitment(salt, donor_reference or reference)}
    if display_name is not None:
        donor["name"] = check_text(display_name, f"{where}display_name", 64)
    note = item.get("note")
    if note is not None:
        check_text(note, f"{where}note", 500)
    data = {
        "pool": pool,
        "amount": str(amount),
        "currency": currency,
        "channel": channel,
        "donor": donor,
        "reference": commitment(salt, reference),
        "postings": move_json(pool, currency, amount, "donations", "available"),
    }
    private = {
        "external_reference": reference,
        "donor_reference": donor_reference,
        "note": note,
    }
    encoded = None if cycle is None else encode_data({**data, "cycle": cycle})
    return _Donation(currency, data, salt, private, encoded)


def _collective_exists(conn: Connection, slug: str, code: str = "not_found") -> None:
    if not conn.execute(select(collectives.c.slug).where(collectives.c.slug == slug)).first():
        if code == "not_found":
            raise NotFound(f"no collective {slug!r}")
        raise RuleViolation(f"no collective {slug!r}", code=code)


def _require_custodian(tx: FundTransaction, actor: Actor, pool: str) -> str:
    custodian = custodian_of(tx.conn, pool, tx.cycle.number)
    if actor.collective is None or actor.collective != custodian:
        raise RuleViolation(
            f"only members of the current custodian ({custodian or 'none yet'}) of {pool!r} "
            f"can do this in cycle {tx.cycle.number}",
            code="not_custodian",
        )
    active = active_members(tx.conn, custodian)
    if actor.member not in active:
        raise RuleViolation(f"member {actor.member!r} is not active", code="not_custodian")
    return custodian


class _Voting:
    """The vote rules: custodians only, once each, never on your own proposal, quorum."""

    def __init__(self, tx: FundTransaction, actor: Actor, grant: Any) -> None:
        self.tx, self.actor, self.grant = tx, actor, grant

    def cast(self, vote: str, note: str | None, fast_lane: bool) -> Entry:
        tx, grant = self.tx, self.grant
        if grant.status != "proposed":
            raise RuleViolation(f"grant {grant.id} is {grant.status}", code="grant_not_open")
        collective = _require_custodian(tx, self.actor, grant.pool)
        if grant.proposer == self.actor.id:
            raise RuleViolation(
                "the proposer cannot vote on their own proposal", "proposer_cannot_vote"
            )
        cast = open_votes(tx.conn, grant.id)
        if any(v.member == self.actor.member for v in cast):
            raise RuleViolation(
                f"{self.actor.member} has already voted on grant {grant.id}", "already_voted"
            )
        decision = self._fast_lane() if fast_lane else self._quorum(cast, vote)
        data: dict[str, Any] = {
            "grant": grant.id,
            "pool": grant.pool,
            "member": self.actor.member,
            "collective": collective,
            "vote": vote,
            "fast_lane": fast_lane,
            "cycle": tx.cycle.number,
        }
        if note is not None:
            data["note"] = note
        entry = tx.emit("vote_cast", data, self.actor.id)
        if decision is not None:
            tx.emit("grant_decided", decision, self.actor.id)
        return entry

    def _base(self, decision: str, lane: str) -> dict[str, Any]:
        grant = self.grant
        postings: list[Any] = []
        if decision == "approved":
            amount = int(grant.amount)
            available = balance(self.tx.conn, grant.pool, grant.currency, "available")
            if amount > available:
                raise RuleViolation(
                    f"approving {grant.amount} {grant.currency} would overdraw {grant.pool}: "
                    f"{available} available",
                    code="insufficient_funds",
                )
            postings = move(grant.pool, grant.currency, amount, "available", "committed")
        return {
            "grant": grant.id,
            "pool": grant.pool,
            "amount": grant.amount,
            "currency": grant.currency,
            "decision": decision,
            "lane": lane,
            "cycle": self.tx.cycle.number,
            "postings": postings_json(postings),
        }

    def _fast_lane(self) -> dict[str, Any]:
        tx, grant = self.tx, self.grant
        if grant.urgency != "urgent":
            raise RuleViolation("the fast lane is for urgent grants only", "fast_lane_not_urgent")
        pool = pool_row(tx.conn, grant.pool)
        cap = int(json.loads(pool.fast_lane_cap).get(grant.currency, "0"))
        allowance = int(json.loads(pool.cycle_allowance).get(grant.currency, "0"))
        amount = int(grant.amount)
        if amount > cap:
            raise RuleViolation(
                f"{grant.amount} {grant.currency} is over the fast-lane cap of {cap}",
                "fast_lane_cap_exceeded",
            )
        used = flows_of(tx.conn, grant.pool, tx.cycle.number).get(grant.currency, {})
        left = allowance - used.get("fast_lane_used", 0)
        if amount > left:
            raise RuleViolation(
                f"{grant.amount} {grant.currency} is over what is left of this cycle's "
                f"fast-lane allowance ({left})",
                "fast_lane_allowance_exceeded",
            )
        decision = self._base("approved", "fast_lane")
        decision.update(
            {
                "approvals": [self.actor.member],
                "rejections": [],
                "allowance_left": str(left - amount),
            }
        )
        return decision

    def _quorum(self, cast: list[Any], vote: str) -> dict[str, Any] | None:
        custodian = self.actor.collective
        assert custodian is not None
        ballots = [(v.member, v.vote) for v in cast] + [(self.actor.member, vote)]
        approvals = sorted(m for m, v in ballots if v == "approve")
        rejections = sorted(m for m, v in ballots if v == "reject")
        quorum = quorum_of(self.tx.conn, custodian)
        members_now = active_members(self.tx.conn, custodian)
        eligible = [m for m in members_now if member_actor(m) != self.grant.proposer]
        if len(approvals) >= quorum:
            decision = self._base("approved", "quorum")
        elif len(eligible) - len(rejections) < quorum:
            decision = self._base("rejected", "quorum")
        else:
            return None
        decision.update({"approvals": approvals, "rejections": rejections, "quorum": quorum})
        return decision


def _reversal(tx: FundTransaction, target: Entry) -> dict[str, Any]:
    d = target.data
    if target.kind == "donation_recorded":
        corrected = tx.conn.execute(
            select(donations.c.corrected_seq).where(donations.c.seq == target.seq)
        ).scalar()
        if corrected is not None:
            raise RuleViolation(f"donation {target.seq} was corrected already", "already_corrected")
        amount = int(d["amount"])
        available = balance(tx.conn, d["pool"], d["currency"], "available")
        if amount > available:
            raise RuleViolation(
                f"reversing {amount} {d['currency']} would overdraw {d['pool']} ({available} left)",
                code="insufficient_funds",
            )
        postings = move(d["pool"], d["currency"], amount, "available", "donations")
        fund_change = -amount
    elif target.kind == "grant_disbursed":
        grant = grant_row(tx.conn, d["grant"])
        if grant.status != "disbursed" or grant.disbursed_seq != target.seq:
            raise RuleViolation(
                f"disbursement {target.seq} was corrected already", "already_corrected"
            )
        amount = int(d["amount"])
        postings = move(d["pool"], d["currency"], amount, "grants", "committed")
        fund_change = amount
    else:
        raise RuleViolation(
            f"entry {target.seq} is a {target.kind}: only donations and disbursements "
            "can be corrected",
            code="not_correctable",
        )
    data = {
        "corrects": target.seq,
        "corrected_kind": target.kind,
        "pool": d["pool"],
        "amount": d["amount"],
        "currency": d["currency"],
        "fund_change": str(fund_change),
        "cycle": tx.cycle.number,
        "postings": postings_json(postings),
    }
    if "grant" in d:
        data["grant"] = d["grant"]
    return data
