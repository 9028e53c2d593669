"""The public read API of the log: entries, checkpoint, keys, proofs, receipts and anchors.

No token, cacheable, paginated. Routes parse and render; the reads below them (the second half
of this module) are plain functions over the database, with no Flask, raising ledger errors
whose codes :data:`api.errors.PROBLEMS` maps to statuses.

Entries are served as ``{"seq", "hash", "entry"}``: ``entry`` is the logged object itself,
untouched, so ``hash`` = SHA-256(0x00 || JCS(entry)) holds without stripping anything.

Caching: what can never change (an entry, a proof for sizes the log has reached, a page that
ends before the log does) is ``immutable`` for a year; what moves with the log (the latest
checkpoint, receipts against it, the last page) for a few seconds. Every 200 carries an ETag
and answers ``If-None-Match`` with 304.
"""

from __future__ import annotations

import bisect
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import flask
import marshmallow as ma
from flask import Response, request, url_for
from marshmallow import fields
from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, func, or_, select

from api import db
from api.errors import ApiProblem, flatten_messages
from api.schemas import Blueprint as ApiBlueprint
from api.schemas import JsonParser, SlugConverter
from ledger import merkle
from ledger.db import is_sqlite, read_transaction
from ledger.entry import KINDS, decode_entry
from ledger.errors import LedgerError, NoteError, NotFound
from ledger.fund import pool_row
from ledger.log import (
    Snapshot,
    checkpoint_at,
    latest_checkpoint,
    load_head,
    one_read,
    read_snapshot,
)
from ledger.notes import Verifier, open_note, parse_note
from ledger.receipts import build_receipt
from ledger.schema import entries

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SCAN_WINDOW = 10_000
"""A filtered page (``kind``, ``pool``) looks at no more than this many seqs past its cursor."""

LONG_CACHE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=10"
TEXT = "text/plain; charset=utf-8"
MAX_SEQ = 2**63 - 1
SEQ = "<int(max=9223372036854775807):seq>"
SIZE = "<int(max=9223372036854775807):size>"


# -- errors -----------------------------------------------------------------------------------


class InvalidLimit(LedgerError):
    code = "invalid_limit"


class InvalidCursor(LedgerError):
    code = "invalid_cursor"


class InvalidIndex(LedgerError):
    """An inclusion proof for an index at or beyond the tree size."""

    code = "invalid_index"


class SizeBeyondLog(LedgerError):
    """A proof for a tree larger than the log is now."""

    code = "size_beyond_log"


class CheckpointNotFound(NotFound):
    """No checkpoint was signed at the tree size asked for (the log signs only some sizes)."""

    code = "checkpoint_not_found"


class InvalidRange(LedgerError):
    """A consistency proof from a larger tree to a smaller one."""

    code = "invalid_range"


# -- parsing the query string -----------------------------------------------------------------


