"""Anchoring the log on a real anvil chain, on SQLite and PostgreSQL: the library and the CLI."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGIN, AnvilNode, start_anvil, write_key_file
from eth_account.signers.local import LocalAccount
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, select
from web3 import Web3

from api import db
from contracts import verification
from contracts.anchor import (
    AnchorContract,
    AnchorReceipt,
    ChainUnavailable,
    NotOwner,
    TreeSizeNotIncreasing,
    connect,
    deploy,
)
from contracts.anchoring import (
    ANCHORED_KIND,
    AnchorConflict,
    AnchoringResult,
    AnchorOutcome,
    anchor_due,
    anchor_latest,
    latest_anchor_entry,
)
from contracts.verification import AnchorVerificationFailed, read_anchors, verify_anchors
from ledger.errors import LedgerError, VerificationError
from ledger.log.append import Log
from ledger.log.clock import ManualClock
from ledger.log.entry import Entry, encode_entry
from ledger.log.merkle import node_hash
from ledger.log.schema import entries, node_key, nodes
from ledger.log.storage import StoredCheckpoint
from tests.conftest import tamper

RECEIPT_TIMEOUT = 10.0


# --- helpers ----------------------------------------------------------------------------------


def grow(log: Log, count: int) -> StoredCheckpoint:
    """Append ``count`` entries in one transaction and sign a checkpoint of the result."""
    with log.writer() as writer:
        for n in range(count):
            writer.append("pool_created", {"slug": f"pool-{log.head().size}-{n}"})
    return log.checkpoint_now()


def anchored_entries(log: Log) -> list[Entry]:
    return [e for e in log.entries(limit=10_000) if e.kind == ANCHORED_KIND]


def nonce(w3: Web3, account: LocalAccount) -> int:
    return int(w3.eth.get_transaction_count(account.address))


def closed_port_url() -> str:
    """The URL of a local port nothing listens on (a node that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def rpc(w3: Web3, method: str, *params: Any) -> None:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response


def wait_pending(w3: Web3, account: LocalAccount, count: int) -> None:
    deadline = time.monotonic() + 10
    while w3.eth.get_transaction_count(account.address, "pending") < count:
        assert time.monotonic() < deadline, "transaction never reached the pool"
        time.sleep(0.02)


def in_thread(action: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``action`` in a thread; its result (or exception) lands in the returned list."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(action())
        except BaseException as exc:  # handed to the test, which asserts on it
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _stored_hash(engine: Engine, level: int, index: int) -> bytes | None:
    with engine.connect() as conn:
        if level == 0:
            row = conn.execute(select(entries.c.hash).where(entries.c.seq == index)).scalar()
        else:
            key = node_key(level, index)
            row = conn.execute(select(nodes.c.hash).where(nodes.c.key == key)).scalar()
    return None if row is None else bytes(row)


def rewrite_entry(log: Log, seq: int) -> None:
    """Rewrite entry ``seq`` as an attacker with database access would, covering their tracks:
    new bytes, new leaf hash, and every stored interior node above it recomputed."""
    old = log.entry(seq)
    new = encode_entry(seq, old.ts, old.kind, old.prev, old.actor, {**old.data, "forged": True})
    statement = "UPDATE entries SET body = :b, hash = :h WHERE seq = :s"
    tamper(log.engine, statement, b=new.raw, h=new.hash, s=seq)
    level = 1
    while _stored_hash(log.engine, level, seq >> level) is not None:
        index = seq >> level
        left = _stored_hash(log.engine, level - 1, 2 * index)
        right = _stored_hash(log.engine, level - 1, 2 * index + 1)
        assert left is not None and right is not None
        statement = "UPDATE nodes SET hash = :h WHERE key = :k"
        tamper(log.engine, statement, h=node_hash(left, right), k=node_key(level, index))
        level += 1


def anchor(log: Log, contract: AnchorContract, owner: LocalAccount) -> AnchoringResult:
    return anchor_latest(log, contract, owner, timeout=RECEIPT_TIMEOUT)


# --- anchoring --------------------------------------------------------------------------------


def test_several_checkpoints_are_anchored_recorded_and_verified(
    log: Log, contract: AnchorContract, owner: LocalAccount, w3: Web3
) -> None:
    results = []
    for count in (3, 7, 12):
        checkpoint = grow(log, count)
        result = anchor(log, contract, owner)
        assert result.outcome is AnchorOutcome.ANCHORED and result.sent
        assert result.checkpoint == checkpoint
        results.append(result)

    recorded = anchored_entries(log)
    assert [e.seq for e in recorded] == [r.entry_seq for r in results]
    onchain = contract.anchors()
    for i, (entry, result, anchored) in enumerate(zip(recorded, results, onchain, strict=True)):
        tx = w3.eth.get_transaction_receipt(entry.data["tx_hash"])
        assert entry.actor == "anchor"
        assert entry.data == {
            "chain_id": w3.eth.chain_id,
            "contract": contract.address,
            "tx_hash": "0x" + bytes(tx["transactionHash"]).hex(),
            "block_number": tx["blockNumber"],
            "anchor_index": i,
            "size": result.checkpoint.size,
            "root": result.checkpoint.root.hex(),
        }
        assert tx["to"] == contract.address and tx["status"] == 1
        assert (anchored.tree_size, anchored.root) == (
            result.checkpoint.size,
            result.checkpoint.root,
        )
        assert result.gas_used == tx["gasUsed"]
        assert f"as anchor {i} on LedgerAnchor {contract.address}" in result.summary()

    report = verify_anchors(log, contract)
    assert (report.anchors, report.latest_anchored_size) == (3, results[-1].checkpoint.size)
    assert report.log_size == log.head().size
    assert report.summary().startswith("OK: 3 anchor(s) on LedgerAnchor")


def test_anchoring_the_same_root_twice_sends_one_transaction(
    log: Log, contract: AnchorContract, owner: LocalAccount, w3: Web3
) -> None:
    grow(log, 4)
    first = anchor(log, contract, owner)
    sent, size = nonce(w3, owner), log.head().size

    again = anchor(log, contract, owner)

    assert again.outcome is AnchorOutcome.ALREADY_ANCHORED and not again.sent
    assert again.record == first.record and again.entry_seq == first.entry_seq
    assert nonce(w3, owner) == sent
    assert log.head().size == size
    assert contract.count() == 1
    assert "already anchored" in again.summary()


def test_a_run_that_stopped_after_sending_is_recorded_from_the_chain(
    log: Log, contract: AnchorContract, owner: LocalAccount, w3: Web3
) -> None:
    checkpoint = grow(log, 5)
    # The transaction of a run that died before appending its entry:
    receipt = contract.anchor(owner, checkpoint.root, checkpoint.size, timeout=RECEIPT_TIMEOUT)
    assert anchored_entries(log) == []
    sent = nonce(w3, owner)

    result = anchor(log, contract, owner)

    assert result.outcome is AnchorOutcome.RECORDED and not result.sent
    assert nonce(w3, owner) == sent
    (entry,) = anchored_entries(log)
    assert entry.seq == result.entry_seq
    assert entry.data["tx_hash"] == receipt.tx_hash
    assert entry.data["block_number"] == receipt.block_number
    assert entry.data["anchor_index"] == receipt.index == 0
    assert "recorded the earlier anchor" in result.summary()
    assert anchor(log, contract, owner).outcome is AnchorOutcome.ALREADY_ANCHORED
    assert len(anchored_entries(log)) == 1


def test_a_checkpoint_older_than_the_chain_is_left_alone(
    log: Log, contract: AnchorContract, owner: LocalAccount, w3: Web3
) -> None:
    checkpoint = grow(log, 3)
    contract.anchor(owner, b"\x07" * 32, checkpoint.size + 50, timeout=RECEIPT_TIMEOUT)
    sent, size = nonce(w3, owner), log.head().size

    result = anchor(log, contract, owner)

    assert result.outcome is AnchorOutcome.NOT_NEWER
    assert result.chain_size == checkpoint.size + 50
    assert "nothing to anchor" in result.summary()
    assert (nonce(w3, owner), log.head().size) == (sent, size)


def test_a_non_owner_key_is_refused_and_nothing_is_written(
    log: Log, contract: AnchorContract, stranger: LocalAccount, w3: Web3
) -> None:
    grow(log, 3)
    size, sent = log.head().size, nonce(w3, stranger)

    with pytest.raises(NotOwner, match=f"account {stranger.address} is not the owner"):
        anchor(log, contract, stranger)

    assert (log.head().size, nonce(w3, stranger), contract.count()) == (size, sent, 0)


def test_a_decreasing_size_reverts_on_chain_and_nothing_is_written(
    log: Log, own_anvil: AnvilNode, owner: LocalAccount
) -> None:
    """Another anchor of a larger size lands first: ours passes simulation, then reverts."""
    w3 = connect(own_anvil.url, timeout=5.0)
    contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=RECEIPT_TIMEOUT))
    checkpoint = grow(log, 6)
    size, start = log.head().size, nonce(w3, owner)
    rpc(w3, "evm_setAutomine", False)

    def bigger() -> AnchorReceipt:
        return contract.anchor(owner, b"\x09" * 32, checkpoint.size + 10, timeout=RECEIPT_TIMEOUT)

    other, other_out = in_thread(bigger)
    wait_pending(w3, owner, start + 1)
    ours, ours_out = in_thread(lambda: anchor(log, contract, owner))
    wait_pending(w3, owner, start + 2)
    rpc(w3, "evm_mine")
    other.join(timeout=20)
    ours.join(timeout=20)

    assert isinstance(other_out[0], AnchorReceipt), other_out
    error = ours_out[0]
    assert isinstance(error, TreeSizeNotIncreasing), error
    assert (error.previous, error.given) == (checkpoint.size + 10, checkpoint.size)
    assert f"cannot anchor tree size {checkpoint.size}" in error.message
    assert log.head().size == size and anchored_entries(log) == []
    assert nonce(w3, owner) == start + 2  # the revert was mined: it did cost gas


