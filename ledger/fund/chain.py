"""On-chain donations: transfers to a pool's receiving addresses on EVM chains, recorded by
themselves.

A pool may receive a currency on a chain at one address: the native coin, or an ERC-20 token
(contract and decimals). :func:`ingest_chain` reads ``Transfer`` logs (and, for the native coin,
the blocks' transactions) from the block after the last one processed up to the head less the
confirmations (``LUNARIA_CHAIN_CONFIRMATIONS``, default 12), and records each transfer once as
a donation: its reference ``chain:<chain id>:<tx hash>:<log index>`` (``native`` for a coin
transfer) is private and unique per pool, like a bank reference, and the sender's address is
the donor reference (only its commitment is public). An amount that is not a whole number of
the currency's minor units is held for review (table ``chain_held``), never rounded.

The hashes of the last blocks processed are kept; if the chain no longer has them, a
reorganisation deeper than the confirmations happened: :class:`ChainReorg` is raised, nothing is
recorded, and an operator must look (the donations recorded from the lost blocks stay, and a
correction entry reverses any that vanished). Progress is saved after each recorded range; a
scan stopped between the two records nothing twice (the references are checked again).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from ledger.errors import LedgerError, RuleViolation
from ledger.fund.commands import Fund
from ledger.fund.donations import recorded_references
from ledger.fund.money import CURRENCY_EXPONENTS, check_currency
from ledger.fund.pledges import MAX_MEMO, match_payments, pledged_currencies
from ledger.fund.rules import MAX_BATCH, Actor, require_role
from ledger.fund.state import pool_row
from ledger.log.clock import format_ts
from ledger.log.db import write_transaction
from ledger.log.schema import metadata

if TYPE_CHECKING:  # (web3 loads only when a chain is read: see _web3)
    from web3 import Web3

NATIVE = "native"
DEFAULT_CONFIRMATIONS = 12
# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
# An ERC-20 transfer(address,uint256) call: the selector and two 32-byte words; a memo follows.
TRANSFER_CALL_BYTES = 4 + 32 + 32
KEPT_HASHES = 64  # the last blocks processed whose hashes are compared at the next scan
CHAIN_ACTOR = Actor("operator:chain", "admin")

chain_receivers = Table(
    "chain_receivers",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("currency", String(10), primary_key=True),
    Column("chain_id", BigInteger, primary_key=True),
    Column("token", String(42), nullable=False),  # a contract address, or "native"
    Column("decimals", Integer, nullable=False),
    Column("address", String(42), nullable=False),
    Column("from_block", BigInteger, nullable=False),
    Column("created_ts", String(27), nullable=False),
)
chain_cursors = Table(
    "chain_cursors",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("last_block", BigInteger, nullable=False),
)
chain_blocks = Table(
    "chain_blocks",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("number", BigInteger, primary_key=True),
    Column("hash", String(66), nullable=False),
)
chain_held = Table(
    "chain_held",
    metadata,
    Column("reference", String(120), primary_key=True),
    Column("pool", String(64), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("value", String(80), nullable=False),  # token units
    Column("block", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("found_ts", String(27), nullable=False),
)


class ChainReorg(LedgerError):
    """Blocks already processed are no longer on the chain: a reorganisation deeper than the
    confirmations. Nothing was recorded; an operator must look."""

    code = "chain_reorg"


@dataclass(frozen=True)
class Receiver:
    """Where a pool receives ``currency`` on ``chain_id``: ``token`` (or native) at ``address``."""

    pool: str
    currency: str
    chain_id: int
    token: str
    decimals: int
    address: str
    from_block: int


@dataclass(frozen=True)
class Transfer:
    """One transfer to a receiving address, in token units."""

    receiver: Receiver
    reference: str
    sender: str
    value: int
    block: int
    memo: str = ""  # what the transaction carries after the transfer: a pledge's reference


@dataclass
class ChainReport:
    """What a scan did: the blocks read, donations recorded and transfers held."""

    chain_id: int
    first_block: int
    last_block: int
    recorded: list[int] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    seen_before: int = 0
    pledge_payments: int = 0  # donations matched to pledges by their memo

    @property
    def blocks(self) -> int:
        return max(0, self.last_block - self.first_block + 1)


def add_receiver(engine: Engine, actor: Actor, receiver: Receiver, now: Any) -> Receiver:
    """Configure where ``receiver.pool`` receives ``receiver.currency`` on a chain."""
    require_role(actor, "admin")
    currency = check_currency(receiver.currency)
    if not 0 <= receiver.decimals <= 36:
        raise RuleViolation("decimals must be 0 to 36", "invalid_receiver")
    token = NATIVE if receiver.token == NATIVE else _address(receiver.token, "token")
    checked = Receiver(
        receiver.pool,
        currency,
        receiver.chain_id,
        token,
        receiver.decimals,
        _address(receiver.address, "address"),
        max(0, receiver.from_block),
    )
    with write_transaction(engine) as conn:
        if currency not in json.loads(pool_row(conn, receiver.pool).currencies):
            raise RuleViolation(
                f"pool {receiver.pool!r} does not take {currency}", "currency_not_accepted"
            )
        conn.execute(
            delete(chain_receivers).where(
                chain_receivers.c.pool == checked.pool,
                chain_receivers.c.currency == currency,
                chain_receivers.c.chain_id == checked.chain_id,
            )
        )
        conn.execute(insert(chain_receivers).values(**checked.__dict__, created_ts=format_ts(now)))
    return checked


def _web3() -> type[Web3]:
    """web3, imported when first needed: it takes a second and more to import, and the web
    app and the other commands never need it (tests/test_cli.py)."""
    from web3 import Web3

    return Web3


def _address(text: str, name: str) -> str:
    web3 = _web3()
    if not web3.is_address(text):
        raise RuleViolation(f"{name} {text!r} is not an EVM address", "invalid_receiver")
    return str(web3.to_checksum_address(text))


def receivers(engine: Engine, chain_id: int | None = None) -> list[Receiver]:
    query = select(chain_receivers).order_by(chain_receivers.c.pool, chain_receivers.c.currency)
    if chain_id is not None:
        query = query.where(chain_receivers.c.chain_id == chain_id)
    with engine.connect() as conn:
        return [
            Receiver(
                r.pool, r.currency, int(r.chain_id), r.token, int(r.decimals), r.address,
                int(r.from_block),
            )
            for r in conn.execute(query)
        ]  # fmt: skip


def minor_units_of(value: int, decimals: int, currency: str) -> int | None:
    """``value`` token units (``decimals``) in minor units of ``currency``, exactly, or None
    when it is not a whole number of them (dust below the minor unit)."""
    shift = decimals - CURRENCY_EXPONENTS[currency]
    if shift <= 0:
        return value * int(10 ** (-shift))  # (an int: -shift >= 0)
    whole, rest = divmod(value, 10**shift)
    return None if rest else whole


def ingest_chain(
    fund: Fund,
    w3: Web3,
    *,
    confirmations: int = DEFAULT_CONFIRMATIONS,
    max_blocks: int | None = None,
    step: int = 500,
) -> ChainReport:
    """Read the chain from the block after the last one processed up to the head less
    ``confirmations`` (at most ``max_blocks`` of them), and record each transfer to a
    receiving address once. Raises :class:`ChainReorg` when processed blocks changed."""
    engine = fund.log.engine
    chain_id = int(w3.eth.chain_id)
    configured = receivers(engine, chain_id)
    last = _cursor(engine, chain_id, configured)
    _check_kept_hashes(engine, w3, chain_id)
    safe = int(w3.eth.block_number) - confirmations
    if max_blocks is not None:
        safe = min(safe, last + max_blocks)
    report = ChainReport(chain_id, last + 1, max(last, safe))
    for start in range(last + 1, safe + 1, step):
        end = min(start + step - 1, safe)
        pledged = pledged_currencies(engine)  # (a pledge made mid-scan counts from here)
        transfers = list(_transfers(w3, configured, start, end, pledged)) if configured else []
        _record(fund, transfers, report)
        _advance(engine, w3, chain_id, end, fund.log.clock.now())
    return report


def _cursor(engine: Engine, chain_id: int, configured: Sequence[Receiver]) -> int:
    with engine.connect() as conn:
        last = conn.execute(
            select(chain_cursors.c.last_block).where(chain_cursors.c.chain_id == chain_id)
        ).scalar_one_or_none()
    if last is not None:
        return int(last)
    return min((r.from_block for r in configured), default=1) - 1


def _check_kept_hashes(engine: Engine, w3: Web3, chain_id: int) -> None:
    query = select(chain_blocks.c.number, chain_blocks.c.hash).where(
        chain_blocks.c.chain_id == chain_id
    )
    with engine.connect() as conn:
        kept = conn.execute(query.order_by(chain_blocks.c.number)).all()
    for number, stored in kept:
        block = w3.eth.get_block(int(number))
        now = block["hash"].to_0x_hex()
        if now != stored:
            raise ChainReorg(
                f"chain {chain_id}: block {number} was {stored} when it was processed and is "
                f"{now} now: a reorganisation deeper than the confirmations; nothing was "
                "recorded (check the donations of the blocks from there on)"
            )


def _transfers(
    w3: Web3, configured: Sequence[Receiver], start: int, end: int, pledged: set[tuple[str, str]]
) -> Iterator[Transfer]:
    tokens = [r for r in configured if r.token != NATIVE]
    for receiver in tokens:
        topic_to = "0x" + receiver.address[2:].lower().rjust(64, "0")
        logs = w3.eth.get_logs(
            {
                "fromBlock": start,
                "toBlock": end,
                "address": _web3().to_checksum_address(receiver.token),
                "topics": [TRANSFER_TOPIC, None, topic_to],
            }
        )
        for log in logs:
            sender = "0x" + log["topics"][1].hex()[-40:]
            # The memo is read (one more request) only where a pledge could be paid.
            pays_pledge = (receiver.pool, receiver.currency) in pledged
            tx = w3.eth.get_transaction(log["transactionHash"]) if pays_pledge else None
            yield Transfer(
                receiver,
                f"chain:{receiver.chain_id}:{log['transactionHash'].to_0x_hex()}:{log['logIndex']}",
                sender.lower(),
                int.from_bytes(bytes(log["data"]), "big"),
                int(log["blockNumber"]),
                memo(bytes(tx["input"])[TRANSFER_CALL_BYTES:]) if tx else "",
            )
    natives = {r.address: r for r in configured if r.token == NATIVE}
    if natives:
        yield from _native_transfers(w3, natives, start, end)


def _native_transfers(
    w3: Web3, natives: dict[str, Receiver], start: int, end: int
) -> Iterator[Transfer]:
    """Top-level coin transfers (a transaction's value to the address; transfers made inside
    a contract call are not seen)."""
    for number in range(start, end + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        transactions: list[Any] = list(block["transactions"])  # (full: TxData, not hashes)
        for tx in transactions:
            to = tx.get("to")
            receiver = natives.get(str(to)) if to else None
            if receiver is None or not tx["value"]:
                continue
            yield Transfer(
                receiver,
                f"chain:{receiver.chain_id}:{tx['hash'].to_0x_hex()}:{NATIVE}",
                str(tx["from"]).lower(),
                int(tx["value"]),
                number,
                memo(bytes(tx["input"])),
            )


def memo(data: bytes) -> str:
    """The printable ASCII of what a transaction carries besides the transfer (a coin
    transfer's whole input, the bytes after an ERC-20 ``transfer(to, amount)`` call's
    arguments): where a donor puts a pledge's payment reference. Only searched, never kept."""
    return "".join(chr(b) if 32 <= b < 127 else " " for b in data[:MAX_MEMO])


