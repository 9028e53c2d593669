"""Audit reports per pool and lunar cycle: PDF, CSV, JSON, JSONL and beancount.

A report is rendered once (:mod:`exports.cache` keeps it in the database, for every process)
and its ETag is the digest of what its bytes depend on, so ``If-None-Match`` (304) and HEAD
are answered without rendering. Renders are bounded per process (``LUNARIA_REPORT_RENDERS``,
default 1): a request that finds every slot taken waits ``LUNARIA_REPORT_WAIT`` seconds
(default 0: not at all), then gets 503 ``reports_busy`` with ``Retry-After``. It does not wait
because a waiting request holds one of the server's few threads, which proof and page reads
need, for as long as a render takes (seconds): with a one-second wait, 8 clients asking for
reports held all 8 threads of 2 gthread workers, and the checkpoint's p50 was 420 ms against
22 ms with no bound at all (bench/report_burst.py, SQLite, on a loaded machine).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from blinker import Namespace
from flask import Response, current_app, request
from flask.blueprints import BlueprintSetupState

from api import db, public_url, throttle
from api.blueprint import Blueprint
from api.errors import problem
from api.web import select_locale
from exports.cache import ReportKey, lookup, report_key, store
from exports.csv_export import CSV_FIELDS
from exports.formats import (
    FORMATS,
    MEDIA_TYPES,
    SHA256_HEADER,
    RenderedReport,
    ReportInfo,
    ReportOptions,
    make_options,
    render_report,
    report_filename,
)

blp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1",
    description="Deterministic reports of a pool's lunar cycle; every number re-derivable "
    "from the public log. The report's SHA-256 is in the X-Report-SHA256 header; the ETag "
    "changes only when the report does.",
)

report_rendered = Namespace().signal("report-rendered")
"""Sent (sender: the app, ``key``: the :class:`exports.cache.ReportKey`) after each render:
what a test or a metric counts."""

SLOTS = "lunaria.report_slots"  # app.extensions: the process's render slots
RETRY_AFTER = "5"  # seconds: about one render of a large cycle


def _make_slots(state: BlueprintSetupState) -> None:
    renders = int(state.app.config["REPORT_RENDERS"])
    state.app.extensions[SLOTS] = threading.BoundedSemaphore(renders) if renders > 0 else None


blp.record_once(_make_slots)


def _media_type(media_type: str) -> str:
    return media_type.split(";")[0]


# A date, or an RFC 3339 instant as Python reads it (upper-case T and Z, no leap second).
INSTANT = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    "(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
)
INSTANT_FORMATS = [{"format": "date"}, {"format": "date-time"}]

# What the path, the query and the answers are, stated for the OpenAPI document (api/docs.py adds
# the statuses every operation shares).
REPORT_DOC: dict[str, Any] = {
    "parameters": [
        {
            "in": "path",
            "name": "cycle",
            "required": True,
            "description": "A lunation number, or latest",
            "schema": {"type": "string", "pattern": "^(latest|-?[0-9]{1,9})$"},
        },
        {"in": "path", "name": "fmt", "required": True, "schema": {"enum": list(FORMATS)}},
        {
            "in": "query",
            "name": "fields",
            "description": "CSV: the columns, in this order (default: all)",
            "style": "form",
            "explode": False,
            "schema": {
                "type": "array",
                "items": {"enum": list(CSV_FIELDS)},
                "minItems": 1,
                "uniqueItems": True,
            },
        },
        *(
            {
                "in": "query",
                "name": name,
                "description": f"CSV: entries {which} (a date is its midnight UTC; since "
                "must be before until, else 422 invalid_range)",
                "schema": {"type": "string", "pattern": INSTANT, "anyOf": INSTANT_FORMATS},
            }
            for name, which in (("since", "from this instant on"), ("until", "before it"))
        ),
        {
            "in": "query",
            "name": "lang",
            "description": "en, es or uk (else Accept-Language, the language cookie, English)",
            "schema": {"type": "string"},
        },
    ],
    "responses": {
        200: {
            "content": {
                _media_type(media_type): {
                    "schema": {"type": "object"}
                    if fmt == "json"
                    else {"type": "string", "format": "binary"}
                }
                for fmt, media_type in MEDIA_TYPES.items()
            },
            "headers": {SHA256_HEADER: {"schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}},
        },
        304: {"description": "Not Modified: the ETag of If-None-Match is the report's"},
        400: "BAD_REQUEST",  # invalid_cycle
        429: "TOO_MANY_REQUESTS",  # report renders per client address
        503: {  # reports_busy
            "$ref": "#/components/responses/SERVICE_UNAVAILABLE",
            "description": "Every render slot is taken (reports_busy, with Retry-After), or "
            "the database is being upgraded",
        },
    },
}


@blp.route("/pools/<slug:slug>/reports/<cycle>.<fmt>", methods=["GET"])
@blp.response(
    200,
    description="The report as pdf, csv, json, jsonl or beancount (query: fields, since, until)",
)
@blp.doc(**REPORT_DOC)
@throttle.per_client_address(throttle.REPORTS)
def report(slug: str, cycle: str, fmt: str) -> Response:
    """One cycle's report (``latest`` for the newest); a cycle in progress is marked interim."""
    options = make_options(
        lang=select_locale(),
        fields=request.args.get("fields"),
        since=request.args.get("since"),
        until=request.args.get("until"),
        base_url=public_url.get(),
    )
    engine, now = db.get_engine(), db.get_clock().now()
    key = report_key(engine, slug, cycle, fmt, now=now, options=options)
    if request.if_none_match.contains(key.etag):
        return _answer(key, None, status=304)
    keeping = bool(current_app.config["REPORT_CACHE"])
    head = request.method == "HEAD"
    kept = lookup(engine, key, content=not head) if keeping else None
    if kept is None and head:
        return _answer(key, None)  # (what only the bytes tell is left out: RFC 9110 9.3.2)
    if kept is None:
        rendered = _render(key, now, options, keeping)
        if rendered is None:
            return problem(
                "reports_busy",
                "every report render slot is taken; try again in a few seconds",
                headers={"Retry-After": RETRY_AFTER},
            )
        kept = rendered
    return _answer(key, kept)


