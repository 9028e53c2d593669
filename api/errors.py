"""One error format: RFC 9457 ``application/problem+json`` with a stable ``code``.

:data:`PROBLEMS` is the one table from a code to its HTTP status and title. Ledger errors
carry their code; the API layer raises :class:`ApiProblem` for what it refuses itself
(unreadable JSON, a missing Idempotency-Key, schema validation); Werkzeug's HTTP errors
(404, 405, 413, …) and any unexpected exception become problems too — the last as a 500
``internal_error`` whose body says nothing about the cause (the log has the traceback).
Outside ``/api/`` (the web pages, the static tiles) HTTP errors keep Werkzeug's rendering.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    ServiceUnavailable,
)

from api.web import error_page
from ledger.errors import IdempotencyConflict, LedgerError, RuleViolation

PROBLEM_TYPE = "application/problem+json"
API_PREFIX = "/api/"
TYPE_BASE = "/api/v1/docs#problem-"

# code -> (HTTP status, title). Status classes, consistently:
#   400 the request cannot be read (JSON syntax, required headers)
#   401 no valid token; 403 the token may not do this
#   404/405 no such resource or method
#   409 the request is well formed but conflicts with the state of the books
#   413/415 body too large, not JSON
#   429 a rate limit is spent (api/throttle.py)
#   422 well-formed JSON whose values are refused (schema or ledger rules on values)
PROBLEMS: Mapping[str, tuple[int, str]] = {
    "malformed_json": (400, "The body is not valid JSON"),
    "idempotency_key_required": (400, "An Idempotency-Key header is required"),
    "invalid_idempotency_key": (400, "The Idempotency-Key header is invalid"),
    "bad_request": (400, "Bad request"),
    "unauthorized": (401, "A valid bearer token is required"),
    "token_expired": (401, "The token has expired"),
    "token_revoked": (401, "The token was revoked"),
    "forbidden": (403, "The token's role may not do this"),
    "not_custodian": (403, "Only members of the current custodian may do this"),
    "proposer_cannot_vote": (403, "The proposer cannot vote on their own proposal"),
    "not_found": (404, "Not found"),
    "receipt_not_yet_covered": (404, "No signed checkpoint covers the entry yet"),
    "checkpoint_not_found": (404, "No checkpoint was signed at that tree size"),
    "text_not_found": (404, "No public text has that commitment"),
    "cycle_not_started": (404, "That cycle has not started (or has no signed entry yet)"),
    "cycle_before_pool": (404, "The pool did not exist in that cycle"),
    "unknown_format": (404, "Unknown report format"),
    "invalid_cycle": (400, "The cycle must be a lunation number or 'latest'"),
    "invalid_fields": (400, "Unknown or repeated fields"),
    "method_not_allowed": (405, "Method not allowed"),
    "idempotency_conflict": (409, "The Idempotency-Key was used with another request"),
    "duplicate": (409, "It exists already"),
    "already_voted": (409, "This member has already voted"),
    "grant_not_open": (409, "The grant is not open"),
    "grant_not_approved": (409, "The grant is not approved"),
    "already_corrected": (409, "The entry was corrected already"),
    "already_redacted": (409, "The text was redacted already"),
    "insufficient_funds": (409, "Not enough available funds"),
    "fast_lane_not_urgent": (409, "The fast lane is for urgent grants only"),
    "fast_lane_cap_exceeded": (409, "Over the fast-lane cap"),
    "fast_lane_allowance_exceeded": (409, "Over this cycle's fast-lane allowance"),
    "body_too_large": (413, "The request body is too large"),
    "unsupported_media_type": (415, "The body must be application/json"),
    "rate_limited": (429, "Too many requests; retry after Retry-After seconds"),
    "invalid_request": (422, "The request is invalid"),
    "invalid_amount": (422, "Invalid amount"),
    "amount_too_large": (422, "The amount has too many digits"),
    "unknown_currency": (422, "Unknown currency"),
    "currency_not_accepted": (422, "The pool does not take this currency"),
    "invalid_encoding": (422, "The value cannot be encoded in the log"),
    "invalid_slug": (422, "Invalid slug"),
    "invalid_pseudonym": (422, "Invalid pseudonym"),
    "invalid_text": (422, "Invalid text"),
    "invalid_commitment": (422, "Not a commitment (64 lowercase hex digits)"),
    "invalid_reason": (422, "Unknown reason code"),
    "personal_data_suspected": (422, "The text looks like it holds personal data"),
    "duplicate_reference": (409, "This reference was recorded already"),
    "vault_error": (503, "Private records cannot be sealed or opened"),
    "invalid_currencies": (422, "Invalid currencies"),
    "invalid_quorum": (422, "Invalid quorum"),
    "invalid_roster": (422, "Invalid roster"),
    "unknown_collective": (422, "The roster names an unknown collective"),
    "invalid_batch": (422, "Invalid batch"),
    "malformed_statement": (422, "The bank statement is malformed"),
    "unknown_statement_format": (422, "Not a camt.053, camt.054, MT940 or CSV statement"),
    "statement_too_large": (413, "The bank statement is too large"),
    "currency_mismatch": (422, "The statement mixes currencies"),
    "duplicate_line": (422, "The statement holds one bank reference twice"),
    "invalid_iban": (422, "An IBAN in the statement is not valid"),
    "import_too_large": (422, "Too many new credits for one import"),
    "no_mapping": (409, "The pool has no CSV column mapping yet"),
    "invalid_mapping": (422, "Invalid CSV column mapping"),
    "invalid_channel": (422, "Invalid channel"),
    "invalid_urgency": (422, "Invalid urgency"),
    "invalid_vote": (422, "Invalid vote"),
    "not_correctable": (422, "Only donations and disbursements can be corrected"),
    "invalid_role": (422, "Invalid role for a token"),
    "unknown_member": (422, "Not an active member of that collective"),
    "invalid_expiry": (422, "Invalid expiry"),
    "invalid_status": (422, "Invalid status filter"),
    "invalid_limit": (422, "Invalid page size"),
    "invalid_cursor": (422, "Invalid cursor"),
    "invalid_query": (422, "Invalid query parameters"),
    "invalid_index": (422, "The index is not below the tree size"),
    "size_beyond_log": (422, "The tree size is beyond the log"),
    "invalid_range": (422, "The range is invalid (reversed tree sizes or dates)"),
    "invalid_url": (422, "Not a usable webhook URL"),
    "private_target": (422, "The webhook URL is not on a public address"),
    "unknown_event_type": (422, "Unknown event type"),
    "too_many_endpoints": (409, "Too many webhook endpoints"),
    "invalid_email": (422, "Not a mail address"),
    "invalid_language": (422, "Unsupported language"),
    "mail_disabled": (409, "This server sends no mail"),
    "invalid_deadline": (422, "Invalid decision deadline for urgent grants"),
    "invalid_policy": (422, "Invalid urgency policy"),
    "overdue_lane_not_allowed": (409, "The pool does not allow a single approval when overdue"),
    "not_overdue": (409, "The grant is not past its decision deadline"),
    "inconsistent_log": (500, "The log does not add up; run lunaria verify"),
    "schema_out_of_date": (503, "The database is being upgraded; try again shortly"),
    "reports_busy": (503, "Too many reports are being rendered; try again shortly"),
    "internal_error": (500, "Internal server error"),
    "unbalanced_postings": (500, "Internal server error"),  # an invariant, never the client's
}

# Werkzeug's HTTP errors by status; any other status gets a code from its name.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}


class ApiProblem(Exception):
    """A failure the API layer itself reports (as opposed to one from the ledger)."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


