"""Public reads over HTTP: requests per second and p99 latency, on SQLite and on PostgreSQL.

    .venv/bin/python bench/public_read.py                 # a 1,000,000-entry log
    .venv/bin/python bench/public_read.py --quick         # a 20,000-entry log, short rounds
    .venv/bin/python bench/public_read.py --smoke         # tiny: every step runs, in seconds
    .venv/bin/python bench/public_read.py --size 200000 --sqlite-only
    .venv/bin/python bench/public_read.py --cache-dir var/bench   # keep and reuse the logs

What is measured, per engine, in a fresh database (a SQLite file, or a PostgreSQL schema of
its own, dropped at the end):

* the pool page, as HTML (``/pools/food-bank``) and as JSON (``/api/v1/pools/food-bank``);
* an inclusion proof (``/api/v1/ledger/proofs/inclusion?index=I&size=N``, I random);
* a consistency proof (``/api/v1/ledger/proofs/consistency?from=M&to=N``, M random);
* a receipt (``/api/v1/receipts/I``, I random, against the latest checkpoint), as JSON and
  as C2SP tlog-proof text (``/api/v1/receipts/I.tlog-proof``);

each beside a static file of the same size served by the same server in the same run (a
Flask ``send_from_directory`` route added to the same app), so the figures say what the
reads cost above serving bytes. Rounds alternate endpoint and static twin.

The log: ``log_created``, then ``--size`` minus the demo's entries of ~370-byte donation-like
filler (for a pool that does not exist: no projections) appended through ``Log.writer()`` in
batches of 10,000, then the six-cycle demo (``lunaria init --demo``'s, so the pool pages have
real books, cycles and grants, and are the log's newest entries), then a checkpoint.

The server: as ``make run`` serves, ``lunaria serve``'s waitress with api/serve_cli.py's
settings (``--threads`` overrides its thread count), in one process started by
bench/serving.py; here ``public_read.py --serve`` serves the app above with the static route
added, the same way. waitress keeps every client's connection alive. The load
(bench/http_load.py): separate client processes, each with threads on ``http.client``, closed
loop, ``--connections`` requests in flight. The machine is shared by server, database and
clients (and whatever else runs: the load averages are printed): the static twin measured in
the same run is the yardstick.
Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from bench.http_load import Result, load  # noqa: E402
from bench.serving import THREADS, lunaria_serve, serve_app  # noqa: E402
from bench.smoke import add_size_options  # noqa: E402
from ledger import migrate  # noqa: E402
from ledger.fund.commands import Fund  # noqa: E402
from ledger.fund.demo import load_demo, start_of_demo  # noqa: E402
from ledger.fund.vault import Vault  # noqa: E402
from ledger.log.append import CheckpointPolicy, Log  # noqa: E402
from ledger.log.clock import ManualClock  # noqa: E402
from ledger.log.db import make_engine, normalise_url  # noqa: E402
from ledger.log.notes import Signer  # noqa: E402

ORIGIN = "bench.lunaria.example/log"
POSTGRES_URL = os.environ.get(
    "LUNARIA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BUILD_BATCH = 10_000
DEMO_ENTRIES = 1_600  # at least what load_demo writes (it varies with the date)
POOL = "food-bank"
STATIC_ENV = "LUNARIA_BENCH_STATIC_DIR"
STATIC_ROUTE = "/bench-static/"


@dataclass(frozen=True)
class Mode:
    """The defaults of a run: the log's size, and the seconds and number of rounds."""

    size: int  # entries in the log
    duration: float  # seconds measured per round
    warmup: float  # seconds of load before measuring
    rounds: int  # rounds per endpoint (the best is reported)


FULL = Mode(size=1_000_000, duration=5.0, warmup=1.0, rounds=2)
QUICK = Mode(size=20_000, duration=2.0, warmup=1.0, rounds=1)
# The smallest run that still takes every step and prints every row: a test that the benchmark
# works (tests/test_bench_smoke.py), not a measurement. The log gets filler, the demo, then
# filler again, so every step of the build runs.
SMOKE = Mode(size=DEMO_ENTRIES + 400, duration=0.5, warmup=0.3, rounds=1)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the app the server serves ------------------------------------------------------------------


