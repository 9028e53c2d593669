"""A local development chain: start and stop anvil (from npm) for tests and benchmarks.

``anvil`` comes from the ``@foundry-rs/anvil`` npm package (``npm ci`` installs it under
``node_modules/.bin``). It listens on a free port, mines one block per transaction, and funds
ten dev accounts derived from its default mnemonic; their private keys are read from its output
and checked against the well-known ones, so a changed default cannot go unnoticed.

Nothing here is used in production: this module is for ``tests/`` and ``bench/``.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.anchor import AnchorError

__all__ = [
    "ANVIL",
    "DEFAULT_DEV_KEYS",
    "AnvilNode",
    "AnvilNotInstalled",
    "DevChainError",
    "start_anvil",
]

REPO = Path(__file__).resolve().parents[1]
ANVIL = REPO / "node_modules" / ".bin" / "anvil"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# The keys anvil derives from its default mnemonic ("test test ... junk"), accounts 0 and 1.
DEFAULT_DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)

_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
_PRIVATE_KEY = re.compile(r"^\((\d+)\) (0x[0-9a-fA-F]{64})\s*$", re.MULTILINE)


class DevChainError(AnchorError):
    """The local development chain could not be started."""

    code = "devchain_error"


class AnvilNotInstalled(DevChainError):
    """anvil (or node, which runs its npm wrapper) is not installed."""

    code = "devchain_not_installed"


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
        signal goes to the process group we started (its id is the wrapper's pid): signalling
        only the wrapper would orphan a live anvil. SIGTERM lets anvil write ``--state``.
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
        """Kill the node abruptly, as a crash would (its state is lost)."""
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


def _check_installed(anvil: Path) -> None:
    if not anvil.exists():
        raise AnvilNotInstalled(f"anvil is not installed at {anvil}")
    if shutil.which("node") is None:
        raise AnvilNotInstalled("node is not on PATH (node_modules/.bin/anvil is a node script)")


def _spawn(anvil: Path, log_path: Path, extra_args: Sequence[str]) -> subprocess.Popen[bytes]:
    # Output goes to a file, not a pipe: anvil logs every request, and an unread pipe would
    # fill up and block it.
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(anvil), "--host", "127.0.0.1", "--port", "0", *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path) -> tuple[int, str]:
    """The port anvil printed, and its output so far; kills it if it does not start in time."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        text = log_path.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match:
            return int(match.group(1)), text
        if process.poll() is not None or time.monotonic() > deadline:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
            raise DevChainError(
                f"anvil did not start (exit code {process.returncode}):\n{text[-2000:]}"
            )
        time.sleep(0.05)


def start_anvil(
    log_path: Path, extra_args: Sequence[str] = (), *, anvil: Path = ANVIL
) -> AnvilNode:
    """Start ``anvil --host 127.0.0.1 --port 0 [extra_args]`` and wait until it listens.

    ``extra_args`` such as ``("--state", path)`` keep the chain across a stop and a restart.
    Raises :class:`AnvilNotInstalled` when anvil or node is missing, :class:`DevChainError`
    when it does not start or prints unexpected dev keys.
    """
    _check_installed(anvil)
    process = _spawn(anvil, log_path, extra_args)
    port, text = _wait_listening(process, log_path)
    keys = tuple(key for _, key in sorted(_PRIVATE_KEY.findall(text), key=lambda m: int(m[0])))
    node = AnvilNode(f"http://127.0.0.1:{port}", port, keys, process, log_path)
    if keys[: len(DEFAULT_DEV_KEYS)] != DEFAULT_DEV_KEYS:
        node.stop()
        raise DevChainError(f"anvil printed unexpected dev keys {keys[:2]}; see {log_path}")
    return node
