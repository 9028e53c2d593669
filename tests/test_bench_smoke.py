"""Every benchmark still runs: each ``bench/*.py`` script in its ``--smoke`` mode, as run by hand.

``--smoke`` is each script's smallest run that still takes every step and prints every table,
in seconds. Each runs in a subprocess with no ``LUNARIA_*`` variable but the PostgreSQL URL of
the tests; it must exit 0 and print its table, whole: its header and its last rows, for every
engine it measured. No figure is checked: a smoke run's figures mean nothing.

The scripts are found by globbing (a module the benchmarks share, such as bench/smoke.py, is
not a script: it has no ``__main__`` block), so a new benchmark is covered the day it is added
(and this test fails until ``TABLES`` says what its table looks like). They measure SQLite and
PostgreSQL when PostgreSQL is reachable (``LUNARIA_TEST_POSTGRES_URL``), else SQLite alone, or
fail when ``LUNARIA_REQUIRE_POSTGRES=1`` (CI). bench/anchor.py needs anvil: without it this
skips, or fails when ``LUNARIA_REQUIRE_ANVIL=1`` (CI), as the contract tests do.

The scripts mostly wait (on servers starting, commits, a chain), so the selected ones all
start when the first test runs, ``PARALLEL`` at a time, the slowest first; each test then
checks its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.devchain import ANVIL
from tests.conftest import POSTGRES_URL
from tests.contracts.conftest import missing_tool

ROOT = Path(__file__).parent.parent
SCRIPTS = [
    path
    for path in sorted((ROOT / "bench").glob("*.py"))
    if 'if __name__ == "__main__":' in path.read_text()
]
PARALLEL = 3  # scripts running at once
TIMEOUT = 300  # seconds a script may take: a hung benchmark fails, it does not stop the run


@dataclass(frozen=True)
class Table:
    """What a script's table holds: ``lines(engines)`` are patterns that must each match a
    whole line of its output (leading and trailing spaces aside); ``engines`` says it measures
    SQLite and PostgreSQL (and takes ``--sqlite-only``); ``anvil`` that it needs a local
    chain; ``seconds`` is about how long its smoke run takes (the slowest start first)."""

    lines: Callable[[list[str]], list[str]]
    engines: bool = True
    anvil: bool = False
    seconds: int = 10


def columns(*cells: str) -> str:
    """A row of a table whose columns are separated by runs of spaces."""
    return r"\s+".join(cells)


TABLES = {
    "anchor.py": Table(
        lambda _: [
            r"anchors\s+2",
            r"gas, later anchors\s+mean [\d,]+, min [\d,]+, max [\d,]+ .*",
            r"verify_anchors, 2 anchors\s+[\d.]+ s .*",
            r"lunaria anchor verify\s+[\d.]+ s wall, new process",
        ],
        engines=False,
        anvil=True,
        seconds=6,
    ),
    "api_write.py": Table(
        lambda engines: [
            columns("measurement", *engines, "target"),
            r"core Log\.append, 1 commit each .*",
            r"HTTP floor: Flask 201, no database .*",
            r"HTTP batches of 10 .*",
            columns(
                "HTTP requests not answered 201",
                *["singles 0/4, batches 0/1"] * len(engines),
                "0",
            ),
        ],
        seconds=20,
    ),
    "bank_import.py": Table(
        lambda engines: [
            r"statements of 20 credits and 2 debits",
            columns("measurement", *engines),
            *(
                rf"{name}\s+" + r"\s+".join([r"[\d,]+/s ±\d+%"] * len(engines))
                for name in (
                    r"batch donations \(record_donations\)",
                    "import camt.053, new lines",
                    "import again, all recorded already",
                    "parse camt.053 only",
                )
            ),
        ],
        seconds=8,
    ),
    "chain_scan.py": Table(
        lambda _: [
            r"chain of 42 blocks on anvil; SQLite log",
            columns("measurement", "blocks/s", "donations"),
            r"ERC-20 receiver \(eth_getLogs\)\s+[\d,]+\s+4",
            r"ERC-20 and native \(every block\)\s+[\d,]+\s+4",
        ],
        engines=False,
        anvil=True,
        seconds=40,
    ),
    "http_floor.py": Table(
        lambda _: [
            columns("measurement", "bare WSGI", "Flask"),
            r"single donations, 4 clients\s+[\d,]+/s\s+[\d,]+/s",
            columns("not answered 201", "0/4", "0/4"),
        ],
        engines=False,
        seconds=4,
    ),
    "ledger_core.py": Table(
        lambda engines: [
            columns("measurement", *engines, "target"),
            r"1b\. single appends, 4 processes at once .*",
            r"3\. verify_database, entries/s .*",
            r"4\. build, batches of 10,000 .*",
            r"consistency_proof median / p99 .*",
            r"load average \(1 min\) before / after .*",
        ],
        seconds=5,
    ),
    "mirror_catchup.py": Table(
        lambda engines: [
            columns("measurement", *engines),
            columns("entries", *["601"] * len(engines)),
            r"lunaria publish \(to a directory\), entries" + r"\s+[\d,]+/s" * len(engines),
            r"mirror add \(HTTP, checked, stored\), entries" + r"\s+[\d,]+/s" * len(engines),
            r"mirror add, bytes fetched" + r"\s+[\d.,]+ MB/s" * len(engines),
            r"mirror sync of a tenth more, entries" + r"\s+[\d,]+/s \(60\)" * len(engines),
        ],
        seconds=25,
    ),
    "public_read.py": Table(
        lambda engines: [
            columns("engine", "endpoint", "bytes", r"req/s", "p50 ms", "p99 ms", "errors", r"\|")
            + ".*",
            *(
                columns(engine, endpoint, r"\d+", r"[\d,]+", r"[\d.]+", r"[\d.]+", "0", r"\|")
                + ".*"
                for engine in engines
                for endpoint in (r"pool page \(HTML\)", r"consistency proof", "receipt tlog-proof")
            ),
        ],
        seconds=30,
    ),
    "report_burst.py": Table(
        lambda engines: [
            columns("engine", "round", "endpoint", "requests", "p50 ms", "p99 ms", "max ms")
            + r"\s+not 200",
            *(
                columns(engine, round_name, endpoint, r"[\d,]+") + r"\s+.*"
                for engine in engines
                for round_name in ("idle", "before", "after")
                for endpoint in ("checkpoint", "inclusion proof")
            ),
            *(
                columns(engine, round_name, "report PDF", r"[\d,]+") + r"\s+.*"
                for engine in engines
                for round_name in ("before", "after")
            ),
        ],
        seconds=60,
    ),
    "reports.py": Table(
        lambda engines: [
            r"\| engine \| entries \| build \| PDF wall \(CPU\) \|.*\| bare peak RSS \|",
            *(rf"\| {engine} \| 2,100 \|( [^|]+ \|){{9}}" for engine in engines),
        ],
        seconds=12,
    ),
    "witness_quorum.py": Table(
        lambda engines: [
            columns("measurement", *engines),
            columns("checkpoints", *["3"] * len(engines)),
            r"to quorum \(2 of 3\), median / p95 / max\s+[\d.]+ / [\d.]+ / [\d.]+ ms.*",
            r"to all 3, median / p95 / max\s+[\d.]+ / [\d.]+ / [\d.]+ ms.*",
        ],
        seconds=40,
    ),
    "worker.py": Table(
        lambda engines: [
            columns("measurement", *engines, "bound"),
            columns("checkpoint interval", *["1 s"] * len(engines)),
            r"idle: unsigned tail when signed, max / median .*",
            r"under load: unsigned tail when signed, max / median .*",
            r"under load: appends, checkpoints \(by the worker\) .*",
            r"worker CPU while idle .*",
        ],
        seconds=20,
    ),
}


@pytest.fixture(scope="module")
def engines(request: pytest.FixtureRequest) -> list[str]:
    """The engines the benchmarks measure: PostgreSQL too when it is reachable (the database
    tests' ``postgres_admin`` skips without it, or fails when it is required)."""
    try:
        request.getfixturevalue("postgres_admin")
    except pytest.skip.Exception:
        return ["SQLite"]
    return ["SQLite", "PostgreSQL"]


def anvil_missing() -> bool:
    return not ANVIL.exists() or shutil.which("node") is None


@dataclass(frozen=True)
class Run:
    """A finished smoke run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Runner:
    """Runs scripts in process groups of their own, so whatever a script started (servers,
    load generators) goes with it when it is killed."""

    def __init__(self, engines: list[str]) -> None:
        self.engines = engines
        self.running: set[subprocess.Popen[str]] = set()

    def run(self, script: Path, table: Table) -> Run:
        engine_args = ["--sqlite-only"] if table.engines and self.engines == ["SQLite"] else []
        env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
        env["LUNARIA_TEST_POSTGRES_URL"] = env["LUNARIA_BENCH_POSTGRES_URL"] = POSTGRES_URL
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(script), "--smoke", *engine_args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.running.add(process)
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill(process)
            stdout, stderr = process.communicate()
            stderr += f"\n(killed after {TIMEOUT} s)"
        finally:
            self.running.discard(process)
        return Run(process.returncode, stdout, stderr, time.perf_counter() - started)

    def kill(self, process: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):  # (it ended meanwhile)
            os.killpg(process.pid, signal.SIGKILL)

    def kill_all(self) -> None:
        for process in list(self.running):
            self.kill(process)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, engines: list[str]) -> Iterator[dict[str, Future[Run]]]:
    """The smoke runs of the scripts this session selected, started together."""
    selected = [
        item.callspec.params["script"]
        for item in request.session.items
        if item.path == Path(__file__) and getattr(item, "originalname", "") == "test_bench_smoke"
    ]
    known = [s for s in selected if s.name in TABLES]
    startable = [s for s in known if not (TABLES[s.name].anvil and anvil_missing())]
    startable.sort(key=lambda script: -TABLES[script.name].seconds)
    runner = Runner(engines)
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bench-smoke")
    try:
        yield {s.name: pool.submit(runner.run, s, TABLES[s.name]) for s in startable}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        runner.kill_all()


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_bench_smoke(
    script: Path,
    engines: list[str],
    runs: dict[str, Future[Run]],
    record_property: Callable[[str, object], None],
) -> None:
    table = TABLES.get(script.name)
    assert table is not None, f"say in TABLES what bench/{script.name} --smoke prints"
    if table.anvil and anvil_missing():
        missing_tool(f"anvil is not installed at {ANVIL} (or node is not on PATH)")

    run = runs[script.name].result()

    record_property("seconds", round(run.seconds, 1))
    print(f"bench/{script.name} --smoke: {run.seconds:.1f} s")
    output = f"stdout:\n{run.stdout}\nstderr (the end):\n{run.stderr[-3000:]}"
    assert run.returncode == 0, f"bench/{script.name} --smoke exited {run.returncode}\n{output}"
    lines = run.stdout.splitlines()
    measured = engines if table.engines else []
    missing = [
        pattern
        for pattern in table.lines(measured)
        if not any(re.fullmatch(pattern, line.strip()) for line in lines)
    ]
    assert not missing, f"bench/{script.name} --smoke printed no line like {missing}\n{output}"
