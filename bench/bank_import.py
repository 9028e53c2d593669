"""Bank statement import throughput, beside the batch-donation rate of the same run.

    .venv/bin/python bench/bank_import.py              # full sizes
    .venv/bin/python bench/bank_import.py --smoke      # tiny sizes: every step runs, in seconds
    .venv/bin/python bench/bank_import.py --sqlite-only | --postgres-only

Per engine, in a fresh database (a SQLite file in a temporary folder, or a PostgreSQL schema of
its own, dropped at the end), a pool taking EUR; each round, alternating:

* ``Fund.record_donations``: one batch of ``lines`` donations (what an import records with);
* a camt.053 statement of ``lines`` new credit lines (and a tenth as many debits, unmatched),
  parsed and imported (``parse_statement`` + ``import_statement``): statement lines per second;
* the same statement imported again: every credit is recorded already, nothing is written;
* parsing alone (lxml, no database).

Rates are medians over the rounds; ±x% is the largest distance of a round from the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ledger_core import (
    DEFAULT_POSTGRES_URL,
    Database,
    machine_facts,
    postgres_database,
    postgres_version,
    progress,
    sqlite_database,
)
from bench.smoke import add_size_options
from ledger import migrate
from ledger.fund import Actor, Fund, Vault, import_statement, parse_statement
from ledger.log.append import Log
from ledger.log.notes import Signer
from tests.statement_builder import Line, camt053

ORIGIN = "bench.lunaria.example/log"
POOL = "bench"
ADMIN = Actor(id="admin:bench", role="admin")
TREASURER = Actor(id="treasurer:bench", role="treasurer")


@dataclass(frozen=True)
class Sizes:
    rounds: int
    lines: int


Opener = Callable[[], AbstractContextManager[Database]]
FULL = Sizes(rounds=5, lines=1000)
SMOKE = Sizes(rounds=1, lines=20)
MEASUREMENTS = (
    "batch donations (record_donations)",
    "import camt.053, new lines",
    "import again, all recorded already",
    "parse camt.053 only",
)


def _statement(round_no: int, lines: int) -> bytes:
    credits = [
        Line(f"{1 + i % 50}.{i % 100:02d}", f"R{round_no}-C{i}", remittance=f"gift {i}")
        for i in range(lines)
    ]
    debits = [
        Line("9.99", f"R{round_no}-D{i}", credit=False, iban=None, name="Shop")
        for i in range(max(1, lines // 10))
    ]
    return camt053(credits + debits, statement_id=f"STMT-{round_no}")


def _batch(round_no: int, lines: int) -> list[dict[str, str]]:
    return [
        {
            "amount": str(100 + i),
            "currency": "EUR",
            "channel": "bank",
            "external_reference": f"batch-{round_no}-{i}",
        }
        for i in range(lines)
    ]


def _timed(action: Callable[..., object], *args: object) -> float:
    began = time.perf_counter()
    action(*args)
    return time.perf_counter() - began


def run_engine(open_db: Opener, sizes: Sizes) -> list[list[float]]:
    """Per measurement, the rate of each round (lines or donations per second)."""
    rates: list[list[float]] = [[] for _ in MEASUREMENTS]
    with open_db() as db, tempfile.TemporaryDirectory(prefix="lunaria-bench-") as keys:
        migrate.upgrade(db.engine)
        log = Log(db.engine, ORIGIN, signer=Signer.generate(ORIGIN))
        log.create()
        fund = Fund(log, Vault.create(Path(keys) / "data.key"))
        fund.register_collective(ADMIN, slug="bench-collective", name="Bench collective")
        fund.create_pool(ADMIN, slug=POOL, name="Bench pool", currencies=["EUR"])
        fund.set_roster(ADMIN, POOL, ["bench-collective"])
        for round_no in range(sizes.rounds):
            raw = _statement(round_no, sizes.lines)
            count = raw.count(b"<Ntry>")
            batch = _batch(round_no, sizes.lines)
            seconds = [
                _timed(fund.record_donations, TREASURER, POOL, batch),
                _timed(_import, fund, raw, sizes.lines),
                _timed(_import, fund, raw, 0),
                _timed(parse_statement, raw),
            ]
            counts = (sizes.lines, count, count, count)
            for rate, n, s in zip(rates, counts, seconds, strict=True):
                rate.append(n / s)
            progress(f"{db.name} round {round_no + 1}/{sizes.rounds}")
    return rates


def _import(fund: Fund, raw: bytes, expected: int) -> None:
    report = import_statement(fund, TREASURER, POOL, parse_statement(raw))
    if report.recorded != expected:
        raise SystemExit(f"the import recorded {report.recorded}, not {expected}")


def _cell(rates: Sequence[float]) -> str:
    median = statistics.median(rates)
    spread = max(abs(r - median) for r in rates) / median * 100
    return f"{median:,.0f}/s ±{spread:.0f}%"


def report(results: dict[str, list[list[float]]]) -> str:
    names = list(results)
    rows = [["measurement", *names]]
    for i, measurement in enumerate(MEASUREMENTS):
        rows.append([measurement, *(_cell(results[name][i]) for name in names)])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def _databases(args: argparse.Namespace) -> Iterator[tuple[str, Opener]]:
    if not args.postgres_only:
        yield "SQLite", sqlite_database
    if not args.sqlite_only and postgres_version(args.postgres_url) is not None:
        yield "PostgreSQL", lambda: postgres_database(args.postgres_url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_size_options(parser)
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--sqlite-only", action="store_true")
    engines.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    print(machine_facts(None if args.sqlite_only else postgres_version(args.postgres_url)))
    began = time.perf_counter()
    results = {}
    for name, open_db in _databases(args):
        progress(name)
        results[name] = run_engine(open_db, sizes)
    if args.postgres_only and "PostgreSQL" not in results:
        return 2
    print()
    print(f"statements of {sizes.lines} credits and {max(1, sizes.lines // 10)} debits")
    print(report(results))
    print()
    print(
        f"{'smoke' if args.smoke else 'full'} run in {time.perf_counter() - began:.0f} s; "
        f"{sizes.rounds} rounds; rates are medians over rounds (lines or donations per second)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
