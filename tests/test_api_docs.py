"""The OpenAPI document and the self-contained docs page."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask

from api.errors import PROBLEMS

PREFIX = "/api/v1"
SELF = {f"{PREFIX}/openapi.json", f"{PREFIX}/docs"}


def api_routes(app: Flask) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the app serves under the API prefix."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX) or rule.rule in SELF:
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    return routes


def test_openapi_document_covers_every_route(app: Flask, client: Any) -> None:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    spec = json.loads(response.get_data(as_text=True))
    assert spec["openapi"] == "3.1.0" and spec["info"]["title"] == "Lunaria"
    documented = {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    }
    routes = api_routes(app)
    undocumented = sorted(routes - documented)
    assert not undocumented, f"served under {PREFIX} but missing from openapi.json: {undocumented}"
    assert documented <= routes
    for needed in [
        ("post", "/api/v1/pools"),
        ("post", "/api/v1/collectives"),
        ("post", "/api/v1/collectives/{slug}/members"),
        ("put", "/api/v1/pools/{slug}/roster"),
        ("post", "/api/v1/pools/{slug}/donations"),
        ("post", "/api/v1/pools/{slug}/donations:batch"),
        ("post", "/api/v1/pools/{slug}/grants"),
        ("post", "/api/v1/grants/{grant_id}/votes"),
        ("post", "/api/v1/grants/{grant_id}/disbursements"),
        ("post", "/api/v1/grants/{grant_id}/cancel"),
        ("post", "/api/v1/corrections"),
        ("get", "/api/v1/pools"),
        ("get", "/api/v1/pools/{slug}"),
        ("get", "/api/v1/pools/{slug}/cycles"),
        ("get", "/api/v1/pools/{slug}/grants"),
        ("get", "/api/v1/collectives"),
        ("get", "/api/v1/grants/{grant_id}"),
    ]:
        assert needed in routes


def test_openapi_marks_writes(client: Any) -> None:
    spec = client.get(f"{PREFIX}/openapi.json").get_json()
    components = spec["components"]
    assert components["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lun_<16 hex id>_<43 char secret>",
    }
    header = components["parameters"]["IdempotencyKey"]
    assert (header["in"], header["name"], header["required"]) == ("header", "Idempotency-Key", True)
    problem = components["responses"]["UNPROCESSABLE_ENTITY"]["content"]
    assert problem["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "code" in components["schemas"]["Problem"]["properties"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if method == "get":
                assert "security" not in operation, path
                continue
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert "401" in operation["responses"]
            keyed = {"$ref": "#/components/parameters/IdempotencyKey"} in operation.get(
                "parameters", []
            )
            assert keyed == (method in ("post", "put")), (method, path)
    amount = components["schemas"]["NewDonation"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"] == "^[1-9][0-9]*$"


def test_docs_page_is_self_contained(app: Flask, client: Any) -> None:
    response = client.get(f"{PREFIX}/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    page = response.get_data(as_text=True)
    assert "<script" not in page and "<link" not in page and "<style" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert 'href="openapi.json"' in page
    for method, path in api_routes(app):
        assert f'<tr id="{method}-{path}">' in page, (method, path)
    for code in PROBLEMS:  # each problem type resolves to its row
        assert f'id="problem-{code}"' in page
