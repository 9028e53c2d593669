"""Chain-scan throughput on anvil: blocks per second read by ``ingest_chain``.

    .venv/bin/python bench/chain_scan.py            # 2,000 blocks
    .venv/bin/python bench/chain_scan.py --smoke    # 40 blocks: every step runs, in seconds

On a fresh anvil (``contracts.devchain``, as the tests start it) and a fresh SQLite log: an
OpenZeppelin ERC-20 (tests/contracts/token, compiled by the pinned solc) and two pools'
receiving addresses; ``blocks`` blocks mined, one in ten holding an ERC-20 transfer to the
fund and one in ten a coin transfer. Then, each on the same blocks from the start:

1. an ERC-20 receiver alone: ``eth_getLogs`` over ranges of 500 blocks, plus the hashes of the
   last 64 blocks of each range (the reorganisation check);
2. a native-coin receiver too: every block read with its transactions.

Rates are blocks per second, the recording of the donations included. One run on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from bench.smoke import add_size_options
from contracts.anchor import connect
from contracts.devchain import start_anvil
from ledger import migrate
from ledger.fund import Actor, Fund, Receiver, Vault, add_receiver, ingest_chain
from ledger.log.append import Log
from ledger.log.db import make_engine
from ledger.log.notes import Signer

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "bench.lunaria.example/log"
ADMIN = Actor(id="admin:bench", role="admin")


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _token(w3: Web3) -> Any:
    done = subprocess.run(
        ["node", str(ROOT / "tests/contracts/token/compile.mjs")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    artifact = json.loads(done.stdout)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(10**15).transact({"from": w3.eth.accounts[0]})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact["abi"])


def _mine(w3: Web3, token: Any, blocks: int, fund: str, coins: str) -> None:
    donor = w3.eth.accounts[0]
    for i in range(blocks):
        if i % 10 == 3:
            token.functions.transfer(fund, 1_000_000 + i).transact({"from": donor})
        elif i % 10 == 7:
            w3.eth.send_transaction({"from": donor, "to": coins, "value": 10**15 + i})
        else:
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _fund(url: str, keys: Path) -> Fund:
    engine = make_engine(url)
    migrate.upgrade(engine)
    log = Log(engine, ORIGIN, signer=Signer.generate(ORIGIN))
    log.create()
    fund = Fund(log, Vault.create(keys / "data.key"))
    fund.register_collective(ADMIN, slug="c", name="Collective")
    fund.create_pool(ADMIN, slug="tokens", name="Tokens", currencies=["USDC"])
    fund.create_pool(ADMIN, slug="coins", name="Coins", currencies=["ETH"])
    return fund


def _scan(fund: Fund, w3: Web3) -> tuple[float, int, int]:
    with fund.log.engine.begin() as conn:  # (from the start again: a fresh cursor)
        conn.execute(text("DELETE FROM chain_cursors"))
        conn.execute(text("DELETE FROM chain_blocks"))
    began = time.perf_counter()
    report = ingest_chain(fund, w3, confirmations=0)
    return time.perf_counter() - began, report.blocks, len(report.recorded)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_size_options(parser, "--blocks", type=int, default=2000, help="blocks to mine")
    args = parser.parse_args(argv)
    blocks = 40 if args.smoke else args.blocks
    with tempfile.TemporaryDirectory(prefix="lunaria-bench-chain-") as tmp:
        node = start_anvil(Path(tmp) / "anvil.log")
        try:
            w3 = connect(node.url, timeout=30.0)
            progress("compiling and deploying the token")
            token = _token(w3)
            fund_address, coin_address = Account.create().address, Account.create().address
            progress(f"mining {blocks} blocks")
            _mine(w3, token, blocks, fund_address, coin_address)
            fund = _fund(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
            now = fund.log.clock.now()
            chain_id = int(w3.eth.chain_id)
            usdc = Receiver("tokens", "USDC", chain_id, token.address, 6, fund_address, 0)
            add_receiver(fund.log.engine, ADMIN, usdc, now)
            progress("scanning: ERC-20 only")
            erc20 = _scan(fund, w3)
            coins = Receiver("coins", "ETH", chain_id, "native", 18, coin_address, 0)
            add_receiver(fund.log.engine, ADMIN, coins, now)
            progress("scanning: ERC-20 and native")
            both = _scan(fund, w3)
        finally:
            node.stop()
    print(f"chain of {erc20[1]:,} blocks on anvil; SQLite log")
    print(f"{'measurement':<34}{'blocks/s':>12}{'donations':>11}")
    for name, (seconds, count, recorded) in (
        ("ERC-20 receiver (eth_getLogs)", erc20),
        ("ERC-20 and native (every block)", both),
    ):
        print(f"{name:<34}{count / seconds:>12,.0f}{recorded:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
