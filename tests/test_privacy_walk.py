"""No private value ever reaches a public response.

After ``lunaria init --demo`` and donations, grants and payouts written through the API with
distinctive private values (donor and external references, notes, recipient details, payment
references, token labels, the donors' receipt salts), walk every GET route the app serves —
the JSON API, the tlog-tiles, the web pages, feeds, reports if there are any — with its path
parameters expanded from real ids, follow the pages and links they lead to, and search every
body and header for those values. A route whose parameters this walk does not know how to
fill fails the test: a new public route must be walked too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import product
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from werkzeug.routing import Rule

from api import db, mirrors
from api.charts import CHARTS
from ledger.fund.privacy import private_record
from ledger.fund.schema import private_records, tokens
from ledger.log.entry import KINDS
from ledger.log.mirroring import Mirrors, origin_hash
from ledger.log.tiles import bundles_for_size, tiles_for_size
from tests.statement_builder import Line, camt053
from tests.test_api_support import Http, cli_admin_token

MAX_URLS = 4000
ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
REPORT_FORMATS = ("pdf", "csv", "json", "jsonl", "beancount")
LANGUAGES = ("en", "es", "uk")


@dataclass
class Secrets:
    """Every private value written, with a unique marker so a hit cannot be a coincidence."""

    values: list[str] = field(default_factory=list)
    written: list[int] = field(default_factory=list)  # seqs of the entries that carry them
    links: list[str] = field(default_factory=list)  # grant requests' secret status links
    # A pledge's secret and payment reference: shown only on the donor's own pages (whose URL
    # holds the secret), stored only as hashes (so not in the private store either).
    own: dict[str, list[str]] = field(default_factory=dict)

    def new(self, what: str) -> str:
        value = f"{what} PRIVATE-{uuid.uuid4().hex[:12]}"
        self.values.append(value)
        return value


def write_private_history(app: Flask, client: Any, runner: FlaskCliRunner) -> Secrets:
    result = runner.invoke(args=["init", "--demo"])
    assert result.exit_code == 0 and "loaded the demo" in result.output, result.output
    secrets = Secrets()
    http = Http(app, client)
    admin = cli_admin_token(runner)

    def token(role: str, **extra: str) -> str:
        body = {"role": role, "label": secrets.new(f"{role} token of Marisol Quenby"), **extra}
        issued: str = http.post("/tokens", body, token=admin, status=201).get_json()["token"]
        return issued

    treasurer, applicant = token("treasurer"), token("applicant")
    pool = http.get("/pools/food-bank")
    custodian = pool["custodian"]
    assert custodian is not None
    members = http.get(f"/collectives/{custodian}")["members"]
    voters = {m: token("member", collective=custodian, member=m) for m in members}

    def donate(amount: str, currency: str) -> dict[str, Any]:
        return {
            "amount": amount,
            "currency": currency,
            "channel": "bank",
            "external_reference": secrets.new("IBAN ES91 2100 0418 4502 0005 1332"),
            "donor_reference": secrets.new("donor jaroslava.pticek@example.org"),
            "note": secrets.new("call Zebulon on +34 600 111 222"),
        }

    for slug, amount, currency in [("food-bank", "1500", "EUR"), ("legal-aid", "2500000", "USDC")]:
        response = http.post(
            f"/pools/{slug}/donations", donate(amount, currency), token=treasurer, status=201
        ).get_json()
        secrets.values.append(response["salt"])  # the donor's alone
        secrets.written.append(response["seq"])
    batch = {"donations": [donate(str(700 + i), "EUR") for i in range(3)]}
    receipts = http.post(
        "/pools/food-bank/donations:batch", batch, token=treasurer, status=201
    ).get_json()["receipts"]
    secrets.values.extend(r["salt"] for r in receipts)
    secrets.written.extend(r["seq"] for r in receipts)

    def propose(amount: str) -> int:
        body = {
            "amount": amount,
            "currency": "EUR",
            "purpose": "Heating bill for a family of four",
            "urgency": "normal",
            "recipient": "family-walk",
            "recipient_details": secrets.new("pay Oksana Hrytsenko, IBAN UA21 3223 1300 0002"),
        }
        grant: int = http.post(
            "/pools/food-bank/grants", body, token=applicant, status=201
        ).get_json()["id"]
        secrets.written.append(grant)
        return grant

    paid = propose("1200")
    for member_token in voters.values():
        vote = http.post(
            f"/grants/{paid}/votes", {"vote": "approve"}, token=member_token, status=201
        ).get_json()
        secrets.written.append(vote["seq"])
        if vote["status"] == "approved":
            break
    else:
        raise AssertionError(f"{custodian} never reached quorum on grant {paid}")
    payout = {"payment_reference": secrets.new("SEPA ref for Oksana Hrytsenko")}
    disbursed = http.post(
        f"/grants/{paid}/disbursements", payout, token=treasurer, status=201
    ).get_json()
    secrets.written.append(disbursed["seq"])
    propose("900")  # left open in the queue
    ask_for_a_grant(client, secrets)
    pledge_and_pay(client, http, treasurer, secrets)
    return secrets


def ask_for_a_grant(client: Any, secrets: Secrets) -> None:
    """A grant request from outside, through the public form: its contact is private."""
    form = client.get("/pools/food-bank/ask").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    ask = {
        "csrf_token": token.group(1),
        "amount": "30",
        "currency": "EUR",
        "urgency": "normal",
        "purpose": "School books for two children",
        "contact": secrets.new("Marisol Quenby, marisol.q@example.org, +34 600 222 333"),
    }
    sent = client.post("/pools/food-bank/ask", data=ask)
    assert sent.status_code == 201, sent.get_data(as_text=True)
    link = re.search(r'id="status-link">[^<]*/requests/([^<]+)<', sent.get_data(as_text=True))
    assert link is not None
    secrets.links.append(link.group(1))


def pledge_and_pay(client: Any, http: Http, treasurer: str, secrets: Secrets) -> None:
    """A pledge through the public form, and a bank credit carrying its payment reference: the
    pool shows the aggregates; the secret and the reference stay the donor's."""
    form = client.get("/pools/food-bank/pledge").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    pledge = {"csrf_token": token.group(1), "amount": "25", "currency": "EUR"}
    made = client.post("/pools/food-bank/pledge", data=pledge)
    assert made.status_code == 201, made.get_data(as_text=True)
    page = made.get_data(as_text=True)
    link = re.search(r'id="pledge-link">[^<]*/pledges/([^<]+)<', page)
    reference = re.search(r'id="pledge-reference">([^<]+)<', page)
    assert link is not None and reference is not None
    secrets.own[link.group(1)] = [link.group(1), reference.group(1)]
    secrets.links.append(link.group(1))
    statement = camt053([Line("25.00", "BANK-PLEDGE-1", remittance=f"Pledge {reference.group(1)}")])
    imported = http.post(
        "/pools/food-bank/imports", {"statement": statement.decode()}, token=treasurer, status=200
    ).get_json()
    assert imported["pledge_payments"] == 1
    secrets.written.extend(line["seq"] for line in imported["lines"] if line["seq"])


