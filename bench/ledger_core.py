"""Throughput and latency of the log core, on SQLite and on PostgreSQL.

    .venv/bin/python bench/ledger_core.py              # full sizes (1M-entry proof log)
    .venv/bin/python bench/ledger_core.py --quick      # small sizes
    .venv/bin/python bench/ledger_core.py --smoke      # tiny sizes: every step runs, in seconds
    .venv/bin/python bench/ledger_core.py --sqlite-only | --postgres-only
    .venv/bin/python bench/ledger_core.py --skip-proofs  # leave out 4. (the 1M-entry log)

What is measured, per engine, each in a fresh database (a SQLite file in a temporary directory,
or a PostgreSQL schema of its own, dropped at the end):

1. durable single appends per second: ``Log.append``, one commit per entry, next to a bare
   baseline in the same run and the same database: INSERT + COMMIT of rows of the same shape and
   size into a plain table through the engine's own DBAPI connection (so SQLite runs with the
   engine's pragmas, WAL and ``synchronous=FULL``; PostgreSQL writes a normal, logged table).
   The bare table copies ``entries`` (same columns, same primary key: the rowid on SQLite).
   They take turns in blocks of 50 commits, so both see the same outside load.
   ``Log.append`` on PostgreSQL builds on the head its Log last wrote and sends the whole
   transaction in one round trip (see ledger.log.append); 1b. shows what that costs when it guesses
   wrong because other processes write too:
1b. single appends from 4 processes at once (a Log each), in appends per second over all,
   next to 4 processes running the bare loop at once.
2. appends per second in batches of 1,000 (one ``Log.writer()`` transaction per batch), next
   to a bare ``executemany`` of 1,000 rows in one transaction.
3. ``verify_database`` over the whole log at 100,000 entries, in entries per second, next to
   the raw cost of SHA-256 over the same bytes.
4. ``Log.inclusion_proof`` and ``Log.consistency_proof`` latency (median, p99) over random
   queries at 1,000,000 entries; the log is built in batches of 10,000 through ``Log.writer()``
   and the build time is reported.

Entries are realistic ``donation_recorded`` entries of ~400 bytes. The machine is shared: every
figure is the median of several rounds, the spread over rounds is printed next to it (±x%: the
largest distance of a round from the median), and so is the load average.
Progress goes to stderr, the results to stdout.

Over 600 lines on purpose: each numbered measurement sits beside its bare baseline (the same
work on the driver alone), so the ratio a reader checks is read in one place; the helpers that
several benches share live in bench/smoke.py and bench/http_load.py.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.smoke import add_size_options
from ledger import migrate
from ledger.log import merkle
from ledger.log.append import Log
from ledger.log.db import make_engine, normalise_url
from ledger.log.entry import encode_entry
from ledger.log.notes import Signer
from ledger.log.verify import verify_database

ORIGIN = "bench.lunaria.example/log"
ACTOR = "treasurer:7f3a9c2e"
KIND = "donation_recorded"
DEFAULT_POSTGRES_URL = os.environ.get(
    "LUNARIA_BENCH_POSTGRES_URL",
    os.environ.get("LUNARIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)

TARGET_SINGLE_RATIO = 0.50
SINGLE_BLOCK = 50
CONCURRENT_WRITERS = 4
TARGET_VERIFY_RATE = 150_000
TARGET_PROOF_SECONDS = 0.002


@dataclass(frozen=True)
class Sizes:
    single_entries: int  # entries per round of single appends
    single_rounds: int
    concurrent_entries: int  # entries per process per round (1b.)
    concurrent_rounds: int
    batch_entries: int  # entries per batch (1,000)
    batch_rounds: int  # batches timed
    verify_size: int
    verify_rounds: int
    proof_size: int
    proof_queries: int
    build_batch: int  # entries per writer transaction while building the big log


FULL = Sizes(
    single_entries=1_000,
    single_rounds=7,
    concurrent_entries=500,
    concurrent_rounds=3,
    batch_entries=1_000,
    batch_rounds=15,
    verify_size=100_000,
    verify_rounds=5,
    proof_size=1_000_000,
    proof_queries=1_000,
    build_batch=10_000,
)
QUICK = Sizes(
    single_entries=100,
    single_rounds=3,
    concurrent_entries=50,
    concurrent_rounds=1,
    batch_entries=1_000,
    batch_rounds=3,
    verify_size=10_000,
    verify_rounds=2,
    proof_size=30_000,
    proof_queries=200,
    build_batch=10_000,
)
# The smallest sizes that still run every measurement and print every row: a test that the
# benchmark works (tests/test_bench_smoke.py), not a measurement.
SMOKE = Sizes(
    single_entries=10,
    single_rounds=1,
    concurrent_entries=5,
    concurrent_rounds=1,
    batch_entries=100,
    batch_rounds=1,
    verify_size=500,
    verify_rounds=1,
    proof_size=1_000,
    proof_queries=20,
    build_batch=10_000,
)


# -- entries ----------------------------------------------------------------------------------

POOLS = ("community-garden-fund", "night-shelter-heating", "school-meals-north", "repair-cafe")
CURRENCIES = (("EUR", 2), ("EUR", 2), ("EUR", 2), ("USD", 2), ("ETH", 18))
CHANNELS = ("bank", "bank", "card", "crypto")


def make_data(rng: random.Random) -> dict[str, Any]:
    currency, exponent = rng.choice(CURRENCIES)
    whole = rng.choice((5, 10, 15, 20, 25, 50, 100, 250, 1000))
    return {
        "pool": rng.choice(POOLS),
        "amount": str(whole * 10**exponent),
        "currency": currency,
        "channel": rng.choice(CHANNELS),
        "donor": rng.randbytes(32).hex(),
        "receipt": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    }


@dataclass
class Workload:
    """A fixed pool of entry data, cycled, so generating data costs nothing in the timings."""

    data: list[dict[str, Any]]
    next: int = 0

    @classmethod
    def make(cls, count: int = 10_000, seed: int = 9162) -> Workload:
        rng = random.Random(seed)
        return cls([make_data(rng) for _ in range(count)])

    def take(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            out.append(self.data[self.next])
            self.next = (self.next + 1) % len(self.data)
        return out

    def bare_rows(self, start_seq: int, n: int) -> list[tuple[int, bytes, str, str, bytes]]:
        """Rows shaped like ``entries`` rows (same columns, same body size) for the baseline."""
        rows = []
        prev = "0" * 64
        ts = "2026-11-23T10:00:00.000000Z"
        for offset, data in enumerate(self.take(n)):
            seq = start_seq + offset
            raw = encode_entry(seq, ts, KIND, prev, ACTOR, data).raw
            digest = merkle.leaf_hash(raw)
            rows.append((seq, digest, KIND, ts, raw))
            prev = digest.hex()
        return rows


# -- statistics and printing ------------------------------------------------------------------


@dataclass
class Figure:
    """Samples of one measurement; ``median`` is what the table shows."""

    samples: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.samples.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def spread(self) -> str:
        if len(self.samples) < 2:
            return ""
        low, high = min(self.samples), max(self.samples)
        median = self.median
        if not median:
            return ""
        return f"±{max(median - low, high - median) / median:.0%}"


def p99(samples: Sequence[float]) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def human_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def human_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# -- databases --------------------------------------------------------------------------------


@dataclass
class Database:
    name: str  # "SQLite" or "PostgreSQL"
    url: str
    engine: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"


# The bare table is a plain copy of ``entries`` (same column types, same primary key, no
# triggers): on SQLite the key is the rowid (INTEGER PRIMARY KEY), as in ``entries``.
_BARE_TABLE = {
    "sqlite": "CREATE TABLE {} (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, "
    "kind VARCHAR(40) NOT NULL, ts VARCHAR(27) NOT NULL, body BLOB NOT NULL)",
    "postgresql": "CREATE TABLE {} (seq BIGINT NOT NULL PRIMARY KEY, hash BYTEA NOT NULL, "
    "kind VARCHAR(40) NOT NULL, ts VARCHAR(27) NOT NULL, body BYTEA NOT NULL)",
}
BARE_TABLES = ("bench_bare", "bench_concurrent")  # (1. and 2.; 1b.)


def bare_insert(table: str, engine: Engine) -> str:
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    return f"INSERT INTO {table} VALUES ({', '.join([marker] * 5)})"


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="lunaria-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        try:
            yield Database("SQLite", url, engine)
        finally:
            engine.dispose()


@contextmanager
def postgres_database(base_url: str) -> Iterator[Database]:
    admin = create_engine(normalise_url(base_url), isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in base_url else "?"
        url = normalise_url(base_url) + f"{separator}options=-csearch_path%3D{schema}"
        engine = make_engine(url)
        try:
            yield Database("PostgreSQL", url, engine)
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


def postgres_version(base_url: str) -> str | None:
    engine = create_engine(normalise_url(base_url))
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as exc:  # reported, and PostgreSQL is skipped
        print(f"PostgreSQL is not reachable at {base_url}: {exc}", file=sys.stderr)
        return None
    finally:
        engine.dispose()


# -- the measurements -------------------------------------------------------------------------


@dataclass
class Results:
    entry_bytes: float = 0.0
    single_ours: Figure = field(default_factory=Figure)
    single_bare: Figure = field(default_factory=Figure)
    single_ratio: Figure = field(default_factory=Figure)
    concurrent_ours: Figure = field(default_factory=Figure)
    concurrent_bare: Figure = field(default_factory=Figure)
    batch_ours: Figure = field(default_factory=Figure)
    batch_bare: Figure = field(default_factory=Figure)
    verify_size: int = 0
    verify_ours: Figure = field(default_factory=Figure)
    verify_sha: Figure = field(default_factory=Figure)
    build_size: int = 0
    build_seconds: float = 0.0
    build_from: int = 0
    proof_size: int = 0
    inclusion: list[float] = field(default_factory=list)
    consistency: list[float] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0


class Bare:
    """INSERT + COMMIT straight through the engine's DBAPI connection (same pragmas/settings)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.fairy = db.engine.raw_connection()
        self.raw: Any = self.fairy.driver_connection
        self.sqlite = db.is_sqlite
        self.inserts = {table: bare_insert(table, db.engine) for table in BARE_TABLES}
        cursor = self.raw.cursor()
        for table in BARE_TABLES:
            cursor.execute(_BARE_TABLE[db.engine.dialect.name].format(table))
        if not self.sqlite:
            self.raw.commit()
        cursor.close()
        self.next_seq = 0

    def close(self) -> None:
        self.fairy.close()

    def single(self, rows: Sequence[tuple[Any, ...]], table: str = "bench_bare") -> float:
        """One transaction per row; returns the elapsed seconds."""
        start = time.perf_counter()
        bare_single(self.raw, self.inserts[table], rows)
        return time.perf_counter() - start

    def batch(self, rows: Sequence[tuple[Any, ...]]) -> float:
        raw, insert = self.raw, self.inserts["bench_bare"]
        start = time.perf_counter()
        if self.sqlite:
            raw.execute("BEGIN")
            raw.executemany(insert, rows)
            raw.execute("COMMIT")
        else:
            with raw.cursor() as cursor:
                cursor.executemany(insert, rows)
            raw.commit()
        return time.perf_counter() - start


