"""The log as static C2SP tlog-tiles under ``/tlog/``, for standard tools and mirrors.

``/tlog/checkpoint`` (the latest signed note), ``/tlog/tile/<L>/<N>[.p/<W>]`` (hash tiles) and
``/tlog/tile/entries/<N>[.p/<W>]`` (entry bundles), byte for byte what :mod:`ledger.log.tiles`
reads and ``lunaria publish`` writes. Full tiles never change and are cached for a year as
``immutable``; the checkpoint and partial tiles only briefly. ``lunaria audit <base URL>``
reads exactly these paths.

Not part of the JSON API (and not in its OpenAPI document): a path that is not a tile, or a
tile beyond the latest checkpoint, is a plain-text 404, as a static file server would answer.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from api import db
from ledger.errors import NotFound
from ledger.log import CHECKPOINT_PATH, TILE_PREFIX, parse_tile_path, read_resource

LONG_CACHE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=10"
TILE_TYPE = "application/octet-stream"
CHECKPOINT_TYPE = "text/plain; charset=utf-8"

bp = Blueprint("tlog", __name__, url_prefix="/tlog")


def _serve(data: bytes, content_type: str, cache: str) -> Response:
    response = Response(data, content_type=content_type)
    response.headers["Cache-Control"] = cache
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.add_etag()
    response.make_conditional(request)
    return response


@bp.route("/checkpoint", methods=["GET"])
def checkpoint() -> Response:
    """The latest signed checkpoint."""
    data = read_resource(db.get_log(), CHECKPOINT_PATH)
    return _serve(data, CHECKPOINT_TYPE, SHORT_CACHE)


@bp.route("/tile/<path:path>", methods=["GET"])
def tile(path: str) -> Response:
    """A hash tile or an entry bundle, by its canonical path only."""
    resource = TILE_PREFIX + path
    partial = parse_tile_path(resource).is_partial
    data = read_resource(db.get_log(), resource)
    return _serve(data, TILE_TYPE, SHORT_CACHE if partial else LONG_CACHE)


@bp.errorhandler(NotFound)
def not_found(exc: NotFound) -> Response:
    response = Response(f"not found: {exc.message}\n", status=404, content_type=CHECKPOINT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
