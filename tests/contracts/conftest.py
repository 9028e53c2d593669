"""Fixtures for the LedgerAnchor tests: a real anvil node, funded dev accounts, a fresh contract.

anvil comes from npm (``@foundry-rs/anvil``, installed by ``make test`` through ``npm ci``). When
it is missing the tests skip, or fail when ``LUNARIA_REQUIRE_ANVIL=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts.anchor import AnchorContract, connect, deploy, load_account

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / "node_modules" / ".bin"
ANVIL = NODE_BIN / "anvil"
REQUIRE_ANVIL = os.environ.get("LUNARIA_REQUIRE_ANVIL") == "1"
ORIGIN = "test.lunaria.example/log"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# The keys anvil derives from its default mnemonic ("test test ... junk"); the fixture checks
# that the node printed the same ones, so a changed default cannot go unnoticed.
DEFAULT_DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)

_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
_PRIVATE_KEY = re.compile(r"^\((\d+)\) (0x[0-9a-fA-F]{64})\s*$", re.MULTILINE)


def missing_tool(what: str) -> NoReturn:
    """Skip, or fail in CI, when a node tool is not installed."""
    message = f"{what}; install it with: make node_modules/.installed (npm ci)"
    if REQUIRE_ANVIL:
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class AnvilNode:
    """A running anvil: its RPC URL and the dev private keys it printed."""

    url: str
    port: int
    private_keys: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the node and wait until its port is closed.

        ``node_modules/.bin/anvil`` is a node wrapper that spawns the real binary, so the
        signal goes to the process group we started (its id is the wrapper's pid): killing only
        the wrapper would orphan a live anvil.
        """
        if self.process.poll() is None:
            _signal_group(self.process.pid, sig)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        if not _wait_port_closed(self.port, STOP_TIMEOUT):
            _signal_group(self.process.pid, signal.SIGKILL)
            _wait_port_closed(self.port, STOP_TIMEOUT)

    def kill(self) -> None:
        """Kill the node abruptly, as a crash would."""
        self.stop(signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_port_closed(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


def start_anvil(log_path: Path) -> AnvilNode:
    """Start ``anvil --host 127.0.0.1 --port 0`` and wait until it listens."""
    if not ANVIL.exists():
        missing_tool(f"anvil is not installed at {ANVIL}")
    if shutil.which("node") is None:
        missing_tool("node is not on PATH (node_modules/.bin/anvil is a node script)")
    # Output goes to a file, not a pipe: anvil logs every request, and an unread pipe would
    # fill up and block it.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        text = log_path.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
            pytest.fail(f"anvil did not start (exit code {process.returncode}):\n{text[-2000:]}")
        time.sleep(0.05)
    port = int(match.group(1))
    keys = tuple(key for _, key in sorted(_PRIVATE_KEY.findall(text), key=lambda m: int(m[0])))
    node = AnvilNode(f"http://127.0.0.1:{port}", port, keys, process, log_path)
    if keys[: len(DEFAULT_DEV_KEYS)] != DEFAULT_DEV_KEYS:
        node.stop()
        pytest.fail(f"anvil printed unexpected dev keys {keys[:2]}; see {log_path}")
    return node


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """One anvil for the session; tests isolate themselves by deploying their own contract."""
    node = start_anvil(tmp_path_factory.mktemp("anvil") / "anvil.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def own_anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """An anvil of this test's own, for tests that kill it."""
    node = start_anvil(tmp_path / "anvil.log")
    try:
        yield node
    finally:
        node.stop()


def write_key_file(directory: Path, name: str, private_key: str) -> Path:
    """A key file as an operator would keep it: one 0x-hex key, mode 0600."""
    path = directory / name
    path.write_text(private_key + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def w3(anvil: AnvilNode) -> Web3:
    return connect(anvil.url, timeout=5.0)


@pytest.fixture
def owner(anvil: AnvilNode, tmp_path: Path) -> LocalAccount:
    """Dev account 0, loaded from a key file: deploys and owns the contract."""
    return load_account(write_key_file(tmp_path, "owner.key", anvil.private_keys[0]))


@pytest.fixture
def stranger(anvil: AnvilNode, tmp_path: Path) -> LocalAccount:
    """Dev account 1: funded, but not the owner."""
    return load_account(write_key_file(tmp_path, "stranger.key", anvil.private_keys[1]))


@pytest.fixture
def contract(w3: Web3, owner: LocalAccount) -> AnchorContract:
    """A freshly deployed LedgerAnchor for ORIGIN."""
    return AnchorContract(w3, deploy(w3, owner, ORIGIN, timeout=10.0))