def stored_privately(app: Flask, secrets: Secrets) -> None:
    """The values were really written (to the private tables): the walk is not vacuous."""
    with app.app_context(), db.get_engine().connect() as conn:
        vault = db.get_fund().vault
        commitments = conn.execute(select(private_records.c.commitment)).scalars().all()
        records = [private_record(conn, vault, c) for c in commitments]
        kept = " ".join(
            json.dumps(r.payload, ensure_ascii=False) + r.salt.hex() for r in records if r
        )
        kept += " ".join(conn.execute(select(tokens.c.label)).scalars())
    missing = [v for v in secrets.values if v not in kept]
    assert not missing, missing


# -- the walk -----------------------------------------------------------------------------------


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value and value.startswith("/"):
                self.found.append(value)


@dataclass
class Walk:
    app: Flask
    client: Any
    secrets: Secrets
    queue: list[tuple[str, int]] = field(default_factory=list)  # (url, link depth)
    seen: set[str] = field(default_factory=set)
    served: dict[str, int] = field(default_factory=dict)  # rule -> responses below 400
    leaks: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)

    def add(self, url: str, depth: int = 0) -> None:
        if url not in self.seen and urlsplit(url).scheme == "":
            self.seen.add(url)
            self.queue.append((url, depth))

    def run(self) -> None:
        adapter = self.app.url_map.bind("localhost")
        while self.queue:
            assert len(self.seen) <= MAX_URLS, "the walk found more URLs than expected"
            url, depth = self.queue.pop(0)
            response = self.client.get(url)
            self.inspect(url, response)
            if response.status_code >= 500:
                self.failures.append((url, response.status_code))
            try:
                rule, _ = adapter.match(urlsplit(url).path, method="GET", return_rule=True)
            except Exception:  # a link to nothing: Werkzeug's own 404
                continue
            if response.status_code < 400:
                self.served[rule.rule] = self.served.get(rule.rule, 0) + 1
            self.follow(url, depth, response)

    def inspect(self, url: str, response: Any) -> None:
        """Note every private value the answer (body or headers) holds."""
        seen_text = response.get_data() + str(response.headers).encode()
        self.leaks.extend((url, v) for v in self.secrets.values if v.encode() in seen_text)
        for secret, values in self.secrets.own.items():
            if secret not in url:  # (the donor's own page shows them)
                self.leaks.extend((url, v) for v in values if v.encode() in seen_text)

    def follow(self, url: str, depth: int, response: Any) -> None:
        """Links of pages the routes gave (one step, not the whole chain of entry pages),
        and every further page of a paginated answer."""
        if response.mimetype == "text/html" and depth == 0:
            links = Links()
            links.feed(response.get_data(as_text=True))
            for link in links.found:
                self.add(link, depth + 1)
        elif response.is_json:
            body = response.get_json(silent=True)
            if isinstance(body, dict) and isinstance(body.get("next_url"), str):
                self.add(body["next_url"], depth)
            elif isinstance(body, dict) and isinstance(body.get("next"), int):
                parts = urlsplit(url)
                query = [p for p in parts.query.split("&") if p and not p.startswith("after=")]
                query.append(f"after={body['next']}")
                self.add(f"{parts.path}?{'&'.join(query)}", depth)


