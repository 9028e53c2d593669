"""Currencies, amounts in minor units and double-entry postings.

Amounts are never floats: they travel as digit strings in minor units ("1500" = 15.00 EUR)
and are added as Python ints. Postings carry signed digit strings and sum to zero per
currency. Balances are per currency and never converted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ledger.errors import RuleViolation
from ledger.log.canonical import check_amount

# ISO 4217 exponents for the fiat currencies collectives use, and crypto assets with the
# decimals of their usual token contracts.
CURRENCY_EXPONENTS: Mapping[str, int] = {
    "ARS": 2, "BRL": 2, "CHF": 2, "COP": 2, "EUR": 2, "GBP": 2, "INR": 2, "JPY": 0,
    "KES": 2, "MXN": 2, "NGN": 2, "PHP": 2, "PLN": 2, "TRY": 2, "UAH": 2, "USD": 2,
    "XOF": 0, "ZAR": 2,
    "BTC": 8, "DAI": 18, "ETH": 18, "USDC": 6, "USDT": 6,
}  # fmt: skip
# Integer digits allowed above the minor units: 10^15 EUR or ETH is beyond any micro-grant.
MAX_MAJOR_DIGITS = 15


def check_currency(currency: Any) -> str:
    if not isinstance(currency, str) or currency not in CURRENCY_EXPONENTS:
        raise RuleViolation(
            f"unknown currency {currency!r}; known: {', '.join(sorted(CURRENCY_EXPONENTS))}",
            code="unknown_currency",
        )
    return currency


def parse_amount(value: Any, currency: str, field: str = "amount") -> int:
    """A positive amount of ``currency`` in minor units, from its digit string."""
    digits = check_amount(value, field)
    limit = MAX_MAJOR_DIGITS + CURRENCY_EXPONENTS[check_currency(currency)]
    if len(digits) > limit:
        raise RuleViolation(
            f"{field} {digits} has more than {limit} digits for {currency}",
            code="amount_too_large",
        )
    return int(digits)


_MAJOR = re.compile(r"(\d{1,15})(?:[.,](\d+))?\Z")


def minor_units(text: str, currency: str) -> str:
    """An amount typed as people write it ("50", "12.5", "12,50") in minor units of
    ``currency``, exactly: "12.5" EUR -> "1250"; more decimals than the currency has are
    refused, never rounded."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    match = _MAJOR.match(text.strip())
    fraction = "" if match is None else match.group(2) or ""
    if match is None or len(fraction) > exponent:
        raise RuleViolation(
            f"amount must be a number with at most {exponent} decimals, got {text!r}",
            "invalid_amount",
        )
    return str(int(match.group(1) + fraction.ljust(exponent, "0")))


def format_major(amount: int, currency: str) -> str:
    """Human form, e.g. 1500 EUR -> "15.00"."""
    exponent = CURRENCY_EXPONENTS[currency]
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount)).rjust(exponent + 1, "0")
    if exponent == 0:
        return sign + digits
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


DISPLAY_DECIMALS = 2


def display_decimals(currency: str) -> int:
    """The decimals money in ``currency`` always shows: the usual two, or fewer for a coarser
    minor unit (JPY: none). Finer digits show only when they are not zero. The one statement
    of the rule: :func:`display_major` and, through the /verify page's data, static/verify.js."""
    return min(DISPLAY_DECIMALS, CURRENCY_EXPONENTS[currency])


def display_major(amount: int, currency: str) -> str:
    """:func:`format_major` as people read money: at most the usual two decimals unless the
    finer digits are not zero ("88000000" USDC -> "88.00", "88123400" -> "88.1234");
    exact, never rounded (the minor units themselves stay in the API and the exports)."""
    major = format_major(amount, currency)
    whole, dot, fraction = major.partition(".")
    if not dot:
        return major
    kept = fraction.rstrip("0").ljust(display_decimals(currency), "0")
    return f"{whole}.{kept}"


class Posting(NamedTuple):
    """One leg of a double-entry movement: ``account`` changes by ``amount`` (signed).

    (A named tuple: every donation of a batch makes two, and reads them back.)"""

    account: str
    currency: str
    amount: int

    def to_json(self) -> dict[str, str]:
        return {"account": self.account, "currency": self.currency, "amount": str(self.amount)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Posting:
        return cls(str(data["account"]), str(data["currency"]), int(data["amount"]))


def account(pool: str, name: str) -> str:
    """Accounts per pool: ``donations`` (income), ``available``, ``committed``, ``grants``."""
    return f"{pool}:{name}"


def move(pool: str, currency: str, amount: int, source: str, target: str) -> list[Posting]:
    """Move ``amount`` from one pool account to another (two balancing legs)."""
    return [
        Posting(account(pool, source), currency, -amount),
        Posting(account(pool, target), currency, amount),
    ]


def move_json(
    pool: str, currency: str, amount: int, source: str, target: str
) -> list[dict[str, str]]:
    """:func:`move` as entry JSON (what :func:`postings_json` makes of it), built directly: its
    two legs balance by construction, and a batch of donations makes a thousand."""
    return [
        {"account": account(pool, source), "currency": currency, "amount": str(-amount)},
        {"account": account(pool, target), "currency": currency, "amount": str(amount)},
    ]


def check_balanced(postings: Iterable[Posting]) -> None:
    totals: dict[str, int] = {}
    for posting in postings:
        totals[posting.currency] = totals.get(posting.currency, 0) + posting.amount
    unbalanced = {c: t for c, t in totals.items() if t}
    if unbalanced:
        raise RuleViolation(f"postings do not balance: {unbalanced}", code="unbalanced_postings")


def postings_json(postings: Iterable[Posting]) -> list[dict[str, str]]:
    postings = list(postings)
    check_balanced(postings)
    return [p.to_json() for p in postings]
