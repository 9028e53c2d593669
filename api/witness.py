"""``/witness``: this instance as a C2SP tlog-witness, and what its own log's witnesses said.

``POST /witness/add-checkpoint`` is c2sp.org/tlog-witness's endpoint (the submission prefix is
``/witness``): :class:`ledger.log.witness.Witness` decides; this answers with its status. A
409 is the size held as ``text/x.tlog.size``, as the spec requires; the other refusals are
problem+json with a stable ``code``. ``GET /witness`` (JSON) lists this witness's key, the logs
it witnesses and, for this instance's own log, each of its witnesses' last cosignature and
refusals (:mod:`ledger.log.cosigning`).

Not part of the JSON API's OpenAPI document: the protocol is the spec's, not Lunaria's.
The settings and key files of witnessing are read here, for the pages, the worker and the
``lunaria witness`` commands alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from api import db
from api.errors import problem
from ledger.errors import LedgerError, NotFound
from ledger.log import (
    MAX_BODY,
    SIZE_CONTENT_TYPE,
    BodyTooLarge,
    Cosigner,
    Witness,
    WitnessConflict,
    WitnessEndpoint,
    WitnessRefusal,
    read_witnesses,
    witness_status,
)

PREFIX = "/witness"  # the submission prefix (and the monitoring one)
bp = Blueprint("witness", __name__, url_prefix=PREFIX)


# -- settings and key files --------------------------------------------------------------------


def witness_key_file() -> Path:
    """LUNARIA_WITNESS_KEY_FILE, or ``witness.key`` beside the signing key."""
    configured: str | None = current_app.config.get("WITNESS_KEY_FILE")
    return Path(configured) if configured else db.key_file().with_name("witness.key")


def witness_name(origin: str) -> str:
    """LUNARIA_WITNESS_NAME, or ``<origin>/witness``: the name of a new witness key."""
    configured: str | None = current_app.config.get("WITNESS_NAME")
    return configured or f"{origin}/witness"


def load_cosigner() -> Cosigner | None:
    """This instance's witness key, or None before ``lunaria init`` made it."""
    path = witness_key_file()
    return Cosigner.load(path) if path.exists() else None


def get_witness() -> Witness:
    return Witness(db.get_engine(), load_cosigner(), db.get_clock())


def configured_witnesses() -> list[WitnessEndpoint]:
    """The witnesses of this log (LUNARIA_WITNESSES, a file of ``VKEY URL`` lines)."""
    path: str | None = current_app.config.get("WITNESSES")
    return read_witnesses(Path(path)) if path else []


def configured_quorum(count: int) -> int:
    """LUNARIA_WITNESS_QUORUM, or a majority of the ``count`` witnesses."""
    configured = current_app.config.get("WITNESS_QUORUM")
    if configured in (None, ""):
        return count // 2 + 1 if count else 0
    quorum = int(configured)
    if not 0 <= quorum <= count:
        raise LedgerError(
            f"LUNARIA_WITNESS_QUORUM is {quorum}, but LUNARIA_WITNESSES names {count} witnesses"
        )
    return quorum


# -- the routes ----------------------------------------------------------------------------------


def _require_log() -> None:
    """Before ``lunaria init`` there are no witness tables: nothing is witnessed yet."""
    if db.stored_origin(db.get_engine()) is None:
        raise NotFound("this Lunaria has not been set up yet (`lunaria init`)")


@bp.route("/add-checkpoint", methods=["POST"])
def add_checkpoint() -> Response:
    """c2sp.org/tlog-witness add-checkpoint: the cosignature line, or the spec's status."""
    _require_log()
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise BodyTooLarge(f"the body is {length} bytes, over the limit of {MAX_BODY}")
    body = request.stream.read(MAX_BODY + 1)
    line = get_witness().add_checkpoint(body)
    return Response(line, content_type="text/plain; charset=utf-8")


@bp.route("", methods=["GET"])
def overview() -> Response:
    """This witness's key, the logs it witnesses, and this log's own witnesses (JSON)."""
    _require_log()
    cosigner = load_cosigner()
    body: dict[str, Any] = {
        "witness": {
            "vkey": None if cosigner is None else cosigner.verifier().vkey(),
            "submission_prefix": request.host_url.rstrip("/") + PREFIX,
            "logs": [log.to_json() for log in get_witness().logs()],
        },
        "cosigning": _cosigning(),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _cosigning() -> dict[str, Any]:
    with db.get_engine().connect() as conn:
        status = witness_status(conn)
    try:
        quorum: int | None = configured_quorum(len(configured_witnesses()))
        problem = None
    except LedgerError as exc:  # (said here too: the worker stops on it)
        quorum, problem = None, exc.message
    return {"quorum": quorum, "configuration_error": problem, "witnesses": status}


@bp.errorhandler(WitnessRefusal)
def refused(exc: WitnessRefusal) -> Response:
    if isinstance(exc, WitnessConflict):
        return Response(exc.body(), status=409, content_type=SIZE_CONTENT_TYPE)
    return problem(exc.code, exc.message, status=exc.status)
