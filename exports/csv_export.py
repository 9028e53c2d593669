"""CSV: one row per entry of the cycle (RFC 4180: CRLF, quoted when needed, UTF-8, no BOM).

The columns are :data:`CSV_FIELDS`, always in that order, always all present unless
``fields`` picks some (in the order given). Amounts are integers in minor units, exactly as
in the log, with ``*_major`` twins in major units (``15.00``). ``fund_change`` is the entry's
signed effect on the fund, so over all rows sum(fund_change) = closing - opening; empty
cells are values the entry kind does not have.

Text that a spreadsheet would run as a formula (a cell beginning with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return, e.g. ``=HYPERLINK(…)`` in a grant's purpose) is
neutralised as OWASP recommends, with a leading ``'``; numbers, negative ones included, are
left as they are. The JSON forms keep the raw text, checkable against the log.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from exports.errors import InvalidFields, InvalidRange
from exports.report import CycleReport, EntryRow
from exports.sink import Sink
from ledger.fund import format_major


def _major(attribute: str) -> Callable[[EntryRow], Any]:
    def value(row: EntryRow) -> Any:
        amount = getattr(row, attribute)
        return (
            None if amount is None or row.currency is None else format_major(amount, row.currency)
        )

    return value


def _attribute(name: str) -> Callable[[EntryRow], Any]:
    def value(row: EntryRow) -> Any:
        return getattr(row, name)

    return value


_COLUMNS: dict[str, Callable[[EntryRow], Any]] = {
    name: _attribute(name)
    for name in ("seq", "ts", "kind", "entry_hash", "actor", "currency", "amount")
}
_COLUMNS["amount_major"] = _major("amount")
_COLUMNS["fund_change"] = _attribute("fund_change")
_COLUMNS["fund_change_major"] = _major("fund_change")
_COLUMNS.update(
    (name, _attribute(name))
    for name in (
        "channel",
        "donor",
        "donor_name",
        "grant",
        "urgency",
        "purpose",
        "recipient",
        "member",
        "vote",
        "decision",
        "lane",
        "quorum",
        "allowance_left",
        "corrects",
        "reason",
        "custodian_from",
        "custodian_to",
    )
)
CSV_FIELDS: tuple[str, ...] = tuple(_COLUMNS)


def parse_fields(fields: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"seq,ts,amount"`` (or a list) to column names; None means every column.

    Raises InvalidFields for an empty selection, an empty name, a repeat or an unknown name.
    """
    if fields is None:
        return CSV_FIELDS
    names = [f.strip() for f in (fields.split(",") if isinstance(fields, str) else fields)]
    if not names or any(not name for name in names):
        raise InvalidFields(f"fields must be a comma-separated list of: {', '.join(CSV_FIELDS)}")
    unknown = [name for name in names if name not in _COLUMNS]
    if unknown:
        raise InvalidFields(
            f"unknown fields {', '.join(map(repr, unknown))}; known: {', '.join(CSV_FIELDS)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidFields(f"fields repeated: {', '.join(repeated)}")
    return tuple(names)


def parse_instant(value: str | datetime | None, name: str) -> datetime | None:
    """``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 timestamp; naive means UTC."""
    if value is None or isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidRange(
                f"{name} must be a date (2026-01-31) or an RFC 3339 timestamp, got {value!r}"
            ) from None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def parse_range(
    since: str | datetime | None, until: str | datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The half-open range [since, until); raises InvalidRange when it is empty."""
    start, end = parse_instant(since, "since"), parse_instant(until, "until")
    if start is not None and end is not None and start >= end:
        raise InvalidRange(f"since ({since}) must be before until ({until})")
    return start, end


def select_rows(
    rows: Iterable[EntryRow], since: datetime | None, until: datetime | None
) -> Iterable[EntryRow]:
    if since is None and until is None:
        return rows
    low = since or datetime.min.replace(tzinfo=UTC)
    high = until or datetime.max.replace(tzinfo=UTC)
    return (row for row in rows if low <= datetime.fromisoformat(row.ts) < high)


def write_csv(
    report: CycleReport,
    out: Sink,
    fields: Sequence[str] = CSV_FIELDS,
    since: datetime | None = None,
    until: datetime | None = None,
) -> None:
    """Write the header and one row per entry (within [since, until)) to ``out``."""
    getters = [_COLUMNS[name] for name in fields]
    writer = csv.writer(_Utf8(out), lineterminator="\r\n")
    writer.writerow(fields)
    for row in select_rows(report.entries, since, until):
        writer.writerow([neutralised_cell(get(row)) for get in getters])


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?\Z")


def neutralised_cell(value: Any) -> Any:
    """A cell's value, with text a spreadsheet would run as a formula neutralised."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


class _Utf8:
    """The text side of a byte sink, for :func:`csv.writer`."""

    def __init__(self, out: Sink) -> None:
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(text.encode("utf-8"))
