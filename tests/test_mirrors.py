"""Mirrors: a Lunaria copies another fund's log (C2SP tlog-tiles), serves it under
``/mirror/<hex SHA-256 of origin>/`` with its own mirror cosignature, refuses and reports a
split view, and lists what it witnesses and mirrors on ``/federation``.

Instances run on loopback (tests/witness_support.py); mirror cosignatures are checked with the
implementation of the C2SP text there, not with ledger.log.cosignature. Every test runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api import mirrors as api_mirrors
from ledger.fund.audit import HttpSource, audit
from ledger.log import MirrorSync
from ledger.log.mirroring import MirrorBadData, MirrorError, Mirrors, http_get
from ledger.log.schema import mirror_incidents, mirror_tiles, mirrors
from ledger.log.tiles import bundles_for_size, tiles_for_size
from tests.live_server import free_port
from tests.test_witness import collect, cosigning, grow, key_name
from tests.test_worker import LUNARIA, WorkerProcess
from tests.witness_support import (
    Instance,
    database_urls,
    spec_cosignature_time,
    spec_split,
    start_instance,
)


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def sha(origin: str) -> str:
    """The mirror's directory, from the brief's words: hex SHA-256 of the origin line."""
    return hashlib.sha256(origin.encode()).hexdigest()


def paths(size: int) -> list[str]:
    """Every resource of a tree of ``size``: checkpoint, entry bundles, hash tiles."""
    tiles = [*bundles_for_size(size), *tiles_for_size(size)]
    return ["checkpoint", *(t.path for t in tiles)]


def assert_identical_copy(origin: Instance, mirror: Instance) -> int:
    """Every tile and bundle of the origin's latest checkpoint, byte for byte at the mirror;
    the checkpoint is the origin's note plus one valid mirror cosignature. Its size."""
    status, note, _ = get(origin.url + "/tlog/checkpoint")
    assert status == 200
    size = int(note.decode().split("\n")[1])
    prefix = f"{mirror.url}/mirror/{sha(origin.log.origin)}/"
    for path in paths(size)[1:]:
        mine = get(prefix + path)
        assert mine[0] == 200, path
        assert mine[1] == get(origin.url + "/tlog/" + path)[1], path
    status, copied, headers = get(prefix + "checkpoint")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert copied.startswith(note)
    text, lines = spec_split(copied.decode())
    extra = copied[len(note) :].decode()
    assert extra in lines and len(lines) == len(spec_split(note.decode())[1]) + 1
    mirror_vkey = mirror.ok("mirror", "vkey").strip()
    assert mirror_vkey != mirror.witness_vkey
    assert spec_cosignature_time(mirror_vkey, text, extra) is not None
    assert spec_cosignature_time(mirror.witness_vkey, text, extra) is None
    return size


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    yield from database_urls(request, tmp_path, 2)


@pytest.fixture
def pair(two_urls: list[str], tmp_path: Path) -> Iterator[list[Instance]]:
    """alba, a fund's log; boreal, its mirror."""
    instances = [
        start_instance(name, url, tmp_path / name)
        for name, url in zip(("alba", "boreal"), two_urls, strict=True)
    ]
    try:
        yield instances
    finally:
        for instance in instances:
            instance.close()


