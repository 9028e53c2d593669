"""On-chain donations on anvil, on SQLite and PostgreSQL: ERC-20 transfers (an OpenZeppelin
token compiled with the pinned solc) and native transfers to a pool's receiving addresses,
recorded once after the confirmations; wrong addresses ignored, dust held, restarts and a
reorganisation deeper than the confirmations handled."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import text
from web3 import Web3

from api import db
from contracts.anchor import connect
from contracts.devchain import AnvilNode
from ledger.fund.chain import ChainReorg, ChainScan, ingest_chain
from ledger.fund.reconcile import reconcile
from tests.test_api_support import Story, build_story

ROOT = Path(__file__).resolve().parents[2]
CONFIRMATIONS = 12


@pytest.fixture(scope="session")
def token_artifact() -> dict[str, Any]:
    """TestToken (OpenZeppelin ERC20, 6 decimals) compiled by the pinned solc."""
    done = subprocess.run(
        ["node", str(ROOT / "tests/contracts/token/compile.mjs")],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    artifact: dict[str, Any] = json.loads(done.stdout)
    return artifact


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    story = build_story(app, client, runner, donations=0)
    coins = {
        "slug": "coins",
        "name": "Coins",
        "currencies": ["ETH"],
        "fast_lane_cap": {},
        "cycle_allowance": {},
    }
    story.http.post("/pools", coins, token=story.admin, status=201)
    return story


class Chain:
    """An anvil with two deployed tokens and the fund's receiving addresses configured."""

    def __init__(self, node: AnvilNode, artifact: dict[str, Any], runner: FlaskCliRunner) -> None:
        self.w3 = connect(node.url, timeout=10.0)
        self.donor = self.w3.eth.accounts[0]
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        self.usdc = self._deploy(factory)
        self.eure = self._deploy(factory)  # a EUR stable coin with 6 decimals
        self.fund_address = Account.create().address
        self.coin_address = Account.create().address
        chain_id = str(self.w3.eth.chain_id)
        for args in (
            ["food", "USDC", "--token", self.usdc.address, "--decimals", "6"],
            ["food", "EUR", "--token", self.eure.address, "--decimals", "6"],
            ["coins", "ETH", "--native", "--decimals", "18"],
        ):
            address = self.coin_address if "--native" in args else self.fund_address
            done = runner.invoke(
                args=["chain", "receive", *args, "--chain-id", chain_id, "--address", address]
            )
            assert done.exit_code == 0, done.output

    def _deploy(self, factory: Any) -> Any:
        tx = factory.constructor(10**15).transact({"from": self.donor})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=factory.abi)

    def send(self, token: Any, to: str, value: int) -> None:
        tx = token.functions.transfer(to, value).transact({"from": self.donor})
        self.w3.eth.wait_for_transaction_receipt(tx)

    def send_coin(self, to: str, wei: int) -> None:
        tx = self.w3.eth.send_transaction({"from": self.donor, "to": to, "value": wei})
        self.w3.eth.wait_for_transaction_receipt(tx)

    def mine(self, blocks: int) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def _ingest(app: Flask, w3: Web3, **options: Any) -> Any:
    with app.app_context():
        return ingest_chain(db.get_fund(), w3, confirmations=CONFIRMATIONS, **options)


def _entry(story: Story, seq: int) -> dict[str, Any]:
    data: dict[str, Any] = story.http.get(f"/ledger/entries/{seq}")["entry"]["data"]
    return data


