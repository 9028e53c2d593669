"""``lunaria worker``: everything time-driven, in one loop.

Writers sign checkpoints and append handovers only while they write. The worker does both
when their time comes even if nobody writes:

* it signs a checkpoint before the first entry no checkpoint covers is
  ``LUNARIA_CHECKPOINT_INTERVAL`` old (:meth:`~ledger.log.append.Log.sign_if_due`);
* it appends the handovers of a new moon at that new moon (:meth:`Fund.rotate`);
* it runs whatever periodic task it is given (``lunaria worker`` gives it anchoring, which
  lives outside the ledger: :class:`Periodic`).

It sleeps until the earliest of these is due (at most ``max_sleep``), wakes, acts, and says
what it did, one line each ("signed checkpoint 123", "handover food cycle 321: a -> b").

Only one worker acts at a time (:mod:`ledger.fund.worker_lock`); another one waits for the
lock and takes over when the first stops or dies. Even two acting at once would do nothing
twice: checkpoints and handovers are decided under the log's write lock, where the second
finds the tail covered and the handover written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ledger.errors import LedgerError
from ledger.fund.commands import Fund
from ledger.fund.state import load_schedule
from ledger.fund.worker_lock import WorkerLock
from ledger.log.append import Log
from ledger.log.db import read_transaction

MAX_SLEEP = timedelta(seconds=60)
LOCK_POLL = 1.0  # seconds between tries of a lock another worker holds
_MIN_SLEEP = 0.05  # seconds: a loop whose next task is already due still yields this long
_MIN_RECHECK = timedelta(seconds=0.1)
_RETRY_FIRST = timedelta(seconds=5)


class Task(Protocol):
    """Something the worker does when its time comes."""

    name: str

    def next_at(self, now: datetime) -> datetime:
        """When to run next: at once if not after ``now``. Called before every sleep, so it
        may also be a time to look again."""
        ...

    def run(self, now: datetime) -> list[str]:
        """Do it; one line per thing done (none if it found nothing to do)."""
        ...


class Checkpoints:
    """Sign a checkpoint before the unsigned tail is the policy's ``interval`` old."""

    name = "checkpoints"

    def __init__(self, log: Log) -> None:
        self.log = log
        interval = log.policy.interval
        # Sign a little before the deadline, so that waking up and signing fit inside it.
        self.early = min(timedelta(seconds=1), interval / 10)
        # With nothing to sign, an entry written right after this look is due this much later.
        self.recheck = max(interval - self.early, _MIN_RECHECK)

    def next_at(self, now: datetime) -> datetime:
        due = self.log.checkpoint_due_at()
        return now + self.recheck if due is None else due - self.early

    def run(self, now: datetime) -> list[str]:
        self.log.sign_if_due(self.early)  # (the worker says so: see Worker)
        return []


class Handovers:
    """Append every handover due, at the first look and then at each new moon."""

    name = "handovers"

    def __init__(self, fund: Fund, after: Callable[[], str] | None = None) -> None:
        self.fund = fund
        self.after = after  # run once handovers were written (anchoring at handover)
        self._next: datetime | None = None  # (None: at once)

    def next_at(self, now: datetime) -> datetime:
        return now if self._next is None else self._next

    def run(self, now: datetime) -> list[str]:
        handovers = self.fund.rotate()
        lines = [
            f"handover {e.data['pool']} cycle {e.data['cycle']['number']}: "
            f"{e.data['from'] or '-'} -> {e.data['to'] or '-'} (seq {e.seq})"
            for e in handovers
        ]
        self._next = self._new_moon_after(self.fund.log.clock.now())
        if handovers and self.after is not None:
            try:
                lines.append(self.after())
            except Exception as exc:  # (the handovers stand; the lines above must be said)
                lines.append(f"error: after the handover: {exc}")
        return lines

    def _new_moon_after(self, now: datetime) -> datetime:
        """The end of the cycle holding ``now``, by the boundaries the writers use."""
        with read_transaction(self.fund.log.engine) as conn:
            schedule = load_schedule(conn)
        return schedule.cycle_at(now).end


