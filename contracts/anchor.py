"""Low-level client for the LedgerAnchor contract.

Deploys the contract, anchors checkpoints (root hash, tree size) and reads them back. Every
transaction is signed locally with an eth-account key and sent raw, so the node never holds a
key. Before a transaction is sent it is simulated with ``eth_call``: a refusal (wrong account,
tree size not increasing) is reported without spending gas.

Every failure surfaces as an :class:`AnchorError`; reverts are decoded from the contract's
custom errors by selector, and an unreachable or silent node becomes :class:`ChainUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractCustomError,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.types import BlockIdentifier, TxParams, TxReceipt, Wei

from contracts import DEFAULT_RECEIPT_TIMEOUT, DEFAULT_RPC_TIMEOUT
from contracts.errors import (
    AnchorError,
    AnchorIndexOutOfRange,
    AnchorKeyError,
    ChainUnavailable,
    NotOwner,
    TreeSizeNotIncreasing,
)

__all__ = [
    "AnchorContract",
    "AnchorError",
    "AnchorIndexOutOfRange",
    "AnchorKeyError",
    "AnchorReceipt",
    "Artifact",
    "ChainUnavailable",
    "NotOwner",
    "OnchainAnchor",
    "TreeSizeNotIncreasing",
    "connect",
    "deploy",
    "load_account",
    "load_artifact",
    "origin_hash",
]

MAX_TREE_SIZE = 2**64 - 1
# Simulation runs against the latest block; a little headroom covers state that changes before
# inclusion. Unused gas is refunded, so the margin costs nothing.
GAS_MARGIN_NUMERATOR, GAS_MARGIN_DENOMINATOR = 6, 5

# --- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorReceipt:
    """A mined anchoring transaction."""

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    index: int
    gas_used: int
    root: bytes
    tree_size: int


@dataclass(frozen=True)
class OnchainAnchor:
    """One anchor as stored by the contract; ``timestamp`` is the block time in Unix seconds."""

    index: int
    root: bytes
    tree_size: int
    timestamp: int


@dataclass(frozen=True)
class Artifact:
    """The compiled contract, as written by ``contracts/compile.mjs``."""

    abi: list[dict[str, Any]]
    bytecode: str
    compiler_version: str

    @property
    def error_selectors(self) -> dict[bytes, tuple[str, list[str]]]:
        """Custom errors by 4-byte selector: name and argument types."""
        out: dict[bytes, tuple[str, list[str]]] = {}
        for item in self.abi:
            if item.get("type") == "error":
                types = [str(arg["type"]) for arg in item.get("inputs", [])]
                signature = f"{item['name']}({','.join(types)})"
                out[keccak(text=signature)[:4]] = (str(item["name"]), types)
        return out


@cache
def load_artifact() -> Artifact:
    """Load the committed build of LedgerAnchor shipped with this package."""
    path = resources.files("contracts") / "build" / "LedgerAnchor.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Artifact(
            abi=list(raw["abi"]),
            bytecode=str(raw["bytecode"]),
            compiler_version=str(raw["compiler"]["version"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnchorError(
            f"contract artifact {path} is missing or malformed ({exc}); "
            "rebuild it with: node contracts/compile.mjs"
        ) from exc


# --- connection and keys ----------------------------------------------------------------------


def connect(rpc_url: str, timeout: float = DEFAULT_RPC_TIMEOUT) -> Web3:
    """A Web3 over HTTP whose every request gives up after ``timeout`` seconds.

    web3's own retry-with-backoff is switched off: a dead node should surface as
    :class:`ChainUnavailable` at once rather than after a string of silent retries.
    """
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
    )
    return Web3(provider)


def load_account(path: str | Path) -> LocalAccount:
    """Load the anchoring account from a file holding a 0x-hex private key.

    The file must not be accessible by group or others (mode 0600 or stricter).
    """
    key_path = Path(path)
    try:
        info = key_path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise AnchorKeyError(f"anchoring key file {key_path} is not a regular file")
        if info.st_mode & 0o077:
            raise AnchorKeyError(
                f"anchoring key file {key_path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                f"it must not be accessible by group or others: chmod 600 {key_path}"
            )
        text = key_path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise AnchorKeyError(f"cannot read anchoring key file {key_path}: {exc.strerror}") from exc
    body = text[2:] if text[:2].lower() == "0x" else ""
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        # Never echo the content: it may be a slightly mangled key.
        raise AnchorKeyError(
            f"anchoring key file {key_path} must hold one 0x-prefixed 32-byte hex private key"
        )
    try:
        return cast(LocalAccount, Account.from_key(text))
    except ValueError as exc:
        raise AnchorKeyError(f"anchoring key file {key_path} holds an invalid key") from exc


def origin_hash(origin: str) -> bytes:
    """The bytes32 the contract stores for a log origin: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(origin.encode("utf-8")).digest()


