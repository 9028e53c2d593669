"""The public read API of the log: entries, checkpoint, keys, proofs, receipts and anchors.

No token, cacheable, paginated. Routes parse and render; the reads are :mod:`ledger.log.public`'s
plain functions over the database, raising ledger errors whose codes
:data:`api.errors.PROBLEMS` maps to statuses.

Entries are served as ``{"seq", "hash", "entry", "texts"}``: ``entry`` is the logged object
itself, untouched, so ``hash`` = SHA-256(0x00 || JCS(entry)) holds without stripping anything;
``texts`` holds the public texts the entry commits to (entry data version 2), each with its
salt, beside the entry, never inside it (``{}`` when it commits to none).

Caching: what can never change (an entry, a proof for sizes the log has reached, a page that
ends before the log does) is ``immutable`` for a year; what moves with the log (the latest
checkpoint, receipts against it, the last page) and whatever serves a public text (it can be
redacted) for a few seconds. Every 200 carries an ETag
and answers ``If-None-Match`` with 304.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, cast

import flask
import marshmallow as ma
from flask import Response, request, url_for
from marshmallow import fields

from api import db
from api.blueprint import Blueprint as ApiBlueprint
from api.blueprint import JsonParser, SlugConverter
from api.errors import ApiProblem, flatten_messages
from ledger.fund import pool_entry_page, public_text
from ledger.log import (
    DEFAULT_LIMIT,
    KINDS,
    MAX_LIMIT,
    Page,
    anchor_page,
    build_receipt,
    consistency,
    entry_at,
    entry_page,
    inclusion,
    latest_note,
    log_keys,
    note_at,
)

LONG_CACHE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=10"
TEXT = "text/plain; charset=utf-8"
MAX_SEQ = 2**63 - 1
SEQ = "<int(max=9223372036854775807):seq>"
SIZE = "<int(max=9223372036854775807):size>"


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
        bounds = {"minimum": -MAX_SEQ if signed else 0, "maximum": MAX_SEQ}
        kwargs["metadata"] = bounds | kwargs.get("metadata", {})  # as documented in OpenAPI
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
        metadata={
            "description": f"Cursor: the last {what} seq of the previous page (-1: none)",
            "minimum": -1,
        },
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
    texts = fields.Dict(
        metadata={
            "description": "The public texts the entry commits to (entry data version 2), by "
            "field (e.g. purpose, donor.name): {commitment, text, salt, redacted_seq}; "
            "SHA-256('lunaria/public-text/v1' || 0x00 || salt || UTF-8 text) = commitment. "
            "text and salt are null once redacted; {} when the entry commits to none"
        }
    )


class EntryPageSchema(ma.Schema):
    items = fields.List(fields.Nested(PublicEntrySchema))
    next = fields.Integer(
        allow_none=True, metadata={"description": "Pass as after= for the next page; null: done"}
    )
    next_url = fields.String(allow_none=True, metadata={"description": "The next page"})


class InclusionProofSchema(ma.Schema):
    """Documents the JSON of :class:`ledger.log.InclusionProof`, which the routes render."""

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
    texts = fields.Dict(
        metadata={"description": "Only for an entry with public texts: as in the entries"}
    )


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


def _served(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Entries as served (``ledger.log``'s public entries): each with the public texts it
    commits to beside it."""
    texts = public_text.texts_beside(db.get_engine(), [item.entry for item in items])
    return [
        {"seq": item.seq, "hash": item.hash, "entry": item.entry, "texts": served}
        for item, served in zip(items, texts, strict=True)
    ]


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
@blp.doc(responses={404: "NOT_FOUND"})  # pool= names no pool
@blp.response(200, EntryPageSchema)
def list_entries(query: dict[str, Any]) -> Reply:
    """Entries in seq order, after a cursor; filter by kind and pool.

    Each item is ``{"seq", "hash", "entry"}`` where ``entry`` is the logged object exactly
    as hashed: ``hash`` = SHA-256(0x00 || JCS(entry)); nothing is added inside it. With
    ``pool``, a page holds ``limit`` items unless the pool has no more. With only ``kind``, a
    page looks at most 10,000 seqs past its cursor, so it may hold fewer than ``limit`` items
    (even none) while ``next`` is not null. Either way, follow ``next`` until it is null."""
    engine = db.get_engine()
    page = (
        entry_page(engine, **query)
        if query.get("pool") is None
        else pool_entry_page(engine, **query)
    )
    items = _served(page.items)
    body = {"items": items, "next": page.next, "next_url": _next_url(page, query)}
    settled = page.settled and not any(item["texts"] for item in items)
    return body, 200, _cached(LONG_CACHE if settled else SHORT_CACHE)


@blp.route(f"/ledger/entries/{SEQ}", methods=["GET"])
@blp.response(200, PublicEntrySchema)
def get_entry(seq: int) -> Reply:
    """One entry as ``{"seq", "hash", "entry", "texts"}``; entries never change (cached a
    year), but a public text beside one can be redacted (then cached for a few seconds)."""
    (served,) = _served([entry_at(db.get_engine(), seq)])
    if served["texts"]:
        return served, 200, _cached(SHORT_CACHE)
    return served, 200, {**_cached(LONG_CACHE), "ETag": f'"{served["hash"]}"'}


@blp.route("/ledger/checkpoint", methods=["GET"])
@blp.response(200, {"type": "string"}, content_type=TEXT, description="A C2SP signed note")
def get_checkpoint() -> Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint as a signed note), verbatim."""
    return _text(latest_note(db.get_engine()), SHORT_CACHE)


@blp.route(f"/ledger/checkpoints/{SIZE}", methods=["GET"])
@blp.response(200, {"type": "string"}, content_type=TEXT, description="A C2SP signed note")
def get_checkpoint_at(size: int) -> Response:
    """The checkpoint signed at exactly tree size ``size`` (reports link to it), with the
    witnesses' cosignatures collected so far: the log's signed text never changes, but
    cosignature lines join it after it is signed, so it is cached only briefly. A size the log
    never signed a checkpoint at is a 404 ``checkpoint_not_found``."""
    return _text(note_at(db.get_engine(), size), SHORT_CACHE)


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
    everything to verify offline (``lunaria verify-receipt`` or /verify); for an entry with
    public texts, those texts and their salts too (``texts``, as beside the entries)."""
    receipt = public_text.receipt_with_texts(db.get_engine(), build_receipt(db.get_log(), seq))
    return _json(receipt.to_json(), SHORT_CACHE)


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
