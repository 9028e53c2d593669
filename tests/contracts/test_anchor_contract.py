"""LedgerAnchor on a real anvil node: build reproducibility, anchoring, refusals, failures."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGIN, REPO, AnvilNode, missing_tool, write_key_file
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from contracts.anchor import (
    AnchorContract,
    AnchorError,
    AnchorIndexOutOfRange,
    AnchorKeyError,
    AnchorReceipt,
    ChainUnavailable,
    NotOwner,
    TreeSizeNotIncreasing,
    connect,
    deploy,
    load_account,
    load_artifact,
)
from ledger.errors import LedgerError

ARTIFACT = REPO / "contracts" / "build" / "LedgerAnchor.json"
PROMPT = 3.0  # seconds within which a dead node must be reported


def root_of(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def compile_to(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None:
        missing_tool("node is not on PATH")
    if not (REPO / "node_modules" / "solc").is_dir():
        missing_tool("the solc npm package is not installed")
    return subprocess.run(
        ["node", "contracts/compile.mjs", "--out", str(out), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def elapsed(action: Callable[[], object]) -> tuple[float, BaseException | None]:
    start = time.monotonic()
    try:
        action()
    except BaseException as exc:  # returned to the test, which asserts on its type
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


# --- the build --------------------------------------------------------------------------------


def test_recompiling_gives_the_committed_artifact_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "LedgerAnchor.json"
    result = compile_to(out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == ARTIFACT.read_bytes()

    check = compile_to(ARTIFACT, "--check")
    assert check.returncode == 0, check.stderr

    out.write_bytes(out.read_bytes().replace(b'"runs": 200', b'"runs": 201'))
    stale = compile_to(out, "--check")
    assert stale.returncode == 1
    assert "stale" in stale.stderr


def test_artifact_records_the_pinned_compiler_and_settings() -> None:
    raw = json.loads(ARTIFACT.read_text())
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]["solc"]
    assert raw["compiler"]["version"].startswith(f"{pinned}+commit.")
    assert raw["compiler"]["settings"]["evmVersion"] == "cancun"
    assert raw["compiler"]["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    source = (REPO / "contracts" / "LedgerAnchor.sol").read_bytes()
    assert raw["sourceSha256"] == hashlib.sha256(source).hexdigest()
    assert ARTIFACT.read_text().endswith("}\n")
    assert load_artifact().compiler_version == raw["compiler"]["version"]
    names = {item["name"] for item in load_artifact().abi if item["type"] == "error"}
    assert names == {"NotOwner", "TreeSizeNotIncreasing", "IndexOutOfRange"}


# --- deploying and anchoring ------------------------------------------------------------------


def test_deploy_stores_origin_hash_and_owner(contract: AnchorContract, owner: LocalAccount) -> None:
    assert contract.origin_hash() == hashlib.sha256(ORIGIN.encode("utf-8")).digest()
    assert contract.owner() == owner.address
    assert contract.count() == 0
    assert contract.latest_tree_size() == 0
    assert contract.anchors() == []


def test_three_anchors_read_back_in_order(
    w3: Web3, contract: AnchorContract, owner: LocalAccount
) -> None:
    checkpoints = [(root_of("a"), 3), (root_of("b"), 10), (root_of("c"), 11)]
    receipts = [contract.anchor(owner, root, size, timeout=10.0) for root, size in checkpoints]

    assert [r.index for r in receipts] == [0, 1, 2]
    assert all(r.chain_id == w3.eth.chain_id for r in receipts)
    assert all(r.contract == contract.address for r in receipts)
    assert all(r.tx_hash.startswith("0x") and len(r.tx_hash) == 66 for r in receipts)
    assert receipts[0].block_number < receipts[1].block_number < receipts[2].block_number
    assert [(r.root, r.tree_size) for r in receipts] == checkpoints

    anchors = contract.anchors()
    assert [(a.index, a.root, a.tree_size) for a in anchors] == [
        (i, root, size) for i, (root, size) in enumerate(checkpoints)
    ]
    stamps = [a.timestamp for a in anchors]
    assert stamps == sorted(stamps)
    block = w3.eth.get_block(receipts[2].block_number)
    assert anchors[2].timestamp == block["timestamp"]
    assert contract.count() == 3
    assert contract.latest_tree_size() == 11
    assert contract.anchor_at(1) == anchors[1]


def test_non_owner_is_refused_before_spending_gas(
    w3: Web3, contract: AnchorContract, owner: LocalAccount, stranger: LocalAccount
) -> None:
    contract.anchor(owner, root_of("a"), 5, timeout=10.0)
    nonce = w3.eth.get_transaction_count(stranger.address)
    balance = w3.eth.get_balance(stranger.address)

    with pytest.raises(NotOwner) as caught:
        contract.anchor(stranger, root_of("b"), 6, timeout=10.0)

    error = caught.value
    assert isinstance(error, AnchorError) and isinstance(error, LedgerError)
    assert error.code == "anchor_not_owner"
    assert error.caller == stranger.address
    assert f"account {stranger.address} is not the owner of LedgerAnchor {contract.address}" in (
        error.message
    )
    assert contract.count() == 1
    assert contract.latest_tree_size() == 5
    # Nothing was sent: the simulation caught it.
    assert w3.eth.get_transaction_count(stranger.address) == nonce
    assert w3.eth.get_balance(stranger.address) == balance


@pytest.mark.parametrize("size", [7, 6, 0])
def test_tree_size_must_strictly_increase(
    contract: AnchorContract, owner: LocalAccount, size: int
) -> None:
    contract.anchor(owner, root_of("a"), 7, timeout=10.0)

    with pytest.raises(TreeSizeNotIncreasing) as caught:
        contract.anchor(owner, root_of("b"), size, timeout=10.0)

    assert caught.value.code == "anchor_size_not_increasing"
    assert (caught.value.previous, caught.value.given) == (7, size)
    assert f"cannot anchor tree size {size}" in caught.value.message
    assert "larger than the latest anchored tree size 7" in caught.value.message
    assert contract.count() == 1


def test_first_anchor_needs_a_positive_size(contract: AnchorContract, owner: LocalAccount) -> None:
    with pytest.raises(TreeSizeNotIncreasing, match="first anchor needs a tree size of at least 1"):
        contract.anchor(owner, root_of("a"), 0, timeout=10.0)
    receipt = contract.anchor(owner, root_of("a"), 1, timeout=10.0)
    assert receipt.index == 0


def test_bad_arguments_are_refused_locally(contract: AnchorContract, owner: LocalAccount) -> None:
    with pytest.raises(AnchorError, match="32-byte"):
        contract.anchor(owner, b"\x01" * 31, 1)
    with pytest.raises(AnchorError, match="64 unsigned bits"):
        contract.anchor(owner, root_of("a"), 2**64)


def test_gas_per_anchor_after_the_first_is_below_80k(
    w3: Web3, owner: LocalAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    address = deploy(w3, owner, ORIGIN, timeout=10.0)
    # anvil mines one transaction per block, so the deployment is the latest block's only one.
    deployment = w3.eth.get_block("latest")["transactions"][0]
    assert isinstance(deployment, bytes)
    deploy_gas = w3.eth.get_transaction_receipt(HexBytes(deployment))["gasUsed"]
    contract = AnchorContract(w3, address)
    receipts = [contract.anchor(owner, root_of(str(n)), n, timeout=10.0) for n in (1, 2, 50, 51)]
    gas = [r.gas_used for r in receipts]
    with capsys.disabled():
        print(f"\nLedgerAnchor gas: deploy {deploy_gas}, anchors {gas}")
    assert max(gas[1:]) < 80_000
    assert deploy_gas < 400_000


# --- reads ------------------------------------------------------------------------------------


def test_find_returns_the_matching_anchor_or_none(
    contract: AnchorContract, owner: LocalAccount
) -> None:
    for n, size in enumerate((4, 9, 16, 25, 36)):
        contract.anchor(owner, root_of(str(n)), size, timeout=10.0)

    found = contract.find(root_of("2"), 16)
    assert found is not None
    assert (found.index, found.root, found.tree_size) == (2, root_of("2"), 16)
    assert contract.find(root_of("0"), 4) == contract.anchor_at(0)
    assert contract.find(root_of("4"), 36) == contract.anchor_at(4)
    assert contract.find(root_of("unknown"), 16) is None  # same size, other root
    assert contract.find(root_of("2"), 17) is None
    assert contract.find(root_of("2"), 1) is None
    assert contract.at_tree_size(16) == found


def test_find_on_an_empty_contract(contract: AnchorContract) -> None:
    assert contract.find(root_of("a"), 1) is None


def test_anchor_at_out_of_range(contract: AnchorContract, owner: LocalAccount) -> None:
    with pytest.raises(AnchorIndexOutOfRange, match="has 0 anchor"):
        contract.anchor_at(0)
    contract.anchor(owner, root_of("a"), 1, timeout=10.0)
    with pytest.raises(AnchorIndexOutOfRange) as caught:
        contract.anchor_at(1)
    assert (caught.value.index, caught.value.count) == (1, 1)
    assert caught.value.code == "anchor_index_out_of_range"
    with pytest.raises(AnchorIndexOutOfRange):
        contract.anchor_at(-1)


def test_an_address_without_the_contract(w3: Web3) -> None:
    empty = AnchorContract(w3, "0x" + "42" * 20)
    with pytest.raises(AnchorError, match="no LedgerAnchor contract answers"):
        empty.count()
    with pytest.raises(AnchorError, match="not an Ethereum address"):
        AnchorContract(w3, "0x1234")


# --- an unavailable chain ---------------------------------------------------------------------


def test_a_killed_node_raises_chain_unavailable_promptly(
    own_anvil: AnvilNode, owner: LocalAccount
) -> None:
    w3 = connect(own_anvil.url, timeout=2.0)
    contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
    contract.anchor(owner, root_of("a"), 1, timeout=10.0)

    own_anvil.kill()

    actions: dict[str, Callable[[], object]] = {
        "count": contract.count,
        "anchor": lambda: contract.anchor(owner, root_of("b"), 2, timeout=2.0),
        "find": lambda: contract.find(root_of("a"), 1),
        "deploy": lambda: deploy(w3, owner, ORIGIN, timeout=2.0),
    }
    for name, action in actions.items():
        took, error = elapsed(action)
        assert isinstance(error, ChainUnavailable), (name, error)
        assert error.code == "anchor_chain_unavailable"
        assert own_anvil.url in error.message
        assert "connection refused" in error.message
        assert took < PROMPT, (name, took)


@pytest.fixture
def silent_node() -> Iterator[str]:
    """A TCP port that accepts connections but never answers, like a hung node."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_silent_node_times_out_as_chain_unavailable(silent_node: str) -> None:
    contract = AnchorContract(connect(silent_node, timeout=0.5), "0x" + "42" * 20)
    took, error = elapsed(contract.count)
    assert isinstance(error, ChainUnavailable), error
    assert "no answer before the timeout" in error.message
    assert took < PROMPT


