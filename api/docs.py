"""The OpenAPI document (flask-smorest) and the API reference page.

``/api/v1/openapi.json`` is generated from the blueprints and schemas, with examples of the
main flows (:mod:`api.docs_examples`). ``/api/v1/docs`` is Swagger UI over that document,
served from this package (``static/vendor/swagger-ui/``, copied from the pinned npm
``swagger-ui-dist`` by ``make vendor``): nothing is fetched from anywhere else, so it works
offline, under the public pages' Content-Security-Policy (no inline script: ``static/docs.js``
starts it). Below it, the table of problem ``code``s, the target of every problem ``type``.
"""

from __future__ import annotations

import http
from typing import Any

import flask_smorest
from apispec import APISpec, BasePlugin
from flask import Blueprint, Flask, current_app, render_template
from flask_smorest.utils import prepare_response

from api.auth import IDEMPOTENCY_HEADER, KEYED_METHODS, MAX_IDEMPOTENCY_KEY, WRITE_METHODS
from api.blueprint import SlugConverter
from api.docs_examples import REQUESTS, RESPONSES
from api.errors import PROBLEM_TYPE, PROBLEMS, ProblemSchema

SECURITY_SCHEME = "bearerAuth"
# ``@blp.doc(**TOKEN_READ)``: a read that needs a token; ``@blp.doc(**PUBLIC_WRITE)``: a write
# that needs none (an api.auth.public_write view).
TOKEN_READ: dict[str, Any] = {"security": [{SECURITY_SCHEME: []}]}
PUBLIC_WRITE: dict[str, Any] = {"security": []}
IDEMPOTENCY_PARAMETER = "IdempotencyKey"
JSON = "application/json"

CONFIG = {
    "API_TITLE": "Lunaria",
    "API_VERSION": "1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "A transparent micro-grant ledger. Public reads need no token; every write "
                "needs a bearer token whose role allows it, and every POST and PUT an "
                "Idempotency-Key. Amounts are strings of digits in minor units. Errors are "
                "RFC 9457 problem+json with a stable code. Query parameters that an "
                "operation does not name are ignored (a cache-buster, say)."
            )
        }
    },
}


def _status_name(status: int) -> str:
    return http.HTTPStatus(status).name


# Operations that a request valid by the schema may still see refused with a 422, and the
# codes it may get: rules that no JSON Schema can state, because they need the books (a name
# that must exist, the log's size), another field (a currency the pool takes), the network (a
# webhook host that resolves to a public address) or the ledger's screening of public text for
# personal data. Each operation's 422 lists them (and ``x-refused-beyond-schema`` names them for
# tools: tests/test_schemathesis.py accepts exactly these). Everything else the server refuses
# is in the schema; 404 (no such resource), 409 (a conflict with the books) and 401/403 (who
# asks) depend on the state and are declared as such.
_SCREENED = ("personal_data_suspected",)
_AMOUNT = ("amount_too_large", "currency_not_accepted")
BEYOND_SCHEMA: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/api/v1/pools"): (*_SCREENED, "invalid_currencies", "amount_too_large"),
    ("put", "/api/v1/pools/{slug}/roster"): ("unknown_collective",),
    ("post", "/api/v1/collectives"): _SCREENED,
    ("post", "/api/v1/pools/{slug}/donations"): (*_SCREENED, *_AMOUNT),
    ("post", "/api/v1/pools/{slug}/donations:batch"): (*_SCREENED, *_AMOUNT),
    ("post", "/api/v1/pools/{slug}/imports"): (
        "malformed_statement",
        "unknown_statement_format",
        "currency_mismatch",
        "duplicate_line",
        "invalid_iban",
        "invalid_amount",
        "import_too_large",
        "currency_not_accepted",
    ),
    ("put", "/api/v1/pools/{slug}/imports/csv-mapping"): ("invalid_mapping",),
    ("post", "/api/v1/pools/{slug}/grants"): (*_SCREENED, *_AMOUNT),
    ("post", "/api/v1/pools/{slug}/pledges"): _AMOUNT,
    ("post", "/api/v1/grants/{grant_id}/votes"): (*_SCREENED, "invalid_vote"),
    ("post", "/api/v1/grants/{grant_id}/cancel"): _SCREENED,
    ("post", "/api/v1/corrections"): (*_SCREENED, "not_correctable"),
    ("post", "/api/v1/tokens"): ("invalid_role", "unknown_member", "invalid_expiry"),
    ("post", "/api/v1/webhooks"): ("invalid_url", "private_target"),
    ("get", "/api/v1/pools/{slug}/grants"): ("invalid_cursor",),
    ("get", "/api/v1/ledger/entries"): ("invalid_cursor",),
    ("get", "/api/v1/anchors"): ("invalid_cursor",),
    ("get", "/api/v1/ledger/proofs/inclusion"): ("invalid_index", "size_beyond_log"),
    ("get", "/api/v1/ledger/proofs/consistency"): ("invalid_range", "size_beyond_log"),
    ("get", "/api/v1/pools/{slug}/reports/{cycle}.{fmt}"): ("invalid_range",),
}
BEYOND_SCHEMA_KEY = "x-refused-beyond-schema"