def test_transfers_are_recorded_once_after_the_confirmations(
    story: Story,
    app: Flask,
    own_anvil: AnvilNode,
    token_artifact: dict[str, Any],
    runner: FlaskCliRunner,
) -> None:
    chain = Chain(own_anvil, token_artifact, runner)
    wrong = Account.create().address
    chain.send(chain.usdc, chain.fund_address, 25_500_000)  # 25.50 USDC
    chain.send(chain.usdc, wrong, 1_000_000)  # not the fund's address
    chain.send(chain.eure, chain.fund_address, 12_340_000)  # 12.34 EUR
    chain.send(chain.eure, chain.fund_address, 1_234_567)  # 1.234567 EUR: dust, held
    chain.send_coin(chain.coin_address, 10**16)  # 0.01 ETH
    before = story.http.size()

    early = _ingest(app, chain.w3)
    assert early.recorded == [] and story.http.size() == before  # not confirmed yet

    chain.mine(CONFIRMATIONS)
    # Read a few blocks at a time, as a scan stopped and restarted would.
    reports = [_ingest(app, chain.w3, max_blocks=3) for _ in range(4)]
    recorded = [seq for report in reports for seq in report.recorded]
    held = [ref for report in reports for ref in report.held]
    assert len(recorded) == 3 and len(held) == 1
    assert story.http.size() == before + 3
    entries = sorted((_entry(story, seq) for seq in recorded), key=lambda d: d["currency"])
    assert [(d["pool"], d["currency"], d["amount"], d["channel"]) for d in entries] == [
        ("coins", "ETH", str(10**16), "crypto"),
        ("food", "EUR", "1234", "crypto"),
        ("food", "USDC", "25500000", "crypto"),
    ]
    with app.app_context():
        raw_log = b"".join(bytes(leaf) for leaf in db.get_log().iter_raw())
    for address in (chain.donor, chain.donor.lower(), chain.donor.lower()[2:]):
        assert address.encode() not in raw_log  # the sender only as a commitment

    held_out = runner.invoke(args=["chain", "held", "food"])
    assert "1234567 units" in held_out.output and "not a whole number" in held_out.output

    # Again, and after a crash that lost the progress (not the donations): nothing twice.
    assert _ingest(app, chain.w3).recorded == []
    with app.app_context(), db.get_engine().begin() as conn:
        conn.execute(text("DELETE FROM chain_cursors"))
        conn.execute(text("DELETE FROM chain_blocks"))
    again = _ingest(app, chain.w3)
    assert again.recorded == [] and again.seen_before == 3 and again.held == [held[0]]
    assert story.http.size() == before + 3

    # The books against the chain: USDC balances; EUR differs by the held dust's cents.
    with app.app_context():
        result = reconcile(db.get_engine(), "food", db.get_clock().now(), chain.w3)
    checks = {c.currency: c for c in result.currencies}
    assert (checks["USDC"].ledger, checks["USDC"].chain, checks["USDC"].balanced) == (
        25_500_000,
        25_500_000,
        True,
    )
    eur = checks["EUR"]
    assert (eur.ledger, eur.chain, eur.difference) == (1234, 1357, 123)
    assert [e.what for e in eur.explanations] == ["held_transfer"] and not result.balanced


def test_a_reorganisation_deeper_than_the_confirmations_is_reported(
    story: Story,
    app: Flask,
    own_anvil: AnvilNode,
    token_artifact: dict[str, Any],
    runner: FlaskCliRunner,
) -> None:
    chain = Chain(own_anvil, token_artifact, runner)
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    chain.send(chain.usdc, chain.fund_address, 5_000_000)
    chain.mine(CONFIRMATIONS)
    with app.app_context():  # (as the worker runs it: ChainScan, a Task)
        task = ChainScan(db.get_fund(), chain.w3, CONFIRMATIONS, timedelta(seconds=15))
        now = db.get_clock().now()
        assert task.next_at(now) == now
        lines = task.run(now)
        assert task.next_at(now) == now + timedelta(seconds=15)
    assert len(lines) == 1 and "1 donations recorded, 0 held for review" in lines[0]
    size = story.http.size()

    chain.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    chain.send(chain.usdc, chain.fund_address, 7_000_000)  # another history
    chain.mine(CONFIRMATIONS + 5)
    with pytest.raises(ChainReorg, match="reorganisation deeper than the confirmations"):
        _ingest(app, chain.w3)
    assert story.http.size() == size  # nothing recorded, nothing twice

    url = own_anvil.url
    refused = runner.invoke(args=["ingest", "chain", "--rpc", url])
    assert refused.exit_code == 1 and "reorganisation" in refused.output

    own_anvil.stop()  # the node down: a clear error, nothing written
    down = runner.invoke(args=["ingest", "chain", "--rpc", url])
    assert down.exit_code == 1 and "failed" in down.output
    assert story.http.size() == size
