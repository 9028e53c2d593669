"""A mirror's catch-up rate in entries per second, against ``lunaria publish`` of the same log.

    .venv/bin/python bench/mirror_catchup.py          # a log of 50,000 entries
    .venv/bin/python bench/mirror_catchup.py --smoke  # 600 entries: every step
    .venv/bin/python bench/mirror_catchup.py --sqlite-only | --postgres-only

For each engine: a Lunaria made by ``lunaria init`` (its own database: a SQLite file, or a
PostgreSQL schema of its own) whose log gets N entries of about 200 bytes and a checkpoint,
served by ``lunaria serve`` as ``make run`` serves (waitress, api/serve_cli.py's settings;
bench/serving.py) on a free loopback port; and a second database, in this process, that
mirrors it from nothing (:meth:`ledger.log.Mirrors.add`, as ``lunaria mirror add`` runs it):
every entry bundle and hash tile fetched over HTTP, each entry re-hashed, each tile checked
against the level below, the root and the consistency proof checked, everything stored in one
transaction and cosigned. Against it, ``lunaria publish`` of the same log to a directory
(:func:`ledger.log.publish`: the same tiles read from the database and written as files).
Then the log grows by a tenth and the mirror syncs again (the incremental catch-up a worker
does).

Progress goes to stderr, the results to stdout. The machine is shared: figures are one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import postgres_reachable, postgres_url, progress, sqlite_url
from bench.serving import THREADS, lunaria, lunaria_serve
from bench.smoke import add_size_options
from ledger import migrate
from ledger.log import Cosigner, Log, Mirrors, Signer, SystemClock, make_engine, publish

POSTGRES_URL = os.environ.get(
    "LUNARIA_BENCH_POSTGRES_URL",
    os.environ.get("LUNARIA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
ORIGIN = "origin.bench.example/log"
BATCH = 1_000  # entries per write transaction while the log is built


def grow(log: Log, entries: int) -> int:
    """Append ``entries`` in batches and sign a checkpoint; the new size."""
    done = 0
    while done < entries:
        with log.writer() as writer:
            for n in range(min(BATCH, entries - done)):
                data = {"pool": "bench", "amount": str(done + n + 1), "note": "x" * 120}
                writer.append("donation_recorded", data)
        done += min(BATCH, entries - done)
    return log.checkpoint_now().size


@contextmanager
def origin_server(url: str, folder: Path, entries: int) -> Iterator[tuple[str, Log]]:
    """A Lunaria with ``entries`` entries, served by ``lunaria serve`` until the context ends:
    its base URL and its log."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    env |= {
        "LUNARIA_DATABASE_URL": url,
        "LUNARIA_KEY_FILE": str(folder / "log.key"),
        "LUNARIA_ORIGIN": ORIGIN,
    }
    lunaria(env, "init")
    engine = make_engine(url)
    try:
        log = Log(engine, ORIGIN, signer=Signer.load(folder / "log.key"))
        grow(log, entries)
        with lunaria_serve(env, "/tlog/checkpoint") as port:
            yield f"http://127.0.0.1:{port}", log
    finally:
        engine.dispose()


def measure(
    name: str, scratch: Callable[[str], AbstractContextManager[str]], entries: int
) -> dict[str, str]:
    """The row values for one engine."""
    progress(f"{name}: a log of {entries:,} entries")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="lunaria-bench-mirror-") as tmp:
        folder = Path(tmp)
        url, log = stack.enter_context(
            origin_server(stack.enter_context(scratch("origin")), folder, entries)
        )
        size = log.head().size
        vkey = log.signer.verifier().vkey() if log.signer else ""
        started = time.perf_counter()
        report = publish(log, folder / "published")
        published = time.perf_counter() - started
        progress(f"{name}: published {report.size:,} entries in {published:.2f} s")
        engine = make_engine(stack.enter_context(scratch("mirror")))
        migrate.upgrade(engine)
        mirrors = Mirrors(engine, Cosigner.generate("mirror.bench.example"), SystemClock())
        started = time.perf_counter()
        added = mirrors.add(url, vkey)
        copied = time.perf_counter() - started
        if added.size != size:
            raise RuntimeError(f"the mirror copied {added.size} entries, not {size}")
        progress(f"{name}: mirrored {added.size:,} entries in {copied:.2f} s")
        more = max(entries // 10, 1)
        grow(log, more)
        started = time.perf_counter()
        synced = mirrors.sync(ORIGIN)
        caught_up = time.perf_counter() - started
        if synced.size != size + more:
            raise RuntimeError(f"the sync reached {synced.size}, not {size + more}")
        engine.dispose()
        return {
            "entries": f"{size:,}",
            "publish": f"{size / published:,.0f}/s",
            "add": f"{size / copied:,.0f}/s",
            "bytes": f"{added.fetched_bytes / copied / 1e6:,.1f} MB/s",
            "sync": f"{more / caught_up:,.0f}/s ({more:,})",
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_size_options(parser)
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--sqlite-only", action="store_true")
    engines.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args(argv)
    entries = 600 if args.smoke else 50_000

    results: dict[str, dict[str, str]] = {}
    if not args.postgres_only:
        results["SQLite"] = measure("SQLite", sqlite_url, entries)
    if not args.sqlite_only and postgres_reachable(POSTGRES_URL):
        results["PostgreSQL"] = measure(
            "PostgreSQL", lambda name: postgres_url(POSTGRES_URL, name), entries
        )
    print(
        "mirror catch-up against lunaria publish, the origin served by lunaria serve (waitress, "
        f"{THREADS} threads) on loopback, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print()
    labels = {
        "entries": "entries",
        "publish": "lunaria publish (to a directory), entries",
        "add": "mirror add (HTTP, checked, stored), entries",
        "bytes": "mirror add, bytes fetched",
        "sync": "mirror sync of a tenth more, entries",
    }
    rows = [["measurement", *results]]
    rows += [[label, *(r[key] for r in results.values())] for key, label in labels.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