def test_two_runs_racing_record_one_anchor(
    log: Log, own_anvil: AnvilNode, owner: LocalAccount
) -> None:
    """Both send the same checkpoint; the second reverts on chain and records the first's."""
    w3 = connect(own_anvil.url, timeout=5.0)
    contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=RECEIPT_TIMEOUT))
    grow(log, 5)
    start = nonce(w3, owner)
    rpc(w3, "evm_setAutomine", False)

    first, first_out = in_thread(lambda: anchor(log, contract, owner))
    wait_pending(w3, owner, start + 1)
    second, second_out = in_thread(lambda: anchor(log, contract, owner))
    wait_pending(w3, owner, start + 2)
    rpc(w3, "evm_mine")
    first.join(timeout=20)
    second.join(timeout=20)

    results = [first_out[0], second_out[0]]
    assert all(isinstance(r, AnchoringResult) for r in results), results
    outcomes = {r.outcome for r in results if isinstance(r, AnchoringResult)}
    assert AnchorOutcome.ANCHORED in outcomes
    assert outcomes & {AnchorOutcome.RECORDED, AnchorOutcome.ALREADY_ANCHORED}
    (entry,) = anchored_entries(log)
    (onchain,) = contract.anchors()
    receipt = w3.eth.get_transaction_receipt(entry.data["tx_hash"])
    assert receipt["status"] == 1 and entry.data["anchor_index"] == onchain.index == 0