class QueryParser(JsonParser):
    """The API's strict parser; a query string it refuses is ``invalid_query``."""

    def handle_error(
        self,
        error: ma.ValidationError,
        req: flask.Request,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        messages = error.messages
        if isinstance(messages, dict) and list(messages) == ["query"]:
            errors = flatten_messages(messages["query"])
            names = ", ".join(sorted(errors))
            raise ApiProblem("invalid_query", f"invalid query parameters: {names}", errors=errors)
        super().handle_error(
            error,
            req,
            schema,
            error_status_code=error_status_code,
            error_headers=error_headers,
        )


class Blueprint(ApiBlueprint):
    """The API Blueprint whose query-string errors are ``invalid_query``."""

    ARGUMENTS_PARSER = QueryParser()


class QueryInt(fields.Integer):
    """A decimal integer in a query string, strictly: digits (and a leading minus where
    ``signed``), below 2**63; ``+1``, ``1.0``, `` 1`` and ``1_000`` are refused."""

    def __init__(self, *, signed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern = re.compile(r"-?[0-9]{1,19}" if signed else r"[0-9]{1,19}")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or self.pattern.fullmatch(value) is None:
            raise self.make_error("invalid")
        number = int(value)
        if abs(number) > MAX_SEQ:
            raise self.make_error("invalid")  # beyond any tree, and any database's integers
        return number


class _Query(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # a cache-buster is harmless


def _after(what: str) -> QueryInt:
    return QueryInt(
        signed=True,
        load_default=-1,
        metadata={"description": f"Cursor: the last {what} seq of the previous page (-1: none)"},
    )


def _limit() -> QueryInt:
    return QueryInt(
        load_default=DEFAULT_LIMIT,
        metadata={"minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    )


class EntryQuery(_Query):
    after = _after("entry")
    limit = _limit()
    kind = fields.String(validate=ma.validate.OneOf(sorted(KINDS)))
    pool = fields.String(
        validate=ma.validate.Regexp(f"^{SlugConverter.regex}$"),
        metadata={"description": "Entries of this pool (data.pool, or the pool_created entry)"},
    )


class PageQuery(_Query):
    after = _after("anchor's")
    limit = _limit()


class InclusionQuery(_Query):
    index = QueryInt(required=True, metadata={"description": "The entry's seq"})
    size = QueryInt(required=True, metadata={"description": "Tree size, at most the log's"})


class ConsistencyQuery(_Query):
    old = QueryInt(required=True, data_key="from", metadata={"description": "Older tree size"})
    new = QueryInt(required=True, data_key="to", metadata={"description": "Newer tree size"})


# -- response schemas -------------------------------------------------------------------------


class PublicEntrySchema(ma.Schema):
    seq = fields.Integer()
    hash = fields.String(
        metadata={"description": "RFC 9162 leaf hash, hex: SHA-256(0x00 || JCS(entry))"}
    )
    entry = fields.Dict(
        metadata={"description": "The logged object exactly as hashed (re-canonicalise with JCS)"}
    )


class EntryPageSchema(ma.Schema):
    items = fields.List(fields.Nested(PublicEntrySchema))
    next = fields.Integer(
        allow_none=True, metadata={"description": "Pass as after= for the next page; null: done"}
    )
    next_url = fields.String(allow_none=True, metadata={"description": "The next page"})


class InclusionProofSchema(ma.Schema):
    index = fields.Integer()
    size = fields.Integer()
    leaf_hash = fields.String(metadata={"description": "hex"})
    hashes = fields.List(fields.String(), metadata={"description": "hex, leaf's sibling first"})


class ConsistencyProofSchema(ma.Schema):
    old = fields.Integer(data_key="from")
    new = fields.Integer(data_key="to")
    hashes = fields.List(fields.String(), metadata={"description": "hex (RFC 9162 §2.1.4)"})


class VerifierKeySchema(ma.Schema):
    vkey = fields.String(metadata={"description": "<name>+<8 hex key id>+<base64 key>"})
    name = fields.String()
    key_id = fields.String(metadata={"description": "8 hex digits"})
    introduced_seq = fields.Integer(metadata={"description": "The entry that published it"})
    retired_seq = fields.Integer(
        allow_none=True,
        metadata={"description": "The key_rotated entry that published its successor"},
    )
    current = fields.Boolean()
    signs_latest_checkpoint = fields.Boolean()


class LogKeysSchema(ma.Schema):
    origin = fields.String()
    checkpoint_size = fields.Integer(metadata={"description": "Size of the latest checkpoint"})
    keys = fields.List(fields.Nested(VerifierKeySchema))


class LogReceiptSchema(ma.Schema):
    entry = fields.Dict(metadata={"description": "The logged object exactly as hashed"})
    entry_b64 = fields.String(metadata={"description": "Its canonical bytes, base64"})
    seq = fields.Integer()
    leaf_hash = fields.String()
    proof = fields.Nested(InclusionProofSchema)
    checkpoint = fields.String(metadata={"description": "The signed checkpoint (signed note)"})
    vkey = fields.String(metadata={"description": "A hint: verify with keys you trust"})


class AnchorSchema(ma.Schema):
    seq = fields.Integer(metadata={"description": "The checkpoint_anchored entry"})
    ts = fields.String()
    hash = fields.String()
    chain_id = fields.Raw()
    contract = fields.Raw()
    tx_hash = fields.Raw()
    block_number = fields.Raw()
    anchor_index = fields.Raw()
    size = fields.Raw(metadata={"description": "Tree size anchored"})
    root = fields.Raw(metadata={"description": "Root hash anchored, hex"})


class AnchorPageSchema(ma.Schema):
    items = fields.List(fields.Nested(AnchorSchema))
    next = fields.Integer(allow_none=True)
    next_url = fields.String(allow_none=True)


# -- routes -----------------------------------------------------------------------------------

blp = Blueprint(
    "ledger",
    __name__,
    url_prefix="/api/v1",
    description=(
        "The public log: entries, the signed checkpoint, verifier keys, Merkle proofs "
        "(hashes hex), receipts and on-chain anchors. No token needed; responses carry "
        "Cache-Control and an ETag."
    ),
)

Reply = tuple[Any, int, dict[str, str]]


def _cached(policy: str) -> dict[str, str]:
    return {"Cache-Control": policy}


def _text(body: str, policy: str) -> Response:
    return Response(body, content_type=TEXT, headers=_cached(policy))


def _next_url(page: Page, query: Mapping[str, Any]) -> str | None:
    if page.next is None:
        return None
    return url_for(str(request.endpoint), **{**query, "after": page.next})


_CONDITIONS = (
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_RANGE",
)


def revalidate(response: Response) -> Response:
    """Public and conditional: an ETag on every 200, and 304 for a matching If-None-Match."""
    if request.method in ("GET", "HEAD") and response.status_code == 200:
        response.headers["Access-Control-Allow-Origin"] = "*"
        if "ETag" not in response.headers:
            response.add_etag()
        # Only a conditional request can change the answer; make_conditional costs a third
        # of a proof's time, for nothing the server (Date) or Werkzeug (length) does not do.
        if any(condition in request.environ for condition in _CONDITIONS):
            response.make_conditional(request)
    return response


def _json(body: Any, policy: str) -> Response:
    """A JSON body built by the read itself, documented by the route's schema: a marshmallow
    dump of a proof would cost as much as reading it."""
    response = cast(Response, flask.current_app.json.response(body))
    response.headers["Cache-Control"] = policy
    return response


@blp.route("/ledger/entries", methods=["GET"])
@blp.arguments(EntryQuery, location="query")
@blp.response(200, EntryPageSchema)
def list_entries(query: dict[str, Any]) -> Reply:
    """Entries in seq order, after a cursor; filter by kind and pool.

    Each item is ``{"seq", "hash", "entry"}`` where ``entry`` is the logged object exactly
    as hashed: ``hash`` = SHA-256(0x00 || JCS(entry)); nothing is added inside it. A filtered
    page looks at most 10,000 seqs past its cursor, so it may hold fewer than ``limit`` items
    (even none) while ``next`` is not null: follow ``next`` until it is null."""
    page = entry_page(db.get_engine(), **query)
    body = {**page.body(), "next_url": _next_url(page, query)}
    return body, 200, _cached(LONG_CACHE if page.settled else SHORT_CACHE)


@blp.route(f"/ledger/entries/{SEQ}", methods=["GET"])
@blp.response(200, PublicEntrySchema)
def get_entry(seq: int) -> Reply:
    """One entry as ``{"seq", "hash", "entry"}``; entries never change (cached a year)."""
    found = entry_at(db.get_engine(), seq)
    return found, 200, {**_cached(LONG_CACHE), "ETag": f'"{found.hash}"'}


@blp.route("/ledger/checkpoint", methods=["GET"])
@blp.response(200, {"type": "string"}, content_type=TEXT, description="A C2SP signed note")
def get_checkpoint() -> Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint as a signed note), verbatim."""
    return _text(latest_note(db.get_engine()), SHORT_CACHE)


@blp.route(f"/ledger/checkpoints/{SIZE}", methods=["GET"])
@blp.response(200, {"type": "string"}, content_type=TEXT, description="A C2SP signed note")
def get_checkpoint_at(size: int) -> Response:
    """The checkpoint signed at exactly tree size ``size``, verbatim (reports link to it).
    A signed checkpoint never changes (cached a year); a size the log never signed a
    checkpoint at is a 404 ``checkpoint_not_found``."""
    return _text(note_at(db.get_engine(), size), LONG_CACHE)


@blp.route("/ledger/vkey", methods=["GET"])
@blp.response(200, LogKeysSchema)
def get_vkeys() -> Reply:
    """The log's verifier keys, as published in the log, with the entries that bound their
    validity and whether each signs the latest checkpoint. Trust a key you got another way
    too; this answer is a convenience, not a root of trust."""
    return log_keys(db.get_engine()), 200, _cached(SHORT_CACHE)


@blp.route("/ledger/proofs/inclusion", methods=["GET"])
@blp.arguments(InclusionQuery, location="query")
@blp.response(200, InclusionProofSchema)
def inclusion_proof(query: dict[str, Any]) -> Response:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
    return _json(inclusion(db.get_engine(), **query).to_json(), LONG_CACHE)


@blp.route("/ledger/proofs/consistency", methods=["GET"])
@blp.arguments(ConsistencyQuery, location="query")
@blp.response(200, ConsistencyProofSchema)
def consistency_proof(query: dict[str, Any]) -> Response:
    """RFC 9162 consistency proof from tree size ``from`` to ``to`` (empty when from is 0
    or equals to)."""
    return _json(consistency(db.get_engine(), **query).to_json(), LONG_CACHE)


@blp.route(f"/receipts/{SEQ}", methods=["GET"])
@blp.response(200, LogReceiptSchema)
def get_receipt(seq: int) -> Response:
    """The entry, its inclusion proof, the latest signed checkpoint and the log's key:
    everything to verify offline (``lunaria verify-receipt`` or /verify)."""
    return _json(build_receipt(db.get_log(), seq).to_json(), SHORT_CACHE)


@blp.route(f"/receipts/{SEQ}.tlog-proof", methods=["GET"])
@blp.response(200, {"type": "string"}, content_type=TEXT, description="c2sp.org/tlog-proof@v1")
def get_tlog_proof(seq: int) -> Response:
    """The same receipt as C2SP tlog-proof@v1 text, the entry's bytes on its extra line."""
    return _text(build_receipt(db.get_log(), seq).to_tlog_proof().serialise(), SHORT_CACHE)


@blp.route("/anchors", methods=["GET"])
@blp.arguments(PageQuery, location="query")
@blp.response(200, AnchorPageSchema)
def list_anchors(query: dict[str, Any]) -> Reply:
    """``checkpoint_anchored`` entries in seq order: which tree (size, root) went to which
    chain, contract and transaction. Check them on chain with ``lunaria anchor verify``."""
    page = anchor_page(db.get_engine(), **query)
    body = {**page.body(), "next_url": _next_url(page, query)}
    return body, 200, _cached(LONG_CACHE if page.settled else SHORT_CACHE)


blp.after_request(revalidate)


# -- reads (no Flask below) ---------------------------------------------------------------------


@dataclass(frozen=True)
class PublicEntry:
    seq: int
    hash: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page; ``settled`` when it ends before the log does, so it can never change."""

    items: tuple[Any, ...]
    next: int | None
    settled: bool

    def body(self) -> dict[str, Any]:
        return {"items": self.items, "next": self.next}


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: str
    hashes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """As DESIGN.md gives it (and InclusionProofSchema documents it)."""
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash,
            "hashes": list(self.hashes),
        }


@dataclass(frozen=True)
class ConsistencyProof:
    old: int
    new: int
    hashes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """As DESIGN.md gives it (and ConsistencyProofSchema documents it)."""
        return {"from": self.old, "to": self.new, "hashes": list(self.hashes)}


@dataclass(frozen=True)
class KeyValidity:
    vkey: str
    name: str
    key_id: str
    introduced_seq: int
    retired_seq: int | None
    signs_latest_checkpoint: bool

    @property
    def current(self) -> bool:
        return self.retired_seq is None


@dataclass(frozen=True)
class LogKeys:
    origin: str
    checkpoint_size: int
    keys: tuple[KeyValidity, ...]


@dataclass(frozen=True)
class Anchor:
    seq: int
    ts: str
    hash: str
    chain_id: Any
    contract: Any
    tx_hash: Any
    block_number: Any
    anchor_index: Any
    size: Any
    root: Any


def check_page(after: int, limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
    if after < -1:
        raise InvalidCursor(f"after must be a seq, or -1 for the first page, not {after}")


def _public(seq: int, entry_hash: bytes, body: bytes) -> PublicEntry:
    return PublicEntry(int(seq), bytes(entry_hash).hex(), decode_entry(bytes(body)).envelope())


def belongs_to_pool(data: Mapping[str, Any], kind: str, pool: str) -> bool:
    """Whether an entry is the pool's: its ``data.pool``, or the pool's own creation."""
    return data.get("pool") == pool or (kind == "pool_created" and data.get("slug") == pool)


def _contains(conn: Connection, needle: bytes) -> ColumnElement[bool]:
    if is_sqlite(conn):
        return func.instr(entries.c.body, needle) > 0
    like = entries.c.body.op("LIKE", is_comparison=True)  # bytea LIKE; no % _ \ in a needle
    return like(b"%" + needle + b"%")


def mentions_pool(conn: Connection, pool: str) -> ColumnElement[bool]:
    """A cheap superset of :func:`belongs_to_pool` the database can test on the stored bytes
    (canonical JSON: ``"pool":"<slug>"`` appears verbatim; inside a string the quotes would
    be escaped, so the bytes cannot come from text)."""
    return or_(
        _contains(conn, f'"pool":"{pool}"'.encode()),
        and_(entries.c.kind == "pool_created", _contains(conn, f'"slug":"{pool}"'.encode())),
    )


def entry_page(
    engine: Engine,
    after: int = -1,
    limit: int = DEFAULT_LIMIT,
    kind: str | None = None,
    pool: str | None = None,
) -> Page:
    """Entries after seq ``after``; with filters, looking at most SCAN_WINDOW seqs ahead."""
    check_page(after, limit)
    with read_transaction(engine) as conn:
        last = load_head(conn).size - 1
        if pool is not None:
            pool_row(conn, pool)
        end = last if kind is None and pool is None else min(last, after + SCAN_WINDOW)
        where = [entries.c.seq > after, entries.c.seq <= end]
        if kind is not None:
            where.append(entries.c.kind == kind)
        if pool is not None:
            where.append(mentions_pool(conn, pool))
        rows = conn.execute(
            select(entries.c.seq, entries.c.hash, entries.c.body)
            .where(and_(*where))
            .order_by(entries.c.seq)
            .limit(limit)
        ).all()
    items = [_public(*row) for row in rows]
    if pool is not None:
        items = [i for i in items if belongs_to_pool(i.entry["data"], i.entry["kind"], pool)]
    scanned = int(rows[-1].seq) if len(rows) == limit else end
    more = scanned < last
    return Page(tuple(items), scanned if more else None, settled=more)


def entry_at(engine: Engine, seq: int) -> PublicEntry:
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(entries.c.seq, entries.c.hash, entries.c.body).where(entries.c.seq == seq)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no entry with seq {seq}")
    return _public(*row)


def latest_note(engine: Engine) -> str:
    with one_read(engine) as conn:
        latest = latest_checkpoint(conn)
    if latest is None:
        raise NotFound("the log has no signed checkpoint yet")
    return latest.note


def note_at(engine: Engine, size: int) -> str:
    """The checkpoint signed at exactly tree size ``size``, as stored."""
    with one_read(engine) as conn:
        stored = checkpoint_at(conn, size)
    if stored is None:
        raise CheckpointNotFound(f"no checkpoint was signed at tree size {size}")
    return stored.note


def _check_size(size: int, log_size: int) -> None:
    if size > log_size:
        raise SizeBeyondLog(f"tree size {size} is beyond the log, which has {log_size} entries")


def _proven(engine: Engine, size: int, plan: merkle.ProofPlan, *extra: merkle.NodeId) -> Snapshot:
    """The head and every subtree of ``plan`` (and ``extra``) in one statement, once the
    size is known to be within the log."""
    with one_read(engine) as conn:
        snapshot = read_snapshot(conn, {*(node for step in plan for node in step), *extra})
    _check_size(size, snapshot.head.size)
    return snapshot


def _hex(hashes: Iterable[bytes]) -> tuple[str, ...]:
    return tuple(h.hex() for h in hashes)


def inclusion(engine: Engine, index: int, size: int) -> InclusionProof:
    """The proof and the leaf hash, read in one statement with the proof's subtrees."""
    valid = index < size
    plan = merkle.inclusion_plan(index, size) if valid else []
    snapshot = _proven(engine, size, plan, *([(0, index)] if valid else []))
    if not valid:
        raise InvalidIndex(f"index {index} is not below the tree size {size}")
    hashes = merkle.resolve(plan, lambda _: snapshot.nodes)
    leaf = merkle.resolve([[(0, index)]], lambda _: snapshot.nodes)[0]
    return InclusionProof(index, size, leaf.hex(), _hex(hashes))


def consistency(engine: Engine, old: int, new: int) -> ConsistencyProof:
    valid = old <= new
    plan = merkle.consistency_plan(old, new) if valid else []
    snapshot = _proven(engine, new, plan)
    if not valid:
        raise InvalidRange(f"from {old} is beyond to {new}: give the older size as from")
    return ConsistencyProof(old, new, _hex(merkle.resolve(plan, lambda _: snapshot.nodes)))


# Kinds rare enough to keep every seq of in memory: found once by one scan of the log, then
# by scanning only what was appended since (entries never change). Per engine, per process.
SPARSE_KINDS = ("key_rotated", "checkpoint_anchored")


@dataclass
class _SparseIndex:
    scanned: int = 0
    seqs: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in SPARSE_KINDS})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, conn: Connection, size: int) -> None:
        with self.lock:
            if size <= self.scanned:
                return
            rows = conn.execute(
                select(entries.c.seq, entries.c.kind)
                .where(
                    and_(
                        entries.c.seq >= self.scanned,
                        entries.c.seq < size,
                        entries.c.kind.in_(SPARSE_KINDS),
                    )
                )
                .order_by(entries.c.seq)
            )
            for seq, kind in rows:
                self.seqs[kind].append(int(seq))
            self.scanned = size


_sparse: weakref.WeakKeyDictionary[Engine, _SparseIndex] = weakref.WeakKeyDictionary()
_sparse_lock = threading.Lock()


def sparse_seqs(conn: Connection, size: int, kind: str) -> list[int]:
    """Every seq below ``size`` of an entry of ``kind`` (one of SPARSE_KINDS), in order."""
    with _sparse_lock:
        index = _sparse.setdefault(conn.engine, _SparseIndex())
    index.refresh(conn, size)
    seqs = index.seqs[kind]
    return seqs[: bisect.bisect_left(seqs, size)]


def _bodies(conn: Connection, seqs: Sequence[int]) -> list[tuple[int, bytes, bytes]]:
    if not seqs:
        return []
    rows = conn.execute(
        select(entries.c.seq, entries.c.hash, entries.c.body)
        .where(entries.c.seq.in_(bindparam("seqs", expanding=True)))
        .order_by(entries.c.seq),
        {"seqs": list(seqs)},
    )
    return [(int(seq), bytes(h), bytes(body)) for seq, h, body in rows]


def _signs(note: str, verifier: Verifier) -> bool:
    try:
        open_note(parse_note(note), [verifier])
    except (NoteError, LedgerError):
        return False
    return True


def log_keys(engine: Engine) -> LogKeys:
    """The keys ``log_created`` and each ``key_rotated`` entry published (``data.vkey``)."""
    with read_transaction(engine) as conn:
        head = load_head(conn)
        rotations = sparse_seqs(conn, head.size, "key_rotated")
        published = _bodies(conn, [0, *rotations])
        latest = latest_checkpoint(conn)
    found: list[tuple[int, Verifier]] = []
    for seq, _, body in published:
        vkey = decode_entry(body).data.get("vkey")
        if isinstance(vkey, str):
            found.append((seq, Verifier.from_vkey(vkey)))
    keys = tuple(
        KeyValidity(
            vkey=verifier.vkey(),
            name=verifier.name,
            key_id=verifier.key_id.hex(),
            introduced_seq=seq,
            retired_seq=found[i + 1][0] if i + 1 < len(found) else None,
            signs_latest_checkpoint=latest is not None and _signs(latest.note, verifier),
        )
        for i, (seq, verifier) in enumerate(found)
    )
    return LogKeys(head.origin, 0 if latest is None else latest.size, keys)


def _anchor(seq: int, entry_hash: bytes, body: bytes) -> Anchor:
    entry = decode_entry(body)
    data = entry.data
    return Anchor(
        seq=seq,
        ts=entry.ts,
        hash=entry_hash.hex(),
        chain_id=data.get("chain_id"),
        contract=data.get("contract"),
        tx_hash=data.get("tx_hash"),
        block_number=data.get("block_number"),
        anchor_index=data.get("anchor_index"),
        size=data.get("size"),
        root=data.get("root"),
    )


def recent_anchors(engine: Engine, limit: int = 5) -> list[Anchor]:
    """The newest ``checkpoint_anchored`` entries, newest first: found through the seqs kept
    in memory, as a scan for them goes through the whole log when there are few."""
    with read_transaction(engine) as conn:
        seqs = sparse_seqs(conn, load_head(conn).size, "checkpoint_anchored")[-limit:]
        rows = _bodies(conn, seqs)
    return [_anchor(*row) for row in reversed(rows)]


def anchor_page(engine: Engine, after: int = -1, limit: int = DEFAULT_LIMIT) -> Page:
    """``checkpoint_anchored`` entries after seq ``after``, in seq order."""
    check_page(after, limit)
    with read_transaction(engine) as conn:
        seqs = sparse_seqs(conn, load_head(conn).size, "checkpoint_anchored")
        start = bisect.bisect_right(seqs, after)
        chosen = seqs[start : start + limit]
        rows = _bodies(conn, chosen)
    more = start + limit < len(seqs)
    items = tuple(_anchor(*row) for row in rows)
    return Page(items, chosen[-1] if more else None, settled=more)
