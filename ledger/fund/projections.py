"""Projections: the relational view of the log, written by applying each entry.

:func:`apply_entry` (and :func:`apply_entries` for several) is the only writer of the projection
tables. It runs inside the append transaction for live writes and over the whole log for
``replay``; it reads nothing but the entries and the projections so far, so replaying the log
rebuilds exactly the same tables.

The statements are plain SQL on the driver's cursor (:func:`ledger.log.db.write_sql`): on the
append path SQLAlchemy's per-statement compilation cost more than the statements themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from ledger.fund.urgency import UrgencyPolicy
from ledger.log.db import RowInsert, is_sqlite, read_sql, write_rows, write_sql
from ledger.log.entry import Entry

ZERO = "0"
FLOWS = ("donations", "disbursements", "corrections", "fast_lane_used")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- money: balances and per-cycle flows --------------------------------------------------------

_BALANCES = "SELECT account, amount FROM balances WHERE pool = ? AND currency = ?"
_NEW_BALANCE = "INSERT INTO balances (pool, currency, account, amount) VALUES (?, ?, ?, ?)"
_SET_BALANCE = "UPDATE balances SET amount = ? WHERE pool = ? AND currency = ? AND account = ?"
_FLOW = (
    "SELECT donations, disbursements, corrections, fast_lane_used FROM cycle_flows "
    "WHERE pool = ? AND cycle = ? AND currency = ?"
)
_NEW_FLOW = (
    "INSERT INTO cycle_flows (donations, disbursements, corrections, fast_lane_used, "
    "pool, cycle, currency) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SET_FLOW = (
    "UPDATE cycle_flows SET donations = ?, disbursements = ?, corrections = ?, "
    "fast_lane_used = ? WHERE pool = ? AND cycle = ? AND currency = ?"
)

# PostgreSQL (see Money._add_in_place): the amounts are added where they are stored.
_ADD_TO_BALANCE = (
    f"{_NEW_BALANCE} ON CONFLICT (pool, currency, account) DO UPDATE SET amount = "
    "(CAST(balances.amount AS numeric) + CAST(excluded.amount AS numeric))::text"
)
_ADD_TO_FLOW = f"{_NEW_FLOW} ON CONFLICT (pool, cycle, currency) DO UPDATE SET " + ", ".join(
    f"{name} = (CAST(cycle_flows.{name} AS numeric) + CAST(excluded.{name} AS numeric))::text"
    for name in FLOWS
)


@dataclass
class Money:
    """Balance and flow changes of one or more entries, summed so each row is written once.

    Amounts are digit strings in the tables (no engine rounds them), so a change is a read,
    an integer sum and a write; summing a batch first makes that one read and one write per
    row instead of one per entry. A row touched by a change of zero is still created, as
    applying the entries one at a time would."""

    balances: dict[tuple[str, str, str], int] = field(default_factory=dict)
    flows: dict[tuple[str, int, str], dict[str, int]] = field(default_factory=dict)

    def post(self, pool: str, postings: Iterable[Mapping[str, Any]]) -> None:
        """Add the postings' amounts to the pool's accounts (``<pool>:<account>``)."""
        for raw in postings:  # (read in place: a batch of donations has two thousand)
            _, name = str(raw["account"]).split(":", 1)
            key = (pool, str(raw["currency"]), name)
            self.balances[key] = self.balances.get(key, 0) + int(raw["amount"])

    def flow(self, pool: str, cycle: int, currency: str, **deltas: int) -> None:
        """Add to the per-cycle flows (donations, disbursements, corrections, fast_lane_used)."""
        sums = self.flows.setdefault((pool, cycle, currency), dict.fromkeys(FLOWS, 0))
        for name, delta in deltas.items():
            sums[name] += delta

    def write(self, conn: Connection) -> None:
        if not is_sqlite(conn):
            self._add_in_place(conn)
            return
        groups: dict[tuple[str, str], dict[str, int]] = {}
        for (pool, currency, name), delta in self.balances.items():
            groups.setdefault((pool, currency), {})[name] = delta
        for (pool, currency), deltas in groups.items():
            self._write_balances(conn, pool, currency, deltas)
        for key, sums in self.flows.items():
            self._write_flow(conn, key, sums)

    def _add_in_place(self, conn: Connection) -> None:
        """PostgreSQL: each row's sum made by the database (``numeric`` is exact at any size,
        and its text is the digit string Python's ``str(int)`` gives), with no read first: the
        statements need no answer, so a transaction can queue them (see WriteQueue)."""
        balances = [(*key, str(delta)) for key, delta in self.balances.items()]
        write_rows(conn, _ADD_TO_BALANCE, balances)
        flows = [(*(str(sums[name]) for name in FLOWS), *key) for key, sums in self.flows.items()]
        write_rows(conn, _ADD_TO_FLOW, flows)

    @staticmethod
    def _write_balances(conn: Connection, pool: str, currency: str, deltas: dict[str, int]) -> None:
        current = dict(read_sql(conn, _BALANCES, (pool, currency)))
        new, changed = [], []
        for name, delta in deltas.items():
            if name in current:
                changed.append((str(int(current[name]) + delta), pool, currency, name))
            else:
                new.append((pool, currency, name, str(delta)))
        write_rows(conn, _SET_BALANCE, changed)
        write_rows(conn, _NEW_BALANCE, new)

    @staticmethod
    def _write_flow(conn: Connection, key: tuple[str, int, str], sums: dict[str, int]) -> None:
        rows = read_sql(conn, _FLOW, key)
        before = [int(amount) for amount in rows[0]] if rows else [0] * len(FLOWS)
        values = [str(was + sums[name]) for was, name in zip(before, FLOWS, strict=True)]
        write_sql(conn, _SET_FLOW if rows else _NEW_FLOW, (*values, *key))


def _move_money(conn: Connection, d: Mapping[str, Any], **flows: int) -> None:
    """Apply an entry's postings, and add to the flows of its pool, cycle and currency."""
    money = Money()
    money.post(d["pool"], d["postings"])
    if flows:
        money.flow(d["pool"], d["cycle"], d["currency"], **flows)
    money.write(conn)