def test_a_receipt_timeout_writes_nothing_and_the_retry_records_the_mined_anchor(
    log: Log, own_anvil: AnvilNode, owner: LocalAccount
) -> None:
    w3 = connect(own_anvil.url, timeout=5.0)
    contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=RECEIPT_TIMEOUT))
    grow(log, 4)
    size, start = log.head().size, nonce(w3, owner)
    rpc(w3, "evm_setAutomine", False)

    with pytest.raises(ChainUnavailable, match=r"not mined within 0\.5 s"):
        anchor_latest(log, contract, owner, timeout=0.5)
    assert log.head().size == size and anchored_entries(log) == []

    rpc(w3, "evm_mine")
    result = anchor(log, contract, owner)

    assert result.outcome is AnchorOutcome.RECORDED
    assert nonce(w3, owner) == start + 1  # one transaction in all
    assert len(anchored_entries(log)) == 1
    assert verify_anchors(log, contract).anchors == 1


def test_a_stopped_node_writes_nothing_and_anchoring_resumes_after_restart(
    log: Log, tmp_path: Path, owner: LocalAccount
) -> None:
    state = str(tmp_path / "chain-state.json")
    node = start_anvil(tmp_path / "anvil-1.log", "--state", state)
    try:
        w3 = connect(node.url, timeout=2.0)
        contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
        grow(log, 3)
        anchor(log, contract, owner)
        grow(log, 5)
    finally:
        node.stop()  # SIGTERM: anvil writes its state file
    size = log.head().size

    with pytest.raises(ChainUnavailable, match="connection refused"):
        anchor(log, contract, owner)
    assert log.head().size == size and len(anchored_entries(log)) == 1

    restarted = start_anvil(tmp_path / "anvil-2.log", "--state", state)
    try:
        again = AnchorContract(connect(restarted.url, timeout=2.0), contract.address)
        result = anchor(log, again, owner)
        assert result.outcome is AnchorOutcome.ANCHORED
        assert result.record is not None and result.record.anchor_index == 1
        assert len(anchored_entries(log)) == 2
        assert verify_anchors(log, again).anchors == 2
    finally:
        restarted.stop()


