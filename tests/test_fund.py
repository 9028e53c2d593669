"""The fund's rules through the domain API, across lunar cycles, on both databases."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ledger.errors import IdempotencyConflict, LedgerError, NotFound
from ledger.fund import public_text
from ledger.fund.commands import Fund
from ledger.fund.privacy import erase, private_record, private_salt
from ledger.fund.replay import check_replay
from ledger.fund.rules import Actor, member_actor
from ledger.fund.schema import private_records
from ledger.fund.vault import Vault
from ledger.log.append import Log
from ledger.log.clock import ManualClock
from ledger.log.notes import Signer
from ledger.log.verify import verify_database

ADMIN = Actor("admin:t1", "admin")
TREASURER = Actor("treasurer:t2", "treasurer")
APPLICANT = Actor("applicant:t3", "applicant")


def member(collective: str, name: str) -> Actor:
    return Actor(member_actor(name), "member", collective=collective, member=name)


def donation(amount: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "EUR",
        "channel": "bank",
        "external_reference": ref,
        **extra,
    }


@pytest.fixture
def fund(log: Log, vault: Vault) -> Fund:
    fund = Fund(log, vault)
    for slug, names in {"alba": ["a1", "a2", "a3"], "brisa": ["b1", "b2"], "cauce": ["c1"]}.items():
        fund.register_collective(ADMIN, slug=slug, name=slug.title())
        for name in names:
            fund.add_member(ADMIN, slug, member=name)
    fund.create_pool(
        ADMIN,
        slug="food",
        name="Food bank",
        currencies=["EUR", "USDC"],
        fast_lane_cap={"EUR": "5000"},
        cycle_allowance={"EUR": "8000"},
    )
    fund.set_roster(ADMIN, "food", ["alba", "brisa", "cauce"])
    return fund


def grant(fund: Fund, amount: str, urgency: str = "normal", who: Actor = APPLICANT) -> int:
    proposal = {
        "amount": amount,
        "currency": "EUR",
        "purpose": "Rent support",
        "urgency": urgency,
        "recipient": "family-7",
    }
    return fund.propose_grant(who, "food", proposal).seq


def status(fund: Fund, grant_id: int) -> str:
    from ledger.fund.state import grant_row

    with fund.log.engine.connect() as conn:
        return str(grant_row(conn, grant_id).status)


def books(fund: Fund, currency: str = "EUR") -> dict[str, int]:
    from ledger.fund.state import balance

    with fund.log.engine.connect() as conn:
        return {
            a: balance(conn, "food", currency, a)
            for a in ("donations", "available", "committed", "grants")
        }


class rule:
    """Expect a refusal with this stable code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        assert isinstance(exc, LedgerError), f"expected a refusal {self.code}, got {exc!r}"
        assert exc.code == self.code, exc.message
        return True


