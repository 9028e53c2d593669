"""Fixtures for the LedgerAnchor tests: a real anvil node, funded dev accounts, a fresh contract.

anvil comes from npm (``@foundry-rs/anvil``, installed by ``make test`` through ``npm ci``). When
it is missing the tests skip, or fail when ``LUNARIA_REQUIRE_ANVIL=1`` (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts.anchor import AnchorContract, connect, deploy, load_account
from contracts.devchain import REPO, AnvilNode, AnvilNotInstalled, DevChainError
from contracts.devchain import start_anvil as _start_anvil

__all__ = ["ORIGIN", "REPO", "AnvilNode", "missing_tool", "start_anvil", "write_key_file"]

REQUIRE_ANVIL = os.environ.get("LUNARIA_REQUIRE_ANVIL") == "1"
ORIGIN = "test.lunaria.example/log"


def missing_tool(what: str) -> NoReturn:
    """Skip, or fail in CI, when a node tool is not installed."""
    message = f"{what}; install it with: make node_modules/.installed (npm ci)"
    if REQUIRE_ANVIL:
        pytest.fail(message)
    pytest.skip(message)


def start_anvil(log_path: Path, *extra_args: str) -> AnvilNode:
    """Start anvil (see :mod:`contracts.devchain`); skip when it is missing, fail if it breaks."""
    try:
        return _start_anvil(log_path, extra_args)
    except AnvilNotInstalled as exc:
        missing_tool(exc.message)
    except DevChainError as exc:
        pytest.fail(exc.message)


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
