"""The OpenAPI document validates and covers every endpoint; a schemathesis run over it finds
no 5xx.

Schemathesis loads ``/api/v1/openapi.json`` from the app itself (WSGI, no server), checks it
against the OpenAPI 3.1 meta-schema, and generates requests for every operation from it. The
books are not empty: the story of :mod:`tests.test_api_support` (pool ``food``, collectives
``alba``/``brisa``, donations, an open grant) is written first, and every write carries a
bearer token and a fresh Idempotency-Key, so generated requests reach the ledger and not only
the guard. Each operation runs three times: positive cases with generated path parameters
(mostly unknown resources); positive cases with the story's own (``food``, the open grant, a
token id, an entry) and bodies whose naming fields (currency, collectives) name what exists,
so the ledger accepts some of them; and negative cases (values the schema forbids, missing or
broken headers) against the story's resources. Generation is derandomised and bounded, so a
run is repeatable.

Every 5xx is collected with its request (as a curl command) and reported together at the end.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskCliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.test_api_support import Story, build_story

PREFIX = "/api/v1"
SCHEMA_PATH = f"{PREFIX}/openapi.json"
SELF = {SCHEMA_PATH, f"{PREFIX}/docs"}

# Examples per operation and per pass. PostgreSQL pays more per write, so it runs fewer: the
# operations and the passes are the same.
EXAMPLES = {"sqlite": 10, "postgresql": 6}


def served_operations(app: Flask) -> set[str]:
    """``METHOD /path/{param}`` of every route the app serves under the API prefix."""
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX) or rule.rule in SELF:
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add(f"{method} {path}")
    return served


def known_path_parameters(grant: int, token_id: str) -> dict[str, Any]:
    """The story's own resources, by the names the paths give their parameters."""
    return {"slug": "food", "grant_id": grant, "token_id": token_id, "seq": 3}


# Values the story's books accept, put into generated bodies where a field of that name is.
KNOWN_FIELDS: dict[str, Any] = {
    "currency": "EUR",
    "currencies": ["EUR"],
    "collectives": ["alba", "brisa"],
    "collective": "alba",
}


def nudge(body: Any) -> Any:
    """A generated body with the fields that name things set to things that exist."""
    if isinstance(body, dict):
        nudged = {key: KNOWN_FIELDS.get(key, value) for key, value in body.items()}
        donations = nudged.get("donations")
        if isinstance(donations, list):
            nudged["donations"] = [nudge(item) for item in donations]
        return nudged
    return body


def token_for(story: Story, label: str) -> str:
    """Admin for most; a member of the custodian (alba) votes and disburses (an admin may
    not), a treasurer donates."""
    if label.endswith(("/votes", "/disbursements")):
        return story.member("a1")
    if "/donations" in label:
        return story.treasurer
    return story.admin


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(
    app: Flask, client: Any, runner: FlaskCliRunner, db_url: str
) -> None:
    story = build_story(app, client, runner, donations=3)
    grant = story.propose("1500")
    issued = story.http.post(
        "/tokens", {"role": "treasurer", "label": "spare"}, token=story.admin, status=201
    )
    spare_token_id = issued.get_json()["id"]

    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, app)
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises with the first error

    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # every operation in it can be tested
        operations.append(result.ok())
    labels = {operation.label for operation in operations}
    served = served_operations(app)
    assert served == labels, (
        f"served, not documented: {sorted(served - labels)}; "
        f"documented, not served: {sorted(labels - served)}"
    )

    examples = EXAMPLES["postgresql" if db_url.startswith("postgresql") else "sqlite"]
    keys = itertools.count()
    failures: list[str] = []
    calls: dict[str, int] = dict.fromkeys(labels, 0)
    statuses: dict[str, set[int]] = {label: set() for label in labels}

    def exercise(operation: Any, mode: GenerationMode, known: bool) -> None:
        label = operation.label
        fixed = {
            name: value
            for name, value in known_path_parameters(grant, spare_token_id).items()
            if known and f"{{{name}}}" in operation.path
        }
        strategy = operation.as_strategy(mode, path_parameters=fixed or None)

        @settings(
            max_examples=examples,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=strategy)
        def run(case: schemathesis.Case[Any]) -> None:
            headers = {"Authorization": f"Bearer {token_for(story, label)}"}
            if operation.method.upper() in ("POST", "PUT"):
                headers["Idempotency-Key"] = f"schemathesis-{next(keys)}"
            if known and mode.is_positive:
                case.body = nudge(case.body)
            response = case.call(headers=headers)
            calls[label] += 1
            statuses[label].add(response.status_code)
            try:
                case.validate_response(response, checks=[not_a_server_error], headers=headers)
            except (AssertionError, FailureGroup) as exc:
                failures.append(
                    f"{label} -> {response.status_code} {response.text[:300]!r}\n"
                    f"    {case.as_curl_command(headers=headers)}\n    ({type(exc).__name__})"
                )

        try:
            run()
        except Unsatisfiable:
            assert mode.is_negative, label  # nothing in the operation can be made invalid

    for operation in operations:
        exercise(operation, GenerationMode.POSITIVE, known=False)
        exercise(operation, GenerationMode.POSITIVE, known=True)
        exercise(operation, GenerationMode.NEGATIVE, known=True)

    for label in sorted(labels):  # shown on failure, or with -s
        print(f"{calls[label]:4} calls  {sorted(statuses[label])}  {label}")
    assert all(calls.values()), f"operations never called: {[k for k, v in calls.items() if not v]}"
    # The writes got past the guard: the ledger accepted some generated bodies.
    for write in ("POST /pools", "POST /collectives", "POST /pools/{slug}/donations"):
        method, path = write.split()
        assert any(status < 300 for status in statuses[f"{method} {PREFIX}{path}"]), write
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures)
