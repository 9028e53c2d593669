"""Request and response examples of the main flows, shown in the OpenAPI document.

Keyed by (method, OpenAPI path); :class:`api.docs.ExamplesPlugin` puts them in the spec, so
Swagger UI offers them as ready bodies. tests/test_api_docs.py sends every request example
through the API in order (token, donation, grant, vote) and verifies the receipt example
offline: an example that stops working fails the tests, not a reader.
"""

from __future__ import annotations

from typing import Any

Examples = dict[str, dict[str, Any]]


def _example(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


TOKENS = "/api/v1/tokens"
DONATIONS = "/api/v1/pools/{slug}/donations"
GRANTS = "/api/v1/pools/{slug}/grants"
VOTES = "/api/v1/grants/{grant_id}/votes"
RECEIPT = "/api/v1/receipts/{seq}"
VKEY = "/api/v1/ledger/vkey"

REQUESTS: dict[tuple[str, str], Examples] = {
    ("post", TOKENS): {
        "treasurer": _example(
            "A token for the treasurer who records donations",
            {"role": "treasurer", "label": "Treasurer, bank reconciliation"},
        ),
        "applicant": _example(
            "A token for a social worker who proposes grants",
            {
                "role": "applicant",
                "label": "Social worker, north district",
                "expires": "2027-06-30T00:00:00Z",
            },
        ),
    },
    ("post", DONATIONS): {
        "bank": _example(
            "25.00 EUR by bank transfer; the reference stays private",
            {
                "amount": "2500",
                "currency": "EUR",
                "channel": "bank",
                "external_reference": "BANK-2026-11-0042",
            },
        ),
        "named": _example(
            "A donor who chose to be named publicly (the name is erasable)",
            {
                "amount": "10000",
                "currency": "EUR",
                "channel": "cash",
                "external_reference": "CASH-BOX-2026-11-07",
                "display_name": "Bakery on Calle Mayor",
            },
        ),
    },
    ("post", GRANTS): {
        "urgent": _example(
            "An urgent grant of 120.00 EUR (urgent ones are decided first)",
            {
                "amount": "12000",
                "currency": "EUR",
                "purpose": "Emergency rent to prevent an eviction",
                "urgency": "urgent",
                "recipient": "family-12",
                "recipient_details": "kept private: bank account, contact",
            },
        ),
    },
    ("post", VOTES): {
        "approve": _example("A custodian member approves", {"vote": "approve"}),
        "fast_lane": _example(
            "Approve alone, within the fast lane's cap and allowance",
            {"vote": "approve", "fast_lane": True, "note": "Small and urgent"},
        ),
        "reject": _example(
            "A custodian member rejects, saying why", {"vote": "reject", "note": "Duplicate"}
        ),
    },
}

# A real receipt (of a log made for this example): `lunaria verify-receipt` accepts it with
# the key in its ``vkey`` field, as the docs test checks.
RECEIPT_EXAMPLE: dict[str, Any] = {
    "checkpoint": (
        "ledger.example.org/lunaria\n3\n+MgVRA427YnCTmTXqDy4vJrjsnKWpOjUkr3SpbgyrWk"
        "=\n\n— ledger.example.org/lunaria zMzJWmZNzcsRH3vv4XdnKZqPYrxN8oDHXBbmFeZK"
        "K21jP81BbhkaRlfqvHCmIewzxoRRKs3+WA7qdVgZaxdynqy8oAc=\n"
    ),
    "entry": {
        "actor": "admin:f013e0bacf7d96e6",
        "data": {
            "amount": "2500",
            "channel": "bank",
            "currency": "EUR",
            "cycle": 332,
            "donor": {
                "commitment": "3282e443cadab43468753170d91de0cf7fa014a80757b88f94b30c2941ccefc0",
            },
            "pool": "food-bank",
            "postings": [
                {
                    "account": "food-bank:donations",
                    "amount": "-2500",
                    "currency": "EUR",
                },
                {
                    "account": "food-bank:available",
                    "amount": "2500",
                    "currency": "EUR",
                },
            ],
            "reference": "3282e443cadab43468753170d91de0cf7fa014a80757b88f94b30c2941ccefc0",
            "v": 2,
        },
        "kind": "donation_recorded",
        "prev": "f95c7e283a5fc41440d6feb4cad8615581907afe7a6719b4c48811e6fd82ae3f",
        "seq": 2,
        "ts": "2026-12-07T23:05:00.768019Z",
        "v": 1,
    },
    "entry_b64": (
        "eyJhY3RvciI6ImFkbWluOmYwMTNlMGJhY2Y3ZDk2ZTYiLCJkYXRhIjp7ImFtb3VudCI6IjI1"
        "MDAiLCJjaGFubmVsIjoiYmFuayIsImN1cnJlbmN5IjoiRVVSIiwiY3ljbGUiOjMzMiwiZG9u"
        "b3IiOnsiY29tbWl0bWVudCI6IjMyODJlNDQzY2FkYWI0MzQ2ODc1MzE3MGQ5MWRlMGNmN2Zh"
        "MDE0YTgwNzU3Yjg4Zjk0YjMwYzI5NDFjY2VmYzAifSwicG9vbCI6ImZvb2QtYmFuayIsInBv"
        "c3RpbmdzIjpbeyJhY2NvdW50IjoiZm9vZC1iYW5rOmRvbmF0aW9ucyIsImFtb3VudCI6Ii0y"
        "NTAwIiwiY3VycmVuY3kiOiJFVVIifSx7ImFjY291bnQiOiJmb29kLWJhbms6YXZhaWxhYmxl"
        "IiwiYW1vdW50IjoiMjUwMCIsImN1cnJlbmN5IjoiRVVSIn1dLCJyZWZlcmVuY2UiOiIzMjgy"
        "ZTQ0M2NhZGFiNDM0Njg3NTMxNzBkOTFkZTBjZjdmYTAxNGE4MDc1N2I4OGY5NGIzMGMyOTQx"
        "Y2NlZmMwIiwidiI6Mn0sImtpbmQiOiJkb25hdGlvbl9yZWNvcmRlZCIsInByZXYiOiJmOTVj"
        "N2UyODNhNWZjNDE0NDBkNmZlYjRjYWQ4NjE1NTgxOTA3YWZlN2E2NzE5YjRjNDg4MTFlNmZk"
        "ODJhZTNmIiwic2VxIjoyLCJ0cyI6IjIwMjYtMTItMDdUMjM6MDU6MDAuNzY4MDE5WiIsInYi"
        "OjF9"
    ),
    "leaf_hash": "84eba12c9d5b1d83a138b2418026354dac9daee9d1bf8ec56efb42319915b704",
    "proof": {
        "hashes": [
            "2d454a620f34f041fd56f121118edb3c2f81983a8f28c56ee090933b799df350",
        ],
        "index": 2,
        "leaf_hash": "84eba12c9d5b1d83a138b2418026354dac9daee9d1bf8ec56efb42319915b704",
        "size": 3,
    },
    "seq": 2,
    "vkey": ("ledger.example.org/lunaria+ccccc95a+ASLyFt+4MM6O7+5fr5ntXV32jgk5Z+CPSUlKIa4C1h+3"),
}

RESPONSES: dict[tuple[str, str], Examples] = {
    ("get", RECEIPT): {
        "donation": _example(
            "A donation's receipt: save it, then verify it offline with `lunaria "
            "verify-receipt receipt.json --vkey KEY` or on the /verify page",
            RECEIPT_EXAMPLE,
        ),
    },
    ("get", VKEY): {
        "one_key": _example(
            "The key to verify checkpoints with (compare it with one published elsewhere)",
            {
                "origin": RECEIPT_EXAMPLE["vkey"].split("+")[0],
                "checkpoint_size": RECEIPT_EXAMPLE["proof"]["size"],
                "keys": [
                    {
                        "vkey": RECEIPT_EXAMPLE["vkey"],
                        "name": RECEIPT_EXAMPLE["vkey"].split("+")[0],
                        "key_id": RECEIPT_EXAMPLE["vkey"].split("+")[1],
                        "current": True,
                        "introduced_seq": 0,
                        "retired_seq": None,
                        "signs_latest_checkpoint": True,
                    }
                ],
            },
        ),
    },
}
