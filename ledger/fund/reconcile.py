"""Reconciliation: does the money the ledger says a pool holds match the bank and the chain?

Per currency, the ledger's holding (the pool's ``available`` and ``committed`` balances: donated
and not yet paid out) is compared with what is outside: the closing booked balance of the last
statement imported in that currency (:mod:`ledger.fund.bank_import`) plus the on-chain balances
of the pool's receiving addresses (:mod:`ledger.fund.chain`), when a node is given. The
difference is listed with the lines that explain it: debits the bank made that no disbursement
matches, donations the ledger holds that no statement shows yet (cash, or bank donations
recorded after the statement), and transfers held for review. Each run is kept (table
``reconciliations``) so the pool's page can say when it was last reconciled and whether it
balanced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Engine, Integer, String, Table, Text, insert, select

from ledger.fund.bank_import import last_statements
from ledger.fund.chain import NATIVE, held_transfers, minor_units_of, receivers
from ledger.fund.money import CURRENCY_EXPONENTS
from ledger.fund.schema import balances, donations
from ledger.fund.state import pool_row
from ledger.log.clock import format_ts
from ledger.log.db import write_transaction
from ledger.log.schema import metadata

if TYPE_CHECKING:  # (web3 loads only when a chain is read)
    from web3 import Web3

reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pool", String(64), nullable=False, index=True),
    Column("ts", String(27), nullable=False),
    Column("balanced", Integer, nullable=False),
    Column("summary", Text, nullable=False),
)

_BALANCE_OF = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


@dataclass(frozen=True)
class Explanation:
    """A line that explains part of a difference: ``amount`` is what it adds to the outside
    side (negative: the outside holds less than the ledger because of it); None when it has
    no exact amount (a held transfer)."""

    what: str
    amount: int | None
    detail: str


@dataclass
class CurrencyCheck:
    """One currency: the ledger's holding, the bank's and the chain's, and why they differ."""

    currency: str
    ledger: int
    bank: int | None = None
    bank_statement: str = ""
    chain: int | None = None
    explanations: list[Explanation] = field(default_factory=list)

    @property
    def outside(self) -> int | None:
        if self.bank is None and self.chain is None:
            return None
        return (self.bank or 0) + (self.chain or 0)

    @property
    def difference(self) -> int | None:
        return None if self.outside is None else self.outside - self.ledger

    @property
    def unexplained(self) -> int | None:
        if self.difference is None:
            return None
        return self.difference - sum(e.amount or 0 for e in self.explanations)

    @property
    def balanced(self) -> bool:
        return self.difference == 0

    def to_json(self) -> dict[str, Any]:
        def digits(value: int | None) -> str | None:
            return None if value is None else str(value)

        return {
            "currency": self.currency,
            "ledger": str(self.ledger),
            "bank": digits(self.bank),
            "bank_statement": self.bank_statement,
            "chain": digits(self.chain),
            "difference": digits(self.difference),
            "unexplained": digits(self.unexplained),
            "balanced": self.balanced,
            "explanations": [e.__dict__ for e in self.explanations],
        }


@dataclass
class Reconciliation:
    pool: str
    ts: str
    currencies: list[CurrencyCheck]

    @property
    def balanced(self) -> bool:
        checked = [c for c in self.currencies if c.outside is not None]
        return bool(checked) and all(c.balanced for c in checked)


def reconcile(engine: Engine, pool: str, now: Any, w3: Web3 | None = None) -> Reconciliation:
    """Compare the pool's books with its last statements (and the chain, given a node), and
    keep the result."""
    with engine.connect() as conn:
        accepted = json.loads(pool_row(conn, pool).currencies)
        held = _ledger_holding(conn, pool)
    statements = last_statements(engine, pool)
    on_chain = _chain_balances(engine, w3, pool) if w3 is not None else {}
    checks = []
    for currency in accepted:
        check = CurrencyCheck(currency, held.get(currency, 0))
        statement = statements.get(currency)
        if statement is not None:
            check.bank = int(statement.closing)
            check.bank_statement = f"{statement.format} {statement.statement} of " + (
                f"{statement.closing_date}, imported {statement.imported_ts}"
            )
            check.explanations += _statement_explanations(statement)
            check.explanations += _not_on_the_statement(engine, pool, currency, statement)
        if currency in on_chain:
            check.chain = on_chain[currency]
        checks.append(check)
    for row in held_transfers(engine, pool):
        for check in checks:
            if check.currency == row.currency and check.chain is not None:
                check.explanations.append(
                    Explanation("held_transfer", None, f"{row.reference}: {row.value} units held")
                )
    result = Reconciliation(pool, format_ts(now), checks)
    _keep(engine, result)
    return result