def test_story_across_three_cycles(fund: Fund, clock: ManualClock, signer: Signer) -> None:
    log = fund.log
    for i in range(3):
        fund.record_donation(
            TREASURER, "food", donation("10000", f"bank-tx-{i}", donor_reference=f"IBAN-{i}")
        )
    assert books(fund) == {"donations": -30000, "available": 30000, "committed": 0, "grants": 0}

    # Quorum of alba (3 active members: majority 2).
    g1 = grant(fund, "20000")
    fund.cast_vote(member("alba", "a1"), g1, vote="approve")
    assert status(fund, g1) == "proposed"
    fund.cast_vote(member("alba", "a2"), g1, vote="approve")
    assert status(fund, g1) == "approved"
    assert books(fund)["committed"] == 20000

    # Fast lane: urgent, under the cap, within the allowance, one custodian member.
    g2 = grant(fund, "5000", "urgent")
    fund.cast_vote(member("alba", "a3"), g2, vote="approve", fast_lane=True)
    assert status(fund, g2) == "approved"
    g3 = grant(fund, "4000", "urgent")
    with rule("fast_lane_allowance_exceeded"):
        fund.cast_vote(member("alba", "a3"), g3, vote="approve", fast_lane=True)
    g4 = grant(fund, "6000", "urgent")
    with rule("fast_lane_cap_exceeded"):
        fund.cast_vote(member("alba", "a1"), g4, vote="approve", fast_lane=True)
    with rule("fast_lane_not_urgent"):
        fund.cast_vote(member("alba", "a1"), grant(fund, "100"), vote="approve", fast_lane=True)

    # Not custodian, proposer, double vote, overdraw.
    g5 = grant(fund, "3000")
    with rule("not_custodian"):
        fund.cast_vote(member("brisa", "b1"), g5, vote="approve")
    fund.cast_vote(member("alba", "a1"), g5, vote="approve")
    with rule("already_voted"):
        fund.cast_vote(member("alba", "a1"), g5, vote="reject")
    own = grant(fund, "100", who=member("alba", "a2"))
    with rule("proposer_cannot_vote"):
        fund.cast_vote(member("alba", "a2"), own, vote="approve")
    big = grant(fund, "9000")
    fund.cast_vote(member("alba", "a1"), big, vote="approve")
    with rule("insufficient_funds"):
        fund.cast_vote(member("alba", "a2"), big, vote="approve")
    with rule("grant_not_approved"):
        fund.disburse(member("alba", "a1"), g5, payment_reference="PAY-1")
    size_before_handover = log.head().size

    # The new moon: brisa takes over; alba's votes on undecided proposals are void.
    clock.advance(timedelta(days=30))
    handovers = fund.rotate()
    assert [h.kind for h in handovers] == ["custody_transferred"]
    handover = handovers[0].data
    assert (handover["from"], handover["to"]) == ("alba", "brisa")
    statement = handover["closed"]["statement"]["EUR"]
    assert statement["opening"] == "0" and statement["donations"] == "30000"
    assert int(statement["closing"]) == int(statement["available"]) + int(statement["committed"])
    assert g5 in handover["carried_over"] and big in handover["carried_over"]
    assert g1 in handover["committed_grants"]
    assert len(handover["voided_votes"]) == 2  # a1 on g5 and on big
    assert log.latest_checkpoint().size == size_before_handover + 1  # type: ignore[union-attr]
    assert fund.rotate() == []  # idempotent: nothing more is due

    # brisa records the disbursement alba approved, and decides g5 afresh (quorum 2 of 2).
    fund.disburse(member("brisa", "b1"), g1, payment_reference="SEPA-REF-0042")
    assert status(fund, g1) == "disbursed"
    with rule("not_custodian"):
        fund.cast_vote(member("alba", "a2"), g5, vote="approve")
    fund.cast_vote(member("brisa", "b1"), g5, vote="approve")
    assert status(fund, g5) == "proposed"  # a1's earlier approval no longer counts
    fund.cast_vote(member("brisa", "b2"), g5, vote="approve")
    assert status(fund, g5) == "approved"
    fund.cast_vote(member("brisa", "b1"), big, vote="reject")
    assert status(fund, big) == "rejected"

    # A mistaken donation is reversed by a correction entry.
    mistaken = fund.record_donation(TREASURER, "food", donation("700", "bank-tx-dup")).seq
    fund.correct(TREASURER, corrects=mistaken, reason="duplicate import")
    with rule("already_corrected"):
        fund.correct(TREASURER, corrects=mistaken, reason="again")
    with rule("not_correctable"):
        fund.correct(TREASURER, corrects=g1, reason="not money")

    clock.advance(timedelta(days=30))
    third = fund.rotate()
    assert (third[0].data["from"], third[0].data["to"]) == ("brisa", "cauce")
    closed = third[0].data["closed"]["statement"]["EUR"]
    assert closed["opening"] == statement["closing"]
    assert closed["donations"] == "700" and closed["corrections"] == "-700"
    assert closed["disbursements"] == "20000"
    assert int(closed["closing"]) == int(closed["opening"]) + 700 - 20000 - 700
    assert books(fund) == {
        "donations": -30000,
        "available": 2000,
        "committed": 8000,
        "grants": 20000,
    }

    verify_database(log.engine, [signer.verifier()])
    report = check_replay(log.engine)
    assert report.rows["votes"] >= 7


