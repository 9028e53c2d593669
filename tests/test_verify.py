"""Verification names the first bad seq after any tampering, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, select, text

from ledger.errors import VerificationError
from ledger.log import verify
from ledger.log.append import Log
from ledger.log.merkle import leaf_hash
from ledger.log.notes import Signer
from ledger.log.schema import entries, node_key
from ledger.log.verify import verify_database
from tests.conftest import tamper


def append_pools(log: Log, numbers: range) -> Log:
    """``pool_created`` entries numbered ``numbers``, then a checkpoint."""
    for i in numbers:
        log.append("pool_created", {"slug": f"pool-{i:02d}"}, actor="admin:1")
    log.checkpoint_now()
    return log


@pytest.fixture
def filled(log: Log) -> Log:
    return append_pools(log, range(1, 20))


def body_of(engine: Engine, seq: int) -> bytes:
    with engine.connect() as conn:
        return bytes(conn.execute(select(entries.c.body).where(entries.c.seq == seq)).scalar_one())


def assert_fails_at(log: Log, signer: Signer, seq: int | None, reason: str) -> None:
    with pytest.raises(VerificationError) as caught:
        verify_database(log.engine, [signer.verifier()])
    assert caught.value.seq == seq, caught.value.message
    assert reason in caught.value.message


def test_untouched_log_verifies(filled: Log, signer: Signer) -> None:
    report = verify_database(filled.engine, [signer.verifier()])
    assert report.size == 20
    assert report.root == filled.head().root
    assert report.latest_checkpoint_size == 20
    assert "size 20" in report.summary()


def test_changed_entry_byte(filled: Log, signer: Signer) -> None:
    body = body_of(filled.engine, 7).replace(b"pool-07", b"pool-70")
    tamper(filled.engine, "UPDATE entries SET body = :b WHERE seq = 7", b=body)
    assert_fails_at(filled, signer, 7, "stored hash does not match")


@pytest.mark.parametrize(
    ("seq", "reason"),
    [(6, "recorded by seq 7: one of the two was altered"), (7, "interior node (level 1, index 3)")],
)
def test_changed_entry_with_matching_hash(
    filled: Log, signer: Signer, seq: int, reason: str
) -> None:
    body = body_of(filled.engine, seq).replace(b"pool-0", b"pool-9")
    statement = "UPDATE entries SET body = :b, hash = :h WHERE seq = :s"
    tamper(filled.engine, statement, b=body, h=leaf_hash(body), s=seq)
    assert_fails_at(filled, signer, seq, reason)


def test_non_canonical_entry(filled: Log, signer: Signer) -> None:
    body = body_of(filled.engine, 4).replace(b'"kind"', b' "kind"')
    tamper(
        filled.engine,
        "UPDATE entries SET body = :b, hash = :h WHERE seq = 4",
        b=body,
        h=leaf_hash(body),
    )
    assert_fails_at(filled, signer, 4, "canonical")


def test_dropped_entry(filled: Log, signer: Signer) -> None:
    tamper(filled.engine, "DELETE FROM entries WHERE seq = 11")
    assert_fails_at(filled, signer, 11, "entry missing")


def test_dropped_last_entry(filled: Log, signer: Signer) -> None:
    tamper(filled.engine, "DELETE FROM entries WHERE seq = 19")
    with pytest.raises(VerificationError):
        verify_database(filled.engine, [signer.verifier()])


def test_reordered_entries(filled: Log, signer: Signer) -> None:
    three, four = body_of(filled.engine, 3), body_of(filled.engine, 4)
    tamper(
        filled.engine,
        "UPDATE entries SET body = :b, hash = :h WHERE seq = 3",
        b=four,
        h=leaf_hash(four),
    )
    tamper(
        filled.engine,
        "UPDATE entries SET body = :b, hash = :h WHERE seq = 4",
        b=three,
        h=leaf_hash(three),
    )
    assert_fails_at(filled, signer, 3, "claims seq 4")


def test_swapped_node(filled: Log, signer: Signer) -> None:
    key = node_key(2, 1)  # leaves 4..7, completed by seq 7
    tamper(filled.engine, "UPDATE nodes SET hash = :h WHERE key = :k", h=b"\x42" * 32, k=key)
    assert_fails_at(filled, signer, 7, "interior node (level 2, index 1)")


def test_deleted_node(filled: Log, signer: Signer) -> None:
    tamper(filled.engine, "DELETE FROM nodes WHERE key = :k", k=node_key(1, 6))
    assert_fails_at(filled, signer, 13, "is missing")


def test_forged_checkpoint_signature(filled: Log, signer: Signer) -> None:
    forger = Signer.generate(signer.name)
    from ledger.log.notes import Checkpoint, sign_checkpoint

    note = sign_checkpoint(Checkpoint(signer.name, 20, b"\x01" * 32), [forger]).serialise()
    tamper(filled.engine, "UPDATE checkpoints SET note = :n WHERE size = 20", n=note)
    assert_fails_at(filled, signer, None, "checkpoint at size 20")


def test_checkpoint_with_wrong_root(filled: Log, signer: Signer) -> None:
    from ledger.log.notes import Checkpoint, sign_checkpoint

    note = sign_checkpoint(Checkpoint(signer.name, 20, b"\x01" * 32), [signer]).serialise()
    tamper(filled.engine, "UPDATE checkpoints SET note = :n WHERE size = 20", n=note)
    assert_fails_at(filled, signer, 19, "signs root")


def test_wrong_verifier_key(filled: Log) -> None:
    with pytest.raises(VerificationError, match="checkpoint"):
        verify_database(filled.engine, [Signer.generate("someone.else/log").verifier()])


def test_head_out_of_step(filled: Log, signer: Signer) -> None:
    with filled.engine.begin() as conn:
        conn.execute(text("UPDATE log_head SET size = 25"))
    assert_fails_at(filled, signer, None, "log head is corrupt")
    with filled.engine.begin() as conn:
        conn.execute(text("UPDATE log_head SET size = 24"))
    assert_fails_at(filled, signer, 20, "log head says size 24")


@pytest.fixture(params=["default", "server_cursor"])
def small_fetches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows fetched 3 at a time, so that checks cross fetches; on PostgreSQL either streamed
    in chunks (where psycopg can) or through the server-side cursor it falls back to."""
    monkeypatch.setattr(verify, "STREAM_CHUNK", 3)
    monkeypatch.setattr(verify, "STREAM_BATCH", 3)
    if request.param == "server_cursor":
        monkeypatch.setattr(verify, "_streams_in_chunks", lambda: False)