# GET routes that answer only with a bearer token (a collective's webhooks, a member's mail
# opt-in): no public response to walk.
TOKEN_READS = (
    "/api/v1/webhooks",
    "/api/v1/webhooks/<endpoint_id>",
    "/api/v1/webhooks/<endpoint_id>/deliveries",
    "/api/v1/notifications/email",
    "/api/v1/me",
    "/api/v1/me/queue",
)


def get_rules(app: Flask) -> Iterator[Rule]:
    for rule in app.url_map.iter_rules():
        if "GET" in (rule.methods or ()):
            yield rule


def values_for(rule: Rule, name: str, ids: dict[str, list[str]]) -> list[str]:
    if name == "slug":
        return ids["collectives"] if "/collectives/" in rule.rule else ids["pools"]
    if name == "name" and "/charts/" in rule.rule:
        return [*CHARTS, "no-such-chart"]
    known = {
        "grant_id": "grants",
        "seq": "seqs",
        "size": "sizes",
        "path": "tiles",
        "filename": "static",
        "number": "cycles",
        "cycle": "cycles",
        "endpoint_id": "webhooks",
        "secret": "links",
        "key": "mirrors",
    }
    if name in known:
        return ids[known[name]]
    if name in ("fmt", "format", "ext", "extension"):
        return list(REPORT_FORMATS)
    raise AssertionError(
        f"the privacy walk does not know how to fill <{name}> of {rule.rule}: "
        "teach tests/test_privacy_walk.py its real values"
    )


def walk_every_route(walk: Walk, ids: dict[str, list[str]]) -> list[Rule]:
    """Walk every GET route of the app, with each parameter's values and queries (and what the
    answers link); the routes."""
    rules = list(get_rules(walk.app))
    for rule in rules:
        names = sorted(rule.arguments)
        choices = [values_for(rule, name, ids) for name in names]
        for combination in product(*choices):
            path = rule.rule
            for name, value in zip(names, combination, strict=True):
                path = re.sub(rf"<(?:[^<>:]+:)?{name}>", quote(value, safe="/"), path)
            walk.add(path)
            for query in queries(path, ids, KINDS):
                walk.add(f"{path}?{query}")
    walk.run()
    return rules


