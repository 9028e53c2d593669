"""Money in: single donations (committed in groups) and batches of donations.

A donor appears in the log only as a salted commitment; the reference and the receipt's salt
live in the private, erasable records (:mod:`ledger.fund.privacy`). A display name the donor
chose is public text, committed to in the entry and kept in ``public_texts``
(:mod:`ledger.fund.public_text`), so it can be redacted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from sqlalchemy import Connection

from ledger.errors import LedgerError, RuleViolation
from ledger.fund.money import check_currency, move_json, parse_amount
from ledger.fund.privacy import (
    PrivateRecord,
    commitment,
    keep_private,
    new_salt,
    new_salts,
    reference_digest,
)
from ledger.fund.projections import apply_entries
from ledger.fund.public_text import DATA_VERSION, PublicText, keep_public
from ledger.fund.rules import (
    CHANNELS,
    MAX_BATCH,
    Actor,
    Outcome,
    check_public_text,
    check_text,
    require_role,
)
from ledger.fund.state import pool_row
from ledger.fund.transaction import FundCommands, FundTransaction, scoped_key
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.db import NotCommitted, Read, RowInsert, read_sql
from ledger.log.entry import CanonicalData, Entry, encode_data
from ledger.log.group_commit import GroupCommit, RetryAlone
from ledger.log.storage import remembered_from, remembered_read


class DonationCommands(FundCommands):
    """Commands that record money coming in."""

    def __init__(self, log: Log, vault: Vault) -> None:
        super().__init__(log, vault)
        self._singles = GroupCommit(self._record_singles, limit=MAX_BATCH)

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
        key = scoped_key(actor, idempotency_key)
        return self._singles.submit(
            _SingleDonation(actor, pool, donation, key, request, salt, prepared)
        )

    def _expected_cycle(self) -> int | None:
        """The cycle a write now would be in, if known without reading (see KnownBoundaries)."""
        return self.boundaries.cycle_number(self.log.clock.now())

    def _record_singles(self, singles: Sequence[_SingleDonation]) -> list[Outcome | Exception]:
        """One transaction for the group: what it reads (the head, the pools due a handover,
        the keys, references and pools the group names) in one round trip on PostgreSQL, and
        what it writes, with the commit, in one more (see LogWriter.queue_writes)."""
        reads = _GroupReads(singles, self.log.fingerprint_key)
        try:
            with self.transaction(reads.queries) as tx:
                try:
                    group = _DonationGroup(tx, reads, _References(tx, self.log.fingerprint_key))
                    outcomes = [group.add(single) for single in singles]
                    tx.writer.queue_writes()
                    group.write()
                except Exception as exc:  # (rolled back: nothing of the group is written)
                    raise RetryAlone(exc) from exc
        except NotCommitted as refused:  # (a queued write refused: nothing was written)
            raise RetryAlone(refused.error) from refused
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
        kept: list[tuple[PublicText, int, str]] = []

        def command(tx: FundTransaction) -> Entry:
            accepted = json.loads(pool_row(tx.conn, pool).currencies)
            donations = checked(accepted, None) if prepared is None else prepared
            for donation in donations:
                _check_accepted(pool, accepted, donation.currency)
            references = _References(tx, self.log.fingerprint_key)
            digests = references.check_batch(pool, donations)
            items = [d.entry_data(tx.cycle.number) for d in donations]
            written.extend(tx.emit_all("donation_recorded", items, actor.id))
            for digest, entry in zip(digests, written, strict=True):
                references.claim(pool, digest, entry.seq)
            references.write()
            records = [d.private_record(e.seq) for d, e in zip(donations, written, strict=True)]
            keep_private(tx.conn, tx.vault, records)
            pairs = zip(donations, written, strict=True)
            kept.extend(text for d, e in pairs for text in d.public_texts(e.seq))
            keep_public(tx.conn, kept)
            return written[0]

        outcome = self._run(actor, idempotency_key, request, command)
        if outcome.replayed:
            return outcome
        seqs = (entry.seq for entry in written)
        return replace(
            outcome,
            written=tuple(written),
            salts=dict(zip(seqs, salts, strict=True)),
            texts={text.commitment: text.text for text, _, _ in kept},
        )


class _Donation(NamedTuple):
    """A checked donation: its currency, its entry's data but the cycle (known when it is
    written), its receipt's salt, what goes to the private table, and the entry's data
    encoded for the cycle expected (None if not known); the display name, if any, as the
    public text its data commits to."""

    currency: str
    data: dict[str, Any]
    salt: bytes
    private: dict[str, Any]
    encoded: CanonicalData | None
    name: PublicText | None = None

    def entry_data(self, cycle: int) -> CanonicalData:
        """The entry's data in ``cycle``: encoded before the write lock was taken, unless the
        cycle was not known then or has turned since."""
        if self.encoded is not None and self.encoded.value["cycle"] == cycle:
            return self.encoded
        return encode_data({**self.data, "cycle": cycle})

    def private_record(self, seq: int) -> PrivateRecord:
        commitment_hex = self.data["donor"]["commitment"]
        return PrivateRecord(commitment_hex, "donation", self.salt, self.private, seq)

    def public_texts(self, seq: int) -> list[tuple[PublicText, int, str]]:
        """The display name for ``public_texts``, kept under the entry at ``seq``."""
        return [] if self.name is None else [(self.name, seq, "donor.name")]


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


class _GroupReads:
    """What a group of single donations reads before it checks them, as queries sent with
    the transaction's opening: the idempotency keys it uses, the references its checked
    donations name (up to _CHUNK; more are read when checked), and its pools' currencies."""

    def __init__(self, singles: Sequence[_SingleDonation], key: bytes) -> None:
        keys = sorted({s.key for s in singles if s.key is not None})
        digests = list(
            dict.fromkeys(
                reference_digest(key, s.pool, s.prepared.private["external_reference"])
                for s in singles
                if s.prepared is not None
            )
        )[:_CHUNK]
        pools = sorted({s.pool for s in singles})
        self.queries: list[Read] = []
        self._keys = self._add(remembered_read(keys) if keys else None)
        recorded = (_RECORDED.format(", ".join("?" * len(digests))), digests)
        self._references = self._add(recorded if digests else None)
        self._pools = self._add((_CURRENCIES.format(", ".join("?" * len(pools))), pools))
        self.digests = digests

    def _add(self, query: Read | None) -> int | None:
        if query is None:
            return None
        self.queries.append(query)
        return len(self.queries) - 1

    def rows(self, tx: FundTransaction, index: int | None) -> list[Any]:
        return [] if index is None else tx.prefetched[index]

    def seen(self, tx: FundTransaction) -> dict[str, tuple[int, str]]:
        return remembered_from(self.rows(tx, self._keys))

    def recorded(self, tx: FundTransaction) -> dict[str, int | None]:
        found = dict(self.rows(tx, self._references))
        return {digest: found.get(digest) for digest in self.digests}

    def currencies(self, tx: FundTransaction) -> dict[str, list[str]]:
        return {slug: json.loads(currencies) for slug, currencies in self.rows(tx, self._pools)}