def _record(fund: Fund, transfers: Sequence[Transfer], report: ChainReport) -> None:
    """Each new transfer as a donation (per pool, in batches), or held when not exact."""
    by_pool: dict[str, list[Transfer]] = {}
    for transfer in transfers:
        by_pool.setdefault(transfer.receiver.pool, []).append(transfer)
    for pool, found in by_pool.items():
        with fund.log.engine.connect() as conn:
            seen = recorded_references(
                conn, fund.log.fingerprint_key, pool, [t.reference for t in found]
            )
        report.seen_before += len(seen)
        new = [t for t in found if t.reference not in seen]
        # Transfers recorded by an earlier, interrupted scan are matched again (idempotent).
        paid = [(seen[t.reference], t.memo) for t in found if t.reference in seen and t.memo]
        donations, held, recorded = [], [], []
        for transfer in new:
            r = transfer.receiver
            amount = minor_units_of(transfer.value, r.decimals, r.currency)
            if amount is None or amount == 0:
                held.append(transfer)
                continue
            donations.append(
                {
                    "amount": str(amount),
                    "currency": r.currency,
                    "channel": "crypto",
                    "external_reference": transfer.reference,
                    "donor_reference": transfer.sender,
                }
            )
            recorded.append(transfer)
        for start in range(0, len(donations), MAX_BATCH):
            outcome = fund.record_donations(CHAIN_ACTOR, pool, donations[start : start + MAX_BATCH])
            seqs = [entry.seq for entry in outcome.written]
            report.recorded.extend(seqs)
            chunk = recorded[start : start + MAX_BATCH]
            paid.extend((seq, t.memo) for seq, t in zip(seqs, chunk, strict=True) if t.memo)
        report.pledge_payments += match_payments(fund, pool, paid)
        _hold(fund.log.engine, held, fund.log.clock.now())
        report.held.extend(t.reference for t in held)


