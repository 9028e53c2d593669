"""The OpenAPI document, its examples, and the Swagger UI docs page served from this package."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask

from api import web
from api.docs_examples import RECEIPT_EXAMPLE
from api.errors import PROBLEMS
from ledger.log import Verifier, parse_receipt, verify_receipt
from tests.test_api_support import build_story

PREFIX = "/api/v1"
ROOT = Path(__file__).parent.parent
VENDOR = ROOT / "api" / "static" / "vendor" / "swagger-ui"
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
    limited = components["responses"]["TOO_MANY_REQUESTS"]
    assert limited["headers"]["Retry-After"]["required"] is True
    token_reads = {"/me", "/me/queue", "/webhooks", "/webhooks/{endpoint_id}"}
    token_reads |= {"/webhooks/{endpoint_id}/deliveries", "/notifications/email"}
    public_writes = {("post", "/pools/{slug}/pledges"), ("delete", "/pledges/{secret}")}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            short = path.removeprefix(PREFIX)
            responses = operation["responses"]
            assert "default" not in responses and "503" in responses, (method, path)
            keyed = {"$ref": "#/components/parameters/IdempotencyKey"} in operation.get(
                "parameters", []
            )
            if method == "get" and short not in token_reads:
                assert "security" not in operation and "401" not in responses, path
                continue
            if (method, short) in public_writes:  # no token, no key; limited per address
                assert operation["security"] == [] and not keyed, (method, path)
                assert "401" not in responses and "429" in responses, (method, path)
                continue
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert {"401", "403", "429"} <= set(responses), (method, path)
            assert keyed == (method in ("post", "put")), (method, path)
    amount = components["schemas"]["NewDonation"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"] == "^[1-9][0-9]*$"


def test_docs_page_is_swagger_ui_from_this_package_under_the_site_csp(client: Any) -> None:
    response = client.get(f"{PREFIX}/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == web.CSP  # no relaxation
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all(body.strip() == "" for _, body in scripts), "inline script"
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "something from elsewhere"
    assert 'data-spec="openapi.json"' in page
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert {"/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/docs.js"} <= set(assets)
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and served.data, asset
    for code in PROBLEMS:  # each problem type resolves to its row
        assert f'id="problem-{code}"' in page


def _vendored_files() -> list[str]:
    """The files `make vendor` copies (the Makefile's SWAGGER_UI_FILES)."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^SWAGGER_UI_FILES = (.+)$", makefile, re.M)
    assert match is not None
    return match.group(1).split()


def test_vendored_swagger_ui_is_the_pinned_npm_package() -> None:
    """api/static/vendor/swagger-ui/ is committed; it must be node_modules' copy of the version
    package.json pins (`make vendor` after changing the pin)."""
    package = ROOT / "node_modules" / "swagger-ui-dist"
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["swagger-ui-dist"]
    assert json.loads((package / "package.json").read_text())["version"] == pinned
    files = _vendored_files()
    assert "swagger-ui-bundle.js" in files and "LICENSE" in files
    for name in files:
        copy = VENDOR / name
        assert copy.read_bytes() == (package / name).read_bytes(), f"{copy} differs: make vendor"
    assert sorted(p.name for p in VENDOR.iterdir()) == sorted(files)


def _examples(operation: dict[str, Any]) -> dict[str, Any]:
    body = operation["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in body["examples"].items()}


def test_the_documented_examples_work_in_order(app: Flask, client: Any, runner: Any) -> None:
    """Each request example of the main flows, read from openapi.json, is accepted by the API:
    a token, a donation, a grant, votes; the receipt example verifies offline."""
    story = build_story(app, client, runner)
    http = story.http
    paths = http.get("/openapi.json")["paths"]
    for name, body in _examples(paths[f"{PREFIX}/tokens"]["post"]).items():
        issued = http.post("/tokens", body, token=story.admin, status=201).get_json()
        assert issued["role"] == body["role"], name
    donations = _examples(paths[f"{PREFIX}/pools/{{slug}}/donations"]["post"])
    assert {"bank", "named"} <= donations.keys()
    for body in donations.values():
        http.post("/pools/food/donations", body, token=story.treasurer, status=201)
    (grant,) = _examples(paths[f"{PREFIX}/pools/{{slug}}/grants"]["post"]).values()
    votes = _examples(paths[f"{PREFIX}/grants/{{grant_id}}/votes"]["post"])
    assert {"approve", "fast_lane", "reject"} <= votes.keys()
    for name, vote in votes.items():
        # The fast lane takes only grants within its cap (5000 in the story's pool).
        body = {**grant, "amount": "4000"} if name == "fast_lane" else grant
        grant_id = http.post("/pools/food/grants", body, token=story.applicant, status=201)
        voted = story.vote(grant_id.get_json()["id"], "a1", **vote)
        assert (voted["vote"], voted["member"]) == (vote["vote"], "a1"), name
        if name == "fast_lane":
            assert voted["status"] == "approved" and voted["decision"]["lane"] == "fast_lane"


def test_the_receipt_example_verifies_and_has_the_served_shape(
    app: Flask, client: Any, runner: Any
) -> None:
    spec_ok = client.get(f"{PREFIX}/openapi.json").get_json()["paths"][f"{PREFIX}/receipts/{{seq}}"]
    (example,) = spec_ok["get"]["responses"]["200"]["content"]["application/json"]["examples"]
    receipt = RECEIPT_EXAMPLE
    verified = verify_receipt(
        parse_receipt(json.dumps(receipt).encode()), [Verifier.from_vkey(receipt["vkey"])]
    )
    assert verified.entry.kind == "donation_recorded" and example == "donation"
    story = build_story(app, client, runner, donations=10)  # 10 entries: a checkpoint covers one
    seq = story.http.get("/ledger/entries?kind=donation_recorded")["items"][0]["seq"]
    served = story.http.get(f"/receipts/{seq}")
    assert served["entry"]["kind"] == "donation_recorded"
    assert served.keys() == receipt.keys()
    assert served["proof"].keys() == receipt["proof"].keys()
