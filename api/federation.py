"""``/federation``: the logs this instance witnesses and mirrors, for people.

One page lists the logs it witnesses (C2SP tlog-witness: the size last cosigned, when, and how
many checkpoints it refused) and the logs it mirrors (the size copied, when last checked,
whether any inconsistency was ever seen); ``/federation/mirrors/<origin hash>`` shows one
mirrored fund: its origin, where it is copied from, the keys (the log's and this mirror's),
its tlog-tiles here, and every refused checkpoint with the reason. Pages in en, es and uk with
the site's strict CSP (no script), like the other pages of :mod:`api.web`; this module only
reads (:class:`ledger.log.Witness`, :class:`ledger.log.Mirrors`) and renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, url_for

from api import db, mirrors, web, witness
from ledger.errors import NotFound
from ledger.log import MIRROR_PREFIX

bp = Blueprint("federation", __name__)


@dataclass(frozen=True)
class LogRow:
    """A log witnessed or mirrored here, as a row of the page's tables."""

    origin: str
    size: int
    checked: Any  # when it was last checked; None: not yet
    inconsistencies: int  # checkpoints refused as inconsistent with what is held
    href: str | None = None  # its own page, if it has one


@bp.before_request
def _require_log() -> tuple[str, int] | None:
    return web.require_log()


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> tuple[str, int]:
    return render_template("web/error.html", status=404), 404


@bp.route("/federation", methods=["GET"])
def federation() -> str:
    """The logs witnessed and mirrored here."""
    witness_key = witness.load_cosigner()
    mirror_key = mirrors.load_mirror_key()
    witnessed = [
        LogRow(log.origin, log.size, log.ts if log.size else None, log.refusals)
        for log in witness.get_witness().logs()
    ]
    mirrored = [
        LogRow(
            log.origin,
            log.size,
            log.checked,
            log.incidents,
            url_for("federation.mirrored", key=log.origin_hash),
        )
        for log in mirrors.get_mirrors().logs()
    ]
    return render_template(
        "web/federation.html",
        witnessed=witnessed,
        mirrored=mirrored,
        witness_vkey=None if witness_key is None else witness_key.verifier().vkey(),
        mirror_vkey=None if mirror_key is None else mirror_key.verifier().vkey(),
    )


@bp.route("/federation/mirrors/<key>", methods=["GET"])
def mirrored(key: str) -> str:
    """One mirrored fund: origin, source, keys, size, checks and incidents."""
    found = mirrors.get_mirrors()
    log = found.get(key)
    if log.origin_hash != key:
        raise NotFound(f"{key!r} is not the hex SHA-256 of a mirrored origin")
    mirror_key = mirrors.load_mirror_key()
    return render_template(
        "web/mirrored.html",
        log=log,
        incidents=found.incidents(key),
        prefix="/" + MIRROR_PREFIX + log.origin_hash + "/",
        mirror_vkey=None if mirror_key is None else mirror_key.verifier().vkey(),
        origin=db.get_log().origin,
    )
