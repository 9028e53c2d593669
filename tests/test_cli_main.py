"""The ``lunaria`` script itself: only Lunaria's commands, and no new log by accident.

These run the installed script in a subprocess, in a folder of their own, with no ``LUNARIA_*``
variable but those a test sets: the defaults are relative paths, so where a command runs is
what decides which log it finds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from ledger.log.db import make_engine

ROOT = Path(__file__).parent.parent
LUNARIA = Path(sys.executable).parent / "lunaria"
COMMANDS = {
    "anchor",
    "audit",
    "chain",
    "checkpoint",
    "erase",
    "export",
    "import",
    "ingest",
    "init",
    "invite",
    "key",
    "mirror",
    "publish",
    "receipt",
    "reconcile",
    "redact",
    "replay",
    "report",
    "rotate",
    "serve",
    "token",
    "verify",
    "verify-receipt",
    "vkey",
    "witness",
    "worker",
}


def lunaria(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    return subprocess.run(
        [str(LUNARIA), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def database_env(db_url: str, cwd: Path) -> tuple[dict[str, str], str]:
    """SQLite: the default, relative URL (so under ``cwd``); PostgreSQL: the test schema's.
    Returns the environment and the URL the refusal should name."""
    if db_url.startswith("sqlite"):
        return {}, f"sqlite:///{cwd / 'var' / 'lunaria.db'}"
    return {"LUNARIA_DATABASE_URL": db_url}, make_url(db_url).render_as_string(hide_password=True)


def test_help_shows_only_lunarias_commands(tmp_path: Path) -> None:
    done = lunaria("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("Commands:\n", 1)[1]
    assert set(re.findall(r"^  (\S+)", commands, re.MULTILINE)) == COMMANDS
    options = done.stdout.split("Options:\n", 1)[1].split("Commands:", 1)[0]
    assert set(re.findall(r"--[\w-]+", options)) == {"--version", "--help"}
    for flask_own in ("routes", "shell", "run", "openapi", "--app", "--env-file", "--debug"):
        assert not re.search(rf"(^|\s){flask_own}\s", done.stdout), flask_own
    version = lunaria("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("lunaria, version ")
    assert list(tmp_path.iterdir()) == []


def test_commands_from_another_folder_refuse_and_create_nothing(
    db_url: str, tmp_path: Path
) -> None:
    cwd = folder(tmp_path, "elsewhere")
    env, shown_url = database_env(db_url, cwd)
    for command in (["verify"], ["rotate"], ["vkey"], ["export", "log.jsonl"]):
        done = lunaria(*command, cwd=cwd, env=env)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert done.stderr.startswith("error: no Lunaria log at these paths:\n"), done.stderr
        database = "no such file" if db_url.startswith("sqlite") else "holds no log"
        assert f"  database  {shown_url}  ({database})\n" in done.stderr
        assert f"  key file  {cwd / 'var' / 'log.key'}  (no such file)\n" in done.stderr
        for advice in ("LUNARIA_DATABASE_URL", "LUNARIA_KEY_FILE", "`lunaria init`"):
            assert advice in done.stderr
        assert list(cwd.iterdir()) == [], command
    if not db_url.startswith("sqlite"):
        engine = make_engine(db_url)
        assert inspect(engine).get_table_names() == []  # no schema made on the way either
        engine.dispose()


def test_commands_find_the_log_from_its_folder_or_by_its_paths(db_url: str, tmp_path: Path) -> None:
    home = folder(tmp_path, "home")
    env, _ = database_env(db_url, home)
    created = lunaria("init", cwd=home, env=env)
    assert created.returncode == 0, created.stderr
    key = home / "var" / "log.key"
    assert key.exists()
    assert lunaria("verify", cwd=home, env=env).returncode == 0

    elsewhere = folder(tmp_path, "elsewhere")
    refused = lunaria("checkpoint", cwd=elsewhere, env=env)
    assert refused.returncode == 1
    if db_url.startswith("sqlite"):
        assert "(no such file)" in refused.stderr
        env = {"LUNARIA_DATABASE_URL": f"sqlite:///{home / 'var' / 'lunaria.db'}"}
    else:  # the database is found; the key, relative, is not
        assert refused.stderr.startswith("error: the log's signing key is not at this path:\n")
        assert "(holds a log)" in refused.stderr
    assert f"  key file  {elsewhere / 'var' / 'log.key'}  (no such file)\n" in refused.stderr

    pointed = {**env, "LUNARIA_KEY_FILE": str(key)}
    verified = lunaria("verify", cwd=elsewhere, env=pointed)
    assert verified.returncode == 0, verified.stderr
    assert list(elsewhere.iterdir()) == []


def test_verifying_an_export_runs_anywhere(
    runner: FlaskCliRunner, app: Flask, tmp_path: Path
) -> None:
    """It needs no database and no key file, so nothing to find: no refusal."""
    assert runner.invoke(args=["init"]).exit_code == 0
    export, checkpoint = tmp_path / "log.jsonl", tmp_path / "checkpoint.txt"
    assert runner.invoke(args=["export", str(export)]).exit_code == 0
    checkpoint.write_text(runner.invoke(args=["checkpoint"]).output)
    vkey = runner.invoke(args=["vkey"]).output.strip()
    elsewhere = folder(tmp_path, "elsewhere")
    args = ["--export", str(export), "--checkpoint", str(checkpoint), "--vkey", vkey]
    offline = lunaria("verify", *args, cwd=elsewhere)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith("ok:")
    assert list(elsewhere.iterdir()) == []


def test_the_web_server_creates_no_database_before_init(tmp_path: Path) -> None:
    """``wsgi.py`` with the default configuration, in an empty folder: the pages say there is
    no ledger yet, and neither ``var/`` nor a database file appears."""
    script = "\n".join(
        [
            "import wsgi",
            "client = wsgi.app.test_client()",
            "print(client.get('/').status_code, client.get('/api/v1/openapi.json').status_code)",
        ]
    )
    clean = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["503", "200"]
    assert list(tmp_path.iterdir()) == []


def test_read_commands_before_init_create_no_database(
    runner: FlaskCliRunner, app: Flask, db_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "log.jsonl"
    for command in (["checkpoint"], ["verify"], ["export", str(export)]):
        assert runner.invoke(args=command).exit_code != 0
    assert not export.exists()
    if db_url.startswith("sqlite"):
        database = make_url(db_url).database
        assert database is not None and not Path(database).exists()
    else:
        engine = make_engine(db_url)
        assert inspect(engine).get_table_names() == []
        engine.dispose()
    assert not Path(app.config["KEY_FILE"]).parent.exists()