def _ledger_holding(conn: Any, pool: str) -> dict[str, int]:
    query = select(balances.c.currency, balances.c.amount).where(
        balances.c.pool == pool, balances.c.account.in_(["available", "committed"])
    )
    held: dict[str, int] = {}
    for currency, amount in conn.execute(query):
        held[currency] = held.get(currency, 0) + int(amount)
    return held


def _statement_explanations(statement: Any) -> list[Explanation]:
    """Debits on the statement that no disbursement matches: the bank paid them, the ledger
    does not know them."""
    lines = json.loads(statement.exceptions or "[]")
    return [
        Explanation(
            "unmatched_debit",
            -int(line["amount"]),
            f"line {line['number']} of {line['booked']}, bank reference {line['reference']}",
        )
        for line in lines
        if line["action"] == "unmatched"
    ]


def _not_on_the_statement(
    engine: Engine, pool: str, currency: str, statement: Any
) -> list[Explanation]:
    """Donations the ledger holds that the statement cannot show: cash, and bank donations
    recorded after it was imported (not from it)."""
    query = select(donations.c.seq, donations.c.amount, donations.c.channel, donations.c.ts).where(
        donations.c.pool == pool,
        donations.c.currency == currency,
        donations.c.corrected_seq.is_(None),
    )
    found = []
    with engine.connect() as conn:
        for seq, amount, channel, ts in conn.execute(query):
            if channel == "cash" or (channel == "bank" and ts > statement.imported_ts):
                found.append(
                    Explanation(
                        f"{channel}_donation", -int(amount), f"the donation at seq {seq} ({ts})"
                    )
                )
    return found


def _chain_balances(engine: Engine, w3: Web3, pool: str) -> dict[str, int]:
    """The receiving addresses' balances on ``w3``'s chain, in minor units (a balance that is
    not exact is counted down to the minor unit: its dust is a held transfer)."""
    chain_id = int(w3.eth.chain_id)
    totals: dict[str, int] = {}
    for receiver in receivers(engine, chain_id):
        if receiver.pool != pool:
            continue
        if receiver.token == NATIVE:
            units = int(w3.eth.get_balance(w3.to_checksum_address(receiver.address)))
        else:
            token = w3.eth.contract(address=w3.to_checksum_address(receiver.token), abi=_BALANCE_OF)
            units = int(token.functions.balanceOf(receiver.address).call())
        exponent_shift = 10 ** max(0, receiver.decimals - CURRENCY_EXPONENTS[receiver.currency])
        whole = units - units % exponent_shift
        amount = minor_units_of(whole, receiver.decimals, receiver.currency) or 0
        totals[receiver.currency] = totals.get(receiver.currency, 0) + amount
    return totals


def _keep(engine: Engine, result: Reconciliation) -> None:
    summary = json.dumps([c.to_json() for c in result.currencies], sort_keys=True)
    with write_transaction(engine) as conn:
        conn.execute(
            insert(reconciliations).values(
                pool=result.pool, ts=result.ts, balanced=int(result.balanced), summary=summary
            )
        )


def last_reconciliation(engine: Engine, pool: str) -> tuple[str, bool] | None:
    """When the pool was last reconciled and whether it balanced (for its page)."""
    query = (
        select(reconciliations.c.ts, reconciliations.c.balanced)
        .where(reconciliations.c.pool == pool)
        .order_by(reconciliations.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).one_or_none()
    return None if row is None else (str(row.ts), bool(row.balanced))
