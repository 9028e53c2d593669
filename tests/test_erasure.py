"""Erasing personal data: a grant's recipient details by grant id (API and command line),
and the private records of an older Lunaria sealed by ``lunaria init``. Both databases."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect, select, text

from api import db
from ledger import migrate
from ledger.fund.privacy import private_record, recipient_commitment
from ledger.fund.schema import private_records
from ledger.log.db import make_engine
from tests.test_api_support import Story, build_story, proposal


def _grant_with_details(story: Story, details: str) -> int:
    response = story.http.post(
        "/pools/food/grants", proposal(recipient_details=details), token=story.applicant
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def _kept(app: Flask, grant: int) -> str | None:
    with app.app_context():
        return recipient_commitment(db.get_engine(), grant)


def test_recipient_details_are_erased_by_grant_id(
    app: Flask, client: Any, runner: FlaskCliRunner
) -> None:
    story = build_story(app, client, runner)
    by_api = _grant_with_details(story, "Olena, flat 4, Kyiv")
    by_cli = _grant_with_details(story, "Ivan, house 9, Lviv")
    assert _kept(app, by_api) and _kept(app, by_cli)
    size = story.http.size()

    path = f"/api/v1/grants/{by_api}/recipient-details"
    refused = client.delete(path, headers={"Authorization": f"Bearer {story.treasurer}"})
    assert (refused.status_code, refused.get_json()["code"]) == (403, "forbidden")
    assert _kept(app, by_api)
    admin = {"Authorization": f"Bearer {story.admin}"}
    assert client.delete(path, headers=admin).status_code == 204
    assert _kept(app, by_api) is None
    again = client.delete(path, headers=admin)
    assert (again.status_code, again.get_json()["code"]) == (404, "not_found")

    result = runner.invoke(args=["erase", "--grant", str(by_cli)])
    assert result.exit_code == 0, result.output
    assert _kept(app, by_cli) is None
    assert runner.invoke(args=["erase", "--grant", str(by_cli)]).exit_code == 1
    assert runner.invoke(args=["erase"]).exit_code != 0
    assert story.http.size() == size  # erasing writes nothing to the log
    assert runner.invoke(args=["verify"]).exit_code == 0


def test_init_seals_the_records_of_an_older_lunaria(db_url: str, app: Flask, runner: Any) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0005")  # private records in the clear, as Lunaria kept them then
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO private_records (commitment, kind, salt, payload, seq)"
                " VALUES (:c, 'donation', :salt, :payload, 7)"
            ),
            {"c": "ab" * 32, "salt": "cd" * 32, "payload": json.dumps({"note": "old note"})},
        )
    engine.dispose()
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert "sealed 1 private records" in result.output
    with app.app_context(), db.get_engine().connect() as conn:
        assert "private_records_legacy" not in inspect(conn).get_table_names()
        record = private_record(conn, db.get_vault(), "ab" * 32)
        assert record is not None and record.payload == {"note": "old note"}
        assert record.salt == bytes.fromhex("cd" * 32)
        raw = conn.execute(select(private_records.c.sealed)).scalar_one()
        assert b"old note" not in bytes(raw)
