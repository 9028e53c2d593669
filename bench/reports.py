"""Time and peak memory of cycle reports (PDF and CSV), on SQLite and on PostgreSQL.

    .venv/bin/python bench/reports.py                  # cycles of 1,000, 10,000 and 100,000 entries
    .venv/bin/python bench/reports.py --quick          # 1,000 and 10,000
    .venv/bin/python bench/reports.py --smoke          # 2,100, once: every step runs, in seconds
    .venv/bin/python bench/reports.py --sizes 5000 --sqlite-only | --postgres-only

For each engine and size, a fresh database (a SQLite file in a temporary directory, or a
PostgreSQL schema of its own, dropped at the end) gets one pool whose lunar cycle holds that
many entries: donations recorded through ``Fund.record_donations`` in batches of 1,000, a few
grants with votes, decisions and disbursements, then the handover that closes the cycle. Each
measurement runs in a subprocess of its own, so its peak memory (``ru_maxrss``, the whole
process: interpreter, libraries, data) is its own:

* ``pdf``: ``render_report(..., "pdf")``, which gathers from the database and renders (the
  same gather is also timed alone first, for the breakdown);
* ``csv``: the same for CSV;
* ``bare``: the baseline, reportlab alone on the same donation rows as plain 500-row
  LongTables (one cell per value, the standard Helvetica, ``repeatRows=1``), nothing else.

Target: 100,000 entries in under 20 s and 400 MB (PDF). Progress goes to stderr, results to
stdout. The machine is shared: rounds are few (3 below 100,000 entries, else 1); the median is
shown with the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import postgres_reachable, postgres_url, progress, sqlite_url
from bench.smoke import add_size_options
from exports.data import gather
from exports.formats import make_options, render_report
from exports.pdf import bare_table_pdf
from ledger import migrate
from ledger.fund.commands import Fund
from ledger.fund.rules import Actor, member_actor
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.clock import ManualClock
from ledger.log.db import make_engine
from ledger.log.notes import Signer

ORIGIN = "bench.lunaria.example/log"
POSTGRES_URL = os.environ.get(
    "LUNARIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
START = datetime(2026, 3, 19, 12, tzinfo=UTC)  # just after the new moon of 2026-03-19
CLOSE = datetime(2026, 4, 20, 12, tzinfo=UTC)
ADMIN = Actor("admin:bench", "admin")
TREASURER = Actor("treasurer:bench", "treasurer")
APPLICANT = Actor("applicant:bench", "applicant")
TARGET_SECONDS, TARGET_MB, TARGET_SIZE = 20.0, 400.0, 100_000
GRANTS = 20
# The smallest cycle that still takes every step (two batches of donations, so an urgent grant
# and a normal one), measured once: a test that the benchmark works (tests/test_bench_smoke.py).
SMOKE_SIZE = 2_100


# -- a cycle of N entries -------------------------------------------------------------------


def build_cycle(url: str, entries: int) -> tuple[int, float]:
    """Write a closed cycle of about ``entries`` entries; return its number and build time."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    clock = ManualClock(START)
    log = Log(engine, ORIGIN, signer=Signer.generate(ORIGIN), clock=clock)
    log.create()
    # The vault seals the donors' private data; reports read none of it, so its key is
    # thrown away once the cycle is written.
    keys = Path(tempfile.mkdtemp(prefix="lunaria-bench-vault-"))
    fund = Fund(log, Vault.create(keys / "data.key"))
    started = time.perf_counter()
    fund.register_collective(ADMIN, slug="alba", name="Alba")
    for name in ("a1", "a2", "a3"):
        fund.add_member(ADMIN, "alba", member=name)
    fund.create_pool(
        ADMIN,
        slug="bench",
        name="Benchmark pool",
        currencies=["EUR"],
        fast_lane_cap={"EUR": "5000"},
        cycle_allowance={"EUR": "100000"},
    )
    fund.set_roster(ADMIN, "bench", ["alba"])
    grants = min(GRANTS, entries // 100)
    donations = max(1, entries - 5 * grants - 6)
    step = (CLOSE - START - timedelta(days=4)) / max(1, donations // 1000 + 1)
    for first in range(0, donations, 1000):
        batch = [_donation(i) for i in range(first, min(first + 1000, donations))]
        fund.record_donations(TREASURER, "bench", batch)
        clock.advance(step)
        if first // 1000 < grants:
            _grant(fund, first)
        if first and first % 20_000 == 0:
            progress(f"  {first:,} donations")
    clock.set(CLOSE)
    handovers = fund.rotate()
    assert handovers, "the cycle did not close"
    number = int(handovers[0].data["closed"]["number"])
    engine.dispose()
    shutil.rmtree(keys)
    return number, time.perf_counter() - started


def _donation(i: int) -> dict[str, Any]:
    return {
        "amount": str(500 + (i * 7919) % 20_000),
        "currency": "EUR",
        "channel": ("bank", "crypto", "cash")[i % 3],
        "external_reference": f"bench-tx-{i}",
        "donor_reference": f"donor-{i % 5000}",
        **({"display_name": f"Donor №{i} Ωμέγα"} if i % 50 == 0 else {}),
    }


def _grant(fund: Fund, i: int) -> None:
    urgent = i % 2000 == 0
    proposal = {
        "amount": "4000" if urgent else "20000",
        "currency": "EUR",
        "purpose": "Groceries for a family of five for two weeks",
        "urgency": "urgent" if urgent else "normal",
        "recipient": f"household-{i % 997}",
    }
    grant = fund.propose_grant(APPLICANT, "bench", proposal).seq
    voters = [Actor(member_actor(m), "member", collective="alba", member=m) for m in ("a1", "a2")]
    if urgent:
        fund.cast_vote(voters[0], grant, vote="approve", fast_lane=True)
    else:
        for voter in voters:
            fund.cast_vote(voter, grant, vote="approve")
    fund.disburse(voters[0], grant, payment_reference=f"bench-pay-{i}")


# -- one measurement in a process of its own ------------------------------------------------


def child(url: str, cycle: int, what: str) -> dict[str, float]:
    """Run one measurement here; ``what`` is pdf, csv or bare."""
    engine = make_engine(url)
    now = CLOSE + timedelta(days=1)
    if what == "bare":
        report = gather(engine, "bench", cycle, now)
        rows = [("seq", "time", "amount", "cur", "channel", "hash", "donor")] + [
            (str(r.seq), r.ts[:19], str(r.amount), r.currency or "", r.channel or "",
             r.entry_hash[:16], r.donor_name or (r.donor or "")[:16])
            for r in report.donations
        ]  # fmt: skip
        del report
        started, cpu = time.perf_counter(), time.process_time()
        content = bare_table_pdf(rows)
        seconds, gathered = time.perf_counter() - started, 0.0
    else:
        started = time.perf_counter()
        gather(engine, "bench", cycle, now)  # timed alone, for the breakdown
        gathered = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        content = render_report(
            engine, "bench", cycle, what, now=now, options=make_options("uk")
        ).content
        seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "cpu": cpu, "gather": gathered, "mb": peak, "bytes": len(content)}


def measure(url: str, cycle: int, what: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", url, str(cycle), what],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


# -- the run --------------------------------------------------------------------------------


@dataclass
class Row:
    engine: str
    entries: int
    build: float
    figures: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def median(self, what: str, key: str) -> float:
        return statistics.median(r[key] for r in self.figures[what])

    def spread(self, what: str, key: str) -> str:
        values = [r[key] for r in self.figures[what]]
        return "" if len(values) < 2 else f" ({min(values):.2f}-{max(values):.2f})"


def run(
    engine_name: str, url_maker: Any, sizes: Sequence[int], rounds: int | None = None
) -> list[Row]:
    """Each size in a fresh database; ``rounds`` of each measurement (default: 3 below
    100,000 entries, else 1)."""
    rows = []
    for size in sizes:
        with url_maker() as url:
            progress(f"{engine_name}: building a cycle of {size:,} entries")
            cycle, build = build_cycle(url, size)
            row = Row(engine_name, size, build)
            rounds_here = rounds or (3 if size < 100_000 else 1)
            for _ in range(rounds_here):  # alternate, so all three see the same background load
                for what in ("pdf", "csv", "bare"):
                    row.figures.setdefault(what, []).append(measure(url, cycle, what))
            pdf, csv_, bare = (row.median(w, "seconds") for w in ("pdf", "csv", "bare"))
            progress(
                f"{engine_name} {size:,}: pdf {pdf:.2f} s, csv {csv_:.2f} s, bare {bare:.2f} s"
            )
            rows.append(row)
    return rows


def table(rows: Sequence[Row]) -> str:
    header = (
        "| engine | entries | build | PDF wall (CPU) | gather alone | PDF peak RSS | PDF size "
        "| CSV wall (CPU) | CSV peak RSS | bare reportlab table wall (CPU) | bare peak RSS |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:

        def timing(what: str, r: Row = r) -> str:
            seconds, cpu = r.median(what, "seconds"), r.median(what, "cpu")
            return f"{seconds:.2f} s{r.spread(what, 'seconds')} ({cpu:.2f} s)"

        lines.append(
            f"| {r.engine} | {r.entries:,} | {r.build:.0f} s | {timing('pdf')} "
            f"| {r.median('pdf', 'gather'):.2f} s | {r.median('pdf', 'mb'):.0f} MB "
            f"| {r.median('pdf', 'bytes') / 1e6:.1f} MB | {timing('csv')} "
            f"| {r.median('csv', 'mb'):.0f} MB | {timing('bare')} "
            f"| {r.median('bare', 'mb'):.0f} MB |"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    lines = []
    for r in rows:
        if r.entries >= TARGET_SIZE:
            seconds = r.median("pdf", "seconds")
            mb = r.median("pdf", "mb")
            ok = seconds < TARGET_SECONDS and mb < TARGET_MB
            lines.append(
                f"{r.engine}, {r.entries:,} entries: PDF {seconds:.1f} s and {mb:.0f} MB "
                f"(target < {TARGET_SECONDS:.0f} s, < {TARGET_MB:.0f} MB): "
                f"{'MET' if ok else 'MISSED'}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_options(parser, "--quick", action="store_true", help="1,000 and 10,000 entries only")
    parser.add_argument("--sizes", help="comma-separated entry counts")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "CYCLE", "WHAT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        url, cycle, what = args.child
        print(json.dumps(child(url, int(cycle), what)))
        return 0
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    if args.smoke:
        sizes = [SMOKE_SIZE]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    rounds = 1 if args.smoke else None
    rows: list[Row] = []
    if not args.postgres_only:
        rows += run("SQLite", lambda: sqlite_url("reports"), sizes, rounds)
    if not args.sqlite_only and postgres_reachable(POSTGRES_URL):
        rows += run("PostgreSQL", lambda: postgres_url(POSTGRES_URL, "reports"), sizes, rounds)
    print(f"# Cycle reports: {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}")  # fmt: skip
    print()
    print(table(rows))
    print()
    print("\n".join(verdicts(rows)) or "(no 100,000-entry run: targets not checked)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