def bench_app() -> Any:
    """``create_app()`` plus a plain static-file route (the baseline), for ``--serve``."""
    from flask import send_from_directory

    from api import create_app

    app = create_app()
    directory = os.environ[STATIC_ENV]

    def static_file(name: str) -> Any:
        return send_from_directory(directory, name)

    app.add_url_rule(f"{STATIC_ROUTE}<name>", "bench_static", static_file)
    return app


# -- building the log -------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    engine_name: str
    url: str
    key_file: Path

    @property
    def data_key_file(self) -> Path:
        """The vault key that seals the log's private records, beside its signing key."""
        return self.key_file.with_name(f"{self.key_file.stem}-data.key")


def filler(rng: random.Random) -> dict[str, Any]:
    return {
        "pool": "filler",
        "amount": str(rng.choice((500, 1000, 1500, 2000, 5000, 10000))),
        "currency": "EUR",
        "channel": "bank",
        "donor": {"commitment": rng.randbytes(32).hex()},
        "reference": rng.randbytes(32).hex(),
        "cycle": 300,
        "postings": [
            {"account": "filler:donations", "currency": "EUR", "amount": "-1000"},
            {"account": "filler:available", "currency": "EUR", "amount": "1000"},
        ],
    }


def build_log(db: Database, size: int) -> int:
    """Filler, the demo, filler up to ``size`` entries, a checkpoint; returns the size."""
    engine = build_engine(db)
    try:
        migrate.upgrade(engine)
        signer = Signer.generate(ORIGIN)
        signer.save(db.key_file)
        now = datetime.now(UTC)
        clock = ManualClock(start_of_demo(now) - timedelta(days=1))
        policy = CheckpointPolicy(every_entries=BUILD_BATCH, interval=timedelta(days=365))
        log = Log(engine, ORIGIN, signer=signer, clock=clock, policy=policy)
        log.create()
        rng = random.Random(6962)
        data = [filler(rng) for _ in range(1000)]
        add_filler(log, data, max(size - DEMO_ENTRIES - 1, 0), db.engine_name)
        demo_clock = ManualClock(start_of_demo(now))
        demo_log = Log(engine, ORIGIN, signer=signer, clock=demo_clock, policy=policy)
        vault = Vault.create(db.data_key_file)
        summary = load_demo(Fund(demo_log, vault), demo_clock, now)
        say(f"  {db.engine_name}: the demo, {summary.entries:,} entries")
        add_filler(demo_log, data, max(size - demo_log.head().size, 0), db.engine_name)
        checkpoint = demo_log.checkpoint_now()
        return checkpoint.size
    finally:
        engine.dispose()


def build_engine(db: Database) -> Engine:
    """The engine that builds the log. On PostgreSQL its commits do not wait for the WAL to
    reach the disk (``synchronous_commit`` off, beside the schema in the URL's connection
    options): the build is not measured, and the demo alone commits more than a thousand
    times. The server reads with the normal settings."""
    no_wait = "%20-csynchronous_commit%3Doff" if db.engine_name == "PostgreSQL" else ""
    return make_engine(db.url + no_wait)


def add_filler(log: Log, data: Sequence[dict[str, Any]], count: int, engine_name: str) -> None:
    started = time.perf_counter()
    done = 0
    while done < count:
        with log.writer() as writer:
            for i in range(min(BUILD_BATCH, count - done)):
                writer.append("donation_recorded", data[(done + i) % len(data)], "bench")
        done = min(done + BUILD_BATCH, count)
        if done % 100_000 == 0 or done == count:
            rate = done / (time.perf_counter() - started)
            say(f"  {engine_name}: {done:,} filler entries ({rate:,.0f}/s)")


@contextmanager
def sqlite_database(directory: Path) -> Iterator[Database]:
    yield Database("SQLite", f"sqlite:///{directory / 'lunaria.db'}", directory / "sqlite.key")


