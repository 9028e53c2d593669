"""``lunaria worker``: how old the unsigned tail gets, idle and under load; its CPU when idle.

    .venv/bin/python bench/worker.py          # interval 10 s: 3 entries, 60 s of load, 60 s idle
    .venv/bin/python bench/worker.py --smoke  # interval 1 s, 1 entry, 2 s of load: every step
    .venv/bin/python bench/worker.py --sqlite-only | --postgres-only

For each engine, a fresh log (``lunaria init`` on a SQLite file in a temporary directory, or
on a PostgreSQL schema of its own, dropped at the end) and one ``lunaria worker`` process with
``LUNARIA_CHECKPOINT_INTERVAL`` set, as ``make run`` starts it. Then:

1. idle: one entry is written by a writer that never signs, then nothing: the worker alone
   must sign it. Measured: the entry's age when the checkpoint covering it was signed (the
   checkpoint's ``ts`` minus the entry's, both from the database), for each of a few entries.
2. under load: writer threads append continuously for a while, as a web server would (each
   with the deployment's policy: they sign themselves when ``LUNARIA_CHECKPOINT_EVERY``
   entries or the interval since the last checkpoint have passed). The tail is oldest just
   before a checkpoint, so its largest age is, over the checkpoints signed meanwhile, the
   checkpoint's ``ts`` minus that of the first entry it newly covers. Also: appends, and how
   many of the checkpoints the worker signed (its "signed checkpoint N" lines).
3. idle CPU: with nothing left to sign, the CPU time the worker used over a while, from
   ``/proc/<pid>/stat`` (in clock ticks, 10 ms here). Idle, the worker wakes once per interval
   (less a second) for one small read, which takes less than a tick: so also the CPU time of
   one such wake-up (``Worker.step``), timed in this process over many.

Bound: the tail is never older than the interval (the worker signs up to a second early).
Progress goes to stderr, the results to stdout. The machine is shared: figures are one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import postgres_reachable, postgres_url, progress, sqlite_url
from bench.smoke import add_size_options
from ledger.fund.commands import Fund
from ledger.fund.vault import Vault
from ledger.fund.worker import Worker
from ledger.fund.worker_lock import worker_lock
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.clock import parse_ts
from ledger.log.db import make_engine, read_transaction
from ledger.log.notes import Signer
from ledger.log.storage import load_head

LUNARIA = Path(sys.executable).parent / "lunaria"
POSTGRES_URL = os.environ.get(
    "LUNARIA_BENCH_POSTGRES_URL",
    os.environ.get("LUNARIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
WRITERS = 2  # threads appending under load
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    interval: float  # LUNARIA_CHECKPOINT_INTERVAL, seconds
    idle_entries: int
    load_seconds: float
    cpu_seconds: float


FULL = Sizes(interval=10, idle_entries=3, load_seconds=60, cpu_seconds=60)
# Every step, in seconds: a test that the benchmark works (tests/test_bench_smoke.py).
SMOKE = Sizes(interval=1, idle_entries=1, load_seconds=2, cpu_seconds=1)


@dataclass(frozen=True)
class Results:
    idle_ages: list[float]
    load_ages: list[float]
    appends: int
    load_seconds: float
    checkpoints: int
    by_worker: int
    cpu_ticks: int
    cpu_wall: float
    step_seconds: float


# -- the worker process -----------------------------------------------------------------------


class WorkerProcess:
    """``lunaria worker`` in a subprocess; its stderr lines are collected as they come."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [str(LUNARIA), "worker"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.lines)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the worker never said {text!r}: {self.lines}")
            time.sleep(0.05)

    def signed(self) -> set[int]:
        prefix = "worker: signed checkpoint "
        return {int(line[len(prefix) :]) for line in list(self.lines) if line.startswith(prefix)}

    def cpu_ticks(self) -> int:
        """User + system CPU time so far, in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._reader.join(timeout=10)


# -- measurements -----------------------------------------------------------------------------


def open_log(engine: Engine, key_file: Path, policy: CheckpointPolicy) -> Log:
    with read_transaction(engine) as conn:
        origin = load_head(conn).origin
    return Log(engine, origin, signer=Signer.load(key_file), policy=policy)


def wait_covered(log: Log, seq: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while log.head().checkpoint_size <= seq:
        if time.monotonic() > deadline:
            raise RuntimeError(f"seq {seq} was not covered within {timeout} s")
        time.sleep(0.02)


def ages_at_signing(engine: Engine, after_size: int) -> list[float]:
    """For each checkpoint larger than ``after_size``: its ts minus that of the first entry it
    covers that the one before it did not (the age of the unsigned tail when it was signed)."""
    with read_transaction(engine) as conn:
        sizes = [
            (int(size), str(ts))
            for size, ts in conn.execute(
                text("SELECT size, ts FROM checkpoints WHERE size >= :s ORDER BY size"),
                {"s": after_size},
            )
        ]
        ages = []
        for (before, _), (_, signed_ts) in pairwise(sizes):
            first_ts = conn.execute(
                text("SELECT ts FROM entries WHERE seq = :seq"), {"seq": before}
            ).scalar_one()
            ages.append((parse_ts(signed_ts) - parse_ts(str(first_ts))).total_seconds())
    return ages


def idle_phase(log: Log, quiet: Log, sizes: Sizes) -> list[float]:
    ages = []
    for n in range(sizes.idle_entries):
        entry = quiet.append("pool_created", {"bench": "idle", "n": n})
        wait_covered(log, entry.seq, sizes.interval + 10)
        with read_transaction(log.engine) as conn:
            signed_ts = conn.execute(
                text("SELECT min(ts) FROM checkpoints WHERE size > :seq"), {"seq": entry.seq}
            ).scalar_one()
        ages.append((parse_ts(str(signed_ts)) - parse_ts(entry.ts)).total_seconds())
    return ages


def load_phase(writers: list[Log], sizes: Sizes) -> tuple[int, float]:
    stop = threading.Event()
    counts = [0] * len(writers)

    def write(index: int, log: Log) -> None:
        n = 0
        while not stop.is_set():
            log.append("pool_created", {"bench": "load", "writer": index, "n": n})
            n += 1
        counts[index] = n

    threads = [threading.Thread(target=write, args=(i, log)) for i, log in enumerate(writers)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(sizes.load_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts), time.monotonic() - start


def measure(
    engine_name: str, url_of: Callable[[], AbstractContextManager[str]], sizes: Sizes
) -> Results:
    with url_of() as url, tempfile.TemporaryDirectory(prefix="lunaria-bench-keys-") as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUNARIA_")}
        env |= {
            "LUNARIA_DATABASE_URL": url,
            "LUNARIA_KEY_FILE": str(folder / "log.key"),
            "LUNARIA_DATA_KEY_FILE": str(folder / "data.key"),
            "LUNARIA_CHECKPOINT_INTERVAL": str(sizes.interval),
        }
        progress(f"{engine_name}: lunaria init")
        subprocess.run([str(LUNARIA), "init"], cwd=folder, env=env, check=True, capture_output=True)
        engine = make_engine(url)
        interval = timedelta(seconds=sizes.interval)
        deployment = CheckpointPolicy(every_entries=1000, interval=interval)
        log = open_log(engine, folder / "log.key", deployment)
        never = CheckpointPolicy(every_entries=10**9, interval=timedelta(days=365))
        quiet = open_log(engine, folder / "log.key", never)
        worker = WorkerProcess(env, folder)
        try:
            worker.wait_for("took the worker lock")
            progress(f"{engine_name}: idle, {sizes.idle_entries} entries one at a time")
            idle_ages = idle_phase(log, quiet, sizes)

            before = log.head().checkpoint_size
            progress(f"{engine_name}: {WRITERS} writers for {sizes.load_seconds:g} s")
            writers = [open_log(make_engine(url), folder / "log.key", deployment)] * WRITERS
            appends, seconds = load_phase(writers, sizes)
            last = log.head().size - 1
            wait_covered(log, last, sizes.interval + 10)
            load_ages = ages_at_signing(engine, before)
            with read_transaction(engine) as conn:
                signed = {
                    int(s)
                    for (s,) in conn.execute(
                        text("SELECT size FROM checkpoints WHERE size > :s"), {"s": before}
                    )
                }
            time.sleep(0.2)  # (the worker's last lines)
            by_worker = len(signed & worker.signed())
            writers[0].engine.dispose()

            progress(f"{engine_name}: the worker idle for {sizes.cpu_seconds:g} s")
            ticks, wall = worker.cpu_ticks(), time.monotonic()
            time.sleep(sizes.cpu_seconds)
            ticks, wall = worker.cpu_ticks() - ticks, time.monotonic() - wall
            step = idle_step_seconds(open_log(engine, folder / "log.key", deployment), folder)
        finally:
            worker.stop()
            engine.dispose()
    return Results(
        idle_ages, load_ages, appends, seconds, len(signed), by_worker, ticks, wall, step
    )


def idle_step_seconds(log: Log, folder: Path, steps: int = 100) -> float:
    """The CPU time of one idle wake-up of the worker's loop (nothing due: it looks at the
    unsigned tail and the next new moon), timed here over ``steps``."""
    worker = Worker(Fund(log, Vault(folder / "data.key")), worker_lock(log.engine), say=len)
    worker.step()  # (the first one appends due handovers: none)
    start = time.process_time()
    for _ in range(steps):
        worker.step()
    return (time.process_time() - start) / steps


# -- the report -------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: dict[str, Results], sizes: Sizes) -> str:
    names = list(results)
    bound = f"< {sizes.interval:g} s"
    wake_every = sizes.interval - min(1.0, sizes.interval / 10)
    rows = [["measurement", *names, "bound"]]

    def row(label: str, cell: Callable[[Results], str], target: str = "") -> None:
        rows.append([label, *(cell(results[name]) for name in names), target])

    def ages(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{max(values):.2f} / {statistics.median(values):.2f} s ({len(values)})"

    row("checkpoint interval", lambda r: f"{sizes.interval:g} s")
    row("idle: unsigned tail when signed, max / median", lambda r: ages(r.idle_ages), bound)
    row("under load: unsigned tail when signed, max / median", lambda r: ages(r.load_ages), bound)
    row(
        "under load: appends, checkpoints (by the worker)",
        lambda r: (
            f"{r.appends:,} at {r.appends / r.load_seconds:,.0f}/s, {r.checkpoints} ({r.by_worker})"
        ),
    )
    row(
        "worker CPU while idle",
        lambda r: (
            f"{r.cpu_ticks} ticks ({r.cpu_ticks * 1000 // CLOCK_TICKS} ms) over {r.cpu_wall:.0f} s"
        ),
    )
    row(
        f"   one idle wake-up (every {wake_every:g} s), CPU",
        lambda r: f"{r.step_seconds * 1000:.2f} ms ({r.step_seconds / wake_every:.4%})",
    )
    return table(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_size_options(parser)
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--sqlite-only", action="store_true")
    engines.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL

    results: dict[str, Results] = {}
    if not args.postgres_only:
        results["SQLite"] = measure("SQLite", lambda: sqlite_url("worker"), sizes)
    if not args.sqlite_only and postgres_reachable(POSTGRES_URL):
        results["PostgreSQL"] = measure(
            "PostgreSQL", lambda: postgres_url(POSTGRES_URL, "worker"), sizes
        )
    print(f"lunaria worker, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print()
    print(report(results, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
