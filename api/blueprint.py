"""The Blueprint every API module uses, and the strict parsing of request bodies behind it.

:class:`JsonParser` is webargs' parser, stricter: a body that is not JSON (or holds NaN,
duplicate keys, or nests deeper than ``MAX_JSON_DEPTH``) is ``malformed_json``; one that its
schema refuses is ``invalid_request``. :class:`Blueprint` is flask-smorest's with that parser
and typed decorators; :func:`body_limit` lets one endpoint read a larger body;
:class:`SlugConverter` is the ``<slug:name>`` URL converter. The schemas the routes load and
dump are in :mod:`api.schemas`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

import flask
import flask_smorest
import marshmallow as ma
from flask_smorest.utils import resolve_schema_instance
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from api.errors import ApiProblem, flatten_messages

F = TypeVar("F", bound=Callable[..., Any])


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"the key {key!r} appears twice in one object")
        obj[key] = value
    return obj


# Request bodies here nest four levels at most. Refusing deeper ones before parsing keeps the
# parser safe whatever the interpreter's recursion limit is (py_ecc, imported with web3,
# raises it to 100000, where json.loads on a deep enough body overflows the C stack).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # (unrolled: a run at a time, not a byte)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def _nests_deeper_than(raw: bytes, limit: int) -> bool:
    brackets = _JSON_STRING.sub(b"", raw).translate(None, delete=_NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def _refuse_cut_body(req: flask.Request, raw: bytes) -> None:
    """A body without Content-Length (``Transfer-Encoding: chunked``) is read up to
    MAX_CONTENT_LENGTH and silently cut there by werkzeug; a byte more on the stream means it
    was over the limit: 413, not a truncated document refused as malformed JSON."""
    limit = req.max_content_length
    if req.content_length is not None or limit is None or len(raw) < limit:
        return
    if req.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


class JsonParser(FlaskParser):
    """webargs' parser, stricter: JSON syntax errors (and NaN, duplicate keys, nesting deeper
    than MAX_JSON_DEPTH) are ``malformed_json``; validation errors are ``invalid_request``."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        _refuse_cut_body(req, raw)
        if not raw:
            return core.missing
        if _nests_deeper_than(raw, MAX_JSON_DEPTH):
            raise ApiProblem(
                "malformed_json", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
            )
        try:
            return json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_refuse_duplicates,
                parse_constant=_refuse_constant,
            )
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            detail = "the body is not valid UTF-8 JSON"
            if isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError):
                detail += f": {exc}"
            raise ApiProblem("malformed_json", detail) from None

    def handle_error(
        self,
        error: ma.ValidationError,
        req: flask.Request,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Any,
    ) -> NoReturn:
        messages = error.messages
        if isinstance(messages, dict) and len(messages) == 1:  # drop webargs' location key
            (messages,) = messages.values()
        errors = flatten_messages(messages)
        fields_named = ", ".join(sorted(errors))
        raise ApiProblem("invalid_request", f"invalid fields: {fields_named}", errors=errors)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest has no types
    """flask-smorest's Blueprint with the strict parser and typed decorators."""

    ARGUMENTS_PARSER = JsonParser()

    def route(self, rule: str, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().route(rule, **options))

    def arguments(self, schema: Any, **kwargs: Any) -> Callable[[F], F]:
        # One schema instance per route, made here: given a class, webargs builds a new
        # instance (deep-copying every field) on each request.
        instance = resolve_schema_instance(schema)
        return cast(Callable[[F], F], super().arguments(instance, **kwargs))

    def response(self, status_code: int, schema: Any = None, **kwargs: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().response(status_code, schema, **kwargs))

    def doc(self, **kwargs: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().doc(**kwargs))


def body_limit(limit: int) -> Callable[[F], F]:
    """Let one endpoint read a body larger than MAX_CONTENT_LENGTH (a donations batch)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flask.request.max_content_length = limit
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


class SlugConverter(BaseConverter):
    """``<slug:name>``: a pool or collective slug; anything else in the path is a 404."""

    regex = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"

    @staticmethod
    def openapi(converter: BaseConverter) -> dict[str, Any]:
        return {"type": "string", "pattern": SLUG_PATTERN}


# A slug as OpenAPI documents it. The request schemas document it too, but do not enforce it:
# the ledger checks slugs and answers ``invalid_slug``.
SLUG_PATTERN = f"^{SlugConverter.regex}$"
