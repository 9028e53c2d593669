"""Beancount: the cycle's postings as a ledger that ``bean-check`` accepts.

Accounts per pool and currency, from the log's pool accounts: ``available`` and
``committed`` are assets, ``donations`` income, ``grants`` expenses; the opening balance comes
from equity. Each transaction is one entry of the log (its postings, exactly), with the entry's
``seq``, ``entry_hash`` and ``ts`` as metadata. Balance assertions for ``available`` and
``committed`` follow the handover that closes the cycle (for an interim report, the last entry
covered), with zero tolerance, so ``bean-check`` fails if any amount differs by even one
minor unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from exports.report import CycleReport, EntryRow
from exports.sink import Sink
from ledger.fund import format_major

ROOTS = {
    "available": ("Assets", "Available"),
    "committed": ("Assets", "Committed"),
    "donations": ("Income", "Donations"),
    "grants": ("Expenses", "Grants"),
    "opening": ("Equity", "Opening"),
}


def account(pool: str, currency: str, name: str) -> str:
    """``Assets:Food-bank:EUR:Available`` for pool ``food-bank`` (slugs are lowercase, so
    capitalising the first character is one-to-one)."""
    root, leaf = ROOTS[name]
    return f"{root}:{pool[:1].upper()}{pool[1:]}:{currency}:{leaf}"


def _quote(text: str) -> str:
    cleaned = " ".join(text.split())
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _day(ts: str) -> date:
    return date.fromisoformat(ts[:10])


def write_beancount(report: CycleReport, out: Sink) -> None:
    for line in beancount_lines(report):
        out.write(line.encode() + b"\n")


def beancount_lines(report: CycleReport) -> Iterator[str]:
    r = report
    cp = r.checkpoint
    status = "interim" if r.interim else "closed"
    yield f"; Lunaria: pool {r.pool}, lunar cycle {r.cycle} ({status})"
    yield f"; from {r.starts_at} to {r.ends_at} (new moons, UTC)"
    yield f"; covered by checkpoint {cp.origin} size {cp.size} root {cp.root.hex()}"
    yield f'option "title" {_quote(f"Lunaria {r.pool} cycle {r.cycle}")}'
    for currency in r.currencies:
        yield f'option "operating_currency" "{currency}"'
    yield ""
    opened = _day(r.entries[0].ts)
    for currency in sorted({rf.currency for rf in r.roll_forward} | set(r.currencies)):
        for name in ROOTS:
            yield f"{opened} open {account(r.pool, currency, name)} {currency}"
    yield ""
    yield from _opening(r, opened)
    for row in r.entries:
        yield from _transaction(r.pool, row)
    yield from _assertions(r)


def _opening(r: CycleReport, opened: date) -> Iterator[str]:
    first = r.entries[0]
    legs = [
        (name, amount, rf.currency)
        for rf in r.roll_forward
        for name, amount in (
            ("available", rf.opening_available),
            ("committed", rf.opening_committed),
        )
        if amount
    ]
    if not legs:
        return
    yield f'{opened} * "opening balance" {_quote(f"cycle {r.cycle}, from entry {first.seq}")}'
    yield from _meta(first)
    for name, amount, currency in legs:
        yield f"  {account(r.pool, currency, name)}  {format_major(amount, currency)} {currency}"
        equity = account(r.pool, currency, "opening")
        yield f"  {equity}  {format_major(-amount, currency)} {currency}"
    yield ""


def _meta(row: EntryRow) -> Iterator[str]:
    yield f"  seq: {row.seq}"
    yield f'  entry_hash: "{row.entry_hash}"'
    yield f'  ts: "{row.ts}"'


def _narration(row: EntryRow) -> str:
    if row.kind == "donation_recorded":
        return f"{row.channel} donation from {row.donor_name or row.donor}"
    if row.kind == "correction":
        return f"corrects entry {row.corrects}: {row.reason or ''}"
    lane = f" ({row.lane})" if row.lane else ""
    decision = f" {row.decision}" if row.decision else ""
    return f"grant {row.grant}{decision}{lane}"


def _transaction(pool: str, row: EntryRow) -> Iterator[str]:
    if not row.postings:
        return
    yield f"{_day(row.ts)} * {_quote(row.kind)} {_quote(_narration(row))}"
    yield from _meta(row)
    for leg in row.postings:
        name = account(pool, leg.currency, leg.account)
        yield f"  {name}  {format_major(leg.amount, leg.currency)} {leg.currency}"
    yield ""


def _assertions(r: CycleReport) -> Iterator[str]:
    """Balances the morning after the last entry: the handover (or the interim end)."""
    last = r.entries[-1]
    after = _day(last.ts) + timedelta(days=1)
    note = f"handover {last.seq}" if not r.interim else f"interim, last entry {last.seq}"
    for rf in r.roll_forward:
        for name, amount in (("available", rf.available), ("committed", rf.committed)):
            # "~ 0": exact, not beancount's default tolerance of one unit of the last digit.
            yield (
                f"{after} balance {account(r.pool, rf.currency, name)}  "
                f"{format_major(amount, rf.currency)} ~ 0 {rf.currency}"
            )
            yield f"  note: {_quote(note)}"