# Only the pools found: a missing one is read again when a donation names it (pool_row),
# which raises what it raises alone.
_CURRENCIES = "SELECT slug, currencies FROM pools WHERE slug IN ({})"


class _DonationGroup:
    """Single donations in one transaction: each checked in turn, in the rules' order, as if
    alone (a later one sees the earlier ones' idempotency keys); their projections, private
    records and keys written together at the end."""

    def __init__(self, tx: FundTransaction, reads: _GroupReads, refs: _References) -> None:
        self.tx = tx
        self.references = refs
        self.seen = reads.seen(tx)
        refs.known.update(reads.recorded(tx))
        self.currencies: dict[str, list[str]] = reads.currencies(tx)
        self.entries: list[Entry] = []
        self.records: list[PrivateRecord] = []
        self.texts: list[tuple[PublicText, int, str]] = []
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
        digest = self.references.check(single.pool, donation, "external_reference")
        data = donation.entry_data(self.tx.cycle.number)
        entry = writer.append("donation_recorded", data, single.actor.id)
        self.references.claim(single.pool, digest, entry.seq)
        self.entries.append(entry)
        self.records.append(donation.private_record(entry.seq))
        texts = donation.public_texts(entry.seq)
        self.texts.extend(texts)
        if key is not None:
            self.seen[key] = (entry.seq, writer.fingerprint(single.request))
            self.keys.append((key, *self.seen[key]))
        return Outcome(
            entry.seq,
            replayed=False,
            written=(entry,),
            salts={entry.seq: single.salt},
            texts={text.commitment: text.text for text, _, _ in texts},
        )

    def _accepted(self, pool: str) -> list[str]:
        if pool not in self.currencies:
            self.currencies[pool] = json.loads(pool_row(self.tx.conn, pool).currencies)
        return self.currencies[pool]

    def write(self) -> None:
        apply_entries(self.tx.conn, self.entries)
        keep_private(self.tx.conn, self.tx.vault, self.records)
        keep_public(self.tx.conn, self.texts)
        self.references.write()
        self.tx.writer.remember_all(self.keys)


