"""Audit reports per pool and lunar cycle: PDF, CSV, JSON, JSONL and beancount."""

from __future__ import annotations

from flask import Response, request

from api import db
from api.blueprint import Blueprint
from api.web import select_locale
from exports.formats import make_options, render_report

blp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1",
    description="Deterministic reports of a pool's lunar cycle; every number re-derivable "
    "from the public log. The report's SHA-256 is in the X-Report-SHA256 header.",
)


@blp.route("/pools/<slug:slug>/reports/<cycle>.<fmt>", methods=["GET"])
@blp.response(
    200,
    {"type": "string", "format": "binary"},
    content_type="application/octet-stream",
    description="The report as pdf, csv, json, jsonl or beancount (query: fields, since, until)",
)
def report(slug: str, cycle: str, fmt: str) -> Response:
    """One cycle's report (``latest`` for the newest); a cycle in progress is marked interim."""
    options = make_options(
        lang=select_locale(),
        fields=request.args.get("fields"),
        since=request.args.get("since"),
        until=request.args.get("until"),
        base_url=request.host_url,
    )
    rendered = render_report(
        db.get_engine(), slug, cycle, fmt, now=db.get_clock().now(), options=options
    )
    info = rendered.info
    response = Response(rendered.content, mimetype=info.media_type)
    response.headers["X-Report-SHA256"] = info.sha256
    response.headers["Content-Disposition"] = f'attachment; filename="{info.filename}"'
    response.headers["Cache-Control"] = "no-cache" if info.interim else "public, max-age=300"
    return response
