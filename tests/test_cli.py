"""The ``lunaria`` commands of the log core, on both databases."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from api import db
from ledger.fund.commands import Fund
from ledger.fund.rules import Actor
from ledger.log.append import Log
from ledger.log.notes import Signer, open_checkpoint
from tests.conftest import ORIGIN, new_vault, tamper


def add_collectives(log: Log, count: int) -> None:
    """Real fund entries (projections included), so verify's replay check has work to do."""
    fund = Fund(log, new_vault())
    for i in range(count):
        fund.register_collective(Actor("admin:t", "admin"), slug=f"c{i}", name=f"Collective {i}")


def init(runner: FlaskCliRunner) -> str:
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    return result.output


def test_init_is_idempotent_and_key_is_private(runner: FlaskCliRunner, app: Flask) -> None:
    first = init(runner)
    assert "created signing key" in first and f"created log {ORIGIN}" in first
    key = Path(app.config["KEY_FILE"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = init(runner)
    assert "created" not in second
    assert "size 1" in second
    assert Signer.load(key).name == ORIGIN


def test_verify_checkpoint_vkey(runner: FlaskCliRunner, app: Flask) -> None:
    init(runner)
    with app.app_context():
        log = db.get_log()
        add_collectives(log, 5)
        root = log.head().root
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "size 6" in result.output and root.hex() in result.output

    vkey = runner.invoke(args=["vkey"]).output.strip()
    note = runner.invoke(args=["checkpoint", "--new"]).output
    checkpoint = open_checkpoint(note, [Signer.load(Path(app.config["KEY_FILE"])).verifier()])
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 6, root)
    assert runner.invoke(args=["checkpoint"]).output == note
    assert runner.invoke(args=["verify", "--vkey", vkey]).exit_code == 0


def test_verify_names_first_bad_seq(runner: FlaskCliRunner, app: Flask) -> None:
    init(runner)
    with app.app_context():
        log = db.get_log()
        add_collectives(log, 5)
        tamper(log.engine, "DELETE FROM entries WHERE seq = 3")
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "FAILED: seq 3: entry missing" in result.output


def test_export_verifies_without_database(
    runner: FlaskCliRunner, app: Flask, tmp_path: Path
) -> None:
    init(runner)
    with app.app_context():
        log = db.get_log()
        add_collectives(log, 9)
        raw = list(log.iter_raw())
    export = tmp_path / "log.jsonl"
    assert runner.invoke(args=["export", str(export)]).exit_code == 0
    assert export.read_bytes() == b"".join(r + b"\n" for r in raw)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.write_text(runner.invoke(args=["checkpoint", "--new"]).output)
    vkey = runner.invoke(args=["vkey"]).output.strip()

    # A fresh app with no database behind it at all.
    from api import create_app

    offline = create_app({"DATABASE_URL": "sqlite:///" + str(tmp_path / "absent" / "x.db")})
    offline_runner = offline.test_cli_runner()
    args = ["verify", "--export", str(export), "--checkpoint", str(checkpoint), "--vkey", vkey]
    result = offline_runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "size 10" in result.output
    assert not (tmp_path / "absent").exists()

    lines = export.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"c3"', b'"c9"')
    export.write_bytes(b"".join(lines))
    result = offline_runner.invoke(args=args)
    assert result.exit_code == 1
    assert "FAILED: seq 4" in result.output

    other = Signer.generate(ORIGIN).verifier().vkey()
    args[-1] = other
    result = offline_runner.invoke(args=args)
    assert result.exit_code == 1 and "checkpoint" in result.output


def test_export_shorter_than_checkpoint_fails(
    runner: FlaskCliRunner, app: Flask, tmp_path: Path
) -> None:
    init(runner)
    export, checkpoint = tmp_path / "log.jsonl", tmp_path / "checkpoint"
    with app.app_context():
        add_collectives(db.get_log(), 1)
    runner.invoke(args=["export", str(export)])
    checkpoint.write_text(runner.invoke(args=["checkpoint", "--new"]).output)
    export.write_bytes(export.read_bytes().splitlines(keepends=True)[0])
    vkey = runner.invoke(args=["vkey"]).output.strip()
    args = ["verify", "--export", str(export), "--checkpoint", str(checkpoint), "--vkey", vkey]
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert "holds 1 entries but the checkpoint covers 2" in result.output


def test_verify_export_needs_checkpoint_and_key(runner: FlaskCliRunner, tmp_path: Path) -> None:
    export = tmp_path / "log.jsonl"
    export.write_bytes(b"")
    result = runner.invoke(args=["verify", "--export", str(export)])
    assert result.exit_code == 2
    assert "--checkpoint" in result.output


def test_commands_before_init_say_so(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["checkpoint"])
    assert result.exit_code != 0
    assert "lunaria init" in (result.output + str(result.exception))


def test_only_the_anchoring_commands_load_web3(tmp_path: Path) -> None:
    """web3 takes half a second to import and raises Python's recursion limit as it loads:
    the web app and the other commands (``init`` here, cron's ``rotate``) never import it."""
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}", "KEY_FILE": str(tmp_path / "k")}
    script = "\n".join(
        [
            "import sys",
            "from api import create_app",
            f"app = create_app({config!r})",
            "result = app.test_cli_runner().invoke(args=['init'])",
            "assert result.exit_code == 0, result.output",
            "assert app.test_client().get('/').status_code == 200",
            "assert app.test_cli_runner().invoke(args=['rotate']).exit_code == 0",
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('web3', 'eth_account')))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
