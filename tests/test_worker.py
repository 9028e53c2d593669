"""``lunaria worker``: checkpoints on a quiet log, handovers at the new moon, one worker at a time.

The lock and the receipts are tested with the real ``lunaria worker`` in subprocesses; the
handover at a new moon with the worker's loop in threads, on a clock shifted so that the next
new moon is seconds away (time still passes, so the loop really sleeps until it).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, select, text

from api import create_app
from api import db as api_db
from ledger import migrate
from ledger.errors import LedgerError
from ledger.fund.commands import Fund
from ledger.fund.lunar import new_moon_after
from ledger.fund.rules import Actor
from ledger.fund.vault import Vault
from ledger.fund.worker import Periodic, Worker
from ledger.fund.worker_lock import worker_lock
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.clock import ManualClock, parse_ts
from ledger.log.db import make_engine
from ledger.log.notes import Signer
from ledger.log.schema import checkpoints, entries
from ledger.log.verify import verify_database
from tests.conftest import ORIGIN

LUNARIA = Path(sys.executable).parent / "lunaria"
ADMIN = Actor("admin:worker-test", "admin")
TREASURER = Actor("treasurer:worker-test", "treasurer")


# -- the log's part: when a checkpoint is due, and signing it once ---------------------------


@pytest.fixture
def tail_log(engine: Engine, signer: Signer, clock: ManualClock) -> Log:
    """A log whose writers never sign by themselves (interval and count out of reach)."""
    quiet = Log(
        engine,
        ORIGIN,
        signer=signer,
        clock=clock,
        policy=CheckpointPolicy(every_entries=10_000, interval=timedelta(days=1)),
    )
    quiet.create()
    return quiet


def test_checkpoint_due_at_counts_from_the_first_unsigned_entry(
    tail_log: Log, clock: ManualClock
) -> None:
    """Due ``interval`` after the first entry no checkpoint covers; ``early`` signs a little
    before; a second call finds nothing to sign."""
    log = Log(
        tail_log.engine,
        ORIGIN,
        signer=tail_log.signer,
        clock=clock,
        policy=CheckpointPolicy(every_entries=3, interval=timedelta(seconds=10)),
    )
    assert log.checkpoint_due_at() is None
    clock.advance(timedelta(minutes=5))
    tail_log.append("pool_created", {"n": "zero"})
    assert (log.sign_if_due() or pytest.fail("not signed")).size == 2  # (as a writer would)
    clock.advance(timedelta(seconds=1))
    first = tail_log.append("pool_created", {"n": "one"})
    clock.advance(timedelta(seconds=4))
    tail_log.append("pool_created", {"n": "two"})
    assert log.checkpoint_due_at() == parse_ts(first.ts) + timedelta(seconds=10)

    clock.advance(timedelta(seconds=4.5))  # 8.5 s after the first unsigned entry
    assert log.sign_if_due() is None
    assert log.sign_if_due(early=timedelta(seconds=1)) is None
    signed = log.sign_if_due(early=timedelta(seconds=1.5))
    assert signed is not None and signed.size == 4
    assert log.sign_if_due(early=timedelta(seconds=1.5)) is None  # nothing waits: not twice
    assert log.checkpoint_due_at() is None

    for n in ("three", "four", "five"):  # every_entries wait: due at once
        tail_log.append("pool_created", {"n": n})
    assert log.checkpoint_due_at() == parse_ts(tail_log.entry(4).ts)
    assert (log.sign_if_due() or pytest.fail("not signed")).size == 7


def test_the_loop_runs_what_is_due_retries_what_fails_and_sleeps_until_the_next(
    log: Log, vault: Vault, clock: ManualClock
) -> None:
    """Step by step on a manual clock: a periodic task (anchoring, say) runs when due; when it
    fails it is retried 5 s later, then 10 s; the loop wakes at the earliest time any task
    gave, at most a minute later."""
    attempts: list[datetime] = []
    done: list[datetime] = []

    def flaky() -> str:
        attempts.append(clock.now())
        if len(attempts) < 3:
            raise LedgerError("the chain node is out of reach")
        done.append(clock.now())
        return "anchored"

    hourly = Periodic("anchoring", timedelta(hours=1), lambda: done[-1] if done else None, flaky)
    said: list[str] = []
    worker = Worker(Fund(log, vault), NoLock(), tasks=[hourly], say=said.append)
    start = clock.now()

    assert worker.step() == start + timedelta(seconds=5)
    assert said == ["error: anchoring: the chain node is out of reach (retrying in 5 s)"]
    clock.advance(timedelta(seconds=4))
    assert worker.step() == start + timedelta(seconds=5)  # not yet
    clock.advance(timedelta(seconds=1))
    assert worker.step() == start + timedelta(seconds=15)
    assert said[-1].endswith("(retrying in 10 s)")
    clock.advance(timedelta(seconds=10))
    wake = worker.step()
    assert said[-1] == "anchored" and attempts == [start, start + timedelta(seconds=5), clock.now()]
    # Next: the checkpoints' look, an interval (less a second) later; anchoring in an hour.
    assert wake == clock.now() + log.policy.interval - timedelta(seconds=1)
    clock.advance(timedelta(minutes=59, seconds=59))
    worker.step()
    assert len(attempts) == 3
    clock.advance(timedelta(seconds=1))
    worker.step()
    assert len(attempts) == 4 and said[-1] == "anchored"


def test_anchoring_configured_without_its_settings_stops_the_worker_at_once(
    runner: FlaskCliRunner, app: Flask
) -> None:
    assert runner.invoke(args=["init"]).exit_code == 0
    app.config["ANCHOR_EVERY_HOURS"] = 1
    done = runner.invoke(args=["worker"])
    assert done.exit_code == 1
    assert "LUNARIA_ANCHOR_CONTRACT is not set" in done.output


def test_the_worker_lock_is_one_holders_and_goes_with_its_connection(db_url: str) -> None:
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        first, second = (worker_lock(engine) for engine in engines)
        assert first.try_acquire() and first.held()
        assert not second.try_acquire() and not second.held()
        first.release()
        assert second.try_acquire() and not first.try_acquire()
        if engines[1].dialect.name == "postgresql":
            # The server ends the holder's session (a restart, a network cut): the lock is
            # gone, the holder sees it, and another worker may take it.
            with engines[0].connect() as conn:
                schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                objid = zlib.crc32(schema.encode()) - (1 << 31)
                ended = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
                        "locktype = 'advisory' AND objsubid = 2 AND objid = :objid"
                    ),
                    {"objid": objid % (1 << 32)},
                ).all()
            assert ended == [(True,)]
            wait_until(lambda: not second.held(), 5, "the holder sees its lock gone")
            assert first.try_acquire()
            first.release()
        second.release()
    finally:
        for engine in engines:
            engine.dispose()


# -- real processes -------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """A ``lunaria worker`` subprocess and the lines it wrote to stderr so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _new: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._new.put(line.rstrip("\n"))

    def _drain(self) -> None:
        while True:
            try:
                self.lines.append(self._new.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, text: str, timeout: float = 15) -> str:
        """The first line (since the start) containing ``text``, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                time.sleep(0.05)
                self._drain()
                pytest.fail(f"the worker never said {text!r}; it said {self.lines}")
            with contextlib.suppress(queue.Empty):
                self.lines.append(self._new.get(timeout=min(left, 0.2)))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=10)
        self._reader.join(timeout=10)  # (until it has read the last line)
        self._drain()
        return code

    def said(self, text: str) -> list[str]:
        self._drain()
        return [line for line in self.lines if text in line]


@dataclass
class Deployment:
    """A log made by ``lunaria init``, the environment of ``lunaria`` commands on it, and an
    app of the test's own that writes with the system clock and never signs by itself."""

    env: dict[str, str]
    app: Flask
    cwd: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def worker(self, interval: float) -> WorkerProcess:
        env = {**self.env, "LUNARIA_CHECKPOINT_INTERVAL": str(interval)}
        process = subprocess.Popen(
            [str(LUNARIA), "worker"],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = WorkerProcess(process)
        self.started.append(started)
        return started

    def fund(self) -> Fund:
        with self.app.app_context():
            return api_db.get_fund()

    def engine(self) -> Engine:
        with self.app.app_context():
            return api_db.get_engine()


@pytest.fixture
def deployment(db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    keys = tmp_path / "keys"
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    env |= {
        "LUNARIA_DATABASE_URL": db_url,
        "LUNARIA_KEY_FILE": str(keys / "log.key"),
        "LUNARIA_DATA_KEY_FILE": str(keys / "data.key"),
        "LUNARIA_ORIGIN": ORIGIN,
    }
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": db_url,
        "KEY_FILE": env["LUNARIA_KEY_FILE"],
        "DATA_KEY_FILE": env["LUNARIA_DATA_KEY_FILE"],
        "ORIGIN": ORIGIN,
        "CHECKPOINT_EVERY": 100_000,
        "CHECKPOINT_INTERVAL": 86_400,  # the test's writes leave their entries unsigned
    }
    app = create_app(config)
    done = app.test_cli_runner().invoke(args=["init"])
    assert done.exit_code == 0, done.output
    found = Deployment(env, app, tmp_path)
    yield found
    for worker in found.started:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait(timeout=10)
    state = app.extensions.get("lunaria")
    if state is not None:
        state.engine.dispose()


def open_pool(fund: Fund) -> None:
    fund.register_collective(ADMIN, slug="alba", name="Alba")
    fund.create_pool(ADMIN, slug="food", name="Food bank", currencies=["EUR"])


def donate(fund: Fund, ref: str) -> int:
    donation = {"amount": "500", "currency": "EUR", "channel": "bank", "external_reference": ref}
    return fund.record_donation(TREASURER, "food", donation).seq


def signed_sizes(lines: list[str]) -> list[int]:
    return [int(size) for line in lines for size in re.findall(r"signed checkpoint (\d+)", line)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition`` held, polled every 50 ms."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def test_an_idle_server_covers_a_donation_within_the_interval(deployment: Deployment) -> None:
    interval = 2
    fund = deployment.fund()
    open_pool(fund)
    worker = deployment.worker(interval)
    worker.wait_for("signed checkpoint")  # (the pool's entries)
    seq = donate(fund, "IDLE-1")  # ...and then nobody writes
    client = deployment.app.test_client()
    assert client.get(f"/api/v1/receipts/{seq}").status_code == 404

    covered = wait_until(
        lambda: client.get(f"/api/v1/receipts/{seq}").status_code == 200,
        interval + 5,
        f"a checkpoint covering seq {seq}",
    )

    assert max(signed_sizes(worker.said("signed checkpoint"))) > seq
    assert worker.stop() == 0
    assert worker.said("stopped")
    assert not worker.said("error")
    print(f"covered {covered:.2f} s after the donation (interval {interval} s)")


def holder(workers: list[WorkerProcess], timeout: float = 15) -> WorkerProcess:
    """The one worker of ``workers`` that has taken the lock (waiting until one has)."""
    found: list[WorkerProcess] = []
    wait_until(
        lambda: bool(found.extend(w for w in workers if w.said("took the worker lock")) or found),
        timeout,
        "a worker takes the lock",
    )
    assert len(found) == 1, [w.lines for w in workers]
    return found[0]


def test_two_workers_take_turns_and_a_killed_one_loses_nothing(deployment: Deployment) -> None:
    """One signs while the other waits; killed with -9 while entries wait, the other takes
    over and signs them; the killed one restarted waits its turn. Each checkpoint is signed
    once, by one worker."""
    interval = 1
    fund = deployment.fund()
    started = [deployment.worker(interval), deployment.worker(interval)]
    active = holder(started)
    standby = next(w for w in started if w is not active)
    standby.wait_for("waiting: another worker holds the lock")

    def covered(seq: int) -> Callable[[], bool]:
        return lambda: fund.log.head().checkpoint_size > seq

    open_pool(fund)
    wait_until(covered(donate(fund, "TURN-1")), interval + 5, "the first worker signs")

    waiting = donate(fund, "TURN-2")  # not signed yet when the worker dies
    active.process.kill()
    assert active.process.wait(timeout=10) == -signal.SIGKILL
    restarted = deployment.worker(interval)
    wait_until(covered(waiting), interval + 5, "the other worker signs after the kill")
    successor = holder([standby, restarted])
    assert successor is standby  # (it was waiting; the restarted one is still starting)
    restarted.wait_for("waiting: another worker holds the lock")

    assert successor.stop(signal.SIGINT) == 0  # Ctrl-C
    assert successor.said("stopped")
    restarted.wait_for("took the worker lock")
    wait_until(covered(donate(fund, "TURN-3")), interval + 5, "the restarted worker signs")
    assert restarted.stop() == 0

    lines = [line for w in (*started, restarted) for line in w.lines]
    assert not [line for line in lines if "error" in line]
    sizes = signed_sizes(lines)
    assert sizes == sorted(set(sizes))  # each checkpoint once, by one worker, in order
    assert signed_sizes(successor.lines) and signed_sizes(restarted.lines)
    with deployment.engine().connect() as conn:
        stored = conn.execute(select(checkpoints.c.size)).scalars().all()
    assert set(sizes) <= set(stored)
    head = fund.log.head()
    assert head.checkpoint_size == head.size  # nothing lost
    done = deployment.app.test_cli_runner().invoke(args=["verify"])
    assert done.exit_code == 0, done.output


# -- in-process: the new moon -----------------------------------------------------------------


@dataclass
class ShiftedClock:
    """The system clock moved by ``offset``: time passes, and the new moon is where we like."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class NoLock:
    """No worker lock at all, as if two workers both thought they held it: what remains to
    keep them from doing a thing twice is the log's write lock."""

    description = "no lock"

    def try_acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def test_two_workers_at_a_new_moon_hand_over_once_and_sign_once(
    db_url: str, signer: Signer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two workers with no worker lock between them (as if both believed they held it):
    the log's write lock alone keeps them from signing a checkpoint or handing over twice."""
    clock = ShiftedClock()
    vault = Vault.create(tmp_path / "data.key")
    engines = [make_engine(db_url) for _ in range(3)]  # (one per "process")
    request.addfinalizer(lambda: [engine.dispose() for engine in engines])
    migrate.upgrade(engines[0])
    policy = CheckpointPolicy(every_entries=100_000, interval=timedelta(seconds=2))
    logs = [Log(e, ORIGIN, signer=signer, clock=clock, policy=policy) for e in engines]
    writer = Fund(logs[0], vault)
    # The pool is set up an hour before the next new moon (in the log's time), then time
    # jumps to a second before it.
    new_moon = new_moon_after(datetime.now(UTC))
    clock.offset = new_moon - timedelta(hours=1) - datetime.now(UTC)
    logs[0].create()
    for slug in ("alba", "brisa"):
        writer.register_collective(ADMIN, slug=slug, name=slug.title())
    writer.create_pool(ADMIN, slug="food", name="Food bank", currencies=["EUR"])
    writer.set_roster(ADMIN, "food", ["alba", "brisa"])
    donate(writer, "MOON-1")  # unsigned: both workers will want to sign it
    clock.offset = new_moon - timedelta(seconds=1) - datetime.now(UTC)
    said: list[tuple[int, str]] = []
    stop = threading.Event()
    workers = [
        Worker(Fund(log, vault), NoLock(), say=lambda line, n=n: said.append((n, line)))
        for n, log in enumerate(logs[1:])
    ]
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    try:
        for thread in threads:
            thread.start()

        def handed_over() -> bool:
            with engines[0].connect() as conn:
                kinds = conn.execute(select(entries.c.kind)).scalars()
                return "custody_transferred" in list(kinds)

        wait_until(handed_over, 10, "a handover at the new moon")
        time.sleep(0.3)  # (time for a second handover or checkpoint, if there were to be one)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    with engines[0].connect() as conn:
        rows = conn.execute(
            select(entries.c.seq, entries.c.ts).where(entries.c.kind == "custody_transferred")
        ).all()
    assert len(rows) == 1
    # At the new moon, not at the next cron minute (nor when somebody writes next).
    assert new_moon <= parse_ts(rows[0].ts) < new_moon + timedelta(seconds=10)
    lines = [line for _, line in said]
    assert len([line for line in lines if line.startswith("handover food cycle")]) == 1
    assert not [line for line in lines if "error" in line]
    sizes = signed_sizes(lines)
    assert sizes and len(sizes) == len(set(sizes))  # each checkpoint signed by one of them
    report = verify_database(engines[0], [signer.verifier()])
    assert report.size == logs[0].head().size
