"""Anchoring on a local anvil chain: gas per anchor, anchors per second, verify time.

    .venv/bin/python bench/anchor.py                 # 1,000 anchors
    .venv/bin/python bench/anchor.py --anchors 100   # a shorter run
    .venv/bin/python bench/anchor.py --smoke         # 2 anchors: every step runs, in seconds

What is measured, on a fresh anvil (started as the tests start it, ``contracts.devchain``) and
a fresh SQLite log in a temporary directory:

1. gas: of the deployment, of the first anchor (it initialises the contract's header slot), and
   mean / min / max over every later anchor (target: under 80,000).
2. anchors per second, sequential, each waiting for its receipt (anvil mines one block per
   transaction): ``anchor_latest`` end to end (chain reads, simulation, signing, sending, the
   receipt, the ``checkpoint_anchored`` entry), and the bare ``AnchorContract.anchor`` on a
   second contract for comparison; the two alternate, so both see the same machine load.
   Between two anchors the log grows by one entry and signs a checkpoint; that is not timed.
3. ``verify_anchors`` over all anchors in process, with its chain reads (``read_anchors``, in
   JSON-RPC batches) timed apart, next to reading the anchors one call each
   (``AnchorContract.anchors``); and ``lunaria anchor verify`` as an operator runs it (a new
   process, wall time, Python start-up and imports included).

Progress goes to stderr, the results to stdout. The machine is shared: figures are one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from eth_account.signers.local import LocalAccount

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.smoke import add_size_options
from contracts.anchor import AnchorContract, connect, deploy, load_account
from contracts.anchoring import AnchorOutcome, anchor_latest
from contracts.devchain import REPO, AnvilNode, start_anvil
from contracts.verification import read_anchors, verify_anchors
from ledger import migrate
from ledger.log.append import Log
from ledger.log.db import make_engine
from ledger.log.notes import Signer

ORIGIN = "bench.lunaria.example/log"
GAS_TARGET = 80_000
# The fewest anchors that still take every step (the first anchor, and a later one): a test
# that the benchmark works (tests/test_bench_smoke.py), not a measurement.
SMOKE_ANCHORS = 2
T = TypeVar("T")


@dataclass(frozen=True)
class Figures:
    deploy_gas: int
    gas: list[int]
    anchor_seconds: list[float]
    bare_seconds: list[float]
    batched_read_seconds: float
    sequential_read_seconds: float
    verify_seconds: float
    cli_seconds: float


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def key_file(directory: Path, node: AnvilNode) -> Path:
    path = directory / "anchor.key"
    path.write_text(node.private_keys[0] + "\n")
    path.chmod(0o600)
    return path


def new_log(directory: Path) -> Log:
    """A fresh SQLite log in ``directory``, its key in ``log.key`` there (as ``lunaria init``)."""
    engine = make_engine(f"sqlite:///{directory / 'bench.db'}")
    migrate.upgrade(engine)
    signer = Signer.generate(ORIGIN)
    signer.save(directory / "log.key")
    log = Log(engine, ORIGIN, signer=signer)
    log.create()
    return log


def grow(log: Log) -> None:
    """One more entry and a checkpoint of it: something new to anchor."""
    with log.writer() as writer:
        writer.append("pool_created", {"slug": f"pool-{writer.head.size}"})
        writer.request_checkpoint()


def anchor_once(log: Log, contract: AnchorContract, account: LocalAccount) -> tuple[int, float]:
    """Grow the log by one checkpoint, then ``anchor_latest`` it: gas and seconds."""
    grow(log)
    result, took = timed(lambda: anchor_latest(log, contract, account, timeout=30.0))
    assert result.outcome is AnchorOutcome.ANCHORED and result.gas_used is not None
    return result.gas_used, took


def bare_once(contract: AnchorContract, account: LocalAccount, size: int) -> float:
    """The contract client alone: no log, no reads before sending."""
    root = size.to_bytes(32, "big")
    return timed(partial(contract.anchor, account, root, size, timeout=30.0))[1]


def anchor_many(
    log: Log, contract: AnchorContract, bare: AnchorContract, account: LocalAccount, count: int
) -> tuple[list[int], list[float], list[float]]:
    """``count`` anchors of each kind, alternating: gas and seconds of each."""
    gas, seconds, bare_seconds = [], [], []
    for n in range(count):
        used, took = anchor_once(log, contract, account)
        gas.append(used)
        seconds.append(took)
        bare_seconds.append(bare_once(bare, account, n + 1))
        if (n + 1) % 100 == 0:
            progress(f"  {n + 1} anchors of each kind")
    return gas, seconds, bare_seconds


def cli_verify(directory: Path, node: AnvilNode, contract: AnchorContract) -> float:
    """Wall time of ``lunaria anchor verify`` in a new process, as an operator runs it."""
    env = {
        **os.environ,
        "LUNARIA_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
        "LUNARIA_KEY_FILE": str(directory / "log.key"),
        "LUNARIA_ANCHOR_RPC_URL": node.url,
        "LUNARIA_ANCHOR_CONTRACT": contract.address,
    }
    lunaria = Path(sys.executable).parent / "lunaria"
    start = time.perf_counter()
    done = subprocess.run(
        [str(lunaria), "anchor", "verify"], env=env, cwd=REPO, capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"lunaria anchor verify failed:\n{done.stderr}")
    progress(f"  {done.stdout.strip()}")
    return took


def run(count: int, directory: Path) -> Figures:
    node = start_anvil(directory / "anvil.log")
    try:
        w3 = connect(node.url, timeout=10.0)
        account = load_account(key_file(directory, node))
        log = new_log(directory)
        contract = AnchorContract(w3, deploy(w3, account, ORIGIN, timeout=30.0))
        deploy_gas = int(w3.eth.get_block("latest")["gasUsed"])  # anvil: one tx per block
        bare = AnchorContract(w3, deploy(w3, account, ORIGIN, timeout=30.0))
        progress(f"anchoring {count} checkpoints with anchor_latest and the bare client")
        gas, seconds, bare_seconds = anchor_many(log, contract, bare, account, count)
        progress(f"verifying {count} anchors")
        _, batched = timed(lambda: read_anchors(contract))
        _, sequential = timed(contract.anchors)
        report, verify_seconds = timed(lambda: verify_anchors(log, contract))
        assert report.anchors == count
        cli_seconds = cli_verify(directory, node, contract)
        return Figures(
            deploy_gas, gas, seconds, bare_seconds, batched, sequential, verify_seconds, cli_seconds
        )
    finally:
        node.stop()


def rate(seconds: list[float]) -> str:
    per_second = len(seconds) / sum(seconds)
    median_ms = statistics.median(seconds) * 1000
    return f"{per_second:7.1f} anchors/s  (median {median_ms:.1f} ms per anchor)"


def report(figures: Figures) -> None:
    later = figures.gas[1:]
    print(f"anchors                      {len(figures.gas)}")
    print(f"gas, deployment              {figures.deploy_gas:,}")
    print(f"gas, first anchor            {figures.gas[0]:,}")
    if later:
        verdict = "meets" if max(later) < GAS_TARGET else "MISSES"
        print(
            f"gas, later anchors           mean {statistics.fmean(later):,.0f}, min {min(later):,},"
            f" max {max(later):,}  ({verdict} the {GAS_TARGET:,} target)"
        )
    print(f"anchor_latest, sequential    {rate(figures.anchor_seconds)}")
    print(f"bare contract.anchor         {rate(figures.bare_seconds)}")
    tenth = max(1, len(figures.anchor_seconds) // 10)
    early = statistics.median(figures.anchor_seconds[:tenth]) * 1000
    late = statistics.median(figures.anchor_seconds[-tenth:]) * 1000
    print(f"anchor_latest, first / last {tenth}: median {early:.1f} / {late:.1f} ms per anchor")
    n = len(figures.gas)
    print(
        f"verify_anchors, {n} anchors  {figures.verify_seconds:.2f} s"
        f"  (reading them in batches: {figures.batched_read_seconds:.2f} s;"
        f" one call each would take {figures.sequential_read_seconds:.2f} s)"
    )
    print(f"lunaria anchor verify        {figures.cli_seconds:.2f} s wall, new process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_options(parser, "--anchors", type=int, default=1000, help="number of anchors (>= 2)")
    args = parser.parse_args()
    anchors = SMOKE_ANCHORS if args.smoke else args.anchors
    if anchors < 2:
        parser.error("--anchors must be at least 2")
    with tempfile.TemporaryDirectory(prefix="lunaria-bench-anchor-") as tmp:
        report(run(anchors, Path(tmp)))


if __name__ == "__main__":
    main()