# -- the entries --------------------------------------------------------------------------------


def _pool_created(conn: Connection, entry: Entry) -> None:
    d = entry.data
    policy = UrgencyPolicy.of_pool_data(d)
    write_sql(
        conn,
        "INSERT INTO pools (slug, name, currencies, fast_lane_cap, cycle_allowance, created_seq, "
        "created_cycle, current_cycle, urgent_deadline_hours, overdue_approval) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            d["slug"],
            d["name"],
            _json(d["currencies"]),
            _json(d["fast_lane_cap"]),
            _json(d["cycle_allowance"]),
            entry.seq,
            d["cycle"]["number"],
            d["cycle"]["number"],
            policy.deadline_hours,
            int(policy.overdue_approval),
        ),
    )
    _open_cycle(conn, d["slug"], d["cycle"], None, entry.seq, {c: ZERO for c in d["currencies"]})


def _open_cycle(
    conn: Connection,
    pool: str,
    cycle: Mapping[str, Any],
    custodian: str | None,
    seq: int,
    opening: Mapping[str, str],
) -> None:
    write_sql(
        conn,
        "INSERT INTO cycles (pool, number, starts_at, ends_at, custodian, opened_seq, opening) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (pool, cycle["number"], cycle["start"], cycle["end"], custodian, seq, _json(dict(opening))),
    )


def _collective_registered(conn: Connection, entry: Entry) -> None:
    d = entry.data
    write_sql(
        conn,
        "INSERT INTO collectives (slug, name, quorum, created_seq) VALUES (?, ?, ?, ?)",
        (d["slug"], d["name"], d["quorum"], entry.seq),
    )


def _member_added(conn: Connection, entry: Entry) -> None:
    d = entry.data
    write_sql(
        conn,
        "INSERT INTO members (id, collective, active, added_seq) VALUES (?, ?, 1, ?)",
        (d["member"], d["collective"], entry.seq),
    )


def _member_removed(conn: Connection, entry: Entry) -> None:
    write_sql(
        conn,
        "UPDATE members SET active = 0, removed_seq = ? WHERE id = ?",
        (entry.seq, entry.data["member"]),
    )


