"""The HTTP floor: what answering a donation POST costs with no ledger behind it.

``bench/api_write.py`` serves these as ``lunaria serve`` serves Lunaria (waitress, with
api/serve_cli.py's settings: ``--serve`` below) and drives
them with the same client, so the table shows how fast single donations over HTTP could be
on this machine if recording one cost nothing:

* ``bare``: a plain WSGI callable, no framework, no database: read the body, answer a 201 of
  a receipt's size. Nothing written in Python for a WSGI server can answer faster.
* ``flask``: the same in Flask, with the JSON parsed and the answer serialised: the floor of
  the framework the API is built on.

Both answer ``GET`` with 200, so the benchmark's readiness check works unchanged.

Run alone, it measures the two floors by themselves, served and driven as api_write.py does
(single donation POSTs, ``--clients`` threads, rates are medians over rounds):

    .venv/bin/python bench/http_floor.py             # 5 rounds of 400 donations per app
    .venv/bin/python bench/http_floor.py --smoke     # tiny: every step runs, in seconds

Progress goes to stderr, the results to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
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


# -- run alone: the floors by themselves --------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    rounds: int
    requests: int  # single donations per app per round
    warmup: int  # single donations per app before the first round


FULL = Sizes(rounds=5, requests=400, warmup=40)
# The smallest run that still takes every step and prints every row: a test that the benchmark
# works (tests/test_bench_smoke.py), not a measurement.
SMOKE = Sizes(rounds=1, requests=4, warmup=4)


def serve(argv: Sequence[str]) -> int:
    """``--serve APP --host H --port P --threads N``: serve one app as ``lunaria serve`` serves
    Lunaria (waitress, api/serve_cli.py's settings: bench/serving.py's ``serve_app``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=("bare", "flask"), required=True)
    chosen, rest = parser.parse_known_args(argv)
    from bench.serving import serve_app

    return serve_app(bare if chosen.serve == "bare" else flask, rest)


def main(argv: Sequence[str] | None = None) -> int:
    # The apps above are what the server serves; the benchmark's machinery is only for a run.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    arguments = sys.argv[1:] if argv is None else list(argv)
    if "--serve" in arguments:
        return serve(arguments)
    from api.serve_cli import SETTINGS
    from bench.api_write import POOL, Load, LoadResult, drive, floor_server, latency
    from bench.ledger_core import Figure, human_rate, progress, table
    from bench.serving import settings
    from bench.smoke import add_size_options

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_options(parser)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--threads", type=int, default=SETTINGS["threads"], help="waitress threads")
    args = parser.parse_args(arguments)
    sizes = SMOKE if args.smoke else FULL
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load}; "
        f"python {platform.python_version()}\nserver: {settings(args.threads)}; "
        f"load: {args.clients} client threads",
        flush=True,
    )

    apps = {"bare": "bare WSGI", "flask": "Flask"}
    rates = {app: Figure() for app in apps}
    latencies: dict[str, list[float]] = {app: [] for app in apps}
    failed = dict.fromkeys(apps, 0)
    began = time.perf_counter()
    with floor_server("bare", args) as bare_port, floor_server("flask", args) as flask_port:
        ports = {"bare": bare_port, "flask": flask_port}

        def run(app: str, requests: int) -> LoadResult:
            path = f"/api/v1/pools/{POOL}/donations"
            seed = f"{app}-{time.perf_counter_ns()}"
            result = drive(Load(ports[app], "floor", path, requests, 1, args.clients, seed))
            if not result.latencies:
                raise RuntimeError(f"{app}: every request failed, first: {result.errors[0]}")
            return result

        for app in apps:
            run(app, sizes.warmup)
        for round_ in range(sizes.rounds):
            for app in apps if round_ % 2 == 0 else reversed(apps):
                result = run(app, sizes.requests)
                rates[app].add(result.rate(1))
                latencies[app].extend(result.latencies)
                failed[app] += len(result.errors)
            progress(
                f"round {round_ + 1}: "
                + ", ".join(f"{apps[app]} {rates[app].samples[-1]:,.0f}/s" for app in apps)
            )
    sent = sizes.rounds * sizes.requests
    rows = [
        ["measurement", *apps.values()],
        [
            f"single donations, {args.clients} clients",
            *(f"{human_rate(rates[app].median)} {rates[app].spread()}".rstrip() for app in apps),
        ],
        ["   latency p50 / p99", *(latency(latencies[app]) for app in apps)],
        ["   not answered 201", *(f"{failed[app]}/{sent}" for app in apps)],
    ]
    print()
    print(table(rows))
    print()
    print(
        f"{'smoke' if args.smoke else 'full'} run in {time.perf_counter() - began:.0f} s; "
        f"{sizes.rounds} rounds of {sizes.requests} donations per app; rates are medians over "
        "rounds, ±x% is the largest distance of a round from the median"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