def test_writes_append_due_handovers_first(fund: Fund, clock: ManualClock) -> None:
    clock.advance(timedelta(days=61))
    outcome = fund.record_donation(TREASURER, "food", donation("100", "x"))
    kinds = [e.kind for e in fund.log.entries(after=outcome.seq - 3, limit=3)]
    assert kinds == ["custody_transferred", "custody_transferred", "donation_recorded"]


def test_idempotent_commands(fund: Fund) -> None:
    first = fund.record_donation(TREASURER, "food", donation("100", "r1"), idempotency_key="k")
    again = fund.record_donation(TREASURER, "food", donation("100", "r1"), idempotency_key="k")
    assert again.seq == first.seq and again.replayed
    with pytest.raises(IdempotencyConflict) as caught:
        fund.record_donation(TREASURER, "food", donation("200", "r1"), idempotency_key="k")
    assert caught.value.fields == ("amount",)
    # Keys are scoped per caller: another treasurer may use the same key (for another
    # donation: the same bank reference would be refused, see test_references.py).
    other = fund.record_donation(
        Actor("treasurer:t9", "treasurer"), "food", donation("100", "r2"), idempotency_key="k"
    )
    assert other.seq != first.seq


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (donation("-5", "r"), "invalid_amount"),
        (donation("0", "r"), "invalid_amount"),
        (donation("1.5", "r"), "invalid_amount"),
        (donation("1e3", "r"), "invalid_amount"),
        (donation("12345678901234567890", "r"), "amount_too_large"),
        ({**donation("100", "r"), "currency": "XYZ"}, "unknown_currency"),
        ({**donation("100", "r"), "currency": "USD"}, "currency_not_accepted"),
        ({**donation("100", "r"), "channel": "paypal"}, "invalid_channel"),
    ],
)
def test_bad_donations_write_nothing(fund: Fund, item: dict[str, Any], code: str) -> None:
    size = fund.log.head().size
    with rule(code):
        fund.record_donation(TREASURER, "food", item)
    assert fund.log.head().size == size


def test_batch_is_all_or_nothing(fund: Fund) -> None:
    size = fund.log.head().size
    batch = [donation("100", f"r{i}") for i in range(5)] + [donation("-1", "bad")]
    with rule("invalid_amount"):
        fund.record_donations(TREASURER, "food", batch)
    assert fund.log.head().size == size
    outcome = fund.record_donations(TREASURER, "food", batch[:5])
    assert fund.log.head().size == size + 5 and outcome.seq == size


def test_a_missing_pool_is_named_before_bad_items(fund: Fund) -> None:
    # Items are checked before the write lock is taken; the rules' order still puts the pool first.
    with pytest.raises(NotFound):
        fund.record_donations(TREASURER, "nowhere", [donation("100", "r"), donation("-1", "bad")])
    with rule("currency_not_accepted"):  # item 0's currency comes before item 1's amount
        fund.record_donations(
            TREASURER, "food", [{**donation("100", "r"), "currency": "USD"}, donation("-1", "x")]
        )


def test_a_batch_keeps_every_character_of_its_private_records(fund: Fund) -> None:
    texts = ["tab\there", 'back\\slash "quoted"', "\\N", "é 漢字 \U0001f600", "comma,semi;"]
    # (Display names are public: no control characters there, see test_screening.py.)
    names = [text[:8].replace("\t", " ") for text in texts]
    batch = [
        donation("100", text, note=f"{text}!", display_name=name)
        for text, name in zip(texts, names, strict=True)
    ]
    outcome = fund.record_donations(TREASURER, "food", batch)
    with fund.log.engine.connect() as conn:
        commitments = conn.execute(
            select(private_records.c.commitment)
            .where(private_records.c.seq >= outcome.seq)
            .order_by(private_records.c.seq)
        ).scalars()
        records = [private_record(conn, fund.vault, c) for c in commitments]
    kept = [(r.payload["external_reference"], r.payload["note"]) for r in records if r]
    assert kept == [(text, f"{text}!") for text in texts]
    written = [fund.log.entry(outcome.seq + i) for i in range(len(texts))]
    with fund.log.engine.connect() as conn:
        served = public_text.texts_of(conn, written)  # (display names are public texts)
    kept_names = [public_text.shown(e.data["donor"]["name"], served) for e in written]
    assert kept_names == names
    check_replay(fund.log.engine)


