"""Webhook signing secrets sealed at rest: no secret in the clear in any table, deliveries that
still verify with the ``standardwebhooks`` library, a sealed secret copied to another
endpoint's row that does not open (nothing sent), a vault key rotation that keeps them
working, and the plaintext secrets of an older Lunaria sealed by ``lunaria init``. Both
databases."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, MetaData, inspect, select, text, update

from api import db
from ledger import migrate
from ledger.fund.schema import webhook_secrets
from ledger.fund.vault import Sealed, Vault, VaultError
from ledger.fund.webhooks import SecretRefused, create_endpoint, open_secret, rewrap_secrets
from ledger.log.clock import ManualClock
from ledger.log.db import make_engine, write_transaction
from tests.test_api_support import Http, Story, cli_admin_token, proposal
from tests.test_db_roles import TwoRoles, _init_as_owner
from tests.test_db_roles import two_roles as two_roles
from tests.test_webhooks import PUBLIC_IP, Receiver, notifier, subscribe
from tests.test_webhooks import receiver as receiver
from tests.test_webhooks import story as story
from tests.test_worker import ADMIN


def _every_value(engine: Engine) -> list[bytes]:
    """Every value of every row of every table, as bytes (what a dump of the database holds)."""
    tables = MetaData()
    tables.reflect(engine)
    values: list[bytes] = []
    with engine.connect() as conn:
        for table in tables.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    is_bytes = isinstance(value, bytes | memoryview)
                    values.append(bytes(value) if is_bytes else str(value).encode())
    return values


def _holding(engine: Engine, secret: str, files: bool = True) -> list[bytes]:
    """The values (and, on SQLite, the database files) holding ``secret`` in any form: the
    ``whsec_`` string, its base64 or its 24 raw bytes."""
    encoded = secret.removeprefix("whsec_")
    forms = [secret.encode(), encoded.encode(), base64.b64decode(encoded)]
    found = [v for v in _every_value(engine) if any(form in v for form in forms)]
    if files and engine.dialect.name == "sqlite":
        database = Path(str(engine.url.database))
        for path in (database, Path(f"{database}-wal")):
            if path.exists() and any(form in path.read_bytes() for form in forms):
                found.append(str(path).encode())
    return found


def _sealed_row(engine: Engine, endpoint: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(webhook_secrets).where(webhook_secrets.c.endpoint == endpoint)
        ).one()


def test_no_secret_in_the_clear_and_deliveries_verify(
    app: Flask, story: Story, clock: ManualClock, receiver: Receiver
) -> None:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
    receiver.secrets.append(hook["secret"])
    run = notifier(app, clock)
    with app.app_context():
        engine = db.get_engine()
        assert _holding(engine, hook["secret"]) == []
        row = _sealed_row(engine, hook["id"])
        assert row.key_id == Vault(db.data_key_file()).seal([("x", b"")])[0].key_id
    story.propose("1000")
    said = run.until_quiet()
    assert any("delivered" in line for line in said), said
    assert len(receiver.got) == 1 and receiver.got[0].verified  # (standardwebhooks verifies)
    with app.app_context():
        assert _holding(db.get_engine(), hook["secret"]) == []  # nor after signing


def test_a_secret_copied_to_another_endpoint_does_not_open(
    app: Flask, story: Story, clock: ManualClock, receiver: Receiver
) -> None:
    """Whoever can write the database moves endpoint A's sealed secret (known to them, say,
    as A's owner) onto endpoint B: B's deliveries are refused, loudly, and nothing is sent."""
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    other = Receiver()
    try:
        mine = subscribe(story.http, story.admin, other.url, ["grant.proposed"])
        theirs = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
        other.secrets.append(mine["secret"])
        receiver.secrets += [mine["secret"], theirs["secret"]]
        with app.app_context():
            engine = db.get_engine()
            copied = _sealed_row(engine, mine["id"])
            moved = {name: copied._mapping[name] for name in ("key_id", "wrapped_key", "sealed")}
            with engine.begin() as conn:
                conn.execute(
                    update(webhook_secrets)
                    .where(webhook_secrets.c.endpoint == theirs["id"])
                    .values(moved)
                )
            with pytest.raises(SecretRefused, match="does not open"):
                open_secret(engine, db.get_vault(), theirs["id"])
        run = notifier(app, clock)
        story.propose("1000")
        said = run.until_quiet()
        assert receiver.got == []  # nothing reached the target of the tampered endpoint
        assert len(other.got) == 1 and other.got[0].verified  # the untouched one still works
        refused = [line for line in said if theirs["id"] in line]
        assert refused and "does not open" in refused[0] and "nothing sent" in refused[0]
        log = story.http.get(f"/webhooks/{theirs['id']}/deliveries", token=story.admin)
        assert log[0]["status"] == "pending" and log[0]["last_status"] is None
        assert "does not open" in log[0]["last_error"]
        shown = story.http.get(f"/webhooks/{theirs['id']}", token=story.admin)
        assert shown["failures_in_a_row"] == 1
    finally:
        other.stop()


def test_a_vault_key_rotation_rewraps_them(
    app: Flask, story: Story, clock: ManualClock, receiver: Receiver, runner: FlaskCliRunner
) -> None:
    """``lunaria erase`` rotates the vault key: the secrets are re-wrapped under the new one,
    deliveries still verify, and a copy of the row from before opens no more."""
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    hook = subscribe(story.http, story.admin, receiver.url, ["grant.proposed"])
    receiver.secrets.append(hook["secret"])
    response = story.http.post(
        "/pools/food/grants", proposal(recipient_details="IBAN ES00 0000"), token=story.applicant
    )
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        engine, vault = db.get_engine(), db.get_vault()
        before = _sealed_row(engine, hook["id"])
    result = runner.invoke(args=["erase", "--grant", str(response.get_json()["id"])])
    assert result.exit_code == 0, result.output
    with app.app_context():
        after = _sealed_row(engine, hook["id"])
        assert after.key_id != before.key_id and after.wrapped_key != before.wrapped_key
        assert after.sealed == before.sealed  # (only the data key's wrapping changes)
        assert open_secret(engine, Vault(vault.path), hook["id"]) == hook["secret"]
        stolen = Sealed(before.key_id, bytes(before.wrapped_key), bytes(before.sealed))
        with pytest.raises(VaultError):
            Vault(vault.path).open(f"webhook-secret/{hook['id']}", stolen)
        assert _holding(engine, hook["secret"]) == []
    story.propose("1000")
    notifier(app, clock).until_quiet()  # (the grant proposed before the rotation, and this one)
    assert len(receiver.got) == 2 and all(r.verified for r in receiver.got)


def test_init_seals_the_plaintext_secrets_of_an_older_lunaria(
    db_url: str, app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0016")  # webhook secrets in the clear, as Lunaria kept them then
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, collective, events, secret, created_by,"
                " created_ts, failures_in_a_row) VALUES ('0123456789abcdef',"
                " 'https://example.org/hook', NULL, '[\"grant.proposed\"]', :secret, 'admin:1',"
                " '2026-01-01T00:00:00.000000Z', 0)"
            ),
            {"secret": secret},
        )
    migrate.upgrade(engine)  # (what a server started before lunaria init would run on)
    assert "secret" not in {c["name"] for c in inspect(engine).get_columns("webhook_endpoints")}
    with pytest.raises(SecretRefused, match="run lunaria init"):  # the worker will not sign
        open_secret(engine, Vault(tmp_path / "no.key"), "0123456789abcdef")
    engine.dispose()

    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert "sealed the signing secrets of 1 webhook endpoints" in result.output
    with app.app_context():
        engine = db.get_engine()
        assert "webhook_secrets_legacy" not in inspect(engine).get_table_names()
        with engine.connect() as conn:  # (the endpoint itself is kept whole)
            kept = conn.execute(text("SELECT url, events FROM webhook_endpoints")).one()
        assert tuple(kept) == ("https://example.org/hook", '["grant.proposed"]')
        assert open_secret(engine, db.get_vault(), "0123456789abcdef") == secret
        # (The file's free pages may keep the old plaintext: docs/operations.md says so.)
        assert _holding(engine, secret, files=False) == []
    again = runner.invoke(args=["init"])
    assert again.exit_code == 0 and "webhook endpoints" not in again.output


def test_a_fresh_schema_keeps_no_legacy_table(engine: Engine) -> None:
    """Migration 0017 on a database without endpoints leaves no table of plaintext behind."""
    names = inspect(engine).get_table_names()
    assert "webhook_secrets" in names and "webhook_secrets_legacy" not in names


def _downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()


@pytest.mark.usefixtures("log")  # (subscribing needs the log)
def test_0017_goes_down_only_without_endpoints(engine: Engine, vault: Vault) -> None:
    """Unsealing needs the vault key, which a migration has not: with an endpoint, 0017 is not
    undone and nothing changes; without one, 0016's plaintext column comes back, and up again."""
    made = create_endpoint(
        engine,
        vault,
        ADMIN,
        url=f"https://{PUBLIC_IP}/hook",
        events=None,
        now=datetime.now(UTC),
        allow_private=False,
        idempotency_scope="before-downgrade",
    )
    with pytest.raises(RuntimeError, match="sealed webhook secrets stay sealed"):
        _downgrade(engine, "0016")
    assert migrate.is_current(engine)
    assert open_secret(engine, vault, made.endpoint.id) == made.secret
    with write_transaction(engine) as conn:
        conn.execute(text("DELETE FROM webhook_secrets"))
        conn.execute(text("DELETE FROM webhook_endpoints"))
    _downgrade(engine, "0016")
    columns = {c["name"] for c in inspect(engine).get_columns("webhook_endpoints")}
    assert "secret" in columns and "webhook_secrets" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert migrate.is_current(engine)