def bare_single(raw: Any, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT + COMMIT of each row on a DBAPI connection of one of our engines."""
    if isinstance(raw, sqlite3.Connection):
        # isolation_level is None on the engine's connections: we issue BEGIN ourselves.
        for row in rows:
            raw.execute("BEGIN")
            raw.execute(insert, row)
            raw.execute("COMMIT")
        return
    for row in rows:
        raw.execute(insert, row)  # psycopg opens the transaction (BEGIN) itself
        raw.commit()


def fill(log: Log, workload: Workload, target: int, batch: int) -> float:
    """Append in ``batch``-sized writer transactions until the log holds ``target`` entries."""
    size = log.head().size
    elapsed = 0.0
    while size < target:
        n = min(batch, target - size)
        items = workload.take(n)
        start = time.perf_counter()
        with log.writer() as writer:
            for data in items:
                writer.append(KIND, data, ACTOR)
        elapsed += time.perf_counter() - start
        size += n
    return elapsed


def measure_single(
    db: Database, log: Log, bare: Bare, workload: Workload, sizes: Sizes, out: Results
) -> None:
    n = sizes.single_entries
    # Warm-up: connections, statement caches, the first pages of both tables.
    bare.single(workload.bare_rows(bare.next_seq, 20))
    bare.next_seq += 20
    for data in workload.take(20):
        log.append(KIND, data, ACTOR)
    kinds = ["bare", "ours"]
    for round_ in range(sizes.single_rounds):
        # The machine is shared: both take turns in blocks of SINGLE_BLOCK commits (each
        # block starting with a different one), so a burst of outside load hits all alike.
        timings = dict.fromkeys(kinds, 0.0)
        for block in range(0, n, SINGLE_BLOCK):
            size = min(SINGLE_BLOCK, n - block)
            rows = workload.bare_rows(bare.next_seq, size)
            bare.next_seq += size
            items = workload.take(size)
            turn = block // SINGLE_BLOCK + round_
            for which in kinds[turn % len(kinds) :] + kinds[: turn % len(kinds)]:
                if which == "ours":
                    start = time.perf_counter()
                    for data in items:
                        log.append(KIND, data, ACTOR)
                    timings[which] += time.perf_counter() - start
                else:
                    timings[which] += bare.single(rows, f"bench_{which}")
        ours, base = rate(n, timings["ours"]), rate(n, timings["bare"])
        out.single_ours.add(ours)
        out.single_bare.add(base)
        out.single_ratio.add(ours / base)
        progress(
            f"{db.name} single round {round_ + 1}: ours {ours:,.0f}/s, "
            f"bare {base:,.0f}/s ({ours / base:.0%})"
        )


def _concurrent_writer(url: str, skey: str | None, work: list[Any], start: Any, times: Any) -> None:
    """One of the processes of 1b.: with ``skey``, Log.append of each item; without, the
    bare loop over rows. Reports (first, last) perf_counter (system-wide on Linux)."""
    engine = make_engine(url)
    try:
        if skey is not None:
            log = Log(engine, ORIGIN, signer=Signer.from_skey(skey))
            log.append(KIND, work[0], ACTOR)  # warm-up: connection, statements, the head
            start.wait()
            began = time.perf_counter()
            for data in work[1:]:
                log.append(KIND, data, ACTOR)
            ended = time.perf_counter()
        else:
            fairy = engine.raw_connection()
            raw = fairy.driver_connection
            insert = bare_insert("bench_concurrent", engine)
            bare_single(raw, insert, work[:1])
            start.wait()
            began = time.perf_counter()
            bare_single(raw, insert, work[1:])
            ended = time.perf_counter()
            fairy.close()
        times.put((began, ended))
    finally:
        engine.dispose()


def run_concurrently(url: str, skey: str | None, shares: list[list[Any]]) -> float:
    """Start a process per share, release them together; appends per second over all."""
    # Processes that inherit no connection, forked from a server that has imported this
    # script's libraries once: each starts in milliseconds, not a second of imports (the
    # preload names the module: Python 3.11 ignores a preloaded "__main__").
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.ledger_core"])
    start, times = context.Barrier(len(shares) + 1), context.Queue()
    processes = [
        context.Process(target=_concurrent_writer, args=(url, skey, share, start, times))
        for share in shares
    ]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    spans = [times.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0, f"a writer process failed ({process.exitcode})"
    timed = sum(len(share) - 1 for share in shares)
    return rate(timed, max(end for _, end in spans) - min(began for began, _ in spans))


def measure_concurrent(
    db: Database, log: Log, bare: Bare, workload: Workload, sizes: Sizes, out: Results
) -> None:
    n = sizes.concurrent_entries + 1  # (the first of each is the warm-up)
    skey = log.signer.skey() if log.signer else None
    for round_ in range(sizes.concurrent_rounds):
        items = [workload.take(n) for _ in range(CONCURRENT_WRITERS)]
        out.concurrent_ours.add(run_concurrently(db.url, skey, items))
        rows = []
        for _ in range(CONCURRENT_WRITERS):
            rows.append(workload.bare_rows(bare.next_seq, n))
            bare.next_seq += n
        out.concurrent_bare.add(run_concurrently(db.url, None, rows))
        progress(
            f"{db.name} {CONCURRENT_WRITERS} writers round {round_ + 1}: "
            f"ours {out.concurrent_ours.samples[-1]:,.0f}/s, "
            f"bare {out.concurrent_bare.samples[-1]:,.0f}/s"
        )


def measure_batches(
    db: Database, log: Log, bare: Bare, workload: Workload, sizes: Sizes, out: Results
) -> None:
    n = sizes.batch_entries
    fill(log, workload, log.head().size + n, n)  # warm-up
    bare.batch(workload.bare_rows(bare.next_seq, n))
    bare.next_seq += n
    for _ in range(sizes.batch_rounds):
        rows = workload.bare_rows(bare.next_seq, n)
        bare.next_seq += n
        out.batch_bare.add(rate(n, bare.batch(rows)))
        items = workload.take(n)
        start = time.perf_counter()
        with log.writer() as writer:
            for data in items:
                writer.append(KIND, data, ACTOR)
        out.batch_ours.add(rate(n, time.perf_counter() - start))
    progress(
        f"{db.name} batches of {n:,}: median {out.batch_ours.median:,.0f}/s "
        f"(bare {out.batch_bare.median:,.0f}/s)"
    )


def measure_verify(db: Database, log: Log, workload: Workload, sizes: Sizes, out: Results) -> None:
    fill(log, workload, sizes.verify_size, sizes.build_batch)
    verifiers = [log.signer.verifier()] if log.signer else []
    bodies = list(log.iter_raw())
    out.verify_size = len(bodies)
    out.entry_bytes = sum(map(len, bodies)) / len(bodies)
    sha256 = hashlib.sha256
    for round_ in range(sizes.verify_rounds):
        start = time.perf_counter()
        report = verify_database(db.engine, verifiers)
        elapsed = time.perf_counter() - start
        assert report.size == out.verify_size, (report.size, out.verify_size)
        out.verify_ours.add(rate(report.size, elapsed))
        start = time.perf_counter()
        for body in bodies:
            sha256(b"\x00" + body).digest()
        out.verify_sha.add(rate(len(bodies), time.perf_counter() - start))
        progress(
            f"{db.name} verify round {round_ + 1}: {out.verify_ours.samples[-1]:,.0f} entries/s "
            f"(sha256 alone {out.verify_sha.samples[-1]:,.0f}/s)"
        )
    del bodies


def measure_proofs(db: Database, log: Log, workload: Workload, sizes: Sizes, out: Results) -> None:
    out.build_from = log.head().size
    start = time.perf_counter()
    last_report = start
    size = out.build_from
    while size < sizes.proof_size:
        fill(log, workload, min(size + 100_000, sizes.proof_size), sizes.build_batch)
        size = log.head().size
        if time.perf_counter() - last_report > 10:
            last_report = time.perf_counter()
            progress(f"{db.name} building: {size:,} entries")
    out.build_seconds = time.perf_counter() - start
    out.build_size = size
    out.proof_size = size
    progress(
        f"{db.name} built {size - out.build_from:,} entries in {out.build_seconds:.1f} s; "
        f"{sizes.proof_queries} proofs of each kind"
    )
    rng = random.Random(6962)
    queries = []
    for _ in range(sizes.proof_queries):
        tree = rng.randint(1, size)
        queries.append((rng.randrange(tree), tree))
    pairs = []
    for _ in range(sizes.proof_queries):
        new = rng.randint(2, size)
        pairs.append((rng.randint(1, new - 1), new))
    for _ in range(20):  # warm-up
        log.inclusion_proof(*queries[0])
    timer = time.perf_counter
    for index, tree in queries:
        start = timer()
        log.inclusion_proof(index, tree)
        out.inclusion.append(timer() - start)
    for old, new in pairs:
        start = timer()
        log.consistency_proof(old, new)
        out.consistency.append(timer() - start)
    # The proofs must also be right (checked outside the timings, on a sample).
    for index, tree in queries[:10]:
        proof = log.inclusion_proof(index, tree)
        merkle.verify_inclusion(index, tree, log.entry(index).hash, proof, log.root_at(tree))
    for old, new in pairs[:10]:
        proof = log.consistency_proof(old, new)
        merkle.verify_consistency(old, new, proof, log.root_at(old), log.root_at(new))


def run_engine(db: Database, sizes: Sizes, *, proofs: bool = True) -> Results:
    out = Results()
    out.load_before = os.getloadavg()[0]
    migrate.upgrade(db.engine)
    log = Log(db.engine, ORIGIN, signer=Signer.generate(ORIGIN))
    log.create()
    workload = Workload.make()
    bare = Bare(db)
    try:
        measure_single(db, log, bare, workload, sizes, out)
        measure_concurrent(db, log, bare, workload, sizes, out)
        measure_batches(db, log, bare, workload, sizes, out)
    finally:
        bare.close()
    measure_verify(db, log, workload, sizes, out)
    if proofs:
        measure_proofs(db, log, workload, sizes, out)
    out.load_after = os.getloadavg()[0]
    return out


# -- the report -------------------------------------------------------------------------------


def cell(figure: Figure, show: Callable[[float], str] = human_rate) -> str:
    spread = figure.spread()
    return f"{show(figure.median)} {spread}".rstrip()


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        lines.append(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
        )
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(results: dict[str, Results], sizes: Sizes) -> str:
    names = list(results)
    header = ["measurement", *names, "target"]
    rows: list[list[str]] = [header]

    def row(label: str, values: list[str], target: str = "") -> None:
        rows.append([label, *values, target])

    def each(fn: Callable[[Results], str]) -> list[str]:
        return [fn(results[name]) for name in names]

    row("entry size (bytes, mean)", each(lambda r: f"{r.entry_bytes:.0f}"))
    row(
        f"1. single appends, Log.append (x{sizes.single_entries})",
        each(lambda r: cell(r.single_ours)),
    )
    row("   bare INSERT+COMMIT, same db table", each(lambda r: cell(r.single_bare)))
    row(
        "   ours / bare (median of rounds)",
        each(
            lambda r: (
                f"{r.single_ratio.median:.0%} {r.single_ratio.spread()} "
                f"{verdict(r.single_ratio.median >= TARGET_SINGLE_RATIO)}"
            )
        ),
        f">= {TARGET_SINGLE_RATIO:.0%}",
    )

    def versus(
        ours_label: str,
        bare_label: str,
        ours: Callable[[Results], Figure],
        bare: Callable[[Results], Figure],
    ) -> None:
        """Our figure, its bare baseline, and the ratio of their medians (no target)."""
        row(ours_label, each(lambda r: cell(ours(r))))
        row(bare_label, each(lambda r: cell(bare(r))))
        row("   ours / bare", each(lambda r: f"{ours(r).median / bare(r).median:.0%}"))

    versus(
        f"1b. single appends, {CONCURRENT_WRITERS} processes at once",
        f"   bare loop, {CONCURRENT_WRITERS} processes at once",
        lambda r: r.concurrent_ours,
        lambda r: r.concurrent_bare,
    )
    versus(
        f"2. batches of {sizes.batch_entries:,}, Log.writer()",
        f"   bare executemany {sizes.batch_entries:,} + COMMIT",
        lambda r: r.batch_ours,
        lambda r: r.batch_bare,
    )
    row(
        "3. verify_database, entries/s",
        each(
            lambda r: f"{cell(r.verify_ours)} {verdict(r.verify_ours.median >= TARGET_VERIFY_RATE)}"
        ),
        f">= {TARGET_VERIFY_RATE:,}/s",
    )
    row("   at size", each(lambda r: f"{r.verify_size:,}"))
    row("   sha256 over the same bytes", each(lambda r: cell(r.verify_sha)))
    row(
        "   verify / sha256",
        each(lambda r: f"{r.verify_ours.median / r.verify_sha.median:.0%}"),
    )
    if any(r.inclusion for r in results.values()):
        _proof_rows(results, names, row)
    row(
        "load average (1 min) before / after",
        each(lambda r: f"{r.load_before:.2f} / {r.load_after:.2f}"),
    )
    return table(rows)


def _proof_rows(results: dict[str, Results], names: list[str], row: Callable[..., None]) -> None:
    def each(fn: Callable[[Results], str]) -> list[str]:
        return [fn(results[name]) if results[name].inclusion else "-" for name in names]

    row(
        "4. build, batches of 10,000",
        each(
            lambda r: (
                f"{r.build_size - r.build_from:,} in {r.build_seconds:.1f} s "
                f"({human_rate(rate(r.build_size - r.build_from, r.build_seconds))})"
            )
        ),
    )
    for label, pick in (
        ("inclusion_proof", lambda r: r.inclusion),
        ("consistency_proof", lambda r: r.consistency),
    ):
        row(
            f"   {label} median / p99",
            each(
                lambda r, pick=pick: (
                    f"{human_ms(statistics.median(pick(r)))} / "
                    f"{human_ms(p99(pick(r)))} "
                    f"{verdict(p99(pick(r)) < TARGET_PROOF_SECONDS)}"
                )
            ),
            f"< {TARGET_PROOF_SECONDS * 1000:g} ms",
        )
    row("   at size / queries", each(lambda r: f"{r.proof_size:,} / {len(r.inclusion):,}"))


def machine_facts(pg_version: str | None) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
            + f", {os.cpu_count()} CPUs, load average {load}",
            f"python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
            f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__})",
            f"sqlite {sqlite3.sqlite_version} (WAL, synchronous=FULL)",
            f"postgresql {pg_version or 'not measured'}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_options(parser, "--quick", action="store_true", help="small sizes")
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--sqlite-only", action="store_true")
    engines.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument(
        "--skip-proofs", action="store_true", help="leave out 4. (the big log and the proofs)"
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL

    pg_version = None if args.sqlite_only else postgres_version(args.postgres_url)
    if args.postgres_only and pg_version is None:
        return 2
    print(machine_facts(pg_version), flush=True)

    results: dict[str, Results] = {}
    began = time.perf_counter()
    if not args.postgres_only:
        progress("SQLite")
        with sqlite_database() as db:
            results[db.name] = run_engine(db, sizes, proofs=not args.skip_proofs)
    if pg_version is not None:
        progress("PostgreSQL")
        with postgres_database(args.postgres_url) as db:
            results[db.name] = run_engine(db, sizes, proofs=not args.skip_proofs)
    print()
    print(report(results, sizes))
    print()
    print(
        f"{'smoke' if args.smoke else 'quick' if args.quick else 'full'} run in "
        f"{time.perf_counter() - began:.0f} s; "
        "figures are medians over rounds, ±x% is the largest distance of a round from the median"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