@dataclass
class Periodic:
    """``action`` once ``every`` has passed since ``last_done`` (at once if never done)."""

    name: str
    every: timedelta
    last_done: Callable[[], datetime | None]
    action: Callable[[], str]
    _not_before: datetime | None = field(default=None, init=False)

    def next_at(self, now: datetime) -> datetime:
        last = self.last_done()
        due = now if last is None else last + self.every
        # An action that leaves no trace in last_done (nothing new to do) waits a period too.
        return due if self._not_before is None else max(due, self._not_before)

    def run(self, now: datetime) -> list[str]:
        line = self.action()
        self._not_before = now + self.every
        return [line]


@dataclass
class _Failing:
    """A task whose last run failed: retried after a delay that doubles up to max_sleep."""

    delay: timedelta
    retry_at: datetime


class Worker:
    """The loop: take the lock, then run what is due and sleep, until ``stop`` is set."""

    def __init__(
        self,
        fund: Fund,
        lock: WorkerLock,
        *,
        tasks: Sequence[Task] = (),
        after_handover: Callable[[], str] | None = None,
        say: Callable[[str], None] = print,
        max_sleep: timedelta = MAX_SLEEP,
    ) -> None:
        self.clock = fund.log.clock
        self.lock = lock
        self.say = say
        # Every checkpoint signed here, by whichever task's transaction (a handover's too).
        fund.log.on_signed = lambda checkpoint: say(f"signed checkpoint {checkpoint.size}")
        self.tasks: list[Task] = [Checkpoints(fund.log), Handovers(fund, after_handover), *tasks]
        self.max_sleep = max_sleep
        self._failing: dict[str, _Failing] = {}

    def run(self, stop: threading.Event) -> None:
        """Act while holding the lock; wait for it while another worker holds it."""
        while not stop.is_set():
            if not self._take_lock(stop):
                return
            try:
                while not stop.is_set():
                    if not self.lock.held():
                        self.say("lost the worker lock; waiting for it again")
                        break
                    wake = self.step()
                    seconds = (wake - self.clock.now()).total_seconds()
                    stop.wait(max(seconds, _MIN_SLEEP))
            finally:
                self.lock.release()

    def _take_lock(self, stop: threading.Event) -> bool:
        said = ""
        while not stop.is_set():
            try:
                if self.lock.try_acquire():
                    self.say(f"took the worker lock ({self.lock.description})")
                    return True
                news = "waiting: another worker holds the lock"
            except Exception as exc:  # (the database out of reach: try again, say it once)
                news = f"error: taking the worker lock: {_first_line(exc)}"
            if news != said:
                self.say(news)
                said = news
            stop.wait(LOCK_POLL)
        return False

    def step(self) -> datetime:
        """Run every task that is due; return when the next one will be."""
        now = self.clock.now()
        wake = now + self.max_sleep
        for task in self.tasks:
            due = self._next_at(task, now)
            if due is not None and due <= now:
                self._run(task, now)
                now = self.clock.now()
                due = self._next_at(task, now)
            if due is not None:
                wake = min(wake, due)
        return wake

    def _next_at(self, task: Task, now: datetime) -> datetime | None:
        failing = self._failing.get(task.name)
        if failing is not None and now < failing.retry_at:
            return failing.retry_at
        try:
            return task.next_at(now)
        except Exception as exc:
            self._failed(task, now, exc)
            return self._failing[task.name].retry_at

    def _run(self, task: Task, now: datetime) -> None:
        try:
            lines = task.run(now)
        except Exception as exc:
            self._failed(task, now, exc)
            return
        self._failing.pop(task.name, None)
        for line in lines:
            self.say(line)

    def _failed(self, task: Task, now: datetime, exc: Exception) -> None:
        before = self._failing.get(task.name)
        delay = _RETRY_FIRST if before is None else min(2 * before.delay, self.max_sleep)
        self._failing[task.name] = _Failing(delay, now + delay)
        self.say(
            f"error: {task.name}: {_first_line(exc)} (retrying in {delay.total_seconds():g} s)"
        )


def _first_line(exc: Exception) -> str:
    message = exc.message if isinstance(exc, LedgerError) else str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