@contextmanager
def postgres_database(schema: str | None) -> Iterator[Database]:
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    own = schema is None
    schema = schema or f"bench_read_{uuid.uuid4().hex[:10]}"
    key = Path(tempfile.gettempdir()) / f"{schema}.key"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        separator = "&" if "?" in POSTGRES_URL else "?"
        url = normalise_url(POSTGRES_URL) + f"{separator}options=-csearch_path%3D{schema}"
        yield Database("PostgreSQL", url, key)
    finally:
        if own:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            key.unlink(missing_ok=True)
            Database("PostgreSQL", "", key).data_key_file.unlink(missing_ok=True)
        admin.dispose()


def existing_size(db: Database) -> int | None:
    """The size of a log built by an earlier run (``--cache-dir``), if there is one, its
    schema brought up to date first (as ``lunaria init`` does after an upgrade)."""
    if not db.key_file.exists():
        return None
    engine: Engine = make_engine(db.url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT checkpoint_size FROM log_head")).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()


# -- the server -------------------------------------------------------------------------------


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (other work skews the figures)."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


@contextmanager
def server(db: Database, static: Path, threads: int) -> Iterator[int]:
    """:func:`bench_app` serving ``db``, as ``lunaria serve`` serves (bench/serving.py); yields
    its port."""
    env = {
        **os.environ,
        "LUNARIA_DATABASE_URL": db.url,
        "LUNARIA_KEY_FILE": str(db.key_file),
        "LUNARIA_DATA_KEY_FILE": str(db.data_key_file),
        "LUNARIA_ORIGIN": ORIGIN,
        STATIC_ENV: str(static),
    }
    command = [sys.executable, str(ROOT / "bench" / "public_read.py"), "--serve"]
    with lunaria_serve(env, "/api/v1/ledger/checkpoint", threads, command) as port:
        yield port


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- the scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    make_paths: Callable[[random.Random], list[str]]
    target: bool  # held to >= 1,000 req/s and p99 < 20 ms


def scenarios(size: int) -> list[Scenario]:
    def fixed(path: str) -> Callable[[random.Random], list[str]]:
        return lambda _: [path]

    def proofs(rng: random.Random) -> list[str]:
        return [
            f"/api/v1/ledger/proofs/inclusion?index={rng.randrange(size)}&size={size}"
            for _ in range(20_000)
        ]

    def consistency(rng: random.Random) -> list[str]:
        return [
            f"/api/v1/ledger/proofs/consistency?from={rng.randrange(1, size)}&to={size}"
            for _ in range(20_000)
        ]

    def receipts(suffix: str) -> Callable[[random.Random], list[str]]:
        return lambda rng: [
            f"/api/v1/receipts/{rng.randrange(size)}{suffix}" for _ in range(20_000)
        ]

    return [
        Scenario("pool page (HTML)", fixed(f"/pools/{POOL}"), False),
        Scenario("pool (JSON API)", fixed(f"/api/v1/pools/{POOL}"), False),
        Scenario("inclusion proof", proofs, True),
        Scenario("consistency proof", consistency, True),
        Scenario("receipt", receipts(""), True),
        Scenario("receipt tlog-proof", receipts(".tlog-proof"), True),
    ]


@dataclass(frozen=True)
class Row:
    engine: str
    scenario: Scenario
    body: int
    measured: Result
    static: Result
    load: str  # the load averages when the scenario finished


def run_engine(db: Database, size: int, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    static = Path(tempfile.mkdtemp(prefix="lunaria-static-"))
    try:
        with server(db, static, args.threads) as port:
            rng = random.Random(2024)
            for scenario in scenarios(size):
                paths = scenario.make_paths(rng)
                status, body = fetch(port, paths[0])
                if status != 200:
                    raise RuntimeError(f"{paths[0]} answered {status}: {body[:200]!r}")
                twin = f"{scenario.name.split()[0]}-{len(body)}.bin"
                (static / twin).write_bytes(os.urandom(len(body)))
                twin_path = STATIC_ROUTE + twin
                measured: list[Result] = []
                baseline: list[Result] = []
                for _ in range(args.rounds):
                    for target, out in ((paths, measured), ([twin_path], baseline)):
                        out.append(
                            load(
                                port,
                                target,
                                args.connections,
                                args.clients,
                                args.warmup,
                                args.duration,
                                preload=["bench.public_read"],
                            )
                        )
                best = max(measured, key=lambda r: r.rate)
                best_static = max(baseline, key=lambda r: r.rate)
                averages = load_average()
                rows.append(Row(db.engine_name, scenario, len(body), best, best_static, averages))
                say(
                    f"  {db.engine_name} {scenario.name}: {best.rate:,.0f} req/s, "
                    f"p99 {best.p99 * 1000:.1f} ms (static: {best_static.rate:,.0f} req/s, "
                    f"p99 {best_static.p99 * 1000:.1f} ms), load average {averages}"
                )
    finally:
        shutil.rmtree(static, ignore_errors=True)
    return rows


def report(rows: Sequence[Row], sizes: dict[str, int], args: argparse.Namespace) -> None:
    print(
        f"# Lunaria public reads: lunaria serve (waitress, api/serve_cli.py's settings, "
        f"{args.threads} threads, one process), {args.connections} connections from "
        f"{args.clients} client processes, {args.rounds} x {args.duration:g} s rounds (best shown)"
    )
    print(
        f"# {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs shared by server, database and clients"
    )
    for engine, size in sizes.items():
        print(f"# {engine}: log of {size:,} entries")
    print(f"# load average (1, 5, 15 min) before: {args.load_before}, after: {load_average()}")
    header = (
        f"{'engine':<11} {'endpoint':<18} {'bytes':>6} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} | {'static req/s':>12} {'p99 ms':>7} | "
        f"{'target':<6} | load average"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        m, s = row.measured, row.static
        verdict = "-"
        if row.scenario.target:
            verdict = "met" if m.rate >= 1000 and m.p99 < 0.020 and not m.errors else "MISSED"
        print(
            f"{row.engine:<11} {row.scenario.name:<18} {row.body:>6} {m.rate:>7,.0f} "
            f"{m.p50 * 1000:>7.2f} {m.p99 * 1000:>7.2f} {m.errors:>6} | "
            f"{s.rate:>12,.0f} {s.p99 * 1000:>7.2f} | {verdict:<6} | {row.load}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["--serve"]:  # (the server process of a run)
        return serve_app(bench_app(), arguments[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_options(parser, "--quick", action="store_true", help="20,000 entries, short rounds")
    parser.add_argument("--size", type=int, help="entries in the log (default 1,000,000)")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--duration", type=float, help="seconds measured per round")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring")
    parser.add_argument("--rounds", type=int, help="rounds per endpoint (best is reported)")
    parser.add_argument("--connections", type=int, default=4, help="requests in flight")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"waitress threads (default {THREADS})"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="keep the logs here (SQLite file, keys, PostgreSQL schema name) and reuse them",
    )
    args = parser.parse_args(arguments)
    args.load_before = load_average()
    mode = SMOKE if args.smoke else QUICK if args.quick else FULL
    size = args.size or mode.size
    args.duration = args.duration or mode.duration
    args.warmup = mode.warmup if args.warmup is None else args.warmup
    args.rounds = args.rounds or mode.rounds

    engines = []
    if not args.postgres_only:
        engines.append("sqlite")
    if not args.sqlite_only:
        engines.append("postgresql")
    rows: list[Row] = []
    sizes: dict[str, int] = {}
    for engine in engines:
        directory = args.cache_dir or Path(tempfile.mkdtemp(prefix="lunaria-bench-"))
        directory.mkdir(parents=True, exist_ok=True)
        schema = f"bench_read_{size}" if args.cache_dir else None
        context = sqlite_database(directory) if engine == "sqlite" else postgres_database(schema)
        try:
            with context as db:
                if args.cache_dir and db.engine_name == "PostgreSQL":
                    db = Database(db.engine_name, db.url, directory / "postgres.key")
                built = existing_size(db) if args.cache_dir else None
                if built is None or built < size - DEMO_ENTRIES:
                    say(f"{db.engine_name}: building a log of {size:,} entries")
                    started = time.perf_counter()
                    built = build_log(db, size)
                    say(f"  built in {time.perf_counter() - started:,.0f} s")
                sizes[db.engine_name] = built
                say(f"{db.engine_name}: measuring at {built:,} entries")
                rows.extend(run_engine(db, built, args))
        finally:
            if args.cache_dir is None:
                shutil.rmtree(directory, ignore_errors=True)
    report(rows, sizes, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
