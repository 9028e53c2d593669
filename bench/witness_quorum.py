"""How long a new checkpoint takes to reach a quorum of cosignatures, three witnesses on loopback.

    .venv/bin/python bench/witness_quorum.py          # 100 checkpoints of 10 entries each
    .venv/bin/python bench/witness_quorum.py --smoke  # 3 checkpoints: every step
    .venv/bin/python bench/witness_quorum.py --sqlite-only | --postgres-only

For each engine: three witnesses, each a Lunaria made by ``lunaria init`` (its own database:
a SQLite file, or a PostgreSQL schema of its own) that trusts the log's key (``lunaria witness
trust``) and is served by ``lunaria serve`` as ``make run`` serves (waitress, api/serve_cli.py's
settings; bench/serving.py) on a free loopback port; and a log, in this process, whose worker task
(:class:`Cosigning`, as ``lunaria worker`` runs it) asks the three with a quorum of 2.

Each round appends 10 entries, signs a checkpoint and runs the task once: it sends the
checkpoint to the three witnesses at once, each with the consistency proof from the size it
last cosigned. Measured from the checkpoint's signing to the second cosignature back (quorum,
2 of 3) and to the third (all), verified and stored: median, 95th percentile and maximum.
Progress goes to stderr, the results to stdout. The machine is shared: figures are one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import postgres_reachable, postgres_url, progress, sqlite_url
from bench.serving import THREADS, lunaria, lunaria_serve
from bench.smoke import add_size_options
from ledger import migrate
from ledger.log import Cosigning, Log, Signer, WitnessEndpoint, make_engine
from ledger.log.cosignature import CosignatureVerifier
from ledger.log.cosigning import http_post

POSTGRES_URL = os.environ.get(
    "LUNARIA_BENCH_POSTGRES_URL",
    os.environ.get("LUNARIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
ORIGIN = "bench.lunaria.example/log"
WITNESSES = 3
QUORUM = 2
ENTRIES_PER_CHECKPOINT = 10


@contextmanager
def witness(url: str, folder: Path, log_vkey: str) -> Iterator[WitnessEndpoint]:
    """A Lunaria witnessing the log, served by ``lunaria serve`` until the context ends."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    env |= {
        "LUNARIA_DATABASE_URL": url,
        "LUNARIA_KEY_FILE": str(folder / "log.key"),
        "LUNARIA_ORIGIN": f"{folder.name}.bench.example/log",
    }
    lunaria(env, "init")
    lunaria(env, "witness", "trust", log_vkey)
    vkey = lunaria(env, "witness", "vkey").strip()
    with lunaria_serve(env, "/witness") as port:
        yield WitnessEndpoint(
            CosignatureVerifier.from_vkey(vkey), f"http://127.0.0.1:{port}/witness"
        )


class TimedPost:
    """http_post, noting when each answer came back (the cosignature is checked and stored
    right after, in the same thread: measured until the whole round ends, for the last)."""

    def __init__(self) -> None:
        self.answered: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, url: str, body: bytes) -> tuple[int, str]:
        answer = http_post(url, body)
        with self.lock:
            self.answered.append(time.perf_counter())
        return answer


def measure(
    name: str, scratch: Callable[[str], AbstractContextManager[str]], rounds: int
) -> tuple[list[float], list[float]]:
    """Seconds from signing to the quorum's and to the last cosignature, per checkpoint."""
    progress(f"{name}: three witnesses and a log")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="lunaria-bench-witness-") as tmp:
        signer = Signer.generate(ORIGIN)
        endpoints = [
            stack.enter_context(
                witness(
                    stack.enter_context(scratch(f"witness{i}")),
                    Path(tmp) / f"w{i}",
                    signer.verifier().vkey(),
                )
            )
            for i in range(WITNESSES)
        ]
        engine = make_engine(stack.enter_context(scratch("log")))
        migrate.upgrade(engine)
        log = Log(engine, ORIGIN, signer=signer)
        log.create()
        timed = TimedPost()
        task = Cosigning(log, endpoints, QUORUM, post=timed)
        to_quorum: list[float] = []
        to_all: list[float] = []
        for number in range(rounds):
            for n in range(ENTRIES_PER_CHECKPOINT):
                log.append("donation_recorded", {"pool": "p", "amount": str(n + 1)})
            log.checkpoint_now()
            timed.answered.clear()
            signed = time.perf_counter()
            lines = task.collect()
            done = time.perf_counter()
            if not lines or "(quorum 2 reached)" not in lines[-1] or len(lines) != 1:
                raise RuntimeError(f"round {number}: {lines}")
            answers = sorted(timed.answered)
            to_quorum.append(answers[QUORUM - 1] - signed)
            to_all.append(done - signed)
        engine.dispose()
        progress(f"{name}: {rounds} checkpoints cosigned")
        return to_quorum, to_all


def describe(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    median = statistics.median(ordered)
    return f"{median * 1000:.1f} / {p95 * 1000:.1f} / {ordered[-1] * 1000:.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_size_options(parser)
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--sqlite-only", action="store_true")
    engines.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args(argv)
    rounds = 3 if args.smoke else 100

    results: dict[str, tuple[list[float], list[float]]] = {}
    if not args.postgres_only:
        results["SQLite"] = measure("SQLite", sqlite_url, rounds)
    if not args.sqlite_only and postgres_reachable(POSTGRES_URL):
        results["PostgreSQL"] = measure(
            "PostgreSQL", lambda name: postgres_url(POSTGRES_URL, name), rounds
        )
    print(
        f"checkpoint to witness quorum, {WITNESSES} witnesses (lunaria serve, waitress with "
        f"{THREADS} threads, each) on loopback, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print()
    rows = [["measurement", *results]]
    rows.append(["checkpoints", *(str(len(r[0])) for r in results.values())])
    rows.append(
        [
            f"to quorum ({QUORUM} of {WITNESSES}), median / p95 / max",
            *(describe(r[0]) for r in results.values()),
        ]
    )
    rows.append(
        [f"to all {WITNESSES}, median / p95 / max", *(describe(r[1]) for r in results.values())]
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