def test_the_server_role_seals_opens_and_rewraps_them(two_roles: TwoRoles) -> None:
    """PostgreSQL's server role (not the owner) may lock, seal, open and re-wrap: what
    subscribing, delivering and a vault key rotation do."""
    _init_as_owner(two_roles)
    app = two_roles.app()
    try:
        http = Http(app, app.test_client())
        admin = cli_admin_token(app.test_cli_runner())
        hook = subscribe(http, admin, f"https://{PUBLIC_IP}/hook")
        with app.app_context():
            engine, vault = db.get_engine(), db.get_vault()
            assert engine.url.username == two_roles.role
            assert open_secret(engine, vault, hook["id"]) == hook["secret"]
            with vault.rotation() as rewrap, write_transaction(engine) as conn:
                assert rewrap_secrets(conn, rewrap) == 1
                rewrap.install()
            assert _sealed_row(engine, hook["id"]).key_id == rewrap.key_id
            assert open_secret(engine, Vault(vault.path), hook["id"]) == hook["secret"]
    finally:
        state = app.extensions.get("lunaria")
        if state is not None:
            state.engine.dispose()


def test_an_endpoint_made_during_a_rotation_is_sealed_under_the_new_key(
    app: Flask, story: Story
) -> None:
    """A subscription that comes while a rotation holds the secrets waits for it, then seals
    under the new vault key: were it sealed under the key being retired and committed beside
    the rotation, it would never open again."""
    with app.app_context():
        engine, vault = db.get_engine(), db.get_vault()
    rotating, go = threading.Event(), threading.Event()
    made: list[Any] = []

    def rotate() -> None:
        with vault.rotation() as rewrap, write_transaction(engine) as conn:
            rewrap_secrets(conn, rewrap)
            rotating.set()
            go.wait(30)
            rewrap.install()

    def subscribe_meanwhile() -> None:
        made.append(
            create_endpoint(
                engine,
                Vault(vault.path),
                ADMIN,
                url="http://127.0.0.1:9/hook",
                events=None,
                now=datetime.now(UTC),
                allow_private=True,
                idempotency_scope="during-rotation",
            )
        )

    rotation = threading.Thread(target=rotate)
    rotation.start()
    assert rotating.wait(30)
    creating = threading.Thread(target=subscribe_meanwhile)
    creating.start()
    creating.join(1.0)
    assert creating.is_alive()  # waiting for the rotation
    go.set()
    rotation.join(30)
    creating.join(30)
    (created,) = made
    assert created.secret is not None
    assert open_secret(engine, Vault(vault.path), created.endpoint.id) == created.secret
    key_id = Vault(vault.path).seal([("x", b"")])[0].key_id
    assert _sealed_row(engine, created.endpoint.id).key_id == key_id