# Headers that come with a status wherever it is answered.
RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}
STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'Bearer realm="lunaria" (RFC 6750)',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": {**RETRY_AFTER, "required": True}},  # rate_limited (api/throttle.py)
}


class ResponsesPlugin(BasePlugin):
    """Every status an operation answers, and for writes the bearer security and the
    Idempotency-Key header. No ``default`` response: what is not listed is not answered."""

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            write = method.upper() in WRITE_METHODS
            public = operation.get("security") == []  # a write that needs no token (nor key)
            if write and not public:
                operation["security"] = [{SECURITY_SCHEME: []}]
            statuses = set()
            if operation.get("security"):
                statuses |= {401, 403, 429}
            if write:
                statuses |= {404, 409, 422, 429}  # (public writes are limited per address)
            if write and public and operation.get("requestBody"):
                statuses |= {400, 413, 415}
            if method.upper() in KEYED_METHODS and not public:
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                statuses |= {400, 413, 415}
            if "{" in (path or ""):
                statuses.add(404)
            statuses.add(503)  # schema_out_of_date: the database is being upgraded
            for status in sorted(statuses):
                responses.setdefault(str(status), _status_name(status))
            codes = BEYOND_SCHEMA.get((method, path or ""))
            if codes:
                operation[BEYOND_SCHEMA_KEY] = list(codes)
                listed = "; ".join(f"{code} ({PROBLEMS[code][1].lower()})" for code in codes)
                responses["422"] = {  # (OpenAPI 3.1: a reference may override a description)
                    "$ref": f"#/components/responses/{_status_name(422)}",
                    "description": "A value the schema forbids (invalid_request, or the "
                    "ledger's own code), or one of the rules no schema can state: " + listed,
                }


class ExamplesPlugin(BasePlugin):
    """Adds the examples of :mod:`api.docs_examples` to their operations' JSON bodies."""

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for method, operation in (operations or {}).items():
            examples = REQUESTS.get((method, path or ""))
            if examples is not None:
                operation["requestBody"]["content"][JSON]["examples"] = examples
            examples = RESPONSES.get((method, path or ""))
            if examples is not None:
                ok = operation["responses"][200]  # (apispec turns the keys into strings later)
                ok["content"][JSON]["examples"] = examples


class Api(flask_smorest.Api):  # type: ignore[misc]  # flask-smorest has no types
    """flask-smorest's Api, documenting problem+json as every error response."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # every status is declared (ResponsesPlugin)

    def _register_responses(self) -> None:
        spec: APISpec = self.spec
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            if status in STATUS_HEADERS:
                response["headers"] = STATUS_HEADERS[status]
            prepare_response(response, spec, PROBLEM_TYPE)
            # (422 is also referenced by a raw $ref, which apispec does not follow: not lazy)
            spec.components.response(status.name, response, lazy=status != 422)
        default = {"description": "Problem details", "schema": self.ERROR_SCHEMA}
        prepare_response(default, spec, PROBLEM_TYPE)
        if self.DEFAULT_ERROR_RESPONSE_NAME:
            spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)


def make_api(app: Flask) -> Api:
    """The smorest Api with Lunaria's spec components (security scheme, idempotency header)."""
    for key, value in CONFIG.items():
        app.config.setdefault(key, value)
    app.url_map.converters["slug"] = SlugConverter
    api = Api(app, spec_kwargs={"extra_plugins": [ResponsesPlugin(), ExamplesPlugin()]})
    api.register_converter(SlugConverter, SlugConverter.openapi)
    api.spec.components.security_scheme(
        SECURITY_SCHEME,
        {"type": "http", "scheme": "bearer", "bearerFormat": "lun_<16 hex id>_<43 char secret>"},
    )
    api.spec.components.parameter(
        IDEMPOTENCY_PARAMETER,
        "header",
        {
            "name": IDEMPOTENCY_HEADER,
            "required": True,
            "description": (
                "A unique key per intended change, resent unchanged on retries: the same key "
                "and body return the original response; the same key with another body is a "
                "409 idempotency_conflict naming the fields that differ."
            ),
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY,
                "pattern": "^[\\x21-\\x7e]+$",  # visible ASCII (api.auth)
            },
        },
    )
    return api


blp = Blueprint("docs", __name__, url_prefix="/api/v1", template_folder="templates")


@blp.route("/docs", methods=["GET"])
def docs_page() -> str:
    """Swagger UI over openapi.json, and the table of problem codes."""
    api: Api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    return render_template(
        "docs/index.html",
        info=api.spec.to_dict()["info"],
        problems=sorted(PROBLEMS.items(), key=lambda item: (item[1][0], item[0])),
    )