class DuplicateReference(RuleViolation):
    """A donation names an external reference the pool has recorded already (409)."""

    def __init__(self, field: str, first: str) -> None:
        super().__init__(
            f"{field} was recorded already in this pool: {first}; one bank or chain "
            "reference is one donation",
            code="duplicate_reference",
        )


# The digest keys the pool in (see reference_digest), so it is unique across pools alone.
_RECORDED = "SELECT digest, seq FROM donation_references WHERE digest IN ({})"
_CHUNK = 500
_NEW_REFERENCES = RowInsert("donation_references", ("digest", "pool", "seq"))


class _References:
    """The pools' external references, compared by keyed digest within one transaction (which
    holds the log's write lock, so no other writer can claim one meanwhile)."""

    def __init__(self, tx: FundTransaction, key: bytes) -> None:
        self.tx = tx
        self.key = key
        self.known: dict[str, int | None] = {}  # digest: the seq that claimed it, or None
        self.claimed: list[tuple[str, str, int]] = []

    def digest(self, pool: str, donation: _Donation) -> str:
        return reference_digest(self.key, pool, donation.private["external_reference"])

    def load(self, digests: Sequence[str]) -> None:
        missing = [d for d in dict.fromkeys(digests) if d not in self.known]
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            query = _RECORDED.format(", ".join("?" * len(chunk)))
            found = dict(read_sql(self.tx.conn, query, chunk))
            self.known.update({d: found.get(d) for d in chunk})

    def check(self, pool: str, donation: _Donation, field: str) -> str:
        """The donation's digest, unless its reference was recorded (DuplicateReference)."""
        digest = self.digest(pool, donation)
        self.load([digest])
        first = self.known[digest]
        if first is not None:
            raise DuplicateReference(field, f"the donation at seq {first}")
        return digest

    def check_batch(self, pool: str, donations: Sequence[_Donation]) -> list[str]:
        """The batch's digests, unless one was recorded or repeats an earlier one."""
        digests = [self.digest(pool, d) for d in donations]
        self.load(digests)
        first_index: dict[str, int] = {}
        for i, digest in enumerate(digests):
            field = f"donations[{i}].external_reference"
            seq = self.known[digest]
            if seq is not None:
                raise DuplicateReference(field, f"the donation at seq {seq}")
            if digest in first_index:
                raise DuplicateReference(field, f"donations[{first_index[digest]}] of this batch")
            first_index[digest] = i
        return digests

    def claim(self, pool: str, digest: str, seq: int) -> None:
        self.known[digest] = seq
        self.claimed.append((digest, pool, seq))

    def write(self) -> None:
        if self.claimed:
            _NEW_REFERENCES.run(self.tx.conn, self.claimed)


def recorded_references(
    conn: Connection, key: bytes, pool: str, references: Sequence[str]
) -> dict[str, int]:
    """Which of ``references`` the pool has recorded already, each with its donation's seq
    (read outside the write lock: an import's plan; the write checks again)."""
    digests = {reference_digest(key, pool, reference): reference for reference in references}
    found: dict[str, int] = {}
    names = list(digests)
    for start in range(0, len(names), _CHUNK):
        chunk = names[start : start + _CHUNK]
        query = _RECORDED.format(", ".join("?" * len(chunk)))
        found.update({digests[d]: int(seq) for d, seq in read_sql(conn, query, chunk)})
    return found


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
    donor: dict[str, Any] = {"commitment": commitment(salt, donor_reference or reference)}
    name = None
    if display_name is not None:
        checked = check_public_text(display_name, f"{where}display_name", 64, one_line=True)
        name = PublicText.new(checked)
        donor["name"] = name.field()
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
        "v": DATA_VERSION,
    }
    private = {
        "external_reference": reference,
        "donor_reference": donor_reference,
        "note": note,
    }
    encoded = None if cycle is None else encode_data({**data, "cycle": cycle})
    return _Donation(currency, data, salt, private, encoded, name)
