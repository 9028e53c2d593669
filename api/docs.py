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
                "RFC 9457 problem+json with a stable code."
            )
        }
    },
}


def _status_name(status: int) -> str:
    return http.HTTPStatus(status).name


class WritesPlugin(BasePlugin):
    """Marks writes in the spec: bearer security, the Idempotency-Key header, error replies."""

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for method, operation in (operations or {}).items():
            if method.upper() not in WRITE_METHODS:
                continue
            operation["security"] = [{SECURITY_SCHEME: []}]
            responses = operation.setdefault("responses", {})
            for status in (401, 403, 404, 409, 422):
                responses.setdefault(str(status), _status_name(status))
            if method.upper() in KEYED_METHODS:
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                for status in (400, 413, 415):
                    responses.setdefault(str(status), _status_name(status))


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

    def _register_responses(self) -> None:
        spec: APISpec = self.spec
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, spec, PROBLEM_TYPE)
            spec.components.response(status.name, response, lazy=True)
        default = {"description": "Problem details", "schema": self.ERROR_SCHEMA}
        prepare_response(default, spec, PROBLEM_TYPE)
        spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)


def make_api(app: Flask) -> Api:
    """The smorest Api with Lunaria's spec components (security scheme, idempotency header)."""
    for key, value in CONFIG.items():
        app.config.setdefault(key, value)
    app.url_map.converters["slug"] = SlugConverter
    api = Api(app, spec_kwargs={"extra_plugins": [WritesPlugin(), ExamplesPlugin()]})
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
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
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
