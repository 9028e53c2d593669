"""One bank reference, one donation: a repeated external reference is refused (409
``duplicate_reference``, naming the first donation), singly, within and across batches, and
when the same reference arrives from many threads at once. Both databases."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, func, select

from ledger.errors import LedgerError
from ledger.fund.commands import Fund
from ledger.fund.privacy import index_references
from ledger.fund.schema import donation_references
from ledger.log.append import Log
from tests.test_api_support import Story, build_story, donation
from tests.test_fund import TREASURER
from tests.test_fund import donation as fund_donation
from tests.test_fund import fund as fund


def story_of(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    story = build_story(app, client, runner, donations=0)
    story.http.post(
        "/pools",
        {"slug": "rent", "name": "Rent", "currencies": ["EUR"]},
        token=story.admin,
        status=201,
    )
    return story


def test_a_repeated_reference_is_refused_naming_the_first(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    story = story_of(app, client, runner)
    http, treasurer = story.http, story.treasurer
    first = http.post("/pools/food/donations", donation(ref="SEPA-0042"), token=treasurer)
    assert first.status_code == 201
    seq = first.get_json()["seq"]
    problem = http.refused(
        "POST", "/pools/food/donations", donation("777", ref="SEPA-0042"), 409,
        "duplicate_reference", token=treasurer,
    )  # fmt: skip
    assert f"seq {seq}" in problem["detail"] and "SEPA-0042" not in problem["detail"]
    # Within one batch, and a batch repeating an earlier single donation: all or nothing.
    batch = {"donations": [donation(ref="B-1"), donation(ref="B-2"), donation(ref="B-1")]}
    problem = http.refused(
        "POST", "/pools/food/donations:batch", batch, 409, "duplicate_reference", token=treasurer
    )
    assert "donations[2]" in problem["detail"] and "donations[0]" in problem["detail"]
    batch = {"donations": [donation(ref="B-3"), donation(ref="SEPA-0042")]}
    problem = http.refused(
        "POST", "/pools/food/donations:batch", batch, 409, "duplicate_reference", token=treasurer
    )
    assert "donations[1]" in problem["detail"] and f"seq {seq}" in problem["detail"]
    # Across batches.
    batch = {"donations": [donation(ref="C-1"), donation(ref="C-2")]}
    http.post("/pools/food/donations:batch", batch, token=treasurer, status=201)
    batch = {"donations": [donation(ref="C-3"), donation(ref="C-2")]}
    http.refused(
        "POST", "/pools/food/donations:batch", batch, 409, "duplicate_reference", token=treasurer
    )
    # A single donation repeating one of a batch.
    http.refused(
        "POST", "/pools/food/donations", donation(ref="C-1"), 409, "duplicate_reference",
        token=treasurer,
    )  # fmt: skip
    # Unique per pool: another pool may have the same reference.
    http.post("/pools/rent/donations", donation(ref="SEPA-0042"), token=treasurer, status=201)


def test_a_retry_with_the_same_key_is_a_replay_not_a_duplicate(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    story = story_of(app, client, runner)
    body = donation(ref="SEPA-7")
    first = story.http.post("/pools/food/donations", body, token=story.treasurer, key="k-7")
    again = story.http.post("/pools/food/donations", body, token=story.treasurer, key="k-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json()["seq"] == first.get_json()["seq"]


def test_concurrent_donations_with_one_reference_record_one(fund: Fund) -> None:
    """Single donations from 8 threads (group commit shares transactions) and 4 batches, all
    naming the same reference: exactly one donation is recorded."""
    results: list[Any] = []
    lock = threading.Lock()

    def single(i: int) -> None:
        try:
            outcome: Any = fund.record_donation(TREASURER, "food", fund_donation("100", "R-1"))
        except LedgerError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    def batch(i: int) -> None:
        items = [fund_donation("100", f"R-batch-{i}"), fund_donation("100", "R-1")]
        try:
            outcome: Any = fund.record_donations(TREASURER, "food", items)
        except LedgerError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    before = fund.log.head().size
    threads = [threading.Thread(target=single, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=batch, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorded = [r for r in results if not isinstance(r, LedgerError)]
    refused = [r for r in results if isinstance(r, LedgerError)]
    assert len(recorded) == 1 and len(refused) == 11
    assert {r.code for r in refused} == {"duplicate_reference"}
    assert fund.log.head().size - before == len(recorded[0].written)  # 1, or 2 for a batch


def test_init_indexes_donations_written_before_the_table(log: Log, fund: Fund) -> None:
    """Donations recorded before migration 0005 have no digest: index_references adds them,
    keeping the first of a repeated reference, and then the rule holds for them too."""
    for ref in ("OLD-1", "OLD-2", "OLD-3"):
        fund.record_donation(TREASURER, "food", fund_donation("100", ref))
    with log.engine.begin() as conn:
        conn.execute(delete(donation_references))
    assert index_references(log.engine, fund.vault, log.fingerprint_key) == 3
    assert index_references(log.engine, fund.vault, log.fingerprint_key) == 0
    with log.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(donation_references)).scalar() == 3
    with pytest.raises(LedgerError) as refused:
        fund.record_donation(TREASURER, "food", fund_donation("100", "OLD-2"))
    assert refused.value.code == "duplicate_reference"