def _render(
    key: ReportKey, now: datetime, options: ReportOptions, keeping: bool
) -> RenderedReport | None:
    """Render in one of the process's slots and keep the result; None when no slot came
    free in time. Whoever waited for the same report gets the one rendered meanwhile."""
    slots: threading.BoundedSemaphore | None = current_app.extensions[SLOTS]
    if slots is not None and not slots.acquire(timeout=float(current_app.config["REPORT_WAIT"])):
        return None
    try:
        engine = db.get_engine()
        kept = lookup(engine, key) if keeping else None
        if kept is not None:
            return kept
        pdf = _pdf_info(key, now, options) if key.format == "json" and keeping else None
        rendered = render_report(
            engine, key.pool, key.cycle, key.format, now=now, options=options, pdf=pdf
        )
        report_rendered.send(current_app._get_current_object(), key=key)  # type: ignore[attr-defined]
        if keeping:
            store(engine, key, rendered)
        return rendered
    finally:
        if slots is not None:
            slots.release()


def _pdf_info(key: ReportKey, now: datetime, options: ReportOptions) -> ReportInfo | None:
    """The PDF a JSON report names (by SHA-256 and size), from the cache, or rendered and kept
    now (the next PDF download is then served kept); None if it is not of the JSON's revision
    (the JSON then renders the PDF of its own data)."""
    engine = db.get_engine()
    pdf_key = report_key(engine, key.pool, key.cycle, "pdf", now=now, options=options)
    if (pdf_key.checkpoint_size, pdf_key.revision) != (key.checkpoint_size, key.revision):
        return None
    kept = lookup(engine, pdf_key, content=False)
    if kept is None:
        kept = render_report(engine, key.pool, key.cycle, "pdf", now=now, options=options)
        report_rendered.send(current_app._get_current_object(), key=pdf_key)  # type: ignore[attr-defined]
        store(engine, pdf_key, kept)
    return kept.info


def _answer(key: ReportKey, report: RenderedReport | None, status: int = 200) -> Response:
    """The report, or (``report`` None) its headers alone: 304, or a HEAD of a report not
    rendered yet (no length and no SHA-256 until it is)."""
    response = Response(report.content if report else None, status=status)
    response.headers["ETag"] = f'"{key.etag}"'
    response.headers["Cache-Control"] = "no-cache" if key.interim else "public, max-age=300"
    if key.lang:  # chosen by ?lang=, the language cookie or Accept-Language (api.web)
        response.vary.update(("Accept-Language", "Cookie"))
    if status == 304:
        return response
    response.content_type = MEDIA_TYPES[key.format]
    filename = report_filename(key.pool, key.cycle, key.interim, key.format, key.lang)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if report is not None:
        response.headers[SHA256_HEADER] = report.info.sha256
        response.headers["Content-Length"] = str(report.info.size)
    else:
        response.automatically_set_content_length = False
    return response
