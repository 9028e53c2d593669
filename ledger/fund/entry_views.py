"""Read models of the log's entries: what a write appended, donors' receipts, one entry's
place in the chain and the tree, a pool's entries, the key the log published.

Plain frozen dataclasses, no Flask. What a write returned is rendered from the entries it
wrote alone (:func:`written`, :func:`recorded_receipts`), so an idempotent replay of the write
renders exactly the same body (but for a public text redacted since: its text is no longer
served). Only :func:`donation_receipts` reads a private record: the receipt salt, for the
treasurer who recorded the donation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, select

from ledger.errors import LedgerError, NotFound
from ledger.fund.privacy import private_salt
from ledger.fund.public_text import (
    ServedText,
    entry_texts,
    served_texts,
    shown,
    shown_data,
    text_commitments,
)
from ledger.fund.rules import Outcome
from ledger.fund.schema import entry_pools, pools_entries
from ledger.fund.state import pool_row
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.db import read_transaction
from ledger.log.entry import Entry, decode_entry
from ledger.log.public import DEFAULT_LIMIT, Page, check_page, log_keys, public_entry
from ledger.log.schema import entries
from ledger.log.storage import StoredCheckpoint


@dataclass(frozen=True)
class Written:
    """An entry a write appended: its envelope, hash and kind-specific data; ``shown`` is the
    data with each public text as readers see it (the text, or ``[redacted]``), ``texts``
    the texts served beside the entry (see :func:`ledger.fund.public_text.entry_texts`)."""

    seq: int
    ts: str
    kind: str
    actor: str
    entry_hash: str
    data: dict[str, Any]
    shown: dict[str, Any]
    texts: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Receipt:
    """A donor's receipt. ``salt`` opens ``commitment``; None once the record was erased."""

    seq: int
    receipt_id: int
    entry_hash: str
    ts: str
    pool: str
    amount: str
    currency: str
    channel: str
    cycle: int
    commitment: str
    salt: str | None
    display_name: str | None


# -- entries ----------------------------------------------------------------------------------


def load_entries(conn: Connection, seqs: Sequence[int]) -> list[Entry]:
    """The entries at ``seqs`` (those that exist), in no particular order."""
    if not seqs:
        return []
    rows = conn.execute(select(entries.c.body).where(entries.c.seq.in_(seqs)))
    return [decode_entry(bytes(body)) for (body,) in rows]


def load_entry(conn: Connection, seq: int) -> Entry:
    """The entry at ``seq``; NotFound beyond the log."""
    body = conn.execute(select(entries.c.body).where(entries.c.seq == seq)).scalar()
    if body is None:
        raise NotFound(f"no entry with seq {seq}")
    return decode_entry(bytes(body))


# -- the log, for the web pages -------------------------------------------------------------


@dataclass(frozen=True)
class EntryPlace:
    """One entry and its place in the chain and the tree."""

    entry: Entry
    entry_hash: str
    log_size: int
    next_seq: int | None
    checkpoint: StoredCheckpoint | None  # the latest checkpoint that covers the entry
    proof: tuple[str, ...]  # inclusion proof of the entry in that checkpoint's tree
    texts: dict[str, dict[str, Any]]  # the public texts served beside it, by field


def pool_entries(engine: Engine, pool: str, limit: int = 20) -> list[Entry]:
    """The pool's newest entries, newest first."""
    with read_transaction(engine) as conn:
        return newest_pool_entries(conn, pool, limit)


def newest_pool_entries(conn: Connection, pool: str, limit: int) -> list[Entry]:
    """The pool's newest ``limit`` entries (``entry_pools``), newest first."""
    rows = conn.execute(
        select(entries.c.body)
        .select_from(pools_entries)
        .where(entry_pools.c.pool == pool)
        .order_by(entry_pools.c.seq.desc())
        .limit(limit)
    )
    return [decode_entry(bytes(body)) for (body,) in rows]


def entry_place(log: Log, seq: int) -> EntryPlace:
    """Entry ``seq``, its hash, its neighbours and its inclusion proof in the latest
    checkpoint (none when no checkpoint covers it yet)."""
    entry = log.entry(seq)
    size = log.head().size
    checkpoint = log.latest_checkpoint()
    proof: tuple[str, ...] = ()
    if checkpoint is not None and seq < checkpoint.size:
        proof = tuple(h.hex() for h in log.inclusion_proof(seq, checkpoint.size))
    else:
        checkpoint = None
    with read_transaction(log.engine) as conn:
        texts = entry_texts(entry.kind, entry.data, served_for(conn, entry))
    return EntryPlace(
        entry=entry,
        entry_hash=entry.hash.hex(),
        log_size=size,
        next_seq=seq + 1 if seq + 1 < size else None,
        checkpoint=checkpoint,
        proof=proof,
        texts=texts,
    )