def test_an_anchor_recorded_in_the_log_but_missing_on_a_reset_chain(
    log: Log, tmp_path: Path, owner: LocalAccount
) -> None:
    first = start_anvil(tmp_path / "anvil-1.log")
    try:
        w3 = connect(first.url, timeout=2.0)
        contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
        grow(log, 3)
        anchor(log, contract, owner)
    finally:
        first.kill()
    fresh = start_anvil(tmp_path / "anvil-2.log")
    try:
        w3 = connect(fresh.url, timeout=2.0)
        # The same deployer at nonce 0 gets the same address on the new chain.
        reset = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
        assert reset.address == contract.address
        size = log.head().size

        with pytest.raises(AnchorConflict, match="the chain holds no such anchor"):
            anchor(log, reset, owner)
        assert log.head().size == size and reset.count() == 0
    finally:
        fresh.stop()


def test_a_conflicting_root_at_the_same_size_is_refused(
    log: Log, contract: AnchorContract, owner: LocalAccount
) -> None:
    checkpoint = grow(log, 3)
    contract.anchor(owner, b"\x05" * 32, checkpoint.size, timeout=RECEIPT_TIMEOUT)
    with pytest.raises(AnchorConflict, match="the log was rewritten after anchoring"):
        anchor(log, contract, owner)
    assert anchored_entries(log) == []


def test_a_contract_of_another_log_is_refused_before_sending(
    log: Log, w3: Web3, owner: LocalAccount
) -> None:
    other = AnchorContract(w3, deploy(w3, owner, "elsewhere.example/log", timeout=10.0))
    grow(log, 2)
    sent = nonce(w3, owner)
    with pytest.raises(AnchorConflict, match="anchors another log"):
        anchor(log, other, owner)
    assert (nonce(w3, owner), other.count(), anchored_entries(log)) == (sent, 0, [])


def test_anchoring_needs_the_signing_key(
    log: Log, contract: AnchorContract, owner: LocalAccount, w3: Web3
) -> None:
    reader = Log(log.engine, log.origin)
    sent = nonce(w3, owner)
    with pytest.raises(LedgerError, match="needs the log's signing key"):
        anchor(reader, contract, owner)
    assert nonce(w3, owner) == sent


def test_anchor_due_every_n_hours(
    log: Log, contract: AnchorContract, owner: LocalAccount, clock: ManualClock
) -> None:
    every = timedelta(hours=6)
    assert latest_anchor_entry(log) is None
    assert anchor_due(log, every, clock.now())
    assert not anchor_due(log, None, clock.now())

    grow(log, 2)
    result = anchor(log, contract, owner)
    latest = latest_anchor_entry(log)
    assert latest is not None and latest.seq == result.entry_seq

    assert not anchor_due(log, every, clock.now() + timedelta(hours=5, minutes=59))
    assert anchor_due(log, every, clock.now() + timedelta(hours=6))


# --- verifying --------------------------------------------------------------------------------


def _three_anchors(log: Log, contract: AnchorContract, owner: LocalAccount) -> list[int]:
    sizes = []
    for count in (4, 6, 9):
        sizes.append(grow(log, count).size)
        anchor(log, contract, owner)
    return sizes


