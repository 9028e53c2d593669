"""Pledges paid on chain, on anvil, on SQLite and PostgreSQL: an ERC-20 transfer with the
pledge's reference after the call's arguments and a coin transfer with it as the transaction's
data are matched to their pledges once, even when the scan is run again."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner

from api import db
from contracts.devchain import AnvilNode
from ledger.fund.chain import chain_cursors
from ledger.fund.pledges import pledge_payments, pool_pledge_figures
from tests.contracts.test_chain_ingest import CONFIRMATIONS, Chain, _ingest, story, token_artifact
from tests.test_api_support import Story

__all__ = ["story", "token_artifact"]  # (the fixtures, shared with test_chain_ingest)


def _pledge(story: Story, pool: str, amount: str, currency: str) -> dict[str, Any]:
    body = {"amount": amount, "currency": currency}
    made: dict[str, Any] = story.http.post(
        f"/pools/{pool}/pledges", body, key="", status=201
    ).get_json()
    return made


def _received(app: Flask, pool: str) -> dict[str, tuple[int, int]]:
    with app.app_context():
        figures = pool_pledge_figures(db.get_engine(), pool, db.get_clock().now())
    return {f.currency: (f.received, f.active) for f in figures}


def test_chain_transfers_carrying_a_reference_pay_the_pledge(
    story: Story,
    app: Flask,
    own_anvil: AnvilNode,
    token_artifact: dict[str, Any],
    runner: FlaskCliRunner,
) -> None:
    chain = Chain(own_anvil, token_artifact, runner)
    euros = _pledge(story, "food", "1234", "EUR")
    coins = _pledge(story, "coins", str(10**16), "ETH")
    w3 = chain.w3
    call = chain.eure.functions.transfer(chain.fund_address, 12_340_000)
    data = call._encode_transaction_data() + f" {euros['reference']}".encode().hex()
    sent = w3.eth.send_transaction({"from": chain.donor, "to": chain.eure.address, "data": data})
    w3.eth.wait_for_transaction_receipt(sent)
    chain.send(chain.eure, chain.fund_address, 5_000_000)  # no memo: a donation, no pledge
    memo = "0x" + f"pledge {coins['reference'].lower()}".encode().hex()
    sent = w3.eth.send_transaction(
        {"from": chain.donor, "to": chain.coin_address, "value": 10**16, "data": memo}
    )
    w3.eth.wait_for_transaction_receipt(sent)
    chain.mine(CONFIRMATIONS)
    report = _ingest(app, w3)
    assert len(report.recorded) == 3 and report.pledge_payments == 2
    assert _received(app, "food")["EUR"] == (1234, 1)
    assert _received(app, "coins")["ETH"] == (10**16, 1)
    # As if a scan had stopped after recording and before matching, then been rescanned from
    # the start: what was recorded is matched, nothing is recorded twice.
    with app.app_context(), db.get_engine().begin() as conn:
        conn.execute(pledge_payments.delete())
        conn.execute(chain_cursors.delete())
    again = _ingest(app, w3)
    assert again.recorded == [] and again.pledge_payments == 2
    assert _received(app, "food")["EUR"] == (1234, 1)
    mine = story.http.get(f"/pledges/{euros['secret']}")
    assert [p["amount"] for p in mine["payments"]] == ["1234"]