def test_roles_and_unknowns(fund: Fund) -> None:
    with rule("forbidden"):
        fund.create_pool(TREASURER, slug="x", name="X", currencies=["EUR"])
    with rule("forbidden"):
        fund.record_donation(APPLICANT, "food", donation("100", "r"))
    with rule("unknown_collective"):
        fund.set_roster(ADMIN, "food", ["alba", "nobody"])
    with pytest.raises(NotFound):
        fund.record_donation(TREASURER, "nowhere", donation("100", "r"))
    with rule("invalid_pseudonym"):
        fund.add_member(ADMIN, "alba", member="jane@example.org")
    with rule("duplicate"):
        fund.register_collective(ADMIN, slug="alba", name="Again")


def test_private_data_stays_private_and_erases(fund: Fund, signer: Signer) -> None:
    outcome = fund.record_donation(
        TREASURER,
        "food",
        donation("100", "BANK-REF-9931", donor_reference="DE89370400440532013000"),
    )
    entry = fund.log.entry(outcome.seq)
    assert b"DE89370400440532013000" not in entry.raw and b"BANK-REF-9931" not in entry.raw
    commitment = entry.data["donor"]["commitment"]
    with fund.log.engine.connect() as conn:
        salt = private_salt(conn, fund.vault, commitment)
    assert salt is not None
    assert hashlib.sha256(salt + b"DE89370400440532013000").hexdigest() == commitment
    assert erase(fund.log, fund.vault, commitment)
    assert not erase(fund.log, fund.vault, commitment)
    with fund.log.engine.connect() as conn:
        assert private_salt(conn, fund.vault, commitment) is None
    verify_database(fund.log.engine, [signer.verifier()])
    check_replay(fund.log.engine)


def _race(calls: list[Any]) -> list[BaseException | None]:
    """Run the calls at the same instant on separate connections; return each one's error."""
    import threading

    barrier = threading.Barrier(len(calls))
    results: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            calls[i]()
        except BaseException as exc:  # collected and asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_race_for_the_last_vote(fund: Fund, db_url: str) -> None:
    fund.record_donation(TREASURER, "food", donation("10000", "r"))
    for attempt in range(5):
        g = grant(fund, "100")
        fund.cast_vote(member("alba", "a1"), g, vote="approve")
        errors = _race(
            [
                lambda g=g: fund.cast_vote(member("alba", "a2"), g, vote="approve"),
                lambda g=g: fund.cast_vote(member("alba", "a3"), g, vote="approve"),
            ]
        )
        assert sum(e is None for e in errors) == 1, (attempt, errors)
        loser = next(e for e in errors if e is not None)
        assert isinstance(loser, LedgerError) and loser.code == "grant_not_open"
        assert status(fund, g) == "approved"
    assert books(fund)["committed"] == 500


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_race_for_the_last_funds(fund: Fund, db_url: str) -> None:
    fund.record_donation(TREASURER, "food", donation("5000", "r"))
    first, second = grant(fund, "4000", "urgent"), grant(fund, "4000", "urgent")
    fund.cast_vote(member("alba", "a1"), first, vote="approve")
    fund.cast_vote(member("alba", "a1"), second, vote="approve")
    errors = _race(
        [
            lambda: fund.cast_vote(member("alba", "a2"), first, vote="approve"),
            lambda: fund.cast_vote(member("alba", "a3"), second, vote="approve"),
        ]
    )
    assert sum(e is None for e in errors) == 1, errors
    loser = next(e for e in errors if e is not None)
    assert isinstance(loser, LedgerError) and loser.code == "insufficient_funds"
    assert books(fund)["available"] == 1000


def test_replay_catches_a_doctored_projection(fund: Fund) -> None:
    from sqlalchemy import text

    from ledger.errors import VerificationError

    fund.record_donation(TREASURER, "food", donation("100", "r"))
    check_replay(fund.log.engine)
    with fund.log.engine.begin() as conn:
        conn.execute(text("UPDATE balances SET amount = '999999' WHERE account = 'available'"))
    with pytest.raises(VerificationError, match="projection balances"):
        check_replay(fund.log.engine)


