"""The public read API over HTTP, on SQLite and PostgreSQL: entries and their pages, the
checkpoint and keys, proofs (and every refusal), receipts that verify offline, anchors, the
log as tlog-tiles (audited from the outside against a live server) and the Atom feed."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from api import db, ledger_api
from exports.links import checkpoint_url
from ledger.fund.audit import audit
from ledger.log import merkle, public
from ledger.log.append import Log
from ledger.log.canonical import canonical_bytes
from ledger.log.notes import Signer, Verifier, open_checkpoint
from ledger.log.receipts import parse_receipt, verify_receipt
from ledger.log.tiles import bundles_for_size, read_resource, tiles_for_size
from tests.conftest import ORIGIN
from tests.test_api_support import PROBLEM, Story, build_story, donation, proposal

LONG = "public, max-age=31536000, immutable"
SHORT = "public, max-age=10"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    return build_story(app, client, runner)


def is_pools(entry: dict[str, Any], pool: str) -> bool:
    """Whether an entry is the pool's: its ``data.pool``, or the pool's own creation."""
    data = entry["data"]
    return data.get("pool") == pool or (
        entry["kind"] == "pool_created" and data.get("slug") == pool
    )


def get(story: Story, path: str, status: int = 200, **kwargs: Any) -> TestResponse:
    response: TestResponse = story.http.client.get(path, **kwargs)
    assert response.status_code == status, (path, response.get_data(as_text=True)[:400])
    return response


def refused(story: Story, path: str, code: str, status: int = 422) -> dict[str, Any]:
    response = get(story, path, status)
    problem: dict[str, Any] = response.get_json()
    assert response.mimetype == PROBLEM and problem["code"] == code, (path, problem)
    assert problem["status"] == status and problem["detail"]
    return problem


def the_log(story: Story) -> Log:
    with story.http.app.app_context():
        return db.get_log()


def verifier(story: Story) -> Verifier:
    with story.http.app.app_context():
        signer = db.load_signer()
    assert signer is not None
    return signer.verifier()


def query_of(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert parts.path == "/api/v1/ledger/entries" or parts.path.startswith("/api/v1/")
    return {name: values[0] for name, values in parse_qs(parts.query).items()}


def all_entries(story: Story) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    path: str | None = "/api/v1/ledger/entries?limit=1000"
    while path is not None:
        page = get(story, path).get_json()
        items.extend(page["items"])
        path = page["next_url"]
    return items


def grow(story: Story, donations: int) -> None:
    """Many entries in one request (a donations batch)."""
    batch = {"donations": [donation(str(100 + i)) for i in range(donations)]}
    story.http.post("/pools/food/donations:batch", batch, token=story.treasurer, status=201)


# -- entries ----------------------------------------------------------------------------------


def test_entries_pages_and_single_entries(story: Story) -> None:
    size = story.http.size()
    seen: list[dict[str, Any]] = []
    cursor, pages = -1, 0
    while True:
        page = get(story, f"/api/v1/ledger/entries?after={cursor}&limit=7").get_json()
        seen.extend(page["items"])
        pages += 1
        if page["next"] is None:
            assert page["next_url"] is None
            break
        assert page["next"] == page["items"][-1]["seq"]
        assert query_of(page["next_url"]) == {"after": str(page["next"]), "limit": "7"}
        cursor = page["next"]
    assert [item["seq"] for item in seen] == list(range(size))
    assert pages == -(-size // 7)
    for item in seen:
        entry = item["entry"]
        assert set(item) == {"seq", "hash", "entry", "texts"} and entry["seq"] == item["seq"]
        # The object is intact: its hash is the leaf hash of its canonical bytes as served.
        assert merkle.leaf_hash(canonical_bytes(entry)).hex() == item["hash"]
    assert all_entries(story) == seen

    one = get(story, "/api/v1/ledger/entries/4")
    assert one.get_json() == seen[4]
    assert one.headers["Cache-Control"] == LONG
    assert one.headers["ETag"] == f'"{seen[4]["hash"]}"'
    assert one.headers["Access-Control-Allow-Origin"] == "*"
    again = get(
        story, "/api/v1/ledger/entries/4", 304, headers={"If-None-Match": one.headers["ETag"]}
    )
    assert again.get_data() == b""
    refused(story, f"/api/v1/ledger/entries/{size}", "not_found", 404)
    refused(story, "/api/v1/ledger/entries/x", "not_found", 404)
    refused(story, "/api/v1/ledger/entries/-1", "not_found", 404)


def test_pagination_edges(story: Story) -> None:
    size = story.http.size()
    last = size - 1
    first = get(story, "/api/v1/ledger/entries?after=-1&limit=1")
    assert [i["seq"] for i in first.get_json()["items"]] == [0]
    assert first.get_json()["next"] == 0
    assert first.headers["Cache-Control"] == LONG  # a page that ends before the log never changes
    default = get(story, "/api/v1/ledger/entries").get_json()
    assert [i["seq"] for i in default["items"]] == list(range(size))  # limit 100 > size
    assert default["next"] is None
    tail = get(story, f"/api/v1/ledger/entries?after={last - 1}&limit=1")
    assert [i["seq"] for i in tail.get_json()["items"]] == [last]
    assert tail.get_json()["next"] is None and tail.headers["Cache-Control"] == SHORT
    for after in (last, last + 5, 10**18):
        empty = get(story, f"/api/v1/ledger/entries?after={after}").get_json()
        assert empty == {"items": [], "next": None, "next_url": None}
    assert len(get(story, "/api/v1/ledger/entries?limit=1000").get_json()["items"]) == size
    assert get(story, "/api/v1/ledger/entries?limit=5&cachebuster=1").status_code == 200

    for limit in ("0", "1001", "100000"):
        refused(story, f"/api/v1/ledger/entries?limit={limit}", "invalid_limit")
    refused(story, "/api/v1/ledger/entries?after=-2", "invalid_cursor")
    for bad in ("x", "1.5", "+1", "%201", "", "1e3", "0x10", "1_000", "-", "9223372036854775808"):
        for name in ("after", "limit"):
            problem = refused(story, f"/api/v1/ledger/entries?{name}={bad}", "invalid_query")
            assert list(problem["errors"]) == [name]
    refused(story, "/api/v1/ledger/entries?kind=donation", "invalid_query")
    refused(story, "/api/v1/ledger/entries?pool=Food", "invalid_query")
    refused(story, "/api/v1/ledger/entries?pool=nowhere", "not_found", 404)


def test_kind_and_pool_filters(story: Story, monkeypatch: pytest.MonkeyPatch) -> None:
    http = story.http
    http.post("/pools", {"slug": "rent", "name": "Rent", "currencies": ["EUR"]}, token=story.admin)
    http.put("/pools/rent/roster", {"collectives": ["brisa"]}, token=story.admin, status=200)
    http.post("/pools/rent/donations", donation("5"), token=story.treasurer, status=201)
    http.post("/pools/food/donations", donation("6"), token=story.treasurer, status=201)
    everything = all_entries(story)

    def expected(kind: str | None = None, pool: str | None = None) -> list[int]:
        return [
            item["seq"]
            for item in everything
            if (kind is None or item["entry"]["kind"] == kind)
            and (pool is None or is_pools(item["entry"], pool))
        ]

    def walk(query: str, limit: int) -> tuple[list[int], int]:
        seqs: list[int] = []
        path: str | None = f"/api/v1/ledger/entries?{query}&limit={limit}"
        requests = 0
        while path is not None:
            page = get(story, path).get_json()
            requests += 1
            assert len(page["items"]) <= limit
            seqs.extend(item["seq"] for item in page["items"])
            path = page["next_url"]
        return seqs, requests

    food = expected(pool="food")
    assert everything[food[0]]["entry"]["kind"] == "pool_created"
    assert len(food) > 5 and expected(pool="rent")
    for query, wanted in [
        ("kind=donation_recorded", expected("donation_recorded")),
        ("pool=food", food),
        ("pool=rent", expected(pool="rent")),
        ("pool=food&kind=donation_recorded", expected("donation_recorded", "food")),
        ("kind=grant_disbursed", []),
    ]:
        assert walk(query, 2)[0] == wanted, query
        assert walk(query, 1000)[0] == wanted, query

    # With only a kind, a page looks a bounded way ahead: pages may come back short, even
    # empty, with a cursor to go on from; following it finds exactly the same entries.
    monkeypatch.setattr(public, "SCAN_WINDOW", 4)
    seqs, requests = walk("kind=donation_recorded", 1000)
    assert seqs == expected("donation_recorded")
    assert requests >= len(everything) // 4
    first = get(story, "/api/v1/ledger/entries?kind=donation_recorded&limit=1000").get_json()
    assert (first["items"], first["next"]) == ([], 3)
    assert query_of(first["next_url"]) == {
        "after": "3",
        "limit": "1000",
        "kind": "donation_recorded",
    }
    # A pool's entries are read by key: its pages are full, however far apart they lie.
    rent = expected(pool="rent")
    assert walk("pool=rent", 1000) == (rent, 1)
    assert walk("pool=rent", 1) == (rent, len(rent) + 1)  # (the last full page has a cursor)


# -- checkpoint and keys ------------------------------------------------------------------------


def test_checkpoint_and_vkey(story: Story, runner: FlaskCliRunner) -> None:
    response = get(story, "/api/v1/ledger/checkpoint")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == SHORT
    log = the_log(story)
    latest = log.latest_checkpoint()
    assert latest is not None and response.get_data(as_text=True) == latest.note
    checkpoint = open_checkpoint(response.get_data(), [verifier(story)], ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (latest.size, latest.root)
    etag = response.headers["ETag"]
    get(story, "/api/v1/ledger/checkpoint", 304, headers={"If-None-Match": etag})

    keys = get(story, "/api/v1/ledger/vkey").get_json()
    vkey = runner.invoke(args=["vkey"]).output.strip()
    assert keys == {
        "origin": ORIGIN,
        "checkpoint_size": latest.size,
        "keys": [
            {
                "vkey": vkey,
                "name": ORIGIN,
                "key_id": vkey.split("+")[1],
                "introduced_seq": 0,
                "retired_seq": None,
                "current": True,
                "signs_latest_checkpoint": True,
            }
        ],
    }


def test_checkpoints_by_size(story: Story) -> None:
    """Every signed checkpoint stays served at its size: the URL a report's QR code holds.
    Cached briefly, not for a year: witnesses' cosignatures join it after it is signed."""
    stored = the_log(story).checkpoints()
    assert len(stored) > 1
    for checkpoint in stored:
        path = checkpoint_url("", checkpoint.size)
        assert path == f"/api/v1/ledger/checkpoints/{checkpoint.size}"
        response = get(story, path)
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Cache-Control"] == SHORT
        assert response.get_data(as_text=True) == checkpoint.note
        opened = open_checkpoint(response.get_data(), [verifier(story)], ORIGIN)
        assert (opened.size, opened.root) == (checkpoint.size, checkpoint.root)
        get(story, path, 304, headers={"If-None-Match": response.headers["ETag"]})
    unsigned = stored[-1].size - 1
    assert unsigned not in {c.size for c in stored}
    problem = refused(story, f"/api/v1/ledger/checkpoints/{unsigned}", "checkpoint_not_found", 404)
    assert problem["detail"] == f"no checkpoint was signed at tree size {unsigned}"
    refused(story, "/api/v1/ledger/checkpoints/99999999", "checkpoint_not_found", 404)
    refused(story, "/api/v1/ledger/checkpoints/-1", "not_found", 404)
    refused(story, "/api/v1/ledger/checkpoints/latest", "not_found", 404)


