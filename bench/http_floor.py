"""The HTTP floor: what answering a donation POST costs with no ledger behind it.

``bench/api_write.py`` serves these with the same gunicorn configuration as Lunaria and drives
them with the same client, so the table shows how fast single donations over HTTP could be
on this machine if recording one cost nothing:

* ``bare``: a plain WSGI callable, no framework, no database: read the body, answer a 201 of
  a receipt's size. Nothing written in Python for gunicorn can answer faster.
* ``flask``: the same in Flask, with the JSON parsed and the answer serialised: the floor of
  the framework the API is built on.

Both answer ``GET`` with 200, so the benchmark's readiness check works unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request

# The shape and size of a single donation's receipt (api/schemas.py's Receipt).
RECEIPT = {
    "seq": 123456,
    "receipt_id": 123456,
    "entry_hash": "9" * 64,
    "ts": "2026-12-04T15:32:21.123456Z",
    "pool": "bench-pool",
    "amount": "2500",
    "currency": "EUR",
    "channel": "bank",
    "cycle": 1292,
    "commitment": "c" * 64,
    "salt": "5" * 32,
    "display_name": None,
}
RECEIPT_BYTES = json.dumps(RECEIPT, separators=(",", ":")).encode()
REPLAYED = ("Idempotent-Replayed", "false")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def bare(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Read the body, answer a fixed receipt."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    status = "201 Created" if environ["REQUEST_METHOD"] == "POST" else "200 OK"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(RECEIPT_BYTES))),
        REPLAYED,
    ]
    start_response(status, headers)
    return [RECEIPT_BYTES]


flask = Flask(__name__)


@flask.route("/api/v1/pools/<slug>/donations", methods=["POST"])
def donation(slug: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    body = request.get_json()
    return {**RECEIPT, "pool": slug, "amount": body["amount"]}, 201, dict([REPLAYED])


@flask.route("/api/v1/pools", methods=["GET"])
def pools() -> dict[str, Any]:
    return {"pools": []}
