"""The fault drill: kill -9 the server and the worker under load, three times, and lose nothing.

A real deployment in subprocesses (``lunaria serve`` and ``lunaria worker``, as ``make run``
starts them; checkpoints due every second, so the worker signs while it is killed too) takes
single donations and votes from 8 client threads. Three times, at moments drawn from a seeded
random generator (the seed is printed; ``LUNARIA_DRILL_SEED`` replays a drill), both processes
are killed with SIGKILL and started again at once, with no manual step: nothing they leave
behind (a lock, a pid file, a half-written transaction) may stop the restart.

A client does what a real one would: after a connection error (refused, reset, or no answer)
it sends the same request again, with the same Idempotency-Key, until it gets an answer. At
the end, every answered request (2xx) is in the log exactly once, and the log holds nothing
else: each donation answered is one ``donation_recorded`` entry and each vote one
``vote_cast``, at the seq its answer named; no answer is a 5xx; ``lunaria verify`` and
``lunaria replay --check`` pass; seq runs 0, 1, 2, … without a gap.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from ledger.log.db import make_engine
from ledger.log.entry import decode_entry
from tests.live_server import LUNARIA, ROOT, Server, environment, free_port, init, lunaria

CLIENTS = 8
KILLS = 3
MEMBERS = 5  # the collective's members; the quorum is all of them: 5 votes decide a grant
GRANTS = 20  # proposed before the drill: up to 100 votes
LOAD_BEFORE_KILL = (0.5, 2.5)  # seconds of load after each (re)start before the next kill
LOAD_AFTER_LAST = 1.0  # seconds of load after the last restart
GIVE_UP = 60.0  # seconds a client keeps retrying one request


@dataclass
class Answer:
    kind: str  # "donation" or "vote"
    key: str
    status: int
    body: dict[str, Any]
    amount: int = 0


@dataclass
class Deployment:
    """The server and the worker, killed and started again as one."""

    env: dict[str, str]
    folder: Path
    port: int
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    restart_seconds: list[float] = field(default_factory=list)

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.folder / log).open("ab") as output:
            return subprocess.Popen(
                [str(LUNARIA), *args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_server(self) -> None:
        """``lunaria serve``, until it answers."""
        self.server = self._spawn("serve", "--port", str(self.port), log="serve.log")
        Server(self.server, self.port, self.folder / "serve.log").wait_until_serving()

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", log="worker.log")

    def restart(self) -> None:
        """Both, as after a crash; how long until the server answered is kept."""
        began = time.perf_counter()
        self.start_worker()
        self.start_server()
        self.restart_seconds.append(time.perf_counter() - began)

    def kill(self, rng: random.Random) -> None:
        """SIGKILL to both, in a random order; wait until both are gone."""
        processes = [p for p in (self.server, self.worker) if p is not None]
        rng.shuffle(processes)
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
        for process in processes:
            assert process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        for process in (self.server, self.worker):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)


def _send(
    port: int, path: str, body: dict[str, Any], token: str, key: str, method: str
) -> tuple[int, bytes]:
    """One request on a new connection; raises OSError or HTTPException if none answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        }
        connection.request(method, path, json.dumps(body).encode(), headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _answered(
    port: int, path: str, body: dict[str, Any], token: str, key: str, method: str = "POST"
) -> tuple[int, Any]:
    """The first answer to the request, sent again with the same key after each connection
    error, as a client would."""
    deadline = time.monotonic() + GIVE_UP
    while True:
        try:
            status, raw = _send(port, path, body, token, key, method)
            return status, json.loads(raw) if raw else {}
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _expect(port: int, path: str, body: dict[str, Any], token: str, status: int = 201) -> Any:
    got, answer = _answered(port, path, body, token, uuid.uuid4().hex)
    assert got == status, (path, got, answer)
    return answer


@dataclass
class Books:
    treasurer: str
    members: list[str]
    votes: list[tuple[int, int]]  # (grant, member index) not yet sent
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards votes

    def next_vote(self) -> tuple[int, int] | None:
        with self.lock:
            return self.votes.pop(0) if self.votes else None


def _set_up(port: int, admin: str) -> Books:
    """A treasurer, an applicant, one collective of MEMBERS members (quorum: all), a pool,
    and GRANTS small proposals to vote on."""
    api = "/api/v1"
    treasurer = _expect(port, f"{api}/tokens", {"role": "treasurer", "label": "t"}, admin)
    applicant = _expect(port, f"{api}/tokens", {"role": "applicant", "label": "a"}, admin)
    collective = {"slug": "alba", "name": "Alba", "quorum": MEMBERS}
    _expect(port, f"{api}/collectives", collective, admin)
    members = []
    for number in range(MEMBERS):
        added = _expect(port, f"{api}/collectives/alba/members", {"member": f"m{number}"}, admin)
        members.append(added["token"]["token"])
    pool = {"slug": "food", "name": "Food bank", "currencies": ["EUR"]}
    _expect(port, f"{api}/pools", pool, admin)
    got, answer = _answered(
        port, f"{api}/pools/food/roster", {"collectives": ["alba"]}, admin, "roster", "PUT"
    )
    assert got == 200, answer
    grants = []
    for number in range(GRANTS):
        proposal = {
            "amount": "100",
            "currency": "EUR",
            "purpose": f"Drill grant {number}",
            "urgency": "normal",
            "recipient": f"family-{number}",
        }
        grants.append(_expect(port, f"{api}/pools/food/grants", proposal, applicant["token"])["id"])
    votes = [(grant, member) for grant in grants for member in range(MEMBERS)]
    return Books(treasurer["token"], members, votes)


def _client(
    number: int, port: int, books: Books, stop: threading.Event, answers: list[Answer]
) -> None:
    """Donations and votes, one at a time, until ``stop``; each request until answered."""
    rng = random.Random(number)
    sent = 0
    while not stop.is_set():
        key = f"drill-{number}-{sent}-{uuid.uuid4().hex[:8]}"
        sent += 1
        vote = books.next_vote() if rng.random() < 0.3 else None
        if vote is None:
            amount = rng.randrange(100, 100_000)
            body = {
                "amount": str(amount),
                "currency": "EUR",
                "channel": "bank",
                "external_reference": f"bank-{key}",
            }
            path = "/api/v1/pools/food/donations"
            status, answer = _answered(port, path, body, books.treasurer, key)
            answers.append(Answer("donation", key, status, answer, amount))
        else:
            grant, member = vote
            path = f"/api/v1/grants/{grant}/votes"
            status, answer = _answered(port, path, {"vote": "approve"}, books.members[member], key)
            answers.append(Answer("vote", key, status, answer))


def _log_entries(db_url: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT body FROM entries ORDER BY seq")).all()
    finally:
        engine.dispose()
    for (body,) in rows:
        entry = decode_entry(bytes(body))
        yield entry.seq, entry.kind, entry.data


def test_kill_9_server_and_worker_three_times_under_load(db_url: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("LUNARIA_DRILL_SEED", random.randrange(2**32)))
    print(f"\nfault drill seed {seed} (LUNARIA_DRILL_SEED={seed} replays its kill moments)")
    rng = random.Random(seed)
    # Checkpoints due every second: the worker (and writers) sign while they are killed.
    env = environment(db_url, tmp_path, LUNARIA_CHECKPOINT_INTERVAL="1", LUNARIA_RATE_LIMITS="0")
    admin = init(env)
    deployment = Deployment(env, tmp_path, free_port())
    answers: list[Answer] = []
    stop = threading.Event()
    began = time.perf_counter()
    try:
        # The worker runs from the start: the set-up (tokens, collective, pool, proposals)
        # is written while it signs checkpoints, as every write after it is.
        deployment.start_worker()
        deployment.start_server()
        books = _set_up(deployment.port, admin)
        clients = [
            threading.Thread(target=_client, args=(n, deployment.port, books, stop, answers))
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        kill_moments = []
        for _ in range(KILLS):
            wait = rng.uniform(*LOAD_BEFORE_KILL)
            kill_moments.append(round(wait, 2))
            time.sleep(wait)
            deployment.kill(rng)
            deployment.restart()
        time.sleep(LOAD_AFTER_LAST)
        stop.set()
        for client in clients:
            client.join(timeout=GIVE_UP + 10)
            assert not client.is_alive()
        loaded = time.perf_counter() - began
        lunaria(env, "checkpoint", "--new")
    except BaseException:
        for log in ("serve.log", "worker.log"):  # (what the processes said, for the failure)
            print(f"--- {log}:\n{(tmp_path / log).read_text(errors='replace')[-6000:]}")
        raise
    finally:
        stop.set()
        deployment.stop()

    statuses = Counter(answer.status for answer in answers)
    assert not [a for a in answers if a.status >= 500], statuses
    written = {(a.kind, a.key): a for a in answers if 200 <= a.status < 300}
    donations = {a.body["seq"]: a for a in written.values() if a.kind == "donation"}
    votes = {a.body["seq"]: a for a in written.values() if a.kind == "vote"}
    assert len(donations) == sum(1 for kind, _ in written if kind == "donation")
    assert len(votes) == sum(1 for kind, _ in written if kind == "vote")
    assert donations and votes, statuses

    entries = list(_log_entries(db_url))
    assert [seq for seq, _, _ in entries] == list(range(len(entries)))  # gapless
    kinds = {seq: (kind, data) for seq, kind, data in entries}
    in_log = {seq for seq, (kind, _) in kinds.items() if kind == "donation_recorded"}
    assert in_log == set(donations)  # each answered once, and nothing unanswered
    for seq, answer in donations.items():
        assert kinds[seq][1]["amount"] == str(answer.amount)
    voted = {seq for seq, (kind, _) in kinds.items() if kind == "vote_cast"}
    assert voted == set(votes)
    for seq, answer in votes.items():
        assert kinds[seq][1]["member"] == answer.body["member"]
        assert kinds[seq][1]["grant"] == answer.body["grant"]

    lunaria(env, "verify")  # (exits 1 on any failure)
    replayed = lunaria(env, "replay", "--check")
    assert replayed.startswith("ok:"), replayed
    print(
        f"{db_url.split(':')[0]}: {len(answers)} requests answered in {loaded:.1f} s "
        f"({dict(statuses)}): {len(donations)} donations, {len(votes)} votes; kills after "
        f"{kill_moments} s of load; restarts took "
        f"{', '.join(f'{s:.1f}' for s in deployment.restart_seconds)} s; "
        f"{len(entries)} entries, gapless; verify and replay --check ok"
    )