def test_a_mirror_copies_the_log_byte_for_byte_and_cosigns_it(pair: list[Instance]) -> None:
    alba, boreal = pair
    assert grow(alba, 5) == 8
    added = boreal.ok("mirror", "add", alba.url, "--vkey", alba.log_vkey)
    assert f"mirroring {alba.log.origin} at size 8" in added
    assert assert_identical_copy(alba, boreal) == 8
    # The copy is a tlog-tiles log like any other: the outside audit reads it whole.
    prefix = f"{boreal.url}/mirror/{sha(alba.log.origin)}/"
    report = audit(HttpSource(prefix), [alba.log_vkey])
    assert report.checkpoint.size == 8
    audited = alba.cli("audit", prefix, "--vkey", alba.log_vkey)
    assert audited.exit_code == 0 and "8 entries" in audited.output, audited.output
    # Paths not held, or not canonical, are plain 404s; nothing can be written.
    for path in ("tile/0/000.p/9", "tile/0/0", "tile/entries/001", "nothing"):
        assert get(prefix + path)[0] == 404
    assert get(f"{boreal.url}/mirror/{'0' * 64}/checkpoint")[0] == 404
    assert get(f"{boreal.url}/mirror/xyz/checkpoint")[0] == 404
    request = urllib.request.Request(prefix + "checkpoint", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    # Adding it again syncs it; list says what is held.
    assert "up to date at size 8" in boreal.ok("mirror", "add", alba.url, "--vkey", alba.log_vkey)
    listed = boreal.ok("mirror", "list")
    assert f"{alba.log.origin}  size 8" in listed and "incidents 0" in listed
    assert f"/mirror/{sha(alba.log.origin)}/" in listed


def test_catch_up_across_restarts(pair: list[Instance], tmp_path: Path) -> None:
    alba, boreal = pair
    grow(alba, 5)
    boreal.ok("mirror", "add", alba.url, "--vkey", alba.log_vkey)
    url = boreal.app.config["DATABASE_URL"]
    boreal.close()
    # While the mirror is down the log grows past a full tile (and a level-1 tile).
    assert grow(alba, 262) == 270
    again = start_instance("boreal", url, tmp_path / "boreal")
    pair[1] = again
    assert "8 -> 270" in again.ok("mirror", "sync")
    assert assert_identical_copy(alba, again) == 270
    assert "up to date at size 270" in again.ok("mirror", "sync", alba.log.origin)
    grow(alba, 3)
    # The worker's task does the same.
    with again.app.app_context():
        task = MirrorSync(api_mirrors.get_mirrors())
    lines = task.run(again.log.clock.now())
    assert len(lines) == 1
    assert lines[0].startswith(f"mirror {alba.log.origin}: 270 -> 273, 3 resources (")
    assert assert_identical_copy(alba, again) == 273


def test_the_worker_syncs_mirrors_and_says_so(pair: list[Instance]) -> None:
    alba, boreal = pair
    grow(alba, 2)
    config = boreal.app.config
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    env |= {
        "LUNARIA_DATABASE_URL": config["DATABASE_URL"],
        "LUNARIA_KEY_FILE": config["KEY_FILE"],
        "LUNARIA_ORIGIN": config["ORIGIN"],
        "LUNARIA_CHECKPOINT_INTERVAL": "86400",
        "LUNARIA_MIRROR_INTERVAL": "1",
    }
    process = subprocess.Popen(
        [str(LUNARIA), "worker"],
        env=env,
        cwd=boreal.folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = WorkerProcess(process)
    try:
        # (a log added while the worker runs is synced at the next interval)
        worker.wait_for("worker: started", timeout=120)
        boreal.ok("mirror", "add", alba.url, "--vkey", alba.log_vkey)
        grow(alba, 3)
        worker.wait_for(f"worker: mirror {alba.log.origin}: 5 -> 8, ", timeout=60)
    finally:
        worker.stop()
    assert boreal.ok("mirror", "list").startswith(f"{alba.log.origin}  size 8")


def mirror_rows(instance: Instance) -> tuple[int, int, int]:
    with instance.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (mirrors, mirror_tiles, mirror_incidents)
        )


def test_bad_input_gets_clear_errors_and_changes_nothing(
    pair: list[Instance], tmp_path: Path
) -> None:
    alba, boreal = pair
    grow(alba, 2)
    other = start_instance("other", f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other")
    impostor_folder = tmp_path / "impostor"
    try:
        # the same origin, another key: a signature the mirror cannot trust
        impostor = start_instance("alba", f"sqlite:///{tmp_path / 'impostor.db'}", impostor_folder)
        impostor_vkey = impostor.log_vkey
        impostor.close()
        cases = {
            ("--vkey", other.log_vkey): f"is a checkpoint of {alba.log.origin!r}, not of",
            ("--vkey", impostor_vkey): "is not signed by",
            ("--vkey", "not+a+key"): "--vkey",
        }
        for args, said in cases.items():
            result = boreal.cli("mirror", "add", alba.url, *args)
            assert result.exit_code == 1, result.output
            assert said in result.output and "Traceback" not in result.output
        unreachable = f"http://127.0.0.1:{free_port()}"
        result = boreal.cli("mirror", "add", unreachable, "--vkey", alba.log_vkey)
        assert result.exit_code == 1 and "cannot reach" in result.output
        result = boreal.cli("mirror", "add", "ftp://x", "--vkey", alba.log_vkey)
        assert result.exit_code == 1 and "is not an http(s):// base URL" in result.output
        result = boreal.cli("mirror", "sync", "nobody.example/log")
        assert result.exit_code == 1 and "does not mirror" in result.output
        assert mirror_rows(boreal) == (0, 0, 0)
        assert boreal.ok("mirror", "list") == ""
        # Once mirrored, a failed sync keeps what is held and says why.
        boreal.ok("mirror", "add", alba.url, "--vkey", alba.log_vkey)
        held = mirror_rows(boreal)
        result = boreal.cli("mirror", "sync", alba.log.origin, "--from", other.url)
        assert result.exit_code == 1 and "not of" in result.output
        result = boreal.cli("mirror", "sync", alba.log.origin, "--from", unreachable)
        assert result.exit_code == 1 and "cannot reach" in result.output
        assert mirror_rows(boreal) == held
        assert "last error" in boreal.ok("mirror", "list")
    finally:
        other.close()


def test_origin_data_that_does_not_check_out_is_refused_without_an_incident(
    pair: list[Instance],
) -> None:
    """An origin (or a server between) that serves a changed entry: nothing is stored, and it
    is no split view (the log's key signed nothing inconsistent)."""
    alba, boreal = pair
    grow(alba, 5)

    def altered(url: str, limit: int) -> bytes | None:
        data = http_get(url, limit)
        if data is not None and "/tile/entries/" in url:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return data

    with boreal.app.app_context():
        honest = api_mirrors.get_mirrors()
        dishonest = Mirrors(honest.engine, honest.cosigner, honest.clock, fetch=altered)
    with pytest.raises(MirrorBadData, match="does not hash to its level-0 hash"):
        dishonest.add(alba.url, alba.log_vkey)
    assert mirror_rows(boreal) == (0, 0, 0)
    honest.add(alba.url, alba.log_vkey)
    held = mirror_rows(boreal)
    grow(alba, 3)
    with pytest.raises(MirrorBadData, match="does not hash to its level-0 hash"):
        dishonest.sync(alba.log.origin)
    assert mirror_rows(boreal) == held
    assert honest.sync(alba.log.origin).size == 11


def test_a_sync_overtaken_by_another_stores_nothing(pair: list[Instance]) -> None:
    """Two syncs at once: the one that commits second finds the record moved (compare-and-set
    on the size and root it checked against) and stores nothing; the mirror never goes back."""
    alba, boreal = pair
    grow(alba, 5)
    with boreal.app.app_context():
        other = api_mirrors.get_mirrors()
    other.add(alba.url, alba.log_vkey)
    grow(alba, 3)
    overtaken = threading.Lock()
    done: list[int] = []

    def overtaking(url: str, limit: int) -> bytes | None:
        with overtaken:  # (at its first request, after it read the size held: the other runs)
            if not done:
                done.append(other.sync(alba.log.origin).size)
        return http_get(url, limit)

    late = Mirrors(other.engine, other.cosigner, other.clock, fetch=overtaking)
    with pytest.raises(MirrorError, match="another sync moved the mirror"):
        late.sync(alba.log.origin)
    assert done == [11]
    assert other.get(alba.log.origin).size == 11
    assert assert_identical_copy(alba, boreal) == 11


# -- a split view: a forked database behind the same key ----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def four_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    yield from database_urls(request, tmp_path, 4)


@pytest.fixture
def trio_and_fork(four_urls: list[str], tmp_path: Path) -> Iterator[list[Instance]]:
    """alba's log, witnessed by boreal and cedro (quorum 2), boreal mirroring it; and a fourth
    instance with alba's key over another database: a server showing a second history."""
    instances = [
        start_instance(name, url, tmp_path / name, WITNESS_QUORUM=2)
        for name, url in zip(("alba", "boreal", "cedro"), four_urls[:3], strict=True)
    ]
    alba = instances[0]
    (tmp_path / "fork" / "keys").mkdir(parents=True)
    shutil.copy(alba.folder / "keys" / "log.key", tmp_path / "fork" / "keys" / "log.key")
    fork = start_instance("alba", four_urls[3], tmp_path / "fork", WITNESS_QUORUM=2)
    try:
        for me in instances[1:]:
            me.ok("witness", "trust", alba.log_vkey)
        lines = [f"{o.witness_vkey} {o.url}/witness\n" for o in instances[1:]]
        (alba.folder / "witnesses").write_text("".join(lines))
        shutil.copy(alba.folder / "witnesses", fork.folder / "witnesses")
        yield [*instances, fork]
    finally:
        for instance in [*instances, fork]:
            instance.close()


def test_a_split_view_is_refused_by_witnesses_reported_by_the_mirror_and_fails_the_audit(
    trio_and_fork: list[Instance],
) -> None:
    alba, boreal, cedro, fork = trio_and_fork
    assert grow(alba, 5, "honest") == grow(fork, 5, "forked") == 8
    collect(alba)
    boreal.ok("mirror", "add", alba.url, "--vkey", alba.log_vkey)
    before = {p: get(f"{boreal.url}/mirror/{sha(alba.log.origin)}/{p}")[1] for p in paths(8)}
    # The witnesses refuse the fork's checkpoint of the same size.
    lines = cosigning(fork).collect()
    assert [
        f"witness {key_name(w.witness_vkey)} refused" in line
        for line, w in zip(lines, (boreal, cedro), strict=True)
    ] == [True, True]
    # The mirror, shown the fork (the same key, another server), refuses it and reports it.
    result = boreal.cli("mirror", "sync", alba.log.origin, "--from", fork.url)
    assert result.exit_code == 2, result.output
    assert f"error: split view of {alba.log.origin}" in result.output
    assert "two histories under the log's key" in result.output
    # A larger tree of the fork: no consistency with the tree held.
    assert grow(fork, 2, "forked") == 10
    result = boreal.cli("mirror", "sync", alba.log.origin, "--from", fork.url)
    assert result.exit_code == 2 and "not consistent with the tree of size 8" in result.output
    # Nothing held changed; both refused checkpoints are kept, signed by the log's key.
    after = {p: get(f"{boreal.url}/mirror/{sha(alba.log.origin)}/{p}")[1] for p in paths(8)}
    assert after == before
    assert mirror_rows(boreal)[2] == 2
    assert "incidents 2" in boreal.ok("mirror", "list")
    status, page, headers = get(f"{boreal.url}/federation/mirrors/{sha(alba.log.origin)}")
    assert status == 200 and "Yes (refused: 2)" in page.decode()
    assert "forked" not in page.decode()  # (the notes only: no entry data is shown)
    assert fork.log.latest_checkpoint() is not None
    fork_note = fork.log.latest_checkpoint().note  # type: ignore[union-attr]
    assert fork_note.split("\n\n")[0] in page.decode()
    # The honest log keeps syncing.
    grow(alba, 1, "honest")
    assert "8 -> 9" in boreal.ok("mirror", "sync")
    # A reader asking for a quorum of witnesses tells the two histories apart.
    trusted = ["--vkey", alba.log_vkey, "--witness", boreal.witness_vkey]
    trusted += ["--witness", cedro.witness_vkey, "--witness-quorum", "2"]
    failed = alba.cli("audit", fork.url, *trusted)
    assert failed.exit_code == 1 and "0 of the 2 known witnesses" in failed.output
    # The federation page says it all, in each language, with the site's CSP and no script.
    status, page, headers = get(f"{boreal.url}/federation")
    text = page.decode()
    assert status == 200 and "script" not in text.lower().replace("<noscript", "")
    assert "script-src" in headers["Content-Security-Policy"]
    assert text.count(alba.log.origin) >= 2  # witnessed and mirrored
    assert "Yes (refused: 2)" in text  # (the mirror's two incidents)
    for lang, heading in (("es", "Federación"), ("uk", "Федерація")):
        status, page, _ = get(f"{boreal.url}/federation?lang={lang}")
        assert status == 200 and heading in page.decode()
