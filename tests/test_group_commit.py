"""GroupCommit: requests waiting while a group runs go together in the next one, each with its
own outcome; a failed group is retried request by request; no caller is ever left waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from ledger.log.group_commit import GroupCommit, RetryAlone


class Recorder:
    """A run_group that records its groups and can be held on its first call."""

    def __init__(self, outcome: Callable[[int], int | Exception] = lambda r: r * 10) -> None:
        self.groups: list[list[int]] = []
        self.outcome = outcome
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, requests: Sequence[int]) -> list[int | Exception]:
        self.groups.append(list(requests))
        self.entered.set()
        self.release.wait(timeout=30)
        return [self.outcome(r) for r in requests]


def submit_all(
    commit: GroupCommit[int, int], requests: Sequence[int]
) -> dict[int, int | BaseException]:
    """Submit each request from its own thread; each one's result or error."""
    results: dict[int, int | BaseException] = {}

    def run(request: int) -> None:
        try:
            results[request] = commit.submit(request)
        except BaseException as exc:  # collected for the assertions
            results[request] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    return _joined(threads, results)


def _joined(
    threads: list[threading.Thread], results: dict[int, int | BaseException]
) -> dict[int, int | BaseException]:
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a caller was left waiting"
    return results


def hold_first_group(recorder: Recorder, commit: GroupCommit[int, int]) -> threading.Thread:
    """Start request 0 and keep its group running until ``recorder.release`` is set."""
    recorder.release.clear()
    leader = threading.Thread(target=commit.submit, args=(0,))
    leader.start()
    assert recorder.entered.wait(timeout=30)
    return leader


def wait_until_queued(commit: GroupCommit[int, int], count: int) -> None:
    deadline = time.monotonic() + 30
    while len(commit._waiting) < count:  # (the queue is internal; the test waits for it)
        assert time.monotonic() < deadline, "requests never queued"
        time.sleep(0.001)


def test_a_lone_request_is_a_group_of_one() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, limit=10)
    assert commit.submit(7) == 70
    assert recorder.groups == [[7]]


def test_requests_that_wait_go_together_in_arrival_order() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, limit=100)
    leader = hold_first_group(recorder, commit)
    results: dict[int, int | BaseException] = {}
    threads = []
    for request in range(1, 6):  # one at a time, so their order is known
        thread = threading.Thread(target=lambda r=request: results.update({r: commit.submit(r)}))
        thread.start()
        threads.append(thread)
        wait_until_queued(commit, request)
    recorder.release.set()
    leader.join(timeout=30)
    _joined(threads, results)
    assert recorder.groups == [[0], [1, 2, 3, 4, 5]]
    assert results == {r: r * 10 for r in range(1, 6)}


def test_a_group_holds_at_most_limit_requests() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, limit=2)
    leader = hold_first_group(recorder, commit)
    waiting = threading.Thread(target=submit_all, args=(commit, [1, 2, 3, 4, 5]))
    waiting.start()
    wait_until_queued(commit, 5)
    recorder.release.set()
    leader.join(timeout=30)
    waiting.join(timeout=30)
    assert [len(group) for group in recorder.groups] == [1, 2, 2, 1]
    assert sorted(r for group in recorder.groups for r in group) == [0, 1, 2, 3, 4, 5]


def test_a_broken_rule_fails_only_its_own_request() -> None:
    recorder = Recorder(lambda r: ValueError(f"bad {r}") if r == 3 else r * 10)
    commit = GroupCommit(recorder, limit=100)
    leader = hold_first_group(recorder, commit)
    waiting: dict[int, int | BaseException] = {}
    thread = threading.Thread(target=lambda: waiting.update(submit_all(commit, [1, 2, 3, 4])))
    thread.start()
    wait_until_queued(commit, 4)
    recorder.release.set()
    leader.join(timeout=30)
    thread.join(timeout=30)
    assert len(recorder.groups) == 2  # the four went together, and were not retried
    error = waiting.pop(3)
    assert isinstance(error, ValueError) and str(error) == "bad 3"
    assert waiting == {1: 10, 2: 20, 4: 40}


def test_a_group_that_failed_before_writing_is_retried_request_by_request() -> None:
    groups: list[list[int]] = []

    def run_group(requests: Sequence[int]) -> list[int | Exception]:
        groups.append(list(requests))
        if 3 in requests:  # e.g. the database refused a statement of request 3: rolled back
            raise RetryAlone(RuntimeError("statement failed"))
        return [r * 10 for r in requests]

    commit = GroupCommit(run_group, limit=100)
    results = commit._outcomes([1, 2, 3, 4])  # as a leader with these four waiting would
    assert groups == [[1, 2, 3, 4], [1], [2], [3], [4]]
    assert results[:2] == [10, 20] and results[3] == 40
    assert isinstance(results[2], RuntimeError) and str(results[2]) == "statement failed"


def test_a_group_that_failed_at_commit_fails_every_request() -> None:
    """Whether a failed commit wrote anything is unknown: a retry could write it twice."""
    groups: list[list[int]] = []

    def run_group(requests: Sequence[int]) -> list[int | Exception]:
        groups.append(list(requests))
        raise ConnectionError("lost during COMMIT")

    results = GroupCommit(run_group, limit=100)._outcomes([1, 2])
    assert groups == [[1, 2]]
    assert all(isinstance(r, ConnectionError) for r in results)


def test_an_interrupted_leader_releases_everyone_it_took() -> None:
    class Interrupted(BaseException):
        pass

    def run_group(requests: Sequence[int]) -> list[int | Exception]:
        raise Interrupted()

    commit = GroupCommit(run_group, limit=100)
    results = submit_all(commit, [1, 2, 3])
    assert all(isinstance(error, Interrupted) for error in results.values())
    assert commit._waiting == []


@pytest.mark.parametrize("limit", [1, 1000])
def test_every_request_gets_its_own_result_under_load(limit: int) -> None:
    commit = GroupCommit(Recorder(), limit=limit)
    results = submit_all(commit, list(range(200)))
    assert results == {r: r * 10 for r in range(200)}
