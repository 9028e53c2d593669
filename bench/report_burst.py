"""Checkpoint and proof latency during a burst of report downloads, before and after the report
cache and the render bound, on SQLite and on PostgreSQL.

    .venv/bin/python bench/report_burst.py                # a closed cycle of 10,000 entries
    .venv/bin/python bench/report_burst.py --entries 3000 --sqlite-only
    .venv/bin/python bench/report_burst.py --smoke        # tiny: every step runs, in seconds

Per engine, a fresh database gets one pool whose lunar cycle holds ``--entries`` entries
(bench/reports.py's ``build_cycle``), and ``lunaria serve`` serves it as ``make run`` does
(waitress, api/serve_cli.py's settings, one process; bench/serving.py). Three rounds, each on a
freshly started server:

* ``idle``: no burst, the yardstick;
* ``before``: the report cache off and no bound on renders (``LUNARIA_REPORT_CACHE=false``,
  ``LUNARIA_REPORT_RENDERS=0``): every download renders, as before;
* ``after``: the defaults: each report rendered once and kept, one render at a time (per
  process: the one), a request that finds the slot taken answered 503 with Retry-After at once.

Rate limits are off in every round (``LUNARIA_RATE_LIMITS=0``): from one address they would
turn the burst itself away, and this measures what the server does with the requests it takes.
The clients do not honour Retry-After (an attacker would not).

During a round, ``--clients`` closed-loop clients download the cycle's PDF in English, Spanish
and Ukrainian in turn, while one client reads ``/api/v1/ledger/checkpoint`` and one reads
inclusion proofs (random index, the latest checkpoint's size); their p50, p99 and maximum are
what is measured. The report answers are counted: 200s and others (503s in ``after``).
Each engine's table is printed as soon as it is measured. Progress goes to stderr, results to
stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.http_load import Result, load
from bench.public_read import load_average
from bench.reports import ORIGIN, build_cycle
from bench.scratch import postgres_reachable, postgres_url, progress, sqlite_url
from bench.serving import THREADS, lunaria_serve
from bench.smoke import add_size_options
from ledger.log.db import make_engine

POSTGRES_URL = os.environ.get(
    "LUNARIA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
FULL_ENTRIES, SMOKE_ENTRIES = 10_000, 300
NO_RATE_LIMITS = {"LUNARIA_RATE_LIMITS": "0"}  # (they would stop the burst itself)
ROUNDS = {
    "idle": None,
    "before": {"LUNARIA_REPORT_CACHE": "false", "LUNARIA_REPORT_RENDERS": "0"},
    "after": {},
}


@dataclass(frozen=True)
class Timing:
    warmup: float
    duration: float


FULL, SMOKE = Timing(warmup=5.0, duration=40.0), Timing(warmup=0.2, duration=1.0)


@dataclass(frozen=True)
class Row:
    engine: str
    round: str
    endpoint: str
    result: Result


def checkpoint_size(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT checkpoint_size FROM log_head")).scalar_one())
    finally:
        engine.dispose()


def measure(
    port: int, cycle: int, size: int, burst: bool, clients: int, timing: Timing
) -> dict[str, Result]:
    """The reads' latencies, with or without the burst of report downloads beside them."""
    rng = random.Random(6962)
    reads = {
        "checkpoint": ["/api/v1/ledger/checkpoint"],
        "inclusion proof": [
            f"/api/v1/ledger/proofs/inclusion?index={rng.randrange(size)}&size={size}"
            for _ in range(200)
        ],
    }
    if burst:
        reads["report PDF"] = [
            f"/api/v1/pools/bench/reports/{cycle}.pdf?lang={lang}" for lang in ("en", "es", "uk")
        ]
    results: dict[str, Result] = {}

    def run(name: str, paths: Sequence[str]) -> None:
        connections = clients if name == "report PDF" else 1
        results[name] = load(
            port,
            paths,
            connections,
            processes=min(connections, 2),
            warmup=timing.warmup,
            duration=timing.duration,
            preload=["bench.http_load"],
        )

    threads = [threading.Thread(target=run, args=item) for item in reads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: results[name] for name in reads}  # in a fixed order


def run_engine(name: str, url: str, args: argparse.Namespace, timing: Timing) -> list[Row]:
    progress(f"{name}: a closed cycle of {args.entries:,} entries")
    cycle, seconds = build_cycle(url, args.entries)
    progress(f"{name}: built in {seconds:.1f} s")
    size = checkpoint_size(url)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lunaria-bench-burst-") as tmp:
        env = {
            **os.environ,
            "LUNARIA_DATABASE_URL": url,
            "LUNARIA_KEY_FILE": str(Path(tmp) / "log.key"),
            "LUNARIA_DATA_KEY_FILE": str(Path(tmp) / "data.key"),
            "LUNARIA_ORIGIN": ORIGIN,
            **NO_RATE_LIMITS,
        }
        for round_name, settings in ROUNDS.items():
            progress(f"{name}: {round_name} (load average {load_average()})")
            ready = "/api/v1/ledger/checkpoint"
            with lunaria_serve(env | (settings or {}), ready, args.threads) as port:
                measured = measure(port, cycle, size, settings is not None, args.clients, timing)
            rows.extend(Row(name, round_name, endpoint, r) for endpoint, r in measured.items())
    return rows


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report(rows: Sequence[Row], args: argparse.Namespace) -> None:
    print(
        f"\nReport burst: {args.clients} clients downloading a {args.entries:,}-entry cycle's "
        f"PDF (en, es, uk in turn) beside 1 checkpoint reader and 1 proof reader; lunaria serve "
        f"(waitress, {args.threads} threads, one process); {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load_average()}.\n"
    )
    header = ("engine", "round", "endpoint", "requests", "p50 ms", "p99 ms", "max ms", "not 200")
    lines = [header]
    for row in rows:
        r = row.result
        lines.append(
            (
                row.engine,
                row.round,
                row.endpoint,
                f"{r.requests:,}",
                ms(r.p50),
                ms(r.p99),
                ms(r.worst),
                f"{r.errors:,}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    sys.stdout.flush()  # (each engine's table as soon as it is measured)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_options(parser, "--entries", type=int, help=f"default {FULL_ENTRIES:,}")
    parser.add_argument("--clients", type=int, default=8, help="report downloaders (default 8)")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"waitress threads (default {THREADS})"
    )
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args(argv)
    timing = SMOKE if args.smoke else FULL
    args.entries = SMOKE_ENTRIES if args.smoke else args.entries or FULL_ENTRIES
    if not args.postgres_only:
        with sqlite_url("burst") as url:
            report(run_engine("SQLite", url, args, timing), args)
    if not args.sqlite_only and postgres_reachable(POSTGRES_URL):
        with postgres_url(POSTGRES_URL, "burst") as url:
            report(run_engine("PostgreSQL", url, args, timing), args)


if __name__ == "__main__":
    main()