@pytest.mark.parametrize("prefetch", [1, 2, 100])
def test_verify_names_the_first_anchor_after_a_rewrite(
    log: Log,
    contract: AnchorContract,
    owner: LocalAccount,
    prefetch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However the log's subtrees are read in chunks, the first bad anchor is the one named."""
    monkeypatch.setattr(verification, "PREFETCH_ANCHORS", prefetch)
    sizes = _three_anchors(log, contract, owner)
    assert verify_anchors(log, contract).anchors == 3
    onchain = contract.anchors()

    rewrite_entry(log, sizes[0] + 1)  # inside anchor 1's tree, not anchor 0's

    with pytest.raises(AnchorVerificationFailed) as caught:
        verify_anchors(log, contract)
    error = caught.value
    assert isinstance(error, VerificationError) and error.seq is None
    assert (error.index, error.size) == (1, sizes[1])
    assert error.code == "anchor_verification_failed"
    assert error.message == (
        f"anchor 1 at size {sizes[1]}: on-chain root {onchain[1].root.hex()}, log root "
        f"{log.root_at(sizes[1]).hex()} — the log was rewritten after anchoring"
    )


def test_verify_names_an_anchor_beyond_the_log(
    log: Log, contract: AnchorContract, owner: LocalAccount
) -> None:
    grow(log, 3)
    anchor(log, contract, owner)
    contract.anchor(owner, b"\x01" * 32, 1_000, timeout=RECEIPT_TIMEOUT)
    size = log.head().size

    with pytest.raises(AnchorVerificationFailed) as caught:
        verify_anchors(log, contract)
    assert caught.value.message == f"anchor 1 claims size 1000 beyond the log's size {size}"
    assert caught.value.index == 1


def test_verify_refuses_a_contract_of_another_log(log: Log, w3: Web3, owner: LocalAccount) -> None:
    other = AnchorContract(w3, deploy(w3, owner, "elsewhere.example/log", timeout=10.0))
    with pytest.raises(AnchorVerificationFailed, match="anchors another log"):
        verify_anchors(log, other)


def test_verify_of_an_empty_contract(log: Log, contract: AnchorContract) -> None:
    report = verify_anchors(log, contract)
    assert report.anchors == 0
    assert "holds no anchor yet" in report.summary()


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def anchor_app(app: Flask, runner: FlaskCliRunner, anvil: AnvilNode, tmp_path: Path) -> Flask:
    """An initialised deployment configured to anchor on the session's anvil (no contract)."""
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    app.config["ANCHOR_RPC_URL"] = anvil.url
    app.config["ANCHOR_KEY_FILE"] = str(
        write_key_file(tmp_path, "anchor.key", anvil.private_keys[0])
    )
    return app


def app_log(app: Flask) -> Log:
    with app.app_context():
        return db.get_log()


def cli(runner: FlaskCliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(args=list(args))
    return result.exit_code, result.stdout, result.stderr


def deployed(anchor_app: Flask, runner: FlaskCliRunner) -> str:
    code, out, err = cli(runner, "anchor", "deploy")
    assert code == 0, err
    address = out.strip()
    assert Web3.is_checksum_address(address)
    assert f"set LUNARIA_ANCHOR_CONTRACT={address}" in err
    anchor_app.config["ANCHOR_CONTRACT"] = address
    return address


def test_cli_deploy_anchor_again_and_verify(
    anchor_app: Flask, runner: FlaskCliRunner, w3: Web3, owner: LocalAccount
) -> None:
    address = deployed(anchor_app, runner)
    contract = AnchorContract(w3, address)
    assert contract.owner() == owner.address
    log = app_log(anchor_app)

    code, out, err = cli(runner, "anchor")
    assert code == 0, err
    assert out.startswith("anchored checkpoint size 1 ")
    sent, size = nonce(w3, owner), log.head().size

    code, out, err = cli(runner, "anchor")
    assert code == 0, err
    assert out.startswith("already anchored: checkpoint size 1 ")
    assert (nonce(w3, owner), log.head().size) == (sent, size)

    assert cli(runner, "checkpoint", "--new")[0] == 0
    code, out, _ = cli(runner, "anchor")
    assert code == 0 and out.startswith(f"anchored checkpoint size {size} ")
    assert len(anchored_entries(log)) == 2 and contract.count() == 2

    code, out, err = cli(runner, "anchor", "verify")
    assert code == 0, err
    assert out.startswith(f"OK: 2 anchor(s) on LedgerAnchor {address}")


def test_cli_verify_fails_naming_the_rewritten_anchor(
    anchor_app: Flask, runner: FlaskCliRunner
) -> None:
    deployed(anchor_app, runner)
    log = app_log(anchor_app)
    grow(log, 5)
    assert cli(runner, "anchor")[0] == 0
    rewrite_entry(log, 3)

    code, out, err = cli(runner, "anchor", "verify")

    assert code == 1 and out == ""
    assert err.startswith("FAILED: anchor 0 at size 6: on-chain root ")
    assert err.rstrip("\n").endswith("the log was rewritten after anchoring")
    assert err.count("\n") == 1


def test_cli_non_owner_key_is_one_clear_line(
    anchor_app: Flask, runner: FlaskCliRunner, anvil: AnvilNode, tmp_path: Path
) -> None:
    deployed(anchor_app, runner)
    stranger = write_key_file(tmp_path, "stranger.key", anvil.private_keys[1])
    anchor_app.config["ANCHOR_KEY_FILE"] = str(stranger)
    size = app_log(anchor_app).head().size

    code, _, err = cli(runner, "anchor")

    assert code == 1
    assert err.startswith("error: account 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 is not")
    assert err.count("\n") == 1
    assert app_log(anchor_app).head().size == size


def test_cli_unreachable_node_writes_nothing_then_the_retry_anchors(
    anchor_app: Flask, runner: FlaskCliRunner, anvil: AnvilNode
) -> None:
    deployed(anchor_app, runner)
    log = app_log(anchor_app)
    size = log.head().size
    down = closed_port_url()
    anchor_app.config["ANCHOR_RPC_URL"] = down

    code, _, err = cli(runner, "anchor")

    assert code == 1
    assert err == f"error: reading the chain id: chain node {down} is unavailable " + (
        "(connection refused)\n"
    )
    assert log.head().size == size and anchored_entries(log) == []

    anchor_app.config["ANCHOR_RPC_URL"] = anvil.url
    code, out, _ = cli(runner, "anchor")
    assert code == 0 and out.startswith("anchored checkpoint size 1 ")
    assert len(anchored_entries(log)) == 1


def test_cli_node_killed_mid_way_writes_nothing(
    anchor_app: Flask, runner: FlaskCliRunner, own_anvil: AnvilNode
) -> None:
    anchor_app.config["ANCHOR_RPC_URL"] = own_anvil.url
    deployed(anchor_app, runner)
    assert cli(runner, "anchor")[0] == 0
    log = app_log(anchor_app)
    grow(log, 3)
    size = log.head().size
    own_anvil.kill()

    code, _, err = cli(runner, "anchor")

    assert code == 1 and "is unavailable (connection refused)" in err
    assert log.head().size == size and len(anchored_entries(log)) == 1


def test_cli_if_due_honours_every_hours(
    anchor_app: Flask, runner: FlaskCliRunner, clock: ManualClock
) -> None:
    deployed(anchor_app, runner)
    log = app_log(anchor_app)

    assert (
        cli(runner, "anchor", "--if-due")[1] == "not due: LUNARIA_ANCHOR_EVERY_HOURS is not set\n"
    )
    anchor_app.config["ANCHOR_EVERY_HOURS"] = 6
    code, out, _ = cli(runner, "anchor", "--if-due")
    assert code == 0 and out.startswith("anchored checkpoint size 1 ")

    grow(log, 2)
    clock.advance(timedelta(hours=5))
    assert (
        cli(runner, "anchor", "--if-due")[1]
        == "not due: the last anchor is less than 6:00:00 old\n"
    )
    assert len(anchored_entries(log)) == 1

    clock.advance(timedelta(hours=1))
    code, out, _ = cli(runner, "anchor", "--if-due")
    assert code == 0 and out.startswith("anchored checkpoint size ")
    assert len(anchored_entries(log)) == 2


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("ANCHOR_RPC_URL", None, "error: LUNARIA_ANCHOR_RPC_URL is not set"),
        ("ANCHOR_KEY_FILE", "", "error: LUNARIA_ANCHOR_KEY_FILE is not set"),
        ("ANCHOR_CONTRACT", None, "error: LUNARIA_ANCHOR_CONTRACT is not set; deploy one"),
        ("ANCHOR_EVERY_HOURS", "often", "error: LUNARIA_ANCHOR_EVERY_HOURS must be a positive"),
        ("ANCHOR_EVERY_HOURS", -1, "error: LUNARIA_ANCHOR_EVERY_HOURS must be a positive"),
    ],
)
def test_cli_configuration_errors_are_one_line(
    anchor_app: Flask, runner: FlaskCliRunner, setting: str, value: object, message: str
) -> None:
    deployed(anchor_app, runner)
    anchor_app.config["ANCHOR_EVERY_HOURS"] = 6
    anchor_app.config[setting] = value
    code, _, err = cli(runner, "anchor", "--if-due")
    assert code == 1
    assert err.startswith(message) and err.count("\n") == 1