@pytest.fixture
def longer(filled: Log) -> Log:
    return append_pools(filled, range(20, 40))


@pytest.mark.usefixtures("small_fetches")
def test_fetched_in_small_pieces_verifies(longer: Log, signer: Signer) -> None:
    report = verify_database(longer.engine, [signer.verifier()])
    assert (report.size, report.root) == (40, longer.head().root)
    assert (report.checkpoints, report.latest_checkpoint_size) == (5, 40)  # 0, 10, ..., 40


@pytest.mark.usefixtures("small_fetches")
@pytest.mark.parametrize(
    ("statement", "seq", "reason"),
    [
        ("UPDATE entries SET body = :b WHERE seq = 25", 25, "stored hash does not match"),
        ("DELETE FROM entries WHERE seq = 31", 31, "entry missing"),
        ("DELETE FROM nodes WHERE key = :k", 27, "interior node (level 2, index 6) is missing"),
        ("UPDATE nodes SET hash = :h WHERE key = :k", 27, "(level 2, index 6) does not match"),
    ],
)
def test_fetched_in_small_pieces_catches_tampering(
    longer: Log, signer: Signer, statement: str, seq: int, reason: str
) -> None:
    body = body_of(longer.engine, 25).replace(b"pool-25", b"pool-52")
    tamper(longer.engine, statement, b=body, h=b"\x42" * 32, k=node_key(2, 6))
    assert_fails_at(longer, signer, seq, reason)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_one_snapshot_for_entries_and_nodes(
    filled: Log, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries appended while verification starts are seen by neither of its connections."""
    export_snapshot = verify._export_snapshot

    def export_then_append(conn: Connection) -> str:
        snapshot = export_snapshot(conn)
        for i in range(5):  # (their nodes would be "not part of the tree" of 20 entries)
            filled.append("pool_created", {"slug": f"late-{i}"}, actor="admin:1")
        return snapshot

    monkeypatch.setattr(verify, "_export_snapshot", export_then_append)
    assert verify_database(filled.engine, [signer.verifier()]).size == 20
    monkeypatch.undo()
    assert verify_database(filled.engine, [signer.verifier()]).size == 25
