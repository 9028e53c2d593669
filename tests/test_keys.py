"""Key rotation: a key_rotated entry, a period of double signing, then the new key alone."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine

from api import create_app, db
from ledger.errors import LedgerError, SignatureError, VerificationError
from ledger.log import keys
from ledger.log.append import CheckpointPolicy, Log, fingerprint_key_from
from ledger.log.clock import ManualClock, parse_ts
from ledger.log.keys import KeyFiles, rotate_key
from ledger.log.notes import Signer, Verifier, open_note, parse_note
from ledger.log.verify import verify_database
from tests.conftest import ORIGIN
from tests.test_api_support import Http, cli_admin_token

DAYS_30 = timedelta(days=30)


def _signed_by(note: str, verifier: Verifier) -> bool:
    try:
        open_note(parse_note(note), [verifier])
    except SignatureError:
        return False
    return True


@pytest.fixture
def files(tmp_path: Path) -> KeyFiles:
    files = KeyFiles(tmp_path / "keys" / "log.key")
    files.active.parent.mkdir()
    Signer.generate(ORIGIN).save(files.active)
    return files


def _open_log(engine: Engine, files: KeyFiles, clock: ManualClock) -> Log:
    """The log as a freshly started server opens it: keys from the files."""
    return Log(
        engine,
        ORIGIN,
        signer=files.signer(),
        retiring=files.retiring_signer(),
        clock=clock,
        policy=CheckpointPolicy(every_entries=5),
    )


def _grow(log: Log, n: int) -> None:
    for i in range(n):
        log.append("donation_recorded", {"pool": "p", "amount": str(i + 1)})


def test_rotation_double_signs_then_hands_over(
    engine: Engine, files: KeyFiles, clock: ManualClock
) -> None:
    old = files.signer()
    assert old is not None
    log = _open_log(engine, files, clock)
    log.create()
    _grow(log, 7)

    entry = rotate_key(log, files, DAYS_30)

    new = files.signer()
    assert new is not None and new.key_id != old.key_id and new.name == old.name
    assert entry.kind == "key_rotated"
    assert entry.data == {
        "vkey": new.verifier().vkey(),
        "previous_vkey": old.verifier().vkey(),
        "double_signing_until": entry.data["double_signing_until"],
    }
    assert parse_ts(entry.data["double_signing_until"]) == clock.now() + DAYS_30
    assert files.retiring_signer() == old
    assert files.history.read_text() == old.verifier().vkey() + "\n"
    assert not files.staged.exists()
    for path in (files.active, files.retiring):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The rotation's own checkpoint, and later ones within the period, carry both signatures.
    rotation_checkpoint = log.latest_checkpoint()
    assert rotation_checkpoint is not None and rotation_checkpoint.size == entry.seq + 1
    assert _signed_by(rotation_checkpoint.note, old.verifier())
    assert _signed_by(rotation_checkpoint.note, new.verifier())

    restarted = _open_log(engine, files, clock)
    clock.advance(DAYS_30 - timedelta(seconds=1))
    _grow(restarted, 5)
    during = restarted.latest_checkpoint()
    assert during is not None and during.size > rotation_checkpoint.size
    assert _signed_by(during.note, old.verifier()) and _signed_by(during.note, new.verifier())

    clock.advance(timedelta(seconds=1))
    _grow(restarted, 5)
    after = restarted.latest_checkpoint()
    assert after is not None and after.size > during.size
    assert _signed_by(after.note, new.verifier())
    assert not _signed_by(after.note, old.verifier())

    # Every key used so far verifies the whole log; the new key alone cannot vouch for the
    # checkpoints signed before it existed.
    report = verify_database(engine, files.trusted_verifiers())
    assert report.size == restarted.head().size
    with pytest.raises(VerificationError, match="checkpoint at size 1: no known key"):
        verify_database(engine, [new.verifier()])


def test_a_second_rotation_waits_for_the_retiring_key(
    engine: Engine, files: KeyFiles, clock: ManualClock
) -> None:
    log = _open_log(engine, files, clock)
    log.create()
    rotate_key(log, files, DAYS_30)
    size = log.head().size
    with pytest.raises(LedgerError, match="still there from the last rotation"):
        rotate_key(log, files, DAYS_30)
    assert log.head().size == size


def test_an_unfinished_rotation_is_not_overwritten(
    engine: Engine, files: KeyFiles, clock: ManualClock
) -> None:
    log = _open_log(engine, files, clock)
    log.create()
    leftover = Signer.generate(ORIGIN)
    leftover.save(files.staged)
    with pytest.raises(LedgerError, match="did not finish"):
        rotate_key(log, files, DAYS_30)
    assert Signer.load(files.staged) == leftover
    assert log.head().size == 1


def test_rotate_refuses_a_new_key_of_another_name(engine: Engine, files: KeyFiles) -> None:
    log = _open_log(engine, files, ManualClock())
    log.create()
    with pytest.raises(LedgerError, match="key name"):
        log.rotate_key(Signer.generate("other.example/log"), ManualClock().now())
    assert log.head().size == 1


def test_key_rotate_command(app: Flask, runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["init"]).exit_code == 0
    before = runner.invoke(args=["vkey"]).output.strip()
    result = runner.invoke(args=["key", "rotate", "--double-signing-days", "7"])
    assert result.exit_code == 0, result.output
    after = runner.invoke(args=["vkey"]).output.strip()
    assert after != before and f"the signing key is now {after}" in result.output
    with app.app_context():
        assert db.key_files().history.read_text().split() == [before]
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    again = runner.invoke(args=["key", "rotate"])
    assert again.exit_code == 1 and "still there from the last rotation" in again.output
    assert "Traceback" not in again.output


def test_a_request_retried_after_a_rotation_is_still_a_replay(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """Idempotency fingerprints are keyed with a secret kept apart from the signing key
    (``log.key.fingerprints``): a server started after a rotation still recognises a retried
    request, and still names the one field that differs in a conflicting one."""
    http = Http(app, app.test_client())
    admin = cli_admin_token(runner)
    body = {"slug": "cauce", "name": "Cauce"}
    first = http.post("/collectives", body, token=admin, key="c-1", status=201)
    with app.app_context():
        files = db.key_files()
    assert stat.S_IMODE(files.fingerprints.stat().st_mode) == 0o600
    assert not list(files.fingerprints.parent.glob("*.tmp"))  # written aside, then linked
    assert runner.invoke(args=["key", "rotate"]).exit_code == 0

    settings = ("DATABASE_URL", "KEY_FILE", "ORIGIN", "CLOCK", "CHECKPOINT_EVERY")
    restarted = create_app({"TESTING": True, **{name: app.config[name] for name in settings}})
    try:
        http = Http(restarted, restarted.test_client())
        size = http.size()
        again = http.post("/collectives", body, token=admin, key="c-1", status=201)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == first.get_json() and http.size() == size
        conflict = {**body, "name": "Otra"}
        problem = http.refused(
            "POST", "/collectives", conflict, 409, "idempotency_conflict", token=admin, key="c-1"
        )
        assert problem["fields"] == ["name"]
    finally:
        with restarted.app_context():
            db.get_engine().dispose()


def test_a_key_directory_the_server_may_not_write_still_serves(
    files: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the key sits on a read-only mount, the fingerprint key is derived as before
    (and kept by the next `lunaria key rotate`, which writes there anyway)."""

    def refused(path: Path, data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(keys, "write_secret_file", refused)
    signer = files.signer()
    assert files.fingerprint_key() == fingerprint_key_from(signer)
    assert not files.fingerprints.exists()
