"""Schemathesis against the live service, with every check: the OpenAPI document states what the
server enforces, and the server answers what the document states.

The books are not empty: the story of :mod:`tests.test_api_support` (pool ``food``,
collectives ``alba``/``brisa``, donations, an open grant) is written first, in process, on the
database the server then serves (``lunaria serve``, a real server on a free port, rate limits
off: ``LUNARIA_RATE_LIMITS=0``; the throttle has its own tests in tests/test_throttle.py).
Schemathesis loads ``/api/v1/openapi.json`` from the server, checks it against the OpenAPI 3.1
meta-schema, and generates requests for every operation. Every write carries a bearer token
allowed to make it and a fresh Idempotency-Key, so generated requests reach the ledger, not
only the guard. Each operation runs three times: positive cases with generated path parameters
(mostly unknown resources); positive cases with the story's own (``food``, the open grant, a
token id, an entry) and bodies whose naming fields (currency, collectives) name what exists, so
the ledger accepts some of them; and negative cases (values the schema forbids, missing or
broken headers) against the story's resources.

Every response passes all of schemathesis' checks (:data:`CHECKS`): no 5xx; status code,
content type, headers and body as documented; a request valid by the schema is not refused
(``positive_data_acceptance``: only 2xx, or 401/403/404/409, which depend on who asks and on
the books, never 400 or 422) and an invalid one is (``negative_data_rejection``). Generation is
derandomised and bounded, so a run is repeatable; failures are collected with their request (as
a curl command) and reported together at the end.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override

from api import create_app
from api.docs import BEYOND_SCHEMA_KEY
from tests import live_server
from tests.test_api_support import Story, build_story

PREFIX = "/api/v1"
SCHEMA_PATH = f"{PREFIX}/openapi.json"
SELF = {SCHEMA_PATH, f"{PREFIX}/docs"}

# Examples per operation and per pass. PostgreSQL pays more per write, so it runs fewer: the
# operations and the passes are the same.
EXAMPLES = {"sqlite": 8, "postgresql": 5}

# Refusals a request valid by the schema may get: who asks (401, 403) and the books (404: no
# such resource; 409: a conflict with their state). Never 400 or 422: those say the request
# was wrong, and then the schema should have said so.
ACCEPTED = ["2xx", "401", "403", "404", "409"]
# What an invalid request must get.
REJECTED = ["400", "401", "403", "404", "405", "409", "413", "415", "422"]


def config_for(spec: dict[str, Any]) -> SchemathesisConfig:
    """Schemathesis' configuration: the statuses above; and where the document says that a
    request valid by the schema may still be refused by a rule no schema can state (the
    operation's ``x-refused-beyond-schema`` codes, listed in its 422 response), 422 is an
    expected answer to valid data there, and :func:`refused_only_beyond_schema` checks that
    its code is one of those."""
    operations = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and operation.get(BEYOND_SCHEMA_KEY):
                accepted = {"expected-statuses": [*ACCEPTED, "422"]}
                operations.append(
                    {
                        "include-name": f"{method.upper()} {path}",
                        "checks": {"positive_data_acceptance": accepted},
                    }
                )
    return SchemathesisConfig.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
                "negative_data_rejection": {"expected-statuses": REJECTED},
                "missing_required_header": {"expected-statuses": ["400", "401"]},
            },
            # The API ignores query parameters it does not name (the document says so: a
            # cache-buster is harmless), so an extra one is not invalid data.
            "generation": {"allow-extra-parameters": False},
            "operations": operations,
        }
    )


@schemathesis.check
def refused_only_beyond_schema(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> None:
    """A 422 to a request valid by the schema names one of the rules the operation documents
    as beyond the schema; any other 422 code means the schema should have stated the rule."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code != 422:
        return
    documented = case.operation.definition.raw.get(BEYOND_SCHEMA_KEY, [])
    code = response.json().get("code")
    if code not in documented:
        raise AssertionError(
            f"valid by the schema, refused with 422 {code}: the operation documents "
            f"{documented or 'no rule beyond its schema'}"
        )


def all_checks() -> list[Any]:
    """Every check schemathesis has, and ours."""
    load_all_checks()
    checks = [check for check in CHECKS.get_all() if check is not refused_only_beyond_schema]
    return [*checks, refused_only_beyond_schema]


def served_operations() -> set[str]:
    """``METHOD /path/{param}`` of every route the app serves under the API prefix."""
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
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
    return {"slug": "food", "grant_id": grant, "token_id": token_id, "seq": 3, "member": "a2"}


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
    """Admin for most; a member of the custodian (alba) votes, disburses and manages its own
    subscriptions (an admin may not), a treasurer donates."""
    if label.endswith(("/votes", "/disbursements", "/me", "/me/queue", "/notifications/email")):
        return story.member("a1")
    if "/donations" in label:
        return story.treasurer
    return story.admin


def build_books(db_url: str, folder: Path) -> tuple[Story, int, str]:
    """The story, written in process on the database the server will serve; the open grant's
    id and a spare token's id."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": db_url,
            "KEY_FILE": str(folder / "keys" / "log.key"),
            "RATE_LIMITS": False,
        }
    )
    try:
        story = build_story(app, app.test_client(), app.test_cli_runner(), donations=3)
        grant = story.propose("1500")
        issued = story.http.post(
            "/tokens", {"role": "treasurer", "label": "spare"}, token=story.admin, status=201
        )
        return story, grant, issued.get_json()["id"]
    finally:
        app.extensions["lunaria"].engine.dispose()


@pytest.mark.slow
def test_schemathesis_finds_nothing(db_url: str, tmp_path: Path) -> None:
    story, grant, spare_token_id = build_books(db_url, tmp_path)
    env = live_server.environment(db_url, tmp_path, LUNARIA_RATE_LIMITS="0")
    with live_server.serve(env, tmp_path) as server:
        base_url = f"http://127.0.0.1:{server.port}"
        started = time.monotonic()
        spec = requests.get(base_url + SCHEMA_PATH, timeout=30).json()
        schema = schemathesis.openapi.from_dict(spec, config=config_for(spec))
        schema.validate()  # against the OpenAPI 3.1 meta-schema; raises with the first error

        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()  # every operation in it can be tested
            operations.append(result.ok())
        labels = {operation.label for operation in operations}
        served = served_operations()
        assert served == labels, (
            f"served, not documented: {sorted(served - labels)}; "
            f"documented, not served: {sorted(labels - served)}"
        )

        examples = EXAMPLES["postgresql" if db_url.startswith("postgresql") else "sqlite"]
        checks = all_checks()
        keys = itertools.count()
        failures: list[str] = []
        calls: dict[str, int] = dict.fromkeys(labels, 0)
        statuses: dict[str, set[int]] = {label: set() for label in labels}

        def send(case: schemathesis.Case[Any], mode: GenerationMode, known: bool) -> None:
            """One request, every check; a failure is collected."""
            operation = case.operation
            label = operation.label
            headers = {"Authorization": f"Bearer {token_for(story, label)}"}
            if mode.is_positive and operation.method.upper() in ("POST", "PUT"):
                headers["Idempotency-Key"] = f"schemathesis-{next(keys)}"
            if known and mode.is_positive:
                case.body = nudge(case.body)
            # Negative cases keep their broken or missing headers (a bad token, a bad key).
            merged = {**headers, **(case.headers or {})} if mode.is_negative else headers
            response = case.call(base_url=base_url, headers=merged, timeout=30)
            calls[label] += 1
            statuses[label].add(response.status_code)
            try:
                case.validate_response(
                    response,
                    checks=checks,
                    headers=merged,
                    transport_kwargs={"base_url": base_url, "timeout": 30},
                )
            except (AssertionError, FailureGroup) as exc:
                failures.append(
                    f"{label} [{mode.value}] -> {response.status_code} "
                    f"{response.text[:300]!r}\n"
                    f"    {case.as_curl_command(headers=merged, base_url=base_url)}\n"
                    f"    {str(exc)[:600]}"
                )

        def fixed_path(operation: Any) -> dict[str, Any]:
            known = known_path_parameters(grant, spare_token_id)
            return {name: value for name, value in known.items() if f"{{{name}}}" in operation.path}

        def generated(operation: Any, mode: GenerationMode, known: bool) -> None:
            """Hypothesis' cases: random values of every shape the schema allows (or not)."""
            fixed = fixed_path(operation) if known else {}
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
                send(case, mode, known)

            try:
                run()
            except Unsatisfiable:
                assert mode.is_negative, operation.label  # nothing in it can be made invalid

        def boundaries(operation: Any, mode: GenerationMode) -> None:
            """Schemathesis' coverage phase: each constraint at and past its edges (empty and
            longest strings, the least and greatest numbers, each enum value, each optional
            field left out, each required one missing), against the story's resources."""
            generator = CoverageGenerator(
                operation=operation,
                generation_modes=[mode],
                generation_config=schema.config.generation_for(operation=operation),
                auth_storage=None,
                override=Override(path_parameters=fixed_path(operation)),
                feedback=FeedbackSources(),
            )
            for case in generator:
                send(case, mode, known=True)

        for operation in operations:
            generated(operation, GenerationMode.POSITIVE, known=False)
            generated(operation, GenerationMode.POSITIVE, known=True)
            generated(operation, GenerationMode.NEGATIVE, known=True)
            boundaries(operation, GenerationMode.POSITIVE)
            boundaries(operation, GenerationMode.NEGATIVE)
        elapsed = time.monotonic() - started

        # The review saw "text/csv; charset=utf-8; header=present; charset=utf-8".
        for method in ("GET", "HEAD"):
            status, headers, _ = server.request(method, f"{PREFIX}/pools/food/reports/latest.csv")
            assert status == 200, method
            assert headers["content-type"] == "text/csv; charset=utf-8; header=present", method

    total = sum(calls.values())
    for label in sorted(labels):  # shown on failure, or with -s
        print(f"{calls[label]:4} calls  {sorted(statuses[label])}  {label}")
    print(f"{len(labels)} operations, {total} requests, {elapsed:.1f} s")
    assert all(calls.values()), f"operations never called: {[k for k, v in calls.items() if not v]}"
    # The writes got past the guard: the ledger accepted some generated bodies.
    for write in ("POST /pools", "POST /collectives", "POST /pools/{slug}/donations"):
        method, path = write.split()
        assert any(status < 300 for status in statuses[f"{method} {PREFIX}{path}"]), write
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