def _roster_set(conn: Connection, entry: Entry) -> None:
    d = entry.data
    write_sql(
        conn,
        "INSERT INTO rosters (seq, pool, effective_cycle, collectives) VALUES (?, ?, ?, ?)",
        (entry.seq, d["pool"], d["effective_cycle"], _json(d["collectives"])),
    )
    if d.get("custodian_now") is not None:  # the pool's first roster takes effect at once
        write_sql(
            conn,
            "UPDATE cycles SET custodian = ? WHERE pool = ? AND number = ?",
            (d["custodian_now"], d["pool"], d["effective_cycle"]),
        )


def _custody_transferred(conn: Connection, entry: Entry) -> None:
    d = entry.data
    pool, closed = d["pool"], d["closed"]
    write_sql(
        conn,
        "UPDATE cycles SET statement = ?, closed_seq = ?, response = ? "
        "WHERE pool = ? AND number = ?",
        (
            _json(closed["statement"]),
            entry.seq,
            _json(closed["response"]) if "response" in closed else None,
            pool,
            closed["number"],
        ),
    )
    opening = {c: s["closing"] for c, s in closed["statement"].items()}
    _open_cycle(conn, pool, d["cycle"], d["to"], entry.seq, opening)
    write_sql(
        conn,
        "UPDATE pools SET current_cycle = ? WHERE slug = ?",
        (d["cycle"]["number"], pool),
    )
    if d["voided_votes"]:
        write_rows(
            conn, "UPDATE votes SET void = 1 WHERE seq = ?", [(s,) for s in d["voided_votes"]]
        )


_NEW_DONATIONS = RowInsert(
    "donations", ("seq", "pool", "amount", "currency", "channel", "donor", "ts", "cycle")
)


def _donations_recorded(conn: Connection, run: Sequence[Entry]) -> None:
    """Donations in a row (one, or a batch): one insert and each money row written once."""
    if not run:
        return
    rows = []
    money = Money()
    for entry in run:
        d = entry.data
        donor = d["donor"]
        donor_key = donor["commitment"] if "commitment" in donor else f"name:{donor['name']}"
        pool, amount, currency = d["pool"], d["amount"], d["currency"]
        rows.append(
            (entry.seq, pool, amount, currency, d["channel"], donor_key, entry.ts, d["cycle"])
        )
        money.post(pool, d["postings"])
        money.flow(pool, d["cycle"], currency, donations=int(amount))
    _NEW_DONATIONS.run(conn, rows)
    money.write(conn)


def _donation_recorded(conn: Connection, entry: Entry) -> None:
    _donations_recorded(conn, (entry,))


def _text_columns(value: Any) -> tuple[str | None, str | None]:
    """A public text field as two columns: the text (data version 1) or the commitment
    (version 2, ``{"commitment": hex}``; the text is in ``public_texts``, not here)."""
    if value is None or isinstance(value, str):
        return value, None
    return None, str(value["commitment"])


def _grant_proposed(conn: Connection, entry: Entry) -> None:
    d = entry.data
    purpose, commitment = _text_columns(d["purpose"])
    write_sql(
        conn,
        "INSERT INTO grants (id, pool, amount, currency, purpose, purpose_commitment, urgency, "
        "recipient, proposer, proposed_ts, proposed_cycle, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'proposed')",
        (
            entry.seq,
            d["pool"],
            d["amount"],
            d["currency"],
            purpose or "",
            commitment,
            d["urgency"],
            d["recipient"],
            entry.actor,
            entry.ts,
            d["cycle"],
        ),
    )


def _vote_cast(conn: Connection, entry: Entry) -> None:
    d = entry.data
    note, commitment = _text_columns(d.get("note"))
    write_sql(
        conn,
        "INSERT INTO votes (seq, grant_id, member, collective, vote, note, note_commitment, "
        "cycle, void) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (
            entry.seq,
            d["grant"],
            d["member"],
            d["collective"],
            d["vote"],
            note,
            commitment,
            d["cycle"],
        ),
    )