def published_vkey(engine: Engine) -> str | None:
    """The current verifier key as the log published it (``log_created``, ``key_rotated``)."""
    current = [key.vkey for key in log_keys(engine).keys if key.current]
    return current[-1] if current else None


# -- what writes return ---------------------------------------------------------------------


def written_entry(entry: Entry, served: Mapping[str, ServedText]) -> Written:
    """``entry`` as a write returns it, with the texts ``served`` for its commitments."""
    texts = {c: s.text for c, s in served.items()}
    return Written(
        seq=entry.seq,
        ts=entry.ts,
        kind=entry.kind,
        actor=entry.actor,
        entry_hash=entry.hash.hex(),
        data=entry.data,
        shown=shown_data(entry.kind, entry.data, texts),
        texts=entry_texts(entry.kind, entry.data, served),
    )


def served_for(conn: Connection, entry: Entry) -> dict[str, ServedText]:
    """The ``public_texts`` rows of the entry's committed texts."""
    commitments = text_commitments(entry.kind, entry.data).values()
    return served_texts(conn, commitments) if commitments else {}


def written(engine: Engine, seq: int, kind: str) -> Written:
    """The entry a write appended at ``seq`` (which must be of ``kind``)."""
    with read_transaction(engine) as conn:
        entry = load_entry(conn, seq)
        served = served_for(conn, entry)
    if entry.kind != kind:
        raise LedgerError(f"entry {seq} is a {entry.kind}, not the {kind} that was written")
    return written_entry(entry, served)


def donation_receipts(engine: Engine, vault: Vault, first: int, count: int) -> list[Receipt]:
    """Receipts for the ``count`` donations written from ``first`` on, with their salts.

    Only for the response to the treasurer who recorded them (or their idempotent retry)."""
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(entries.c.body)
            .where(and_(entries.c.seq >= first, entries.c.seq < first + count))
            .order_by(entries.c.seq)
        )
        found = [decode_entry(bytes(body)) for (body,) in rows]
        if len(found) != count or any(e.kind != "donation_recorded" for e in found):
            raise LedgerError(f"entries {first}..{first + count - 1} are not the donations")
        names = [c for e in found for c in text_commitments(e.kind, e.data).values()]
        texts = {c: s.text for c, s in served_texts(conn, names).items()} if names else {}
        return [
            donation_receipt(
                entry, private_salt(conn, vault, entry.data["donor"]["commitment"]), texts
            )
            for entry in found
        ]


def donation_receipt(
    entry: Entry, salt: bytes | None, texts: Mapping[str, str | None] | None = None
) -> Receipt:
    """The receipt of a donation entry; ``texts`` (commitment -> text) gives a display name
    of data version 2."""
    d = entry.data
    return Receipt(
        seq=entry.seq,
        receipt_id=entry.seq,
        entry_hash=entry.hash.hex(),
        ts=entry.ts,
        pool=d["pool"],
        amount=d["amount"],
        currency=d["currency"],
        channel=d["channel"],
        cycle=int(d["cycle"]),
        commitment=d["donor"]["commitment"],
        salt=None if salt is None else salt.hex(),
        display_name=shown(d["donor"].get("name"), texts or {}),
    )


def recorded_receipts(engine: Engine, vault: Vault, outcome: Outcome, count: int) -> list[Receipt]:
    """Receipts for the ``count`` donations a command recorded: from what it just wrote, or
    (an idempotent retry wrote nothing) read back from the log."""
    if outcome.replayed:
        return donation_receipts(engine, vault, outcome.seq, count)
    return [
        donation_receipt(entry, outcome.salts[entry.seq], outcome.texts)
        for entry in outcome.written
    ]


def pool_entry_page(
    engine: Engine,
    pool: str,
    after: int = -1,
    limit: int = DEFAULT_LIMIT,
    kind: str | None = None,
) -> Page:
    """A page of the pool's entries (of ``kind``) after seq ``after``, read by key
    (``entry_pools``), so it is full; one that is full can never change."""
    check_page(after, limit)
    with read_transaction(engine) as conn:
        pool_row(conn, pool)
        return _pool_page(conn, pool, after, limit, kind)


def _pool_page(conn: Connection, pool: str, after: int, limit: int, kind: str | None) -> Page:
    query = (
        select(entries.c.seq, entries.c.hash, entries.c.body)
        .select_from(pools_entries)
        .where(entry_pools.c.pool == pool, entry_pools.c.seq > after)
        .order_by(entry_pools.c.seq)
        .limit(limit)
    )
    if kind is not None:
        query = query.where(entries.c.kind == kind)
    rows = conn.execute(query).all()
    full = len(rows) == limit
    return Page(
        tuple(public_entry(*row) for row in rows), int(rows[-1].seq) if full else None, full
    )