def test_vkey_follows_key_rotation(story: Story) -> None:
    """A key_rotated entry publishing a new key retires the old one from that seq on."""
    new = Signer.generate(ORIGIN).verifier().vkey()
    log = the_log(story)
    rotated = log.append("key_rotated", {"vkey": new})
    keys = get(story, "/api/v1/ledger/vkey").get_json()["keys"]
    assert [(k["introduced_seq"], k["retired_seq"], k["current"]) for k in keys] == [
        (0, rotated.seq, False),
        (rotated.seq, None, True),
    ]
    assert keys[1]["vkey"] == new
    assert [k["signs_latest_checkpoint"] for k in keys] == [True, False]


# -- proofs -------------------------------------------------------------------------------------


def test_inclusion_proofs(story: Story) -> None:
    grow(story, 40)
    log = the_log(story)
    size = log.head().size
    leaves = {item["seq"]: item["hash"] for item in all_entries(story)}
    for tree in (1, 2, 7, 8, 33, size):
        root = log.root_at(tree)
        for index in {0, tree // 2, tree - 1}:
            response = get(story, f"/api/v1/ledger/proofs/inclusion?index={index}&size={tree}")
            proof = response.get_json()
            assert set(proof) == {"index", "size", "leaf_hash", "hashes"}
            assert (proof["index"], proof["size"]) == (index, tree)
            assert proof["leaf_hash"] == leaves[index]
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            merkle.verify_inclusion(index, tree, bytes.fromhex(proof["leaf_hash"]), hashes, root)
            assert response.headers["Cache-Control"] == LONG

    path = "/api/v1/ledger/proofs/inclusion"
    refused(story, f"{path}?index={size}&size={size}", "invalid_index")
    refused(story, f"{path}?index=9&size=3", "invalid_index")
    refused(story, f"{path}?index=0&size=0", "invalid_index")
    problem = refused(story, f"{path}?index=0&size={size + 1}", "size_beyond_log")
    assert str(size) in problem["detail"]
    for query in ("index=-1&size=3", "index=a&size=3", "index=1&size=3.0", "index=1", "size=3", ""):
        refused(story, f"{path}?{query}", "invalid_query")


def test_proofs_are_rendered_as_their_schemas_document(story: Story) -> None:
    """The proof routes render their own JSON (a marshmallow dump costs as much as the read):
    it must stay what the OpenAPI schemas say."""
    with story.http.app.app_context():
        engine = db.get_engine()
        size = the_log(story).head().size
        proof = public.inclusion(engine, 1, size)
        assert ledger_api.InclusionProofSchema().dump(proof) == proof.to_json()
        consistent = public.consistency(engine, 3, size)
        assert ledger_api.ConsistencyProofSchema().dump(consistent) == consistent.to_json()
    response = get(story, f"/api/v1/ledger/proofs/consistency?from=3&to={size}")
    assert response.get_json() == consistent.to_json()


def test_consistency_proofs(story: Story) -> None:
    grow(story, 25)
    log = the_log(story)
    checkpoints = log.checkpoints()
    assert len(checkpoints) >= 3
    size = log.head().size
    for old in checkpoints:
        for new in checkpoints:
            if old.size > new.size:
                continue
            body = get(
                story, f"/api/v1/ledger/proofs/consistency?from={old.size}&to={new.size}"
            ).get_json()
            assert set(body) == {"from", "to", "hashes"}
            assert (body["from"], body["to"]) == (old.size, new.size)
            hashes = [bytes.fromhex(h) for h in body["hashes"]]
            merkle.verify_consistency(old.size, new.size, hashes, old.root, new.root)
    for query in (f"from=0&to={size}", f"from={size}&to={size}", "from=0&to=0"):
        assert get(story, f"/api/v1/ledger/proofs/consistency?{query}").get_json()["hashes"] == []

    path = "/api/v1/ledger/proofs/consistency"
    refused(story, f"{path}?from=5&to=2", "invalid_range")
    refused(story, f"{path}?from=1&to={size + 1}", "size_beyond_log")
    refused(story, f"{path}?from={size + 2}&to={size + 1}", "size_beyond_log")
    for query in ("from=x&to=3", "to=3", "from=1", "from=1&to=-3", "from=1.0&to=3"):
        problem = refused(story, f"{path}?{query}", "invalid_query")
        assert set(problem["errors"]) <= {"from", "to"}


# -- receipts -----------------------------------------------------------------------------------


def test_receipts_verify_offline(story: Story, runner: FlaskCliRunner) -> None:
    log = the_log(story)
    latest = log.latest_checkpoint()
    assert latest is not None
    trusted = [verifier(story)]
    for seq in (0, latest.size // 2, latest.size - 1):
        response = get(story, f"/api/v1/receipts/{seq}")
        assert response.headers["Cache-Control"] == SHORT
        receipt = response.get_json()
        assert receipt["seq"] == seq and receipt["checkpoint"] == latest.note
        assert receipt["proof"]["size"] == latest.size
        verified = verify_receipt(parse_receipt(response.get_data()), trusted, origin=ORIGIN)
        assert verified.entry.seq == seq and verified.checkpoint.size == latest.size
        cli = runner.invoke(args=["receipt", str(seq)])
        assert parse_receipt(cli.output) == parse_receipt(response.get_data())

        text = get(story, f"/api/v1/receipts/{seq}.tlog-proof")
        assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert text.get_data(as_text=True).startswith("c2sp.org/tlog-proof@v1\nextra ")
        proven = verify_receipt(parse_receipt(text.get_data()), trusted, origin=ORIGIN)
        assert proven.entry == verified.entry

    # One more entry, at the same instant: no checkpoint covers it yet.
    story.http.post("/pools/food/donations", donation("1"), token=story.treasurer, status=201)
    head = log.head()
    newest = log.latest_checkpoint()
    assert newest is not None and newest.size < head.size
    for suffix in ("", ".tlog-proof"):
        refused(story, f"/api/v1/receipts/{head.size - 1}{suffix}", "receipt_not_yet_covered", 404)
        refused(story, f"/api/v1/receipts/{head.size}{suffix}", "not_found", 404)
    refused(story, "/api/v1/receipts/abc", "not_found", 404)


# -- anchors ------------------------------------------------------------------------------------


def test_anchors(story: Story) -> None:
    assert get(story, "/api/v1/anchors").get_json() == {"items": [], "next": None, "next_url": None}
    log = the_log(story)
    anchored = []
    for i in range(3):
        checkpoint = log.checkpoint_now()
        data = {
            "chain_id": 31337,
            "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "tx_hash": "0x" + f"{i:02x}" * 32,
            "block_number": 7 + i,
            "anchor_index": i,
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
        }
        anchored.append((log.append("checkpoint_anchored", data, "anchor"), data))
        story.http.post("/pools/food/donations", donation("2"), token=story.treasurer, status=201)

    everything = get(story, "/api/v1/anchors").get_json()
    assert everything["next"] is None
    assert everything["items"] == [
        {"seq": entry.seq, "ts": entry.ts, "hash": entry.hash.hex(), **data}
        for entry, data in anchored
    ]
    page = get(story, "/api/v1/anchors?limit=2")
    assert page.get_json()["items"] == everything["items"][:2]
    assert page.get_json()["next"] == anchored[1][0].seq
    assert page.headers["Cache-Control"] == LONG
    rest = get(story, page.get_json()["next_url"])
    assert rest.get_json()["items"] == everything["items"][2:]
    assert rest.headers["Cache-Control"] == SHORT
    assert get(story, f"/api/v1/anchors?after={anchored[2][0].seq}").get_json()["items"] == []
    refused(story, "/api/v1/anchors?limit=0", "invalid_limit")
    refused(story, "/api/v1/anchors?after=x", "invalid_query")
    refused(story, "/api/v1/anchors?after=-5", "invalid_cursor")


# -- tiles --------------------------------------------------------------------------------------


def test_tiles_are_the_ledger_tiles(story: Story) -> None:
    grow(story, 300)
    log = the_log(story)
    latest = log.checkpoint_now()
    assert latest.size > 256
    resources = [*tiles_for_size(latest.size), *bundles_for_size(latest.size)]
    assert {t.is_partial for t in resources} == {True, False}
    for tile in resources:
        response = get(story, f"/tlog/{tile.path}")
        assert response.get_data() == read_resource(log, tile.path), tile.path
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Cache-Control"] == (SHORT if tile.is_partial else LONG)
    checkpoint = get(story, "/tlog/checkpoint")
    assert checkpoint.get_data() == read_resource(log, "checkpoint") == latest.note.encode()
    assert checkpoint.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert checkpoint.headers["Cache-Control"] == SHORT
    full = get(story, "/tlog/tile/0/000")
    get(story, "/tlog/tile/0/000", 304, headers={"If-None-Match": full.headers["ETag"]})
    for missing in ("tile/0/001", "tile/0/005.p/3", "tile/entries/001", "tile/0/0", "tile/0/x1",
                    "tile/0/000.p/256", "tile/9/000", "tile/entries/000.p/0"):  # fmt: skip
        response = get(story, f"/tlog/{missing}", 404)
        assert response.mimetype == "text/plain", missing
        assert response.headers["Cache-Control"] == "no-store"
    get(story, "/tlog/nothing", 404)


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def live(app: Flask, story: Story) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


def test_audit_of_a_live_server(story: Story, live: LiveServer, runner: FlaskCliRunner) -> None:
    grow(story, 600)
    log = the_log(story)
    latest = log.checkpoint_now()
    vkey = verifier(story).vkey()
    report = audit(live.url, [vkey])
    assert (report.checkpoint.size, report.checkpoint.root) == (latest.size, latest.root)
    assert report.bundles == len(bundles_for_size(latest.size)) == 3
    assert report.tiles == len(tiles_for_size(latest.size))
    result = runner.invoke(args=["audit", live.url, "--vkey", vkey])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {ORIGIN} size {latest.size} ")
    stranger = Signer.generate(ORIGIN).verifier().vkey()  # a key the log never signed with
    refused_audit = runner.invoke(args=["audit", live.url, "--vkey", stranger])
    assert refused_audit.exit_code == 1 and "FAILED" in refused_audit.output


# -- the Atom feed ------------------------------------------------------------------------------


def test_pool_feed(story: Story) -> None:
    http = story.http
    purpose = 'Rent & <heating> for "Casa 5" — l\'hiver'
    http.post("/pools/food/grants", proposal("20000", purpose=purpose), token=story.applicant)
    http.post("/pools/food/donations", donation("1500"), token=story.treasurer, status=201)
    response = get(story, "/api/v1/pools/food/feed.atom")
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert response.headers["ETag"] and response.headers["Cache-Control"].startswith("public")
    root = ET.fromstring(response.get_data())
    assert root.tag == f"{ATOM}feed"
    feed_id = root.findtext(f"{ATOM}id")
    assert feed_id is not None and feed_id.startswith("tag:test.lunaria.example,")
    assert root.findtext(f"{ATOM}title") == "Food bank — Lunaria"
    assert root.find(f"{ATOM}author/{ATOM}name") is not None
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {
        "self": "http://localhost:8000/api/v1/pools/food/feed.atom",
        "alternate": "http://localhost:8000/pools/food",
    }
    items = root.findall(f"{ATOM}entry")
    seqs = [int(str(item.findtext(f"{ATOM}id")).rsplit("/", 1)[1]) for item in items]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    everything = {item["seq"]: item["entry"] for item in all_entries(story)}
    assert seqs == sorted(
        (s for s, e in everything.items() if is_pools(e, "food")),
        reverse=True,
    )
    assert root.findtext(f"{ATOM}updated") == everything[seqs[0]]["ts"]
    newest = items[0]
    assert newest.findtext(f"{ATOM}title") == "Donation of 15.00 EUR (bank)"
    assert newest.findtext(f"{ATOM}updated") == everything[seqs[0]]["ts"]
    link = newest.find(f"{ATOM}link")
    assert link is not None and link.get("href") == f"http://localhost:8000/entries/{seqs[0]}"
    entry_ids = [item.findtext(f"{ATOM}id") for item in items]
    assert all(str(i).startswith("tag:test.lunaria.example,") for i in entry_ids)
    proposed = items[1]
    assert proposed.findtext(f"{ATOM}title") == "Grant proposed: 200.00 EUR for family-7"
    assert proposed.findtext(f"{ATOM}summary") == (
        f"Grant proposed: 200.00 EUR for family-7. Purpose: {purpose}"
    )
    titles = [item.findtext(f"{ATOM}title") for item in items]
    assert titles[-1] == "Pool created: Food bank"
    assert "Custody order set: alba, brisa" in titles
    refused(story, "/api/v1/pools/nowhere/feed.atom", "not_found", 404)


def test_a_quiet_pool_keeps_its_entries_behind_a_busy_one(story: Story) -> None:
    """A pool's page, feed and filtered entry list find its entries by key, however many
    entries of other pools came after (they used to search only the newest few thousand)."""
    http = story.http
    http.post("/pools", {"slug": "rent", "name": "Rent", "currencies": ["EUR"]}, token=story.admin)
    quiet = http.post("/pools/rent/donations", donation("5"), token=story.treasurer, status=201)
    seq = quiet.get_json()["seq"]
    for _ in range(12):  # (each batch its own bank references: one reference, one donation)
        batch = {"donations": [donation("1") for _ in range(1000)]}
        http.post("/pools/food/donations:batch", batch, token=story.treasurer, status=201)
    assert http.size() > seq + 12_000

    page = get(story, "/pools/rent").get_data(as_text=True)
    assert f'href="/entries/{seq}"' in page
    feed = get(story, "/api/v1/pools/rent/feed.atom").get_data(as_text=True)
    assert f'href="http://localhost:8000/entries/{seq}"' in feed
    listed = get(story, "/api/v1/ledger/entries?pool=rent&limit=2").get_json()
    assert [item["seq"] for item in listed["items"]] == [seq - 1, seq]  # pool_created, donation
    assert get(story, f"/api/v1/ledger/entries?pool=rent&after={seq}").get_json() == {
        "items": [],
        "next": None,
        "next_url": None,
    }


def test_pool_feed_words() -> None:
    from api import feeds
    from ledger.log.entry import encode_entry

    def title(kind: str, data: dict[str, Any]) -> str:
        return feeds.describe(
            encode_entry(9, "2026-01-01T00:00:00.000000Z", kind, "0" * 64, "x", data)
        )[0]

    assert title(
        "donation_recorded", {"amount": "1500", "currency": "EUR", "channel": "bank", "cycle": 3}
    ) == ("Donation of 15.00 EUR (bank)")
    assert title("grant_disbursed", {"grant": 4, "amount": "1", "currency": "ETH"}) == (
        "Grant 4 paid out: 0.000000000000000001 ETH"
    )
    assert title(
        "grant_decided",
        {"grant": 4, "decision": "approved", "lane": "fast_lane", "amount": "5", "currency": "JPY"},
    ) == ("Grant 4 approved in the fast lane")
    assert title("custody_transferred", {"from": None, "to": "alba", "cycle": {}}) == (
        "Custody transferred (entry 9)"  # malformed data: a plain fallback, never an error
    )
    assert title("member_added", {"collective": "alba"}) == "Member added (entry 9)"
    assert feeds.tag_uri("ledger.example.org:8443/lunaria", "2026-05-01T00:00Z", "entries/7") == (
        "tag:ledger.example.org,2026-05-01:lunaria/entries/7"
    )
    assert (
        feeds.tag_uri("localhost", "2026-05-01T00:00Z", "pools/a")
        == "tag:localhost,2026-05-01:pools/a"
    )
    assert feeds._xml_text("a\x00b\x1fc\ud800") == "a\ufffdb\ufffdc\ufffd"


def test_openapi_describes_the_public_reads(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    for path in (
        "/api/v1/ledger/entries",
        "/api/v1/ledger/entries/{seq}",
        "/api/v1/ledger/checkpoint",
        "/api/v1/ledger/checkpoints/{size}",
        "/api/v1/ledger/vkey",
        "/api/v1/ledger/proofs/inclusion",
        "/api/v1/ledger/proofs/consistency",
        "/api/v1/receipts/{seq}",
        "/api/v1/receipts/{seq}.tlog-proof",
        "/api/v1/anchors",
        "/api/v1/pools/{slug}/feed.atom",
    ):
        assert "get" in paths[path], path
    listing = paths["/api/v1/ledger/entries"]["get"]
    assert "exactly as hashed" in " ".join(listing["description"].split())
    assert {p["name"] for p in listing["parameters"]} == {"after", "limit", "kind", "pool"}
    consistency = paths["/api/v1/ledger/proofs/consistency"]["get"]
    assert {p["name"] for p in consistency["parameters"]} == {"from", "to"}
    checkpoint = paths["/api/v1/ledger/checkpoint"]["get"]["responses"]["200"]["content"]
    assert list(checkpoint) == ["text/plain; charset=utf-8"]
    feed = paths["/api/v1/pools/{slug}/feed.atom"]["get"]["responses"]["200"]["content"]
    assert list(feed) == ["application/atom+xml"]
