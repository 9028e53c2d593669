"""Donations over HTTP, against the real server, beside the core append rate of the same run.

    .venv/bin/python bench/api_write.py              # full sizes
    .venv/bin/python bench/api_write.py --quick      # small sizes
    .venv/bin/python bench/api_write.py --smoke      # tiny sizes: every step runs, in seconds
    .venv/bin/python bench/api_write.py --sqlite-only | --postgres-only

Per engine, in a fresh database (a SQLite file in a temporary directory, or a PostgreSQL
schema of its own, dropped at the end), as an operator would run it:

* ``lunaria init`` and ``lunaria token create --role admin`` (in this process) set it up, and
  ``lunaria serve`` (waitress, api/serve_cli.py's settings) serves it, as the Makefile's
  ``run`` does (``--threads`` overrides its thread count; bench/serving.py starts it);
* over HTTP, the admin token registers a collective, creates a pool, sets its roster and issues
  a treasurer token;
* a load generator in a separate process (``--clients`` threads, each with its own
  ``http.client`` connection, kept alive; the client reconnects if the server closes it)
  POSTs donations as the
  treasurer, each
  with a unique Idempotency-Key, and checks every answer is a fresh 201:
  single donations (``POST /pools/{slug}/donations``) and batches of 1,000
  (``POST /pools/{slug}/donations:batch``). donations/s is over the wall time of a round, from
  the first request sent to the last answer read; latency is per request.

The core of the same run, in another fresh database of the same engine and in this process
(the server is idle meanwhile), with the server's checkpoint policy:

* ``Log.append``: durable single appends of ``donation_recorded`` entries, one commit each (the
  core rate of ``bench/ledger_core.py``, against which the target is set);
* ``Fund.record_donation``: the same command the API runs, with an idempotency key, one commit
  each, without HTTP, JSON or a second process: the fairer core;
* the same two in batches of 1,000 (``Log.writer()``, ``Fund.record_donations``).

The floor of the same run: bench/http_floor.py's two apps (a bare WSGI callable, and Flask
with the JSON parsed and answered; neither touches a database) served with the same waitress
settings and driven by the same client with the same single-donation requests: how fast single
donations over HTTP could be on this machine if recording one cost nothing.

Rounds alternate core and HTTP so both see the same background load; rates are medians over
rounds (±x% the largest distance of a round from the median); latencies pool every request.
Targets: single donations over HTTP >= 50% of the core durable append rate (``Log.append``);
batches over HTTP >= 10,000 donations/s. Progress goes to stderr, the results to stdout.

Over 600 lines on purpose: the server's set-up, the load generator, the core rounds and the
floor rounds are one experiment whose rounds must alternate in one process; the pieces other
benches share live in bench/http_floor.py, bench/http_load.py, bench/serving.py and
bench/smoke.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.serve_cli import SETTINGS
from bench.ledger_core import (
    ACTOR,
    DEFAULT_POSTGRES_URL,
    KIND,
    ORIGIN,
    Bare,
    Database,
    Figure,
    Workload,
    human_ms,
    human_rate,
    machine_facts,
    p99,
    postgres_database,
    postgres_version,
    progress,
    rate,
    sqlite_database,
    table,
    verdict,
)
from bench.serving import lunaria, lunaria_serve, settings
from bench.smoke import add_size_options
from ledger import migrate
from ledger.fund.commands import Fund
from ledger.fund.rules import Actor
from ledger.fund.vault import Vault
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.notes import Signer

ROOT = Path(__file__).resolve().parent.parent
TARGET_SINGLE_RATIO = 0.50
TARGET_CORE_RATIO = 0.50  # Fund.record_donation / bare INSERT + COMMIT
TARGET_FLOOR_RATIO = 0.50  # HTTP single donations / the Flask floor
TARGET_BATCH_RATE = 10_000
POOL = "bench-pool"
COLLECTIVE = "bench-collective"
TOKEN = re.compile(r"lun_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Sizes:
    rounds: int
    http_singles: int  # single donations over HTTP per round
    http_batches: int  # batches of batch_size over HTTP per round
    core_singles: int  # single appends per round, for each of Log.append and Fund
    core_batches: int  # batches per round, for each of Log.writer and Fund
    batch_size: int = 1_000
    warmup_singles: int = 40


FULL = Sizes(rounds=5, http_singles=400, http_batches=10, core_singles=400, core_batches=3)
QUICK = Sizes(rounds=3, http_singles=100, http_batches=4, core_singles=100, core_batches=1)
# The smallest sizes that still run every step and print every row: a test that the benchmark
# works (tests/test_bench_smoke.py), not a measurement.
SMOKE = Sizes(
    rounds=1,
    http_singles=4,
    http_batches=1,
    core_singles=4,
    core_batches=1,
    batch_size=10,
    warmup_singles=4,
)


# -- the load generator (runs in its own process) ---------------------------------------------


@dataclass(frozen=True)
class Load:
    port: int
    token: str
    path: str
    requests: int  # POSTs in all
    per_request: int  # donations per POST: 1 (single) or the batch size
    clients: int
    seed: str  # makes references and keys unique across rounds


@dataclass
class LoadResult:
    seconds: float  # wall time: first request sent to last answer read
    latencies: list[float]  # of the requests answered with a fresh 201
    errors: list[str]  # one line per request that was not

    def rate(self, per_request: int) -> float:
        """Donations accepted per second."""
        return rate(len(self.latencies) * per_request, self.seconds)


def donation_body(reference: str, index: int) -> dict[str, Any]:
    amounts = ("500", "1000", "2500", "5000", "10000", "25000")
    return {
        "amount": amounts[index % len(amounts)],
        "currency": "EUR",
        "channel": ("bank", "bank", "cash", "crypto")[index % 4],
        "external_reference": f"bank-{reference}",
    }


def _bodies(load: Load) -> list[bytes]:
    """Every request body, made before the clock starts."""
    out = []
    for request in range(load.requests):
        items = [
            donation_body(f"{load.seed}-{request}-{i}", request + i)
            for i in range(load.per_request)
        ]
        body: Any = items[0] if load.per_request == 1 else {"donations": items}
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def drive(load: Load) -> LoadResult:
    """POST every body with ``load.clients`` threads; a fresh 201 counts, anything else is an
    error (reported, not retried)."""
    bodies = _bodies(load)
    keys = [f"{load.seed}-{i}" for i in range(len(bodies))]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))
    start_gate = threading.Barrier(load.clients + 1)
    timer = time.perf_counter

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", load.port, timeout=300)
        mine: list[float] = []
        failed: list[str] = []
        start_gate.wait()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            headers = {
                "Authorization": f"Bearer {load.token}",
                "Idempotency-Key": keys[index],
                "Content-Type": "application/json",
            }
            began = timer()
            try:
                conn.request("POST", load.path, bodies[index], headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:  # counted; a new connection
                failed.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            replayed = response.getheader("Idempotent-Replayed")
            if response.status == 201 and replayed == "false":
                mine.append(timer() - began)
            else:
                failed.append(f"{response.status} after {timer() - began:.1f} s: {answer[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client) for _ in range(load.clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = timer()
    for thread in threads:
        thread.join()
    return LoadResult(timer() - began, latencies, errors)


# -- the server -------------------------------------------------------------------------------


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if method in ("POST", "PUT"):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    try:
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def expect(port: int, method: str, path: str, status: int, **kwargs: Any) -> Any:
    got, answer = call(port, method, path, **kwargs)
    if got != status:
        raise RuntimeError(f"{method} {path}: {got} {answer}")
    return answer


@dataclass
class Server:
    port: int
    admin: str
    treasurer: str = ""


@contextmanager
def lunaria_server(url: str, threads: int) -> Iterator[Server]:
    """``lunaria init``, the first admin token, and ``lunaria serve`` serving the database at
    ``url``."""
    with tempfile.TemporaryDirectory(prefix="lunaria-api-bench-") as tmp:
        env = {
            **os.environ,
            "LUNARIA_DATABASE_URL": url,
            "LUNARIA_KEY_FILE": str(Path(tmp) / "log.key"),
            "LUNARIA_DATA_KEY_FILE": str(Path(tmp) / "data.key"),
            "LUNARIA_ORIGIN": ORIGIN,
            # One token writes hundreds a second, past the per-token write limit
            # (api/throttle.py); LUNARIA_RATE_LIMITS=1 measures with the limits counting.
            "LUNARIA_RATE_LIMITS": os.environ.get("LUNARIA_RATE_LIMITS", "0"),
        }
        lunaria(env, "init")
        match = TOKEN.fullmatch(lunaria(env, "token", "create", "--role", "admin").strip())
        if match is None:
            raise RuntimeError("`lunaria token create` printed no token")
        with lunaria_serve(env, "/api/v1/pools", threads) as port:
            yield Server(port, match.group(0))


@contextmanager
def floor_server(app: str, args: argparse.Namespace) -> Iterator[int]:
    """One of bench/http_floor.py's apps, served as Lunaria is (waitress, api/serve_cli.py's
    settings); yields its port."""
    command = [sys.executable, str(ROOT / "bench" / "http_floor.py"), "--serve", app]
    with lunaria_serve(os.environ, "/api/v1/pools", args.threads, command) as port:
        yield port


def set_up_books(server: Server) -> None:
    """A collective, a pool with its roster, and a treasurer token, all over HTTP."""
    port, admin = server.port, server.admin
    api = "/api/v1"
    body: dict[str, Any] = {"slug": COLLECTIVE, "name": "Bench collective"}
    expect(port, "POST", f"{api}/collectives", 201, body=body, token=admin)
    body = {"member": "bench-member"}
    expect(port, "POST", f"{api}/collectives/{COLLECTIVE}/members", 201, body=body, token=admin)
    body = {"slug": POOL, "name": "Bench pool", "currencies": ["EUR"]}
    expect(port, "POST", f"{api}/pools", 201, body=body, token=admin)
    body = {"collectives": [COLLECTIVE]}
    expect(port, "PUT", f"{api}/pools/{POOL}/roster", 200, body=body, token=admin)
    body = {"role": "treasurer", "label": "bench treasurer"}
    issued = expect(port, "POST", f"{api}/tokens", 201, body=body, token=admin)
    server.treasurer = issued["token"]


# -- the core, in this process ----------------------------------------------------------------


class Core:
    """``Log.append`` and ``Fund.record_donation(s)`` on a fresh database of the same engine."""

    ADMIN = Actor(id="admin:bench", role="admin")
    TREASURER = Actor(id="treasurer:bench", role="treasurer")

    def __init__(self, db: Database, vault: Vault) -> None:
        self.bare = Bare(db)
        migrate.upgrade(db.engine)
        self.log = Log(db.engine, ORIGIN, signer=Signer.generate(ORIGIN), policy=CheckpointPolicy())
        self.log.create()
        self.fund = Fund(self.log, vault)
        self.fund.register_collective(self.ADMIN, slug=COLLECTIVE, name="Bench collective")
        self.fund.create_pool(self.ADMIN, slug=POOL, name="Bench pool", currencies=["EUR"])
        self.fund.set_roster(self.ADMIN, POOL, [COLLECTIVE])
        self.workload = Workload.make()
        self.count = 0

    def _donations(self, n: int) -> list[dict[str, Any]]:
        self.count += n
        return [donation_body(f"core-{self.count}-{i}", i) for i in range(n)]

    def appends(self, n: int, latencies: list[float]) -> float:
        items = self.workload.take(n)
        timer, append = time.perf_counter, self.log.append
        start = timer()
        for data in items:
            began = timer()
            append(KIND, data, ACTOR)
            latencies.append(timer() - began)
        return rate(n, timer() - start)

    def bare_commits(self, n: int) -> float:
        """INSERT + COMMIT of entry-shaped rows on the driver alone (bench/ledger_core.py's
        bare baseline), in the same database."""
        rows = self.workload.bare_rows(self.bare.next_seq, n)
        self.bare.next_seq += n
        return rate(n, self.bare.single(rows))

    def donations(self, n: int, latencies: list[float]) -> float:
        items = self._donations(n)
        keys = [uuid.uuid4().hex for _ in items]
        timer, record, actor = time.perf_counter, self.fund.record_donation, self.TREASURER
        start = timer()
        for item, key in zip(items, keys, strict=True):
            began = timer()
            record(actor, POOL, item, key)
            latencies.append(timer() - began)
        return rate(n, timer() - start)

    def append_batches(self, batches: int, size: int) -> float:
        elapsed = 0.0
        for _ in range(batches):
            items = self.workload.take(size)
            start = time.perf_counter()
            with self.log.writer() as writer:
                for data in items:
                    writer.append(KIND, data, ACTOR)
            elapsed += time.perf_counter() - start
        return rate(batches * size, elapsed)

    def donation_batches(self, batches: int, size: int) -> float:
        elapsed = 0.0
        for _ in range(batches):
            items, key = self._donations(size), uuid.uuid4().hex
            start = time.perf_counter()
            self.fund.record_donations(self.TREASURER, POOL, items, key)
            elapsed += time.perf_counter() - start
        return rate(batches * size, elapsed)


# -- one engine -------------------------------------------------------------------------------


@dataclass
class Results:
    core_bare: Figure = field(default_factory=Figure)  # INSERT + COMMIT on the driver alone
    core_append: Figure = field(default_factory=Figure)
    core_fund: Figure = field(default_factory=Figure)
    core_append_batch: Figure = field(default_factory=Figure)
    core_fund_batch: Figure = field(default_factory=Figure)
    http_single: Figure = field(default_factory=Figure)
    http_batch: Figure = field(default_factory=Figure)
    floor: dict[str, Figure] = field(default_factory=dict)  # bench/http_floor.py's, singles
    floor_ratio: dict[str, Figure] = field(default_factory=dict)  # floor / Log.append
    single_ratio: Figure = field(default_factory=Figure)  # HTTP single / Log.append, per round
    single_fund_ratio: Figure = field(default_factory=Figure)
    fund_bare_ratio: Figure = field(default_factory=Figure)  # core Fund / bare, per round
    single_flask_ratio: Figure = field(default_factory=Figure)  # HTTP single / Flask floor
    batch_ratio: Figure = field(default_factory=Figure)  # HTTP batch / Log.writer batch
    batch_fund_ratio: Figure = field(default_factory=Figure)
    core_append_latency: list[float] = field(default_factory=list)
    core_fund_latency: list[float] = field(default_factory=list)
    http_single_latency: list[float] = field(default_factory=list)
    http_batch_latency: list[float] = field(default_factory=list)
    http_singles: int = 0  # requests sent
    http_batches: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # non-201 answers, by load
    first_error: dict[str, str] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)  # 1-minute load average after each round


def run_load(
    pool: concurrent.futures.Executor, load: Load, what: str, out: Results | None = None
) -> LoadResult:
    result = pool.submit(drive, load).result()
    if result.errors:
        progress(f"{what}: {len(result.errors)} of {load.requests} failed: {result.errors[0]}")
        if out is not None:
            out.failed[what] = out.failed.get(what, 0) + len(result.errors)
            out.first_error.setdefault(what, result.errors[0])
    if not result.latencies:
        raise RuntimeError(f"{what}: every request failed, first: {result.errors[0]}")
    return result


def run_engine(
    name: str,
    make_db: Callable[[], Any],
    sizes: Sizes,
    args: argparse.Namespace,
    pool: concurrent.futures.Executor,
) -> Results:
    out = Results()
    with (
        make_db() as served,
        make_db() as core_db,
        tempfile.TemporaryDirectory(prefix="lunaria-api-bench-core-") as keys,
    ):
        served.engine.dispose()  # the server and the CLI open their own
        core = Core(core_db, Vault.create(Path(keys) / "data.key"))
        with (
            lunaria_server(served.url, args.threads) as server,
            floor_server("bare", args) as bare_port,
            floor_server("flask", args) as flask_port,
        ):
            set_up_books(server)
            floors = {"bare": bare_port, "flask": flask_port}
            single_path = f"/api/v1/pools/{POOL}/donations"
            batch_path = f"/api/v1/pools/{POOL}/donations:batch"

            def load(path: str, requests: int, per_request: int, port: int = 0) -> Load:
                return Load(
                    port or server.port,
                    server.treasurer,
                    path,
                    requests,
                    per_request,
                    args.clients,
                    uuid.uuid4().hex[:12],
                )

            # Warm-up: every worker imported, connected and cached; the core's statements too.
            run_load(pool, load(single_path, sizes.warmup_singles, 1), "warm-up")
            run_load(pool, load(batch_path, 2, sizes.batch_size), "warm-up")
            for port in floors.values():
                run_load(pool, load(single_path, sizes.warmup_singles, 1, port), "warm-up")
            core.appends(sizes.warmup_singles, [])
            core.donations(sizes.warmup_singles, [])
            core.donation_batches(1, sizes.batch_size)

            for round_ in range(sizes.rounds):
                steps = ["core", "http"] if round_ % 2 == 0 else ["http", "core"]
                for step in steps:
                    if step == "core":
                        out.core_bare.add(core.bare_commits(sizes.core_singles))
                        out.core_append.add(
                            core.appends(sizes.core_singles, out.core_append_latency)
                        )
                        out.core_fund.add(core.donations(sizes.core_singles, out.core_fund_latency))
                        out.core_append_batch.add(
                            core.append_batches(sizes.core_batches, sizes.batch_size)
                        )
                        out.core_fund_batch.add(
                            core.donation_batches(sizes.core_batches, sizes.batch_size)
                        )
                    else:
                        singles = run_load(
                            pool, load(single_path, sizes.http_singles, 1), "singles", out
                        )
                        out.http_single.add(singles.rate(1))
                        out.http_single_latency.extend(singles.latencies)
                        out.http_singles += sizes.http_singles
                        batch = load(batch_path, sizes.http_batches, sizes.batch_size)
                        batches = run_load(pool, batch, "batches", out)
                        out.http_batch.add(batches.rate(sizes.batch_size))
                        out.http_batch_latency.extend(batches.latencies)
                        out.http_batches += sizes.http_batches
                        for app, port in floors.items():
                            floor = load(single_path, sizes.http_singles, 1, port)
                            out.floor.setdefault(app, Figure()).add(
                                run_load(pool, floor, f"{app} floor", out).rate(1)
                            )
                http_single, http_batch = out.http_single.samples[-1], out.http_batch.samples[-1]
                out.single_ratio.add(http_single / out.core_append.samples[-1])
                out.single_fund_ratio.add(http_single / out.core_fund.samples[-1])
                out.fund_bare_ratio.add(out.core_fund.samples[-1] / out.core_bare.samples[-1])
                out.single_flask_ratio.add(http_single / out.floor["flask"].samples[-1])
                out.batch_ratio.add(http_batch / out.core_append_batch.samples[-1])
                out.batch_fund_ratio.add(http_batch / out.core_fund_batch.samples[-1])
                for app, figure in out.floor.items():
                    ratio = figure.samples[-1] / out.core_append.samples[-1]
                    out.floor_ratio.setdefault(app, Figure()).add(ratio)
                progress(
                    f"{name} round {round_ + 1}: HTTP single {http_single:,.0f}/s, "
                    f"Log.append {out.core_append.samples[-1]:,.0f}/s "
                    f"({out.single_ratio.samples[-1]:.0%}), "
                    f"Fund {out.core_fund.samples[-1]:,.0f}/s "
                    f"({out.fund_bare_ratio.samples[-1]:.0%} of bare "
                    f"{out.core_bare.samples[-1]:,.0f}/s), "
                    f"HTTP / Flask floor {out.single_flask_ratio.samples[-1]:.0%}; HTTP batches "
                    f"{http_batch:,.0f}/s, Fund batches {out.core_fund_batch.samples[-1]:,.0f}/s; "
                    f"load average {os.getloadavg()[0]:.2f}"
                )
                out.load.append(os.getloadavg()[0])
        core.bare.close()
        core_db.engine.dispose()
    return out


# -- the report -------------------------------------------------------------------------------


def cell(figure: Figure) -> str:
    return f"{human_rate(figure.median)} {figure.spread()}".rstrip()


def percent(figure: Figure) -> str:
    return f"{figure.median:.0%} {figure.spread()}".rstrip()


def latency(samples: Sequence[float]) -> str:
    if not samples:
        return "-"
    return f"{human_ms(statistics.median(samples))} / {human_ms(p99(samples))}"


def report(results: dict[str, Results], sizes: Sizes, args: argparse.Namespace) -> str:
    names = list(results)
    rows: list[list[str]] = [["measurement", *names, "target"]]

    def row(label: str, fn: Callable[[Results], str], target: str = "") -> None:
        rows.append([label, *(fn(results[name]) for name in names), target])

    n, size = sizes.core_singles, sizes.batch_size
    row(f"core bare INSERT + COMMIT (x{n}/round)", lambda r: cell(r.core_bare))
    row(f"core Log.append, 1 commit each (x{n}/round)", lambda r: cell(r.core_append))
    row("   latency p50 / p99", lambda r: latency(r.core_append_latency))
    row(f"core Fund.record_donation (x{n}/round)", lambda r: cell(r.core_fund))
    row("   latency p50 / p99", lambda r: latency(r.core_fund_latency))
    row(
        "   Fund / bare INSERT + COMMIT",
        lambda r: (
            f"{percent(r.fund_bare_ratio)} {verdict(r.fund_bare_ratio.median >= TARGET_CORE_RATIO)}"
        ),
        f">= {TARGET_CORE_RATIO:.0%}",
    )
    row(
        f"HTTP single donations ({args.clients} clients)",
        lambda r: f"{cell(r.http_single)} (x{r.http_singles:,})",
    )
    row("   latency p50 / p99", lambda r: latency(r.http_single_latency))
    row(
        "   HTTP / core Log.append",
        lambda r: (
            f"{percent(r.single_ratio)} {verdict(r.single_ratio.median >= TARGET_SINGLE_RATIO)}"
        ),
        f">= {TARGET_SINGLE_RATIO:.0%}",
    )
    row("   HTTP / core Fund.record_donation", lambda r: percent(r.single_fund_ratio))
    row(
        "   HTTP / Flask floor",
        lambda r: (
            f"{percent(r.single_flask_ratio)} "
            f"{verdict(r.single_flask_ratio.median >= TARGET_FLOOR_RATIO)}"
        ),
        f">= {TARGET_FLOOR_RATIO:.0%}",
    )
    for app, label in (("bare", "bare WSGI"), ("flask", "Flask")):
        row(
            f"HTTP floor: {label} 201, no database",
            lambda r, app=app: f"{cell(r.floor[app])} (x{r.http_singles:,})",
        )
        row("   floor / core Log.append", lambda r, app=app: percent(r.floor_ratio[app]))
    row(f"core Log.writer, batches of {size:,}", lambda r: cell(r.core_append_batch))
    row(f"core Fund.record_donations, {size:,}", lambda r: cell(r.core_fund_batch))
    row(
        f"HTTP batches of {size:,} ({args.clients} clients)",
        lambda r: (
            f"{cell(r.http_batch)} (x{r.http_batches}) "
            f"{verdict(r.http_batch.median >= TARGET_BATCH_RATE)}"
        ),
        f">= {TARGET_BATCH_RATE:,}/s",
    )
    row("   latency per batch p50 / p99", lambda r: latency(r.http_batch_latency))
    row("   HTTP / core Log.writer batches", lambda r: percent(r.batch_ratio))
    row("   HTTP / core Fund.record_donations", lambda r: percent(r.batch_fund_ratio))
    row(
        "HTTP requests not answered 201",
        lambda r: (
            f"singles {r.failed.get('singles', 0)}/{r.http_singles}, "
            f"batches {r.failed.get('batches', 0)}/{r.http_batches}"
        ),
        "0",
    )
    row(
        "load average (1 min) after each round",
        lambda r: " ".join(f"{load:.1f}" for load in r.load),
    )
    lines = [table(rows)]
    for name in names:
        for what, error in results[name].first_error.items():
            lines.append(f"{name} {what}, first failure: {error}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_options(parser, "--quick", action="store_true", help="small sizes")
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--sqlite-only", action="store_true")
    engines.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--threads",
        type=int,
        default=SETTINGS["threads"],
        help="waitress threads (lunaria serve's default)",
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL

    pg_version = None if args.sqlite_only else postgres_version(args.postgres_url)
    if args.postgres_only and pg_version is None:
        return 2
    print(machine_facts(pg_version), flush=True)
    print(
        f"server: {settings(args.threads)}; load: {args.clients} client "
        "threads in a separate process",
        flush=True,
    )

    results: dict[str, Results] = {}
    began = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        if not args.postgres_only:
            progress("SQLite")
            results["SQLite"] = run_engine("SQLite", sqlite_database, sizes, args, pool)
        if pg_version is not None:
            progress("PostgreSQL")
            results["PostgreSQL"] = run_engine(
                "PostgreSQL", lambda: postgres_database(args.postgres_url), sizes, args, pool
            )
    print()
    print(report(results, sizes, args))
    print()
    print(
        f"{'smoke' if args.smoke else 'quick' if args.quick else 'full'} run in "
        f"{time.perf_counter() - began:.0f} s; "
        f"{sizes.rounds} rounds alternating core and HTTP; rates are medians over rounds, ±x% is "
        "the largest distance of a round from the median; latencies pool every request"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
