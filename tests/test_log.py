"""The append path, checkpoints, idempotency and append-only storage, on both databases."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from ledger.errors import EncodingError, IdempotencyConflict, InvalidAmount, LedgerError
from ledger.log import merkle
from ledger.log.append import CheckpointPolicy, Log, _KnownHead
from ledger.log.clock import ManualClock
from ledger.log.entry import GENESIS_PREV, decode_entry
from ledger.log.notes import Signer, open_checkpoint
from ledger.log.schema import checkpoints, entries, node_key, nodes
from ledger.log.storage import LogHead
from ledger.log.verify import verify_database
from tests.conftest import ORIGIN, tamper


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_create_writes_log_created_and_first_checkpoint(log: Log, signer: Signer) -> None:
    head = log.head()
    assert head.size == 1
    first = log.entry(0)
    assert first.kind == "log_created"
    assert first.prev == GENESIS_PREV
    assert first.data["origin"] == ORIGIN
    assert first.data["vkey"] == signer.verifier().vkey()
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None and checkpoint.size == 1
    assert open_checkpoint(checkpoint.note, [signer.verifier()]).root == first.hash
    assert log.create() is False  # idempotent
    assert log.head().size == 1


def test_appends_chain_and_match_reference_tree(log: Log, signer: Signer) -> None:
    for i in range(40):
        log.append("pool_created", {"slug": f"pool-{i}"}, actor="admin:1")
    all_entries = log.entries(limit=1000)
    assert [e.seq for e in all_entries] == list(range(41))
    for before, after in itertools.pairwise(all_entries):
        assert after.prev == before.hash.hex()
        assert after.ts >= before.ts
    hashes = [e.hash for e in all_entries]
    assert log.head().root == merkle.root_from_leaves(hashes)
    for size in (1, 2, 7, 16, 33, 41):
        assert log.root_at(size) == merkle.root_from_leaves(hashes[:size])
        for index in {0, size // 2, size - 1}:
            proof = log.inclusion_proof(index, size)
            merkle.verify_inclusion(index, size, hashes[index], proof, log.root_at(size))
        for old in {1, size // 2, size}:
            if old:
                proof = log.consistency_proof(old, size)
                merkle.verify_consistency(old, size, proof, log.root_at(old), log.root_at(size))
    report = verify_database(log.engine, [signer.verifier()])
    assert report.size == 41


def test_proofs_refuse_sizes_beyond_the_log(log: Log) -> None:
    with pytest.raises(LedgerError, match="beyond the log"):
        log.inclusion_proof(0, 2)
    with pytest.raises(LedgerError, match="beyond the log"):
        log.consistency_proof(1, 5)
    with pytest.raises(LedgerError, match="not below tree size"):
        log.inclusion_proof(1, 1)


def test_checkpoint_every_n_entries(engine: Engine, signer: Signer, clock: ManualClock) -> None:
    log = Log(engine, ORIGIN, signer, clock, CheckpointPolicy(every_entries=5))
    log.create()
    for i in range(12):
        log.append("pool_created", {"n": i})
    sizes = [c.size for c in log.checkpoints()]
    assert sizes == [1, 6, 11]
    verify_database(engine, [signer.verifier()])


def test_checkpoint_after_interval(engine: Engine, signer: Signer, clock: ManualClock) -> None:
    policy = CheckpointPolicy(every_entries=1000, interval=timedelta(seconds=30))
    log = Log(engine, ORIGIN, signer, clock, policy)
    log.create()
    log.append("pool_created", {"n": 1})
    assert [c.size for c in log.checkpoints()] == [1]
    clock.advance(timedelta(seconds=31))
    log.append("pool_created", {"n": 2})
    assert [c.size for c in log.checkpoints()] == [1, 3]
    assert log.checkpoint_now().size == 3  # already covered: no new one
    log.append("pool_created", {"n": 3})
    assert log.checkpoint_now().size == 4
    assert [c.size for c in log.checkpoints()] == [1, 3, 4]


def test_ts_never_goes_backwards(log: Log, clock: ManualClock) -> None:
    first = log.append("pool_created", {"n": 1})
    clock.advance(timedelta(hours=-5))
    second = log.append("pool_created", {"n": 2})
    assert second.ts == first.ts


def test_idempotent_append_returns_original(log: Log, engine: Engine) -> None:
    first = log.append("pool_created", {"slug": "a", "cap": "100"}, idempotency_key="k1")
    again = log.append("pool_created", {"slug": "a", "cap": "100"}, idempotency_key="k1")
    assert again == first
    assert count(engine, entries) == 2
    with pytest.raises(IdempotencyConflict) as caught:
        log.append("pool_created", {"slug": "b", "cap": "100"}, idempotency_key="k1")
    assert caught.value.fields == ("data",)
    assert "data" in str(caught.value)
    assert count(engine, entries) == 2


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"amount": 1.5}, EncodingError),
        ({"amount": 2**53}, EncodingError),
        ({"clé": "x"}, EncodingError),
        ({"blob": "x" * 70_000}, EncodingError),
    ],
)
def test_bad_input_writes_nothing(
    log: Log, engine: Engine, data: dict[str, object], error: type
) -> None:
    before = (count(engine, entries), count(engine, nodes), count(engine, checkpoints))
    with pytest.raises(error):
        log.append("donation_recorded", data)
    assert (count(engine, entries), count(engine, nodes), count(engine, checkpoints)) == before
    assert log.head().size == 1


def test_amount_must_be_digit_string(log: Log, engine: Engine) -> None:
    from ledger.log.canonical import check_amount

    for bad in ("-5", "1.50", "1e3", "0", 1500):
        with pytest.raises(InvalidAmount), log.writer() as writer:
            writer.append("donation_recorded", {"amount": check_amount(bad)})
    assert count(engine, entries) == 1


def test_unknown_kind_and_bad_actor_refused(log: Log) -> None:
    with pytest.raises(EncodingError, match="unknown entry kind"):
        log.append("rewrite_history", {})
    with pytest.raises(EncodingError, match="actor"):
        log.append("pool_created", {}, actor="Jane Doe <jane@example.org>")
    assert log.head().size == 1


def test_failed_transaction_leaves_no_trace(log: Log, engine: Engine) -> None:
    with pytest.raises(RuntimeError), log.writer() as writer:
        writer.append("pool_created", {"n": 1})
        writer.append("pool_created", {"n": 2})
        raise RuntimeError("rule check failed after appending")
    assert log.head().size == 1
    assert count(engine, entries) == 1
    assert log.append("pool_created", {"n": 3}).seq == 1


@pytest.mark.parametrize("table", ["entries", "nodes", "checkpoints"])
def test_triggers_refuse_update_and_delete(log: Log, engine: Engine, table: str) -> None:
    for i in range(4):
        log.append("pool_created", {"n": i})
    log.checkpoint_now()
    column = {"entries": "kind", "nodes": "hash", "checkpoints": "note"}[table]
    value = {"entries": "'x'", "nodes": column, "checkpoints": "'x'"}[table]
    for statement in (f"UPDATE {table} SET {column} = {value}", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    verify_database(engine, [log.signer.verifier()])  # type: ignore[union-attr]


def _append_many(url: str, skey: str, worker: int, n: int) -> None:
    from ledger.log.db import make_engine

    engine = make_engine(url)
    log = Log(engine, ORIGIN, Signer.from_skey(skey), policy=CheckpointPolicy(every_entries=100))
    for i in range(n):
        log.append("pool_created", {"worker": worker, "i": i}, actor=f"worker:{worker}")
    engine.dispose()


def _check_concurrent_result(log: Log, signer: Signer, expected: int) -> None:
    all_entries = log.entries(limit=expected + 10)
    assert [e.seq for e in all_entries] == list(range(expected))
    per_worker: dict[int, list[int]] = {}
    for e in all_entries[1:]:
        per_worker.setdefault(e.data["worker"], []).append(e.data["i"])
    assert all(sorted(v) == v for v in per_worker.values())
    report = verify_database(log.engine, [signer.verifier()])
    assert report.size == expected


def test_concurrent_processes(log: Log, db_url: str, signer: Signer) -> None:
    # (SQLite: the processes take turns on the writer lock file, see SqliteWriterTurns)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_many, args=(db_url, signer.skey(), w, 250)) for w in range(8)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
        assert p.exitcode == 0
    _check_concurrent_result(log, signer, 2001)


def test_concurrent_threads(log: Log, db_url: str, signer: Signer) -> None:
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            for i in range(250):
                log.append("pool_created", {"worker": worker, "i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _check_concurrent_result(log, signer, 1001)


def test_entry_bytes_stored_exactly(log: Log, engine: Engine) -> None:
    entry = log.append("pool_created", {"name": "Fondo común ✓", "n": 1})
    with engine.connect() as conn:
        body = conn.execute(select(entries.c.body).where(entries.c.seq == entry.seq)).scalar_one()
    assert bytes(body) == entry.raw
    assert decode_entry(bytes(body)) == entry


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_writers_wait_for_the_writer_lock_file(log: Log, db_url: str) -> None:
    """A writer waits while another process holds the turn, and goes on once it is released."""
    import fcntl
    import os

    from sqlalchemy.engine import make_url

    path = f"{make_url(db_url).database}-writer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # another open file: as another process
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        appended = threading.Event()

        def append() -> None:
            log.append("pool_created", {"n": 1})
            appended.set()

        writer = threading.Thread(target=append)
        writer.start()
        assert not appended.wait(timeout=0.5), "the writer did not wait for its turn"
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert appended.wait(timeout=30)
        writer.join(timeout=30)
    finally:
        os.close(fd)
    assert log.head().size == 2


def test_write_transactions_commit_or_roll_back_whichever_api_ran_their_statements(
    log: Log, engine: Engine
) -> None:
    """Write transactions are begun and ended on the driver (PostgreSQL's in autocommit mode,
    with BEGIN sent together with the opening query); a SQLAlchemy statement inside one joins
    it. Each way, everything commits together or nothing does, and a connection given back to
    the pool after a rollback has its own transactions again."""
    from sqlalchemy import insert

    from ledger.log.db import write_sql

    base = 10**12  # node keys no test log reaches

    def driver_insert(conn: Any, key: int) -> None:
        write_sql(conn, "INSERT INTO nodes (key, hash) VALUES (?, ?)", (base + key, bytes(32)))

    def sqlalchemy_insert(conn: Any, key: int) -> None:
        conn.execute(insert(nodes).values(key=base + key, hash=bytes(32)))

    connections = log._write_connections
    opening = "SELECT size FROM log_head WHERE id = 1"
    with connections.transaction(opening) as (conn, opened):  # driver statements only
        assert tuple(opened.row) == (log.head().size,)
        driver_insert(conn, 0)
    with connections.transaction(opening) as (conn, _opened):  # a SQLAlchemy statement too
        driver_insert(conn, 1)
        sqlalchemy_insert(conn, 2)
    for sqlalchemy in (False, True):
        with pytest.raises(RuntimeError), connections.transaction(opening) as (conn, _opened):
            driver = conn.connection.dbapi_connection
            driver_insert(conn, 3)
            if sqlalchemy:
                sqlalchemy_insert(conn, 4)
            raise RuntimeError("abandoned")
        # The rolled-back connection went back to the pool: whoever gets it next must have
        # psycopg's transactions, not statements autocommitted one by one.
        assert not getattr(driver, "autocommit", False)
    with engine.connect() as conn:
        keys = conn.execute(select(nodes.c.key).where(nodes.c.key >= base)).scalars()
        assert sorted(keys) == [base, base + 1, base + 2]
    size = log.head().size
    assert log.append("pool_created", {"after": "rollbacks"}).seq == size  # still usable


def test_reads_come_with_the_opening_and_queued_writes_commit_together_or_not_at_all(
    log: Log, engine: Engine
) -> None:
    """``Log.writer(reads)`` hands back each read's rows (PostgreSQL sends them with the locked
    read of the head); after ``queue_writes()`` PostgreSQL sends the rest with the COMMIT. A
    queued write the database refuses surfaces there, as NotCommitted (SQLite refuses it at
    once), and nothing of the transaction is written; the writer is usable after."""
    from ledger.log.db import NotCommitted, RowInsert, read_sql, write_sql

    base = 2 * 10**12  # node keys no test log reaches
    insert = "INSERT INTO nodes (key, hash) VALUES (?, ?)"
    size = log.head().size
    reads = [
        ("SELECT size FROM log_head WHERE id = ?", (1,)),
        ("SELECT key FROM nodes WHERE key >= ?", (base,)),
    ]
    with log.writer(reads) as writer:
        assert [list(map(tuple, rows)) for rows in writer.prefetched] == [[(size,)], []]
        writer.append("pool_created", {"queued": True})
        writer.queue_writes()
        write_sql(writer.conn, insert, (base, bytes(32)))
        RowInsert("nodes", ("key", "hash")).run(
            writer.conn, [(base + 1, bytes(32)), (base + 2, bytes(32))]
        )
    refused = NotCommitted if engine.dialect.name == "postgresql" else DBAPIError
    with pytest.raises(refused), log.writer() as writer:
        writer.append("pool_created", {"queued": False})
        writer.queue_writes()
        write_sql(writer.conn, insert, (base + 3, bytes(32)))
        write_sql(writer.conn, insert, (base, bytes(32)))  # (taken: refused)
    with pytest.raises(refused), log.writer() as writer:  # refused, then a read waits for it
        writer.queue_writes()
        write_sql(writer.conn, insert, (base, bytes(32)))
        read_sql(writer.conn, "SELECT 1")
    with engine.connect() as conn:
        keys = conn.execute(select(nodes.c.key).where(nodes.c.key >= base)).scalars()
        assert sorted(keys) == [base, base + 1, base + 2]
    assert log.head().size == size + 1
    assert log.append("pool_created", {"after": "refusal"}).seq == size + 1
    assert log.head().size == size + 2


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_write_connection_lost_mid_transaction(log: Log, engine: Engine) -> None:
    """The server ends a writer's connection mid-transaction: the caller gets that error,
    nothing of the transaction is stored, and the next append works on a new connection."""
    size = log.head().size
    with pytest.raises(DBAPIError) as failed, log.writer() as writer:
        writer.append("pool_created", {"slug": "lost"})
        pid = writer.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    assert failed.value.connection_invalidated
    assert log.head().size == size
    assert log.append("pool_created", {"slug": "found"}).seq == size


def test_appends_alternating_with_another_writer(
    log: Log, engine: Engine, signer: Signer, clock: ManualClock
) -> None:
    """Each Log's single appends build on the head it last wrote (PostgreSQL); when another
    writer has moved it, nothing is written at the stale head and the entry goes after."""
    other = Log(engine, ORIGIN, signer, clock, CheckpointPolicy(every_entries=10))
    writers = [log, log, other, log, other, other, log, log, log, other]
    for i, writer in enumerate(writers * 3):
        assert writer.append("pool_created", {"i": i}).seq == i + 1
    stored = log.entries(limit=100)
    assert [e.data.get("i") for e in stored[1:]] == list(range(30))
    assert verify_database(engine, [signer.verifier()]).size == 31


def test_an_append_waits_for_the_writer_holding_the_head(
    log: Log, engine: Engine, signer: Signer, clock: ManualClock
) -> None:
    """An append waits while another writer's transaction holds the head, then goes after
    what that writer committed (on PostgreSQL the row lock of the head's update)."""
    log.append("pool_created", {"by": "log", "n": 0})  # log now knows the head
    other = Log(engine, ORIGIN, signer, clock, CheckpointPolicy(every_entries=10))
    appended = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        try:
            log.append("pool_created", {"by": "log", "n": 1})
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        appended.set()

    with other.writer() as writer:
        writer.append("pool_created", {"by": "other"})
        waiting = threading.Thread(target=append)
        waiting.start()
        assert not appended.wait(timeout=0.5), "the append did not wait for the head"
    assert appended.wait(timeout=30)
    waiting.join(timeout=30)
    assert errors == []
    stored = log.entries(limit=10)
    assert [(e.data.get("by"), e.data.get("n")) for e in stored[1:]] == [
        ("log", 0),
        ("other", None),
        ("log", 1),
    ]
    assert verify_database(engine, [signer.verifier()]).size == 4


def test_a_failed_single_append_writes_nothing_and_rolls_back(log: Log, engine: Engine) -> None:
    """A statement error in a single append's transaction (here: an interior node already
    stored under the key it completes) leaves the head and the tables as they were, and the
    connection usable with its own transactions."""
    log.append("pool_created", {"n": 0})  # size 2
    log.append("pool_created", {"n": 1})  # size 3; the next completes (1, 1) and (2, 0)
    planted = node_key(2, 0)
    tamper(engine, "INSERT INTO nodes VALUES (:key, :hash)", key=planted, hash=bytes(32))
    before = (log.head(), count(engine, entries), count(engine, nodes))
    with pytest.raises(DBAPIError, match="nodes"):
        log.append("pool_created", {"n": 2})
    assert (log.head(), count(engine, entries), count(engine, nodes)) == before
    idle = engine.pool.checkedin()  # type: ignore[attr-defined]
    assert idle  # (the failed writer's connection went back)
    with ExitStack() as stack:  # every pooled connection, the failed writer's among them
        pooled = [stack.enter_context(engine.connect()) for _ in range(idle)]
        assert not any(getattr(c.connection.dbapi_connection, "autocommit", 0) for c in pooled)
    tamper(engine, "DELETE FROM nodes WHERE key = :key", key=planted)
    assert log.append("pool_created", {"n": 2}).seq == 3


def test_known_head_backs_off_while_other_writers_move_it() -> None:
    """After each failed attempt in a row, twice as many appends (up to 256) skip the known
    head; one that succeeds ends the backing off."""
    known = _KnownHead()
    head = LogHead(ORIGIN, 0, bytes(32), "", merkle.Frontier(), 0, "")
    assert known.take() is None  # nothing written yet

    def locked_appends_before_next_try() -> int:
        known.moved()
        skipped = 0
        while True:
            known.head = head  # (as every locked write sets it)
            if known.take() is head:
                return skipped
            skipped += 1

    assert [locked_appends_before_next_try() for _ in range(11)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256
    ]  # fmt: skip
    known.written(head)
    assert locked_appends_before_next_try() == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_single_appends_of_the_only_writer_skip_the_locked_read(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a Log is the only writer, its single appends (no checkpoint due) go out in one
    round trip, without the locked head read of Log.writer."""
    log.append("pool_created", {"n": 0})

    def no_writer() -> None:
        raise AssertionError("a single append took the locked path")

    monkeypatch.setattr(log, "writer", no_writer)
    for n in range(1, 6):
        assert log.append("pool_created", {"n": n}).seq == n + 1
    monkeypatch.undo()
    assert log.head().size == 7


def test_known_head_is_used_again_after_threads_overcount_the_backoff() -> None:
    """Threads count the backoff down without a lock: one count too many must not keep the
    known head unused for good."""
    known = _KnownHead()
    head = LogHead(ORIGIN, 0, bytes(32), "", merkle.Frontier(), 0, "")
    known.written(head)
    known.moved()  # skip the next 1
    known._skip -= 2  # (two threads both took the last skip)
    known.head = head
    assert known.take() is head


def test_a_checkpoint_signed_by_another_writer_stays_in_the_head(
    log: Log, engine: Engine, signer: Signer, clock: ManualClock
) -> None:
    """Another writer signs a checkpoint without appending: the head's size and last hash
    are unchanged, but the next single append must not write back the older checkpoint."""
    log.append("pool_created", {"n": 0})  # size 2, checkpoint at 1; log knows this head
    other = Log(engine, ORIGIN, signer, clock, CheckpointPolicy(every_entries=10))
    clock.advance(timedelta(seconds=1))
    signed = other.checkpoint_now()
    assert signed.size == 2
    log.append("pool_created", {"n": 1})
    head = log.head()
    assert (head.size, head.checkpoint_size, head.checkpoint_ts) == (3, 2, signed.ts)
    assert verify_database(engine, [signer.verifier()]).size == 3