def _rpc(w3: Web3, method: str, *params: Any) -> None:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response


def _wait_pending(w3: Web3, account: LocalAccount, count: int) -> None:
    deadline = time.monotonic() + 10
    while w3.eth.get_transaction_count(account.address, "pending") < count:
        assert time.monotonic() < deadline, "transaction never reached the pool"
        time.sleep(0.02)


def test_a_transaction_not_mined_in_time_is_reported(
    own_anvil: AnvilNode, owner: LocalAccount
) -> None:
    w3 = connect(own_anvil.url, timeout=2.0)
    contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
    _rpc(w3, "evm_setAutomine", False)

    took, error = elapsed(lambda: contract.anchor(owner, root_of("a"), 1, timeout=0.5))

    assert isinstance(error, ChainUnavailable), error
    assert "not mined within 0.5 s" in error.message
    assert "may still be mined" in error.message
    assert took < PROMPT
    _rpc(w3, "evm_mine")
    assert contract.count() == 1


def test_a_revert_after_simulation_is_decoded(own_anvil: AnvilNode, owner: LocalAccount) -> None:
    """Two anchors of one size race: both pass simulation, the second reverts on chain."""
    w3 = connect(own_anvil.url, timeout=2.0)
    contract = AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
    start_nonce = w3.eth.get_transaction_count(owner.address)
    _rpc(w3, "evm_setAutomine", False)
    results: dict[str, AnchorReceipt | BaseException] = {}

    def run(name: str, root: bytes) -> None:
        try:
            results[name] = contract.anchor(owner, root, 10, timeout=10.0)
        except BaseException as exc:  # handed to the main thread
            results[name] = exc

    first = threading.Thread(target=run, args=("first", root_of("a")))
    first.start()
    _wait_pending(w3, owner, start_nonce + 1)
    second = threading.Thread(target=run, args=("second", root_of("b")))
    second.start()
    _wait_pending(w3, owner, start_nonce + 2)
    _rpc(w3, "evm_mine")
    first.join(timeout=15)
    second.join(timeout=15)

    assert isinstance(results["first"], AnchorReceipt), results["first"]
    assert isinstance(results["second"], TreeSizeNotIncreasing), results["second"]
    assert (results["second"].previous, results["second"].given) == (10, 10)
    assert [a.root for a in contract.anchors()] == [root_of("a")]


# --- the key file -----------------------------------------------------------------------------

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_load_account_reads_a_private_key_file(tmp_path: Path) -> None:
    account = load_account(write_key_file(tmp_path, "k", DEV_KEY))
    assert account.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_load_account_refuses_a_file_others_can_read(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path, "k", DEV_KEY)
    path.chmod(mode)
    with pytest.raises(AnchorKeyError, match=f"mode {mode:04o}.*chmod 600"):
        load_account(path)


@pytest.mark.parametrize("content", ["", "0x1234", DEV_KEY[2:], DEV_KEY + "00", "0x" + "zz" * 32])
def test_load_account_refuses_malformed_keys(tmp_path: Path, content: str) -> None:
    path = write_key_file(tmp_path, "k", content)
    with pytest.raises(AnchorKeyError, match="0x-prefixed 32-byte hex private key") as caught:
        load_account(path)
    assert DEV_KEY[4:] not in caught.value.message
    assert caught.value.code == "anchor_key_invalid"


def test_load_account_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AnchorKeyError, match="cannot read anchoring key file"):
        load_account(tmp_path / "nope.key")