def _hold(engine: Engine, held: Sequence[Transfer], now: Any) -> None:
    if not held:
        return
    with write_transaction(engine) as conn:
        known = set(
            conn.execute(
                select(chain_held.c.reference).where(
                    chain_held.c.reference.in_([t.reference for t in held])
                )
            ).scalars()
        )
        rows = [
            {
                "reference": t.reference,
                "pool": t.receiver.pool,
                "currency": t.receiver.currency,
                "value": str(t.value),
                "block": t.block,
                "reason": f"{t.value} units of {t.receiver.decimals} decimals are not a whole "
                f"number of {t.receiver.currency} minor units",
                "found_ts": format_ts(now),
            }
            for t in held
            if t.reference not in known
        ]
        if rows:
            conn.execute(insert(chain_held), rows)


def held_transfers(engine: Engine, pool: str) -> list[Any]:
    """The pool's transfers held for review (not recorded: not exact in minor units)."""
    query = select(chain_held).where(chain_held.c.pool == pool).order_by(chain_held.c.block)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def _advance(engine: Engine, w3: Web3, chain_id: int, end: int, now: Any) -> None:
    """Save ``end`` as processed, with the hashes of the last blocks up to it."""
    first = max(0, end - KEPT_HASHES + 1)
    hashes = [(n, w3.eth.get_block(n)["hash"].to_0x_hex()) for n in range(first, end + 1)]
    with write_transaction(engine) as conn:
        _save_cursor(conn, chain_id, end)
        conn.execute(delete(chain_blocks).where(chain_blocks.c.chain_id == chain_id))
        conn.execute(
            insert(chain_blocks),
            [{"chain_id": chain_id, "number": n, "hash": h} for n, h in hashes],
        )


def _save_cursor(conn: Connection, chain_id: int, end: int) -> None:
    changed = conn.execute(
        update(chain_cursors).where(chain_cursors.c.chain_id == chain_id).values(last_block=end)
    ).rowcount
    if not changed:
        conn.execute(insert(chain_cursors).values(chain_id=chain_id, last_block=end))


@dataclass
class ChainScan:
    """The worker's task (:class:`ledger.fund.worker.Task`): :func:`ingest_chain` every
    ``every``; one line when it recorded or held something."""

    fund: Fund
    w3: Web3
    confirmations: int = DEFAULT_CONFIRMATIONS
    every: timedelta = timedelta(seconds=15)
    name: str = "chain"
    _next: datetime | None = field(default=None, init=False)

    def next_at(self, now: datetime) -> datetime:
        return now if self._next is None else self._next

    def run(self, now: datetime) -> list[str]:
        self._next = now + self.every
        report = ingest_chain(self.fund, self.w3, confirmations=self.confirmations)
        if not report.recorded and not report.held:
            return []
        return [
            f"chain {report.chain_id}: blocks {report.first_block}..{report.last_block}, "
            f"{len(report.recorded)} donations recorded, {len(report.held)} held for review"
        ]
