"""Group commit: requests that arrive while a write is under way go together in the next one.

Every durable commit pays a flush to disk (and, on PostgreSQL, a dozen round trips) whatever
it holds, and writers queue for the log's one write lock anyway. So concurrent callers queue
here instead: the first to find no write under way (the leader) takes every request waiting
by then and runs them in one transaction; the rest sleep until it is done. Each request still
gets its own outcome, or its own error, and is durable before its caller returns: the
classic leader/follower group commit of database engines, done above the database because
the log's write lock serialises whole transactions, not just their flushes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")


class RetryAlone(Exception):
    """Raised by a group's run when it failed before anything could be written (the
    transaction rolled back): each request is then run again alone, so one request's failure
    is never another's. ``error`` is what went wrong."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False)
class _Slot(Generic[RequestT, ResultT]):
    request: RequestT
    outcome: ResultT | BaseException | None = None
    settled: bool = False


class GroupCommit(Generic[RequestT, ResultT]):
    """Runs ``run_group`` on groups of up to ``limit`` requests, one group at a time per
    process.

    ``run_group`` does one transaction and returns an outcome per request: a result, or an
    exception for a request that broke a rule (and wrote nothing). If it raises RetryAlone,
    each request of the group is run again alone. Any other exception is every request's
    error: raised by the commit, it leaves unknown whether the group was written, and only
    the callers (with their idempotency keys) can safely try again.
    """

    def __init__(
        self,
        run_group: Callable[[Sequence[RequestT]], Sequence[ResultT | Exception]],
        limit: int,
    ) -> None:
        self._run_group = run_group
        self._limit = limit
        self._waiting: list[_Slot[RequestT, ResultT]] = []
        self._queue = threading.Lock()  # guards _waiting, held for microseconds
        self._turn = threading.Lock()  # held by the leader for the whole transaction

    def submit(self, request: RequestT) -> ResultT:
        """The result of ``request``, after the transaction that wrote it committed."""
        slot: _Slot[RequestT, ResultT] = _Slot(request)
        with self._queue:
            self._waiting.append(slot)
        while not slot.settled:
            with self._turn:
                if slot.settled:  # a leader took it while this thread waited for the turn
                    break
                with self._queue:
                    group = self._waiting[: self._limit]
                    del self._waiting[: self._limit]
                self._settle(group)
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]  # (settled: a ResultT)

    def _settle(self, group: list[_Slot[RequestT, ResultT]]) -> None:
        try:
            outcomes = self._outcomes([slot.request for slot in group])
        except BaseException as exc:  # (interrupted): no waiter may be left waiting
            outcomes = [exc] * len(group)
            raise
        finally:
            for slot, outcome in zip(group, outcomes, strict=True):
                slot.outcome, slot.settled = outcome, True

    def _outcomes(self, requests: Sequence[RequestT]) -> Sequence[ResultT | BaseException]:
        try:
            return self._run_group(requests)
        except RetryAlone as failed:
            if len(requests) == 1:
                return [failed.error]
            return [self._alone(request) for request in requests]
        except Exception as exc:
            return [exc] * len(requests)

    def _alone(self, request: RequestT) -> ResultT | Exception:
        try:
            return self._run_group([request])[0]
        except RetryAlone as failed:
            return failed.error
        except Exception as exc:
            return exc