def test_rotate_twice_at_once_hands_over_once(fund: Fund, clock: ManualClock) -> None:
    clock.advance(timedelta(days=30))
    results: list[Any] = []
    errors = _race([lambda: results.append(fund.rotate()), lambda: results.append(fund.rotate())])
    assert errors == [None, None]
    assert sorted(len(r) for r in results) == [0, 1]
    kinds = [e.kind for e in fund.log.entries(limit=100)]
    assert kinds.count("custody_transferred") == 1


def test_long_keys_control_characters_and_batch_field_names(fund: Fund) -> None:
    long_key = "k" * 500
    first = fund.record_donation(TREASURER, "food", donation("100", "r"), idempotency_key=long_key)
    again = fund.record_donation(TREASURER, "food", donation("100", "r"), idempotency_key=long_key)
    assert again == type(first)(first.seq, replayed=True)
    with rule("invalid_text"):
        fund.register_collective(ADMIN, slug="nul", name="Y\x00Z")
    with pytest.raises(LedgerError, match=r"donations\[0\]\.amount"):
        fund.record_donations(TREASURER, "food", [donation("-1", "r")])
    with pytest.raises(LedgerError, match=r"^amount"):
        fund.record_donation(TREASURER, "food", donation("-1", "r"))


def test_idempotency_records_hold_no_guessable_digest(fund: Fund) -> None:
    import hashlib
    import json as json_

    from ledger.log.schema import idempotency_keys

    iban = "DE89370400440532013000"
    fund.record_donation(
        TREASURER, "food", donation("100", "r", donor_reference=iban), idempotency_key="k"
    )
    with fund.log.engine.connect() as conn:
        stored = conn.execute(select(idempotency_keys.c.fingerprint)).scalars().all()
    plain = hashlib.sha256(json_.dumps(iban).encode()).hexdigest()
    assert stored and all(plain not in row and iban not in row for row in stored)


def test_waiting_single_donations_are_each_judged_alone(fund: Fund, signer: Signer) -> None:
    """Single donations that queue while another is written go in one transaction (group
    commit); each is still checked in order, as if alone, and only the bad ones fail."""
    import threading
    import time

    singles = fund._singles  # (internal: the test holds its turn so that a group forms)
    calls: list[tuple[str, dict[str, Any], str | None]] = [
        ("food", donation("100", "g1"), "k1"),
        ("food", donation("100", "g1"), "k1"),  # a retry of the first, in the same group
        ("food", donation("300", "g1"), "k1"),  # the same key for something else
        ("nowhere", donation("100", "g2"), None),
        ("food", donation("-1", "g3"), None),
        ("food", {**donation("5", "g4"), "currency": "USD"}, None),
        ("food", donation("250", "g5", display_name="Ana"), "k2"),
    ]
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        pool, item, key = calls[i]
        try:
            results[i] = fund.record_donation(TREASURER, pool, item, idempotency_key=key)
        except BaseException as exc:  # asserted below
            results[i] = exc

    size = fund.log.head().size
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with singles._turn:
        for i, thread in enumerate(threads):
            thread.start()
            while len(singles._waiting) <= i:  # one at a time: their order is known
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()

    first, retry, conflict, nowhere, negative, usd, last = (results[i] for i in range(7))
    assert (first.seq, first.replayed) == (size, False) and first.salts
    assert (retry.seq, retry.replayed) == (size, True)
    assert isinstance(conflict, IdempotencyConflict) and conflict.fields == ("amount",)
    assert isinstance(nowhere, NotFound)
    assert isinstance(negative, LedgerError) and negative.code == "invalid_amount"
    assert isinstance(usd, LedgerError) and usd.code == "currency_not_accepted"
    assert (last.seq, last.replayed) == (size + 1, False)
    assert fund.log.head().size == size + 2
    assert books(fund)["available"] == 350
    after = fund.record_donation(TREASURER, "food", donation("100", "g1"), idempotency_key="k1")
    assert (after.seq, after.replayed) == (size, True)
    verify_database(fund.log.engine, [signer.verifier()])
    check_replay(fund.log.engine)