def public_ids(app: Flask, http: Http, secrets: Secrets) -> dict[str, list[str]]:
    pools = [p["slug"] for p in http.get("/pools")]
    grants: list[str] = []
    cycles: set[str] = set()
    for slug in pools:
        cycles.update(str(c["number"]) for c in http.get(f"/pools/{slug}/cycles"))
        page: dict[str, Any] = {"next": -1}
        while page["next"] is not None:
            after = "" if page["next"] == -1 else f"&after={page['next']}"
            page = http.get(f"/pools/{slug}/grants?limit=200{after}")
            grants.extend(str(g["id"]) for g in page["items"])
    with app.app_context():
        log = db.get_log()
        size = log.head().size
        latest = log.latest_checkpoint()
    assert latest is not None
    near = {s + d for s in secrets.written for d in (-1, 0, 1)}
    seqs = sorted({0, 1, size // 2, size - 1, size, *near} & set(range(size + 1)))
    tiles = [t.path.removeprefix("tile/") for t in tiles_for_size(latest.size)]
    tiles += [t.path.removeprefix("tile/") for t in bundles_for_size(latest.size)]
    static = Path(str(app.static_folder))
    mirrored = mirror_itself(app)
    return {
        "pools": [*pools, "no-such-pool"],
        "collectives": [c["slug"] for c in http.get("/collectives")],
        "grants": grants,
        "cycles": sorted(cycles),
        "seqs": [str(s) for s in seqs],
        "tiles": tiles,
        "static": [str(p.relative_to(static)) for p in static.rglob("*") if p.is_file()],
        "sizes": [str(latest.size), str(size)],
        "webhooks": ["0123456789abcdef"],  # (no token: refused before it is looked up)
        "links": [*secrets.links, "no-such-link"],  # status links; invitations (workspace)
        "mirrors": [mirrored, "0" * 64],  # (/mirror/<key>/…, /federation/mirrors/<key>)
    }


def mirror_itself(app: Flask) -> str:
    """Mirror this instance's own log (its /tlog/ read through the test client), so that the
    mirror's routes and the federation pages have something to serve; its origin hash."""

    def fetch(url: str, limit: int) -> bytes | None:
        response = app.test_client().get(urlsplit(url).path)  # (a client per thread)
        return None if response.status_code == 404 else bytes(response.data)

    with app.app_context():
        found = mirrors.get_mirrors()
        copying = Mirrors(found.engine, found.cosigner, found.clock, fetch=fetch)
        log = db.get_log()
    assert log.signer is not None
    copying.add("http://localhost/", log.signer.verifier().vkey())  # (outside the context)
    return origin_hash(log.origin)


def queries(path: str, ids: dict[str, list[str]], kinds: Iterable[str]) -> list[str]:
    """Query strings worth asking a path for, beyond none at all."""
    size = ids["sizes"][-1]
    if path == "/api/v1/ledger/entries":
        asked = [{"limit": "1000"}, *({"kind": k, "limit": "1000"} for k in sorted(kinds))]
        asked += [{"pool": p, "limit": "1000"} for p in ids["pools"][:-1]]
        return [urlencode(q) for q in asked]
    if path == "/api/v1/ledger/proofs/inclusion":
        return [urlencode({"index": s, "size": size}) for s in ids["seqs"] if int(s) < int(size)]
    if path == "/api/v1/ledger/proofs/consistency":
        return [urlencode({"from": f, "to": size}) for f in ("0", "1", ids["sizes"][0])]
    if path.startswith("/api/v1/pools/") and path.endswith("/grants"):
        return [urlencode({"status": s}) for s in ("proposed", "approved", "disbursed")]
    if not path.startswith(("/api/", "/tlog/", "/static/")):
        return [f"lang={lang}" for lang in LANGUAGES]
    return []


def test_no_private_value_in_any_public_response(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    secrets = write_private_history(app, client, runner)
    stored_privately(app, secrets)
    http = Http(app, client)
    ids = public_ids(app, http, secrets)

    walk = Walk(app, client, secrets)
    rules = walk_every_route(walk, ids)

    assert not walk.leaks, f"private values in public responses: {walk.leaks[:5]}"
    assert not walk.failures, f"server errors: {walk.failures[:5]}"
    for private in TOKEN_READS:  # reads of one's own settings: not public, refused anonymously
        assert client.get(private.replace("<endpoint_id>", "0" * 16)).status_code == 401
    never = sorted(r.rule for r in rules if r.rule not in walk.served and r.rule not in TOKEN_READS)
    assert not never, f"routes the walk never got a successful answer from: {never}"
    assert len(walk.seen) > 200
    for needed in ("/tlog/tile/<path:path>", "/api/v1/pools/<slug:slug>/feed.atom", "/"):
        assert walk.served.get(needed), needed