# --- reading anchors in batches ---------------------------------------------------------------


class _NoBatchProxy(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC node in front of anvil that refuses batch requests, as some providers do."""

    upstream = ""
    url = ""
    refused = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if body.lstrip().startswith(b"["):
            type(self).refused += 1
            answer = json.dumps(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}}
            ).encode()
        else:
            request = urllib.request.Request(
                self.upstream, body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = response.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def no_batch_node(anvil: AnvilNode) -> Iterator[type[_NoBatchProxy]]:
    """The proxy's handler class; its ``upstream`` is anvil, its URL in ``url``."""
    handler: type[_NoBatchProxy] = type("Handler", (_NoBatchProxy,), {"upstream": anvil.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def _five_anchors(contract: AnchorContract, owner: LocalAccount) -> None:
    for size in (2, 3, 5, 8, 13):
        contract.anchor(owner, size.to_bytes(32, "big"), size, timeout=RECEIPT_TIMEOUT)


def test_read_anchors_in_batches_equals_one_by_one(
    contract: AnchorContract, owner: LocalAccount
) -> None:
    assert read_anchors(contract) == []
    _five_anchors(contract, owner)
    expected = contract.anchors()
    assert [a.tree_size for a in expected] == [2, 3, 5, 8, 13]
    for batch_size in (1, 2, 5, 200):
        assert read_anchors(contract, batch_size) == expected


def test_read_anchors_from_a_node_without_batches(
    contract: AnchorContract, owner: LocalAccount, no_batch_node: type[_NoBatchProxy]
) -> None:
    _five_anchors(contract, owner)
    behind_proxy = AnchorContract(connect(no_batch_node.url, timeout=5.0), contract.address)
    assert read_anchors(behind_proxy, 2) == contract.anchors()
    assert no_batch_node.refused == 1  # the first batch, then one read at a time


def test_read_anchors_from_a_node_that_is_down(contract: AnchorContract) -> None:
    down = AnchorContract(connect(closed_port_url(), timeout=2.0), contract.address)
    with pytest.raises(ChainUnavailable, match="connection refused"):
        read_anchors(down)


def test_cli_rotate_anchors_each_handover_when_configured(
    anchor_app: Flask, runner: FlaskCliRunner, w3: Web3, clock: ManualClock
) -> None:
    from ledger.fund.commands import Fund
    from ledger.fund.rules import Actor
    from tests.conftest import new_vault

    address = deployed(anchor_app, runner)
    log = app_log(anchor_app)
    fund, admin = Fund(log, new_vault()), Actor("admin:t", "admin")
    fund.register_collective(admin, slug="alba", name="Alba")
    fund.create_pool(admin, slug="food", name="Food", currencies=["EUR"])
    fund.set_roster(admin, "food", ["alba"])
    anchor_app.config["ANCHOR_AT_HANDOVER"] = True
    clock.advance(timedelta(days=30))
    code, out, err = cli(runner, "rotate")
    assert code == 0, err
    assert "custody" not in err and "anchored checkpoint size" in out
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    (recorded,) = anchored_entries(log)
    assert recorded.data["size"] == checkpoint.size and recorded.data["contract"] == address
    assert AnchorContract(w3, address).count() == 1
    home = anchor_app.test_client().get("/").get_data(as_text=True)
    assert "Anchored on chain" in home and recorded.data["tx_hash"] in home

    anchor_app.config["ANCHOR_RPC_URL"] = closed_port_url()  # the node is down: rotate stands
    clock.advance(timedelta(days=30))
    code, out, err = cli(runner, "rotate")
    assert code == 0, err
    assert "not anchored (the next run retries)" in out
    assert len(anchored_entries(log)) == 1