def _grant_decided(conn: Connection, entry: Entry) -> None:
    d = entry.data
    write_sql(
        conn,
        "UPDATE grants SET status = ?, lane = ?, decided_seq = ?, decided_cycle = ?, "
        "decided_ts = ? WHERE id = ?",
        (d["decision"], d["lane"], entry.seq, d["cycle"], entry.ts, d["grant"]),
    )
    if d["decision"] == "approved":
        if d["lane"] == "fast_lane":
            _move_money(conn, d, fast_lane_used=int(d["amount"]))
        else:
            _move_money(conn, d)


def _grant_disbursed(conn: Connection, entry: Entry) -> None:
    d = entry.data
    write_sql(
        conn,
        "UPDATE grants SET status = 'disbursed', disbursed_seq = ? WHERE id = ?",
        (entry.seq, d["grant"]),
    )
    _move_money(conn, d, disbursements=int(d["amount"]))


def _grant_cancelled(conn: Connection, entry: Entry) -> None:
    d = entry.data
    write_sql(
        conn,
        "UPDATE grants SET status = 'cancelled', closed_seq = ?, closed_ts = ? WHERE id = ?",
        (entry.seq, entry.ts, d["grant"]),
    )
    _move_money(conn, d)


def _correction(conn: Connection, entry: Entry) -> None:
    d = entry.data
    _move_money(conn, d, corrections=int(d["fund_change"]))
    if d["corrected_kind"] == "donation_recorded":
        write_sql(
            conn,
            "UPDATE donations SET corrected_seq = ? WHERE seq = ?",
            (entry.seq, d["corrects"]),
        )
    else:  # a reversed disbursement: the grant is approved (committed) again
        write_sql(
            conn,
            "UPDATE grants SET status = 'approved', disbursed_seq = NULL WHERE id = ?",
            (d["grant"],),
        )


def _no_projection(conn: Connection, entry: Entry) -> None:
    """Entries that change no projection (log bookkeeping, anchors, redactions: the text a
    ``text_redacted`` entry names lives in ``public_texts``, which is not a projection)."""


APPLIERS: Mapping[str, Callable[[Connection, Entry], None]] = {
    "log_created": _no_projection,
    "key_rotated": _no_projection,
    "checkpoint_anchored": _no_projection,
    "pool_created": _pool_created,
    "collective_registered": _collective_registered,
    "member_added": _member_added,
    "member_removed": _member_removed,
    "roster_set": _roster_set,
    "custody_transferred": _custody_transferred,
    "donation_recorded": _donation_recorded,
    "grant_proposed": _grant_proposed,
    "vote_cast": _vote_cast,
    "grant_decided": _grant_decided,
    "grant_disbursed": _grant_disbursed,
    "grant_cancelled": _grant_cancelled,
    "correction": _correction,
    "text_redacted": _no_projection,
}


# -- which entries are a pool's -------------------------------------------------------------

_NEW_ENTRY_POOLS = RowInsert("entry_pools", ("pool", "seq"))


def entry_pool(kind: str, data: Mapping[str, Any]) -> str | None:
    """The pool an entry is about: its ``data.pool``, or the slug of the pool it creates."""
    pool = data.get("slug") if kind == "pool_created" else data.get("pool")
    return pool if isinstance(pool, str) else None


def _index_pools(conn: Connection, entries: Iterable[Entry]) -> None:
    rows = [(pool, e.seq) for e in entries if (pool := entry_pool(e.kind, e.data)) is not None]
    if rows:
        _NEW_ENTRY_POOLS.run(conn, rows)


def apply_entry(conn: Connection, entry: Entry) -> None:
    APPLIERS[entry.kind](conn, entry)
    _index_pools(conn, (entry,))


def apply_entries(conn: Connection, entries: Sequence[Entry]) -> None:
    """Apply entries in log order; donations in a row are written together (the same rows as
    :func:`apply_entry` one at a time would write, in a few statements instead of many)."""
    run: list[Entry] = []
    for entry in entries:
        if entry.kind == "donation_recorded":
            run.append(entry)
            continue
        _donations_recorded(conn, run)
        run = []
        APPLIERS[entry.kind](conn, entry)
    _donations_recorded(conn, run)
    _index_pools(conn, entries)
