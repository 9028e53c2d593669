"""``/mirror/<hex SHA-256 of origin>/``: the logs this instance mirrors, as C2SP tlog-tiles.

``checkpoint`` is the origin's checkpoint as copied, with this instance's mirror cosignature
(c2sp.org/tlog-cosignature, by the mirror key: it has durably copied the log up to that size);
``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]`` are the origin's bytes, exactly.
:class:`ledger.log.Mirrors` copies and checks them (``lunaria mirror``, the worker); this only
serves them, read-only, as ``/tlog/`` serves the own log: a path not held is a plain-text 404.
The settings and the key file of mirroring are read here, for the pages, the worker and the
``lunaria mirror`` commands alike.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Response, current_app, request

from api import db
from api.tlog import CHECKPOINT_TYPE, LONG_CACHE, SHORT_CACHE, TILE_TYPE
from ledger.errors import LedgerError, NotFound
from ledger.log import CHECKPOINT_PATH, TILE_PREFIX, Cosigner, Mirrors, parse_tile_path

bp = Blueprint("mirrors", __name__, url_prefix="/mirror")


# -- settings and key files --------------------------------------------------------------------


def mirror_key_file() -> Path:
    """LUNARIA_MIRROR_KEY_FILE, or ``mirror.key`` beside the signing key."""
    configured: str | None = current_app.config.get("MIRROR_KEY_FILE")
    return Path(configured) if configured else db.key_file().with_name("mirror.key")


def mirror_name(origin: str) -> str:
    """LUNARIA_MIRROR_NAME, or ``<origin>/mirror``: the name of a new mirror key."""
    configured: str | None = current_app.config.get("MIRROR_NAME")
    return configured or f"{origin}/mirror"


def mirror_interval() -> timedelta:
    """LUNARIA_MIRROR_INTERVAL: seconds between the worker's syncs of each mirror (60)."""
    configured = current_app.config.get("MIRROR_INTERVAL")
    seconds = 60.0 if configured in (None, "") else float(configured)
    if seconds <= 0:
        raise LedgerError(f"LUNARIA_MIRROR_INTERVAL is {configured!r}; it must be positive")
    return timedelta(seconds=seconds)


def load_mirror_key() -> Cosigner | None:
    """This instance's mirror key (type 0x04), or None before ``lunaria init`` made it."""
    path = mirror_key_file()
    return Cosigner.load(path) if path.exists() else None


def get_mirrors() -> Mirrors:
    return Mirrors(db.get_engine(), load_mirror_key(), db.get_clock())


# -- the routes ----------------------------------------------------------------------------------


def _serve(data: bytes, content_type: str, cache: str) -> Response:
    response = Response(data, content_type=content_type)
    response.headers["Cache-Control"] = cache
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.add_etag()
    response.make_conditional(request)
    return response


def _require_log() -> None:
    if db.stored_origin(db.get_engine()) is None:
        raise NotFound("this Lunaria has not been set up yet (`lunaria init`)")


@bp.route("/<key>/checkpoint", methods=["GET"])
def checkpoint(key: str) -> Response:
    """The mirrored checkpoint, with this mirror's cosignature."""
    _require_log()
    data = get_mirrors().resource(key, CHECKPOINT_PATH)
    return _serve(data, CHECKPOINT_TYPE, SHORT_CACHE)


@bp.route("/<key>/tile/<path:path>", methods=["GET"])
def tile(key: str, path: str) -> Response:
    """A copied hash tile or entry bundle, by its canonical path only."""
    _require_log()
    resource = TILE_PREFIX + path
    partial = parse_tile_path(resource).is_partial
    data = get_mirrors().resource(key, resource)
    return _serve(data, TILE_TYPE, SHORT_CACHE if partial else LONG_CACHE)


@bp.errorhandler(NotFound)
def not_found(exc: NotFound) -> Response:
    response = Response(f"not found: {exc.message}\n", status=404, content_type=CHECKPOINT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