def problem(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The problem+json response for ``code``; ``status`` only for codes not in the table."""
    known = PROBLEMS.get(code)
    status = known[0] if known else status or 500
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title or (known[1] if known else code.replace("_", " ").capitalize()),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path,
        **extra,
    }
    response = current_app.response_class(
        current_app.json.dumps(body), status=status, mimetype=PROBLEM_TYPE
    )
    response.headers.update(headers or {})
    if status == 401:
        challenge = 'Bearer realm="lunaria"'
        if code != "unauthorized" or request.headers.get("Authorization"):
            challenge += ', error="invalid_token"'
        response.headers["WWW-Authenticate"] = challenge
    return response


def _inherited_status(exc: LedgerError) -> int | None:
    """The status of the nearest ancestor class whose code the table knows (a new
    ``NotFound`` subclass is still a 404; a new rule is still a 422)."""
    if isinstance(exc, RuleViolation):
        return 422
    for cls in type(exc).__mro__[1:]:
        known = PROBLEMS.get(getattr(cls, "code", ""))
        if known is not None:
            return known[0]
    return None


def _ledger_error(exc: LedgerError) -> Response | HTTPException:
    if isinstance(exc, IdempotencyConflict):
        return problem(exc.code, exc.message, fields=list(exc.fields))
    known = PROBLEMS.get(exc.code)
    status = known[0] if known else _inherited_status(exc)
    if status is None or status == 500:
        return _unexpected(exc)
    if status == 503:
        current_app.logger.error("%s", exc.message)
        if not _for_the_api():
            return ServiceUnavailable(exc.message)
    if known is None:
        current_app.logger.warning("error code %r is not in api.errors.PROBLEMS", exc.code)
    return problem(exc.code, exc.message, status=status)


def _api_problem(exc: ApiProblem) -> Response:
    return problem(exc.code, exc.detail, **exc.extra)


def _for_the_api() -> bool:
    """Problem documents are the API's format; pages and tiles keep Werkzeug's own."""
    return request.path.startswith(API_PREFIX)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    status = exc.code or 500
    if not _for_the_api():
        return _page(exc, status)
    if status >= 500:
        return _unexpected(exc)
    code = _HTTP_CODES.get(status) or re.sub(r"\W+", "_", (exc.name or "error").lower())
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    detail = exc.description or exc.name
    if status == 413:
        limit = request.max_content_length
        detail = f"the request body is over the limit of {limit} bytes"
    title = None if code in PROBLEMS else exc.name
    return problem(code, detail, status=status, title=title, headers=headers)


def _page(exc: HTTPException, status: int) -> Response | HTTPException:
    """Outside the API, the site's styled page for a 404 or a failure (Werkzeug's own for
    other statuses, and when the styled page cannot be drawn)."""
    if status not in (404, 500):
        return exc
    return error_page(status) or exc


def _unexpected(exc: BaseException) -> Response | HTTPException:
    current_app.logger.error("unhandled error", exc_info=exc)
    if not _for_the_api():
        return _page(InternalServerError(), 500)
    return problem("internal_error", "the server failed; the error was logged")


def init_app(app: Flask) -> None:
    """Register the handlers (after flask-smorest's, which they replace)."""
    app.register_error_handler(LedgerError, _ledger_error)
    app.register_error_handler(ApiProblem, _api_problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"donations.3.amount": ["…"]}``."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            flat.update(flatten_messages(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    return {prefix or "_schema": [str(messages)]}


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (documentation of every error response)."""

    type = ma.fields.String(metadata={"description": "URI reference of the problem type"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Stable machine-readable code"})
    instance = ma.fields.String()
    differing = ma.fields.List(
        ma.fields.String(),
        data_key="fields",
        metadata={"description": "idempotency_conflict: the request fields that differ"},
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "invalid_request: messages per field path"},
    )