# --- error translation ------------------------------------------------------------------------


def _endpoint(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", None) or w3.provider)


def _describe_io_error(exc: BaseException) -> str:
    # requests' exceptions are OSErrors with long nested messages; name the usual causes plainly.
    text = str(exc).lower()
    if "timeout" in type(exc).__name__.lower() or "timed out" in text:
        return "no answer before the timeout"
    if "refused" in text:
        return "connection refused"
    return type(exc).__name__


def _revert_from_data(data: object, contract: str) -> AnchorError | None:
    """Decode a custom-error revert payload into the matching :class:`AnchorError`."""
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return None
    try:
        payload = bytes.fromhex(data[2:])
    except ValueError:
        return None
    known = load_artifact().error_selectors.get(payload[:4])
    if known is None:
        return None
    name, types = known
    try:
        args = abi_decode(types, payload[4:])
    except Exception:  # eth_abi raises several unrelated types on short or bad data
        return None
    if name == "NotOwner":
        return NotOwner(str(Web3.to_checksum_address(args[0])), contract)
    if name == "TreeSizeNotIncreasing":
        return TreeSizeNotIncreasing(int(args[0]), int(args[1]), contract)
    if name == "IndexOutOfRange":
        return AnchorIndexOutOfRange(int(args[0]), int(args[1]), contract)
    return AnchorError(f"LedgerAnchor {contract} refused: {name}{tuple(args)}")


@contextmanager
def _translated(w3: Web3, action: str, contract: str) -> Iterator[None]:
    """Turn web3, transport and revert exceptions raised inside into :class:`AnchorError`."""
    try:
        yield
    except AnchorError:
        raise
    except ContractCustomError as exc:
        decoded = _revert_from_data(exc.data, contract)
        if decoded is not None:
            raise decoded from exc
        raise AnchorError(f"{action}: LedgerAnchor {contract} reverted ({exc.data})") from exc
    except ContractLogicError as exc:
        raise AnchorError(f"{action}: LedgerAnchor {contract} reverted: {exc.message}") from exc
    except BadFunctionCallOutput as exc:
        raise AnchorError(
            f"{action}: no LedgerAnchor contract answers at {contract} on {_endpoint(w3)}"
        ) from exc
    except TimeExhausted as exc:
        raise ChainUnavailable(f"{action}: {exc}") from exc
    except (OSError, ProviderConnectionError) as exc:
        raise ChainUnavailable(
            f"{action}: chain node {_endpoint(w3)} is unavailable ({_describe_io_error(exc)})"
        ) from exc
    except Web3RPCError as exc:
        raise AnchorError(f"{action}: the chain node refused: {exc.message}") from exc
    except Web3Exception as exc:
        raise AnchorError(f"{action}: {exc}") from exc


def _fail_reverted(action: str, tx_hash: str, contract: str) -> NoReturn:
    raise AnchorError(f"{action}: transaction {tx_hash} reverted on LedgerAnchor {contract}")


# --- transactions -----------------------------------------------------------------------------


def _fees(w3: Web3) -> tuple[Wei, Wei]:
    """EIP-1559 (maxFeePerGas, maxPriorityFeePerGas) from the latest block's base fee."""
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
    priority = int(w3.eth.max_priority_fee)
    # Twice the base fee keeps the transaction valid through six full blocks of fee increases;
    # only base fee + tip is charged.
    return Wei(2 * base_fee + priority), Wei(priority)


def _with_margin(gas: int) -> int:
    return gas * GAS_MARGIN_NUMERATOR // GAS_MARGIN_DENOMINATOR


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _send(
    w3: Web3, account: LocalAccount, build: Callable[[TxParams], TxParams], gas: int, timeout: float
) -> TxReceipt:
    """Fill in chain id, nonce and fees, sign locally, send raw and wait for the receipt."""
    max_fee, priority = _fees(w3)
    params: TxParams = {
        "from": account.address,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "gas": gas,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority,
    }
    signed = account.sign_transaction(cast(dict[str, Any], build(params)))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    try:
        return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    except TimeExhausted as exc:
        raise ChainUnavailable(
            f"transaction {_hex(tx_hash)} was sent but not mined within {timeout:g} s; "
            "it may still be mined: check it before sending again"
        ) from exc


def deploy(
    w3: Web3, account: LocalAccount, origin: str, *, timeout: float = DEFAULT_RECEIPT_TIMEOUT
) -> str:
    """Deploy LedgerAnchor for the log named ``origin``; returns the contract address.

    ``account`` becomes the contract's owner, the only account allowed to anchor.
    """
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    constructor = factory.constructor(origin_hash(origin))
    action = f"deploying LedgerAnchor for {origin!r}"
    with _translated(w3, action, "(new contract)"):
        gas = constructor.estimate_gas({"from": account.address})
        receipt = _send(w3, account, constructor.build_transaction, _with_margin(gas), timeout)
        if receipt["status"] != 1 or receipt.get("contractAddress") is None:
            _fail_reverted(action, _hex(receipt["transactionHash"]), "(new contract)")
        return str(receipt["contractAddress"])


# --- the contract -----------------------------------------------------------------------------


class AnchorContract:
    """A deployed LedgerAnchor at ``address``."""

    def __init__(self, w3: Web3, address: str) -> None:
        if not Web3.is_address(address):
            raise AnchorError(f"{address!r} is not an Ethereum address")
        self.w3 = w3
        self.address: ChecksumAddress = Web3.to_checksum_address(address)
        self._contract: Contract = w3.eth.contract(address=self.address, abi=load_artifact().abi)

    def __repr__(self) -> str:
        return f"AnchorContract({self.address} on {_endpoint(self.w3)})"

    def _call(
        self, action: str, function: ContractFunction, block: BlockIdentifier = "latest"
    ) -> Any:
        with _translated(self.w3, action, self.address):
            return function.call(block_identifier=block)

    def anchor(
        self,
        account: LocalAccount,
        root: bytes,
        tree_size: int,
        timeout: float = DEFAULT_RECEIPT_TIMEOUT,
    ) -> AnchorReceipt:
        """Anchor the checkpoint (``root``, ``tree_size``), signed and paid for by ``account``.

        Raises :class:`NotOwner` or :class:`TreeSizeNotIncreasing` before sending anything when
        the contract would refuse, and :class:`ChainUnavailable` when the node is unreachable or
        the transaction is not mined within ``timeout`` seconds.
        """
        if not isinstance(root, bytes) or len(root) != 32:
            raise AnchorError("root must be a 32-byte hash")
        # Size 0 is left to the contract, which names it: TreeSizeNotIncreasing(latest, 0).
        if isinstance(tree_size, bool) or not 0 <= tree_size <= MAX_TREE_SIZE:
            raise AnchorError(f"tree size must fit in 64 unsigned bits, got {tree_size!r}")
        function = self._contract.functions.anchor(root, tree_size)
        action = f"anchoring tree size {tree_size}"
        with _translated(self.w3, action, self.address):
            # eth_call first: a refusal costs no gas and comes back as a decodable custom error.
            function.call({"from": account.address})
            gas = function.estimate_gas({"from": account.address})
            receipt = _send(
                self.w3, account, function.build_transaction, _with_margin(gas), timeout
            )
            tx_hash = _hex(receipt["transactionHash"])
            if receipt["status"] != 1:
                # Something changed between simulation and inclusion (another anchor landed
                # first): replaying the call now usually names the reason.
                function.call({"from": account.address})
                _fail_reverted(action, tx_hash, self.address)
            events = self._contract.events.Anchored().process_receipt(receipt)
            mine = [e for e in events if e["address"] == self.address]
            if len(mine) != 1:
                raise AnchorError(f"{action}: transaction {tx_hash} emitted no Anchored event")
            return AnchorReceipt(
                chain_id=self.w3.eth.chain_id,
                contract=self.address,
                tx_hash=tx_hash,
                block_number=int(receipt["blockNumber"]),
                index=int(mine[0]["args"]["index"]),
                gas_used=int(receipt["gasUsed"]),
                root=root,
                tree_size=tree_size,
            )

    def count(self, block: BlockIdentifier = "latest") -> int:
        """Number of anchors recorded."""
        return int(
            self._call("reading the anchor count", self._contract.functions.anchorCount(), block)
        )

    def anchor_at(self, index: int, block: BlockIdentifier = "latest") -> OnchainAnchor:
        """The anchor at ``index`` (0-based, oldest first)."""
        if index < 0:
            raise AnchorIndexOutOfRange(index, self.count(block), self.address)
        root, tree_size, timestamp = self._call(
            f"reading anchor {index}", self._contract.functions.anchorAt(index), block
        )
        return OnchainAnchor(
            index=index, root=bytes(root), tree_size=int(tree_size), timestamp=int(timestamp)
        )

    def _snapshot(self) -> int:
        # Reads spanning several calls pin one block so a concurrent anchor cannot skew them.
        with _translated(self.w3, "reading the block number", self.address):
            return int(self.w3.eth.block_number)

    def anchors(self) -> list[OnchainAnchor]:
        """Every anchor, oldest first, as of one block."""
        block = self._snapshot()
        return [self.anchor_at(i, block) for i in range(self.count(block))]

    def at_tree_size(self, tree_size: int) -> OnchainAnchor | None:
        """The anchor of exactly ``tree_size`` entries, if any (binary search: sizes increase)."""
        block = self._snapshot()
        low, high = 0, self.count(block)
        while low < high:
            middle = (low + high) // 2
            found = self.anchor_at(middle, block)
            if found.tree_size == tree_size:
                return found
            if found.tree_size < tree_size:
                low = middle + 1
            else:
                high = middle
        return None

    def find(self, root: bytes, tree_size: int) -> OnchainAnchor | None:
        """The anchor of checkpoint (``root``, ``tree_size``), or None if it was never anchored.

        A different root at the same size also gives None; :meth:`at_tree_size` tells the two
        apart (a conflicting root means the log showed two histories).
        """
        found = self.at_tree_size(tree_size)
        return found if found is not None and found.root == root else None

    def origin_hash(self) -> bytes:
        """The stored SHA-256 of the log's origin."""
        return bytes(self._call("reading the origin hash", self._contract.functions.originHash()))

    def owner(self) -> str:
        """The account allowed to anchor."""
        return str(self._call("reading the owner", self._contract.functions.owner()))

    def latest_tree_size(self) -> int:
        """Tree size of the latest anchor, 0 before the first."""
        return int(
            self._call("reading the latest tree size", self._contract.functions.latestTreeSize())
        )
