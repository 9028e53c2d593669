"""Witnessing: every Lunaria is a C2SP tlog-witness, every Lunaria log collects cosignatures.

Cosignatures are checked with tests/witness_support.py's implementation of the C2SP text, not
with ledger.log.cosignature. Every database test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine

from api import db as api_db
from ledger.errors import InvalidKey, SignatureError
from ledger.fund import Actor
from ledger.log.clock import ManualClock
from ledger.log.cosignature import CosignatureVerifier, Cosigner, WitnessQuorum
from ledger.log.cosigning import Cosigning, read_witnesses
from ledger.log.notes import Signer, Verifier, parse_note
from ledger.log.witness import MAX_BODY, Witness, WitnessConflict
from tests.conftest import ORIGIN
from tests.live_server import free_port
from tests.test_worker import LUNARIA, WorkerProcess
from tests.witness_support import (
    Instance,
    SourceLog,
    database_urls,
    spec_body,
    spec_cosignature_time,
    spec_cosigned_by,
    spec_split,
    start_instance,
)

REPOSITORY = Path(__file__).parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def three_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    yield from database_urls(request, tmp_path, 3)


@pytest.fixture
def trio(three_urls: list[str], tmp_path: Path) -> Iterator[list[Instance]]:
    """Three instances, each witnessing the other two, each log asking the other two with a
    quorum of 2."""
    instances = [
        start_instance(name, url, tmp_path / name, WITNESS_QUORUM=2)
        for name, url in zip(("alba", "boreal", "cedro"), three_urls, strict=True)
    ]
    try:
        for me in instances:
            others = [o for o in instances if o is not me]
            for other in others:
                me.ok("witness", "trust", other.log_vkey)
            lines = [f"{o.witness_vkey} {o.url}/witness\n" for o in others]
            (me.folder / "witnesses").write_text("".join(lines))
        yield instances
    finally:
        for instance in instances:
            instance.close()


def cosigning(instance: Instance) -> Cosigning:
    return Cosigning(instance.log, read_witnesses(instance.folder / "witnesses"), 2)


def collect(instance: Instance) -> None:
    """One round of the worker's task; every witness cosigns."""
    size = instance.log.latest_checkpoint()
    assert size is not None
    assert cosigning(instance).collect() == [
        f"checkpoint {size.size} cosigned by 2 of 2 witnesses (quorum 2 reached)"
    ]


def key_name(vkey: str) -> str:
    """``<name>+<key id>`` of a vkey: how lines and rows name a witness."""
    return "+".join(vkey.split("+", 2)[:2])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode("utf-8"))


def post(url: str, body: bytes) -> tuple[int, str, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


ADMIN = Actor("admin:witness-test", "admin")
TREASURER = Actor("treasurer:witness-test", "treasurer")


def grow(instance: Instance, donations: int, tag: str = "") -> int:
    """Record ``donations`` (a pool first, once) and sign a checkpoint; its size."""
    with instance.app.app_context():
        fund = api_db.get_fund()
    if instance.log.head().size == 1:
        fund.register_collective(ADMIN, slug="alba", name="Alba")
        fund.create_pool(ADMIN, slug="food", name="Food bank", currencies=["EUR"])
    for n in range(donations):
        reference = f"{tag}-{instance.log.head().size}-{n}"
        donation = {
            "amount": "500",
            "currency": "EUR",
            "channel": "bank",
            "external_reference": reference,
        }
        fund.record_donation(TREASURER, "food", donation)
    return instance.log.checkpoint_now().size


# -- the cosignature format, against the spec's text -------------------------------------------


def test_cosignatures_follow_the_c2sp_text() -> None:
    cosigner = Cosigner.generate("witness.example/w1")
    vkey = cosigner.verifier().vkey()
    note_text = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    line = cosigner.cosign(note_text, 1679315147).line()
    assert spec_cosignature_time(vkey, note_text, line) == 1679315147
    assert spec_cosignature_time(vkey, note_text.replace("163", "164"), line) is None
    # Signature type 0x04: a cosigner's vkey is not a log's (0x01) vkey.
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    with pytest.raises(InvalidKey, match="0x04"):
        Verifier.from_vkey(vkey)
    verifier = CosignatureVerifier.from_vkey(vkey)
    signature = parse_note(note_text + "\n" + line).signatures[0]
    assert verifier.verify(note_text, signature)
    assert CosignatureVerifier.timestamp(signature) == 1679315147
    forged = type(signature)(signature.name, signature.key_id, b"\0" * 72)
    assert not verifier.verify(note_text, forged)


def test_quorum_counts_distinct_known_witnesses() -> None:
    log = Signer.generate("log.example/a")
    witnesses = [Cosigner.generate(f"w{i}.example") for i in range(3)]
    text = "log.example/a\n3\n" + "A" * 43 + "=\n"
    lines = log.sign(text).line() + witnesses[0].cosign(text, 5).line()
    lines += witnesses[0].cosign(text, 6).line()  # (twice the same witness counts once)
    note = parse_note(text + "\n" + lines)
    vkeys = [w.verifier().vkey() for w in witnesses]
    assert WitnessQuorum.of(vkeys, 1).check(note) == (f"w0.example+{witnesses[0].key_id.hex()}",)
    with pytest.raises(SignatureError, match="1 of the 3 known witnesses"):
        WitnessQuorum.of(vkeys, 2).check(note)
    bad = text + "\n" + log.sign(text).line() + witnesses[1].cosign(text + "x\n", 5).line()
    with pytest.raises(SignatureError, match="does not verify"):
        WitnessQuorum.of(vkeys, 1).check(parse_note(bad))


# -- three instances witnessing each other ------------------------------------------------------


def test_three_instances_cosign_each_other(trio: list[Instance], tmp_path: Path) -> None:
    for instance in trio:
        size = grow(instance, 5, instance.name)
        collect(instance)
    for instance in trio:  # a second checkpoint: each witness checks consistency from 5
        size = grow(instance, 7, instance.name)
        collect(instance)
        assert size == 1 + 2 + 12  # (log_created, a collective and a pool, 12 donations)
    for instance in trio:
        others = [o.witness_vkey for o in trio if o is not instance]
        for path in ("/tlog/checkpoint", "/api/v1/ledger/checkpoint"):
            note = fetch(instance.url + path)
            assert spec_cosigned_by(note, others) == set(others), path
            assert note.startswith(f"{instance.log.origin}\n15\n")
        witnessing = json.loads(fetch(instance.url + "/witness"))
        assert witnessing["witness"]["vkey"] == instance.witness_vkey
        logs = {log["origin"]: log["size"] for log in witnessing["witness"]["logs"]}
        assert logs == {o.log.origin: 15 for o in trio if o is not instance}
        cosigners = witnessing["cosigning"]["witnesses"]
        assert [w["cosigned_size"] for w in cosigners] == [15, 15]
        assert [w["refusals"] for w in cosigners] == [0, 0]


def test_receipts_verify_offline_with_the_witness_keys(
    trio: list[Instance], tmp_path: Path
) -> None:
    alba, boreal, cedro = trio
    grow(alba, 6)
    collect(alba)
    receipt = tmp_path / "receipt.tlog-proof"
    receipt.write_text(alba.ok("receipt", "3", "--format", "tlog-proof"))
    json_receipt = tmp_path / "receipt.json"
    json_receipt.write_text(alba.ok("receipt", "4"))
    note = json.loads(json_receipt.read_text())["checkpoint"]
    witnesses = [boreal.witness_vkey, cedro.witness_vkey]
    assert spec_cosigned_by(note, witnesses) == set(witnesses)
    assert spec_cosigned_by(spec_split(receipt.read_text())[0] + "\n", witnesses) == set()
    stranger = Cosigner.generate("stranger.example/w").verifier().vkey()
    trusted = ["--vkey", alba.log_vkey, "--witness", witnesses[0], "--witness", witnesses[1]]
    for path in (receipt, json_receipt):
        done = alba.cli("verify-receipt", str(path), *trusted, "--witness-quorum", "2")
        assert done.exit_code == 0, done.output
        assert "cosigned by boreal.lunaria.example/log/witness+" in done.output
        three = [*trusted, "--witness", stranger, "--witness-quorum", "3"]
        failed = alba.cli("verify-receipt", str(path), *three)
        assert failed.exit_code == 1
        assert "2 of the 3 known witnesses cosigned" in failed.output
        assert "the quorum is 3" in failed.output
    audit = alba.cli("audit", alba.url, *trusted, "--witness-quorum", "2")
    assert audit.exit_code == 0, audit.output
    assert "cosigned by" in audit.output
    refused = alba.cli("audit", alba.url, "--vkey", alba.log_vkey, "--witness", stranger)
    assert refused.exit_code == 1
    assert "0 of the 1 known witnesses" in refused.output


# -- add-checkpoint, status by status -----------------------------------------------------------


@pytest.fixture
def witness_app(db_url: str, tmp_path: Path) -> Iterator[Instance]:
    instance = start_instance("wit", db_url, tmp_path / "wit")
    yield instance
    instance.close()


def test_add_checkpoint_answers_the_spec_statuses(witness_app: Instance, tmp_path: Path) -> None:
    source = SourceLog.make(tmp_path / "source.db", "source.example/log", 12)
    client = witness_app.app.test_client()
    endpoint = "/witness/add-checkpoint"

    def send(body: bytes) -> tuple[int, str, str]:
        response = client.post(endpoint, data=body)
        return response.status_code, response.content_type, response.get_data(as_text=True)

    def held() -> int:
        logs = json.loads(client.get("/witness").get_data())["witness"]["logs"]
        return int(logs[0]["size"]) if logs else -1

    assert send(source.body(0, 5))[0] == 404  # unknown origin: not trusted yet
    witness_app.ok("witness", "trust", source.vkey)
    other_key = Signer.generate(source.log.origin)  # the right origin, an untrusted key
    assert send(spec_body(0, [], source.note(5, other_key)))[0] == 403
    status, kind, answer = send(source.body(0, 5))
    assert status == 200 and kind.startswith("text/plain")
    assert spec_cosigned_by(source.note(5) + answer, [witness_app.witness_vkey])
    assert held() == 5
    # A stale old size: 409 with the size held, as text/x.tlog.size.
    assert send(source.body(0, 8)) == (409, "text/x.tlog.size", "5\n")
    # A non-increasing size: the old size above the checkpoint's.
    assert send(spec_body(5, [], source.note(3)))[0] == 400
    # A proof that does not verify.
    proof = source.log.consistency_proof(5, 8)
    proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    assert send(spec_body(5, proof, source.note(8)))[0] == 422
    assert send(spec_body(5, [], source.note(8)))[0] == 422
    # Malformed bodies.
    malformed = [
        b"old 5\n" + source.note(8).encode(),  # no empty line
        b"old 05\n\n" + source.note(8).encode(),
        b"old five\n\n" + source.note(8).encode(),
        b"5\n\n" + source.note(8).encode(),
        b"old 5\nnot base64!\n\n" + source.note(8).encode(),
        spec_body(5, [b"\0" * 32] * 64, source.note(8)),  # more than 63 proof lines
        b"old 5\n\n" + source.note(8).encode()[:-30],  # a truncated signature line
        b"old 5\n\n\xff\xfe",
    ]
    for body in malformed:
        status, kind, problem = send(body)
        assert (status, kind) == (400, "application/problem+json"), body[:40]
        assert json.loads(problem)["code"] == "invalid_add_checkpoint"
    oversized = spec_body(5, [], source.note(8)) + b"x" * MAX_BODY
    assert send(oversized)[0] == 413
    assert held() == 5  # nothing refused moved the record
    assert send(source.body(5, 8))[0] == 200
    assert held() == 8
    assert send(source.body(8, 8))[0] == 200  # the same tree again: cosigned again
    witness_app.ok("witness", "list")
    listed = witness_app.ok("witness", "list")
    assert "source.example/log  size 8" in listed and source.vkey in listed


def test_witness_refuses_a_fork_and_keeps_the_evidence(
    witness_app: Instance, tmp_path: Path
) -> None:
    source = SourceLog.make(tmp_path / "a.db", "fork.example/log", 6)
    fork = SourceLog.make(tmp_path / "b.db", "fork.example/log", 6, signer=source.signer)
    fork.grow(3, "fork")
    source.grow(3, "honest")
    witness_app.ok("witness", "trust", source.vkey)
    client = witness_app.app.test_client()
    assert client.post("/witness/add-checkpoint", data=source.body(0, 9)).status_code == 200
    # The same size, another root, the same key: a split view.
    second = client.post("/witness/add-checkpoint", data=spec_body(9, [], fork.note(9)))
    assert (second.status_code, second.get_data(as_text=True)) == (409, "9\n")
    fork.grow(2, "fork")
    third = client.post("/witness/add-checkpoint", data=fork.body(9, 11))
    assert third.status_code == 422
    with witness_app.app.app_context():
        from api.witness import get_witness

        refusals = get_witness().refusals("fork.example/log")
    assert [status for _, status, _, _ in refusals] == [409, 422]
    assert refusals[0][3] == fork.note(9)
    assert "a fork" in refusals[0][2]


def race(witness: Witness, bodies: dict[int, bytes]) -> list[tuple[int, int | None]]:
    """Submit every body at once (a barrier), one thread each: (size, size a 409 named)."""
    barrier = threading.Barrier(len(bodies))
    outcomes: list[tuple[int, int | None]] = []

    def submit(size: int, body: bytes) -> None:
        barrier.wait()
        try:
            witness.add_checkpoint(body)
            outcomes.append((size, None))
        except WitnessConflict as exc:
            outcomes.append((size, exc.size))

    threads = [threading.Thread(target=submit, args=pair) for pair in bodies.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_requests_never_roll_the_record_back(engine: Engine, tmp_path: Path) -> None:
    source = SourceLog.make(tmp_path / "source.db", "race.example/log", 90)  # (4 rounds: ≤ 64)
    witness = Witness(engine, Cosigner.generate("race.example/witness"), ManualClock())
    witness.trust(source.vkey)
    held = 0
    for round_number in range(4):
        # Six requests from the same old size to six larger trees: one may win.
        sizes = [held + 1 + 3 * i for i in range(6)]
        outcomes = race(witness, {size: source.body(held, size) for size in sizes})
        winners = [size for size, conflict in outcomes if conflict is None]
        assert len(outcomes) == 6 and len(winners) == 1, (round_number, outcomes)
        (log,) = witness.logs()
        assert log.size == winners[0]
        assert log.root == source.log.root_at(winners[0])
        assert all(conflict in (held, winners[0]) for _, conflict in outcomes if conflict)
        held = winners[0]
    # Two requests with the sizes of an older and a newer tree, from the same old size: the
    # older one never replaces the newer (the race of the spec).
    outcomes = race(witness, {held + 1: source.body(held, held + 1), 90: source.body(held, 90)})
    (winner,) = [size for size, conflict in outcomes if conflict is None]
    assert witness.logs()[0].size == winner


# -- a split view: a forked database behind the same key ----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def four_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    yield from database_urls(request, tmp_path, 4)


@pytest.fixture
def trio_and_fork(four_urls: list[str], tmp_path: Path) -> Iterator[list[Instance]]:
    """Three instances witnessing each other, and a fourth that is alba's log key over another
    database (what a server showing two histories would be), asking the same two witnesses."""
    instances = [
        start_instance(name, url, tmp_path / name, WITNESS_QUORUM=2)
        for name, url in zip(("alba", "boreal", "cedro"), four_urls[:3], strict=True)
    ]
    alba = instances[0]
    (tmp_path / "fork" / "keys").mkdir(parents=True)
    shutil.copy(alba.folder / "keys" / "log.key", tmp_path / "fork" / "keys" / "log.key")
    fork = start_instance("alba", four_urls[3], tmp_path / "fork", WITNESS_QUORUM=2)
    try:
        for me in instances:
            others = [o for o in instances if o is not me]
            for other in others:
                me.ok("witness", "trust", other.log_vkey)
            lines = [f"{o.witness_vkey} {o.url}/witness\n" for o in others]
            (me.folder / "witnesses").write_text("".join(lines))
        shutil.copy(alba.folder / "witnesses", fork.folder / "witnesses")
        yield [*instances, fork]
    finally:
        for instance in [*instances, fork]:
            instance.close()


def test_a_fork_is_refused_reported_and_fails_the_audit(
    trio_and_fork: list[Instance], tmp_path: Path
) -> None:
    alba, boreal, cedro, fork = trio_and_fork
    assert fork.log_vkey == alba.log_vkey
    assert grow(alba, 5, "honest") == grow(fork, 5, "forked") == 8
    collect(alba)
    # The fork's checkpoint of the same size: every witness refuses it (409 at the size held).
    lines = cosigning(fork).collect()
    assert len(lines) == 2
    for line, witness in zip(lines, (boreal, cedro), strict=True):
        assert line.startswith(f"error: witness {key_name(witness.witness_vkey)}")
        assert "refused checkpoint 8: it cosigned a different tree at size 8" in line
    # A larger tree of the fork: its proof from 8 does not lead to the root cosigned at 8.
    assert grow(fork, 2, "forked") == 10
    lines = cosigning(fork).collect()
    assert [("refused checkpoint 10" in line and "(422)" in line) for line in lines] == [True] * 2
    state = json.loads(fetch(fork.url + "/witness"))["cosigning"]["witnesses"]
    assert [w["refusals"] for w in state] == [2, 2]
    assert all("(422)" in w["last_refusal"] for w in state)
    # What the witnesses kept: the fork's own signed checkpoints, the evidence.
    witnessed = json.loads(fetch(boreal.url + "/witness"))["witness"]["logs"]
    assert {log["origin"]: log["refusals"] for log in witnessed}[alba.log.origin] == 2
    # A reader who asks for a quorum of the witnesses tells the two histories apart.
    trusted = ["--vkey", alba.log_vkey, "--witness", boreal.witness_vkey]
    trusted += ["--witness", cedro.witness_vkey, "--witness-quorum", "2"]
    assert alba.cli("audit", alba.url, *trusted).exit_code == 0
    failed = alba.cli("audit", fork.url, *trusted)
    assert failed.exit_code == 1
    assert "FAILED" in failed.output and "0 of the 2 known witnesses" in failed.output
    assert alba.cli("audit", fork.url, "--vkey", alba.log_vkey).exit_code == 0  # (no witnesses)


def test_the_worker_says_a_refusal_on_stderr(trio_and_fork: list[Instance]) -> None:
    alba, boreal, _, fork = trio_and_fork
    grow(alba, 3, "honest")
    collect(alba)
    grow(fork, 4, "forked")
    config = fork.app.config
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    env |= {
        "LUNARIA_DATABASE_URL": config["DATABASE_URL"],
        "LUNARIA_KEY_FILE": config["KEY_FILE"],
        "LUNARIA_ORIGIN": config["ORIGIN"],
        "LUNARIA_WITNESSES": config["WITNESSES"],
        "LUNARIA_WITNESS_QUORUM": "2",
        "LUNARIA_CHECKPOINT_INTERVAL": "86400",
    }
    process = subprocess.Popen(
        [str(LUNARIA), "worker"],
        env=env,
        cwd=fork.folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = WorkerProcess(process)
    try:
        name = key_name(boreal.witness_vkey)
        # (generous: a new process on a loaded machine takes its time to start)
        line = worker.wait_for(f"worker: error: witness {name} refused checkpoint", timeout=120)
        assert "(422)" in line
    finally:
        worker.stop()


# -- kill -9: the record is durable, and never goes back ------------------------------------------


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """``lunaria serve``, as ``make run`` serves, in a process group of its own; once it
    answers."""
    process = subprocess.Popen(
        [str(LUNARIA), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPOSITORY,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120  # (a loaded machine starts a server slowly)
    while True:
        try:
            fetch(f"http://127.0.0.1:{port}/witness")
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail("the server did not start")
            time.sleep(0.1)


def test_witness_state_survives_kill_9(witness_app: Instance, tmp_path: Path) -> None:
    source = SourceLog.make(tmp_path / "source.db", "durable.example/log", 20)
    fork = SourceLog.make(tmp_path / "fork.db", "durable.example/log", 8, signer=source.signer)
    fork.grow(4, "fork")
    witness_app.ok("witness", "trust", source.vkey)
    config = witness_app.app.config
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    env |= {
        "LUNARIA_DATABASE_URL": config["DATABASE_URL"],
        "LUNARIA_KEY_FILE": config["KEY_FILE"],
        "LUNARIA_ORIGIN": config["ORIGIN"],
    }
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/witness/add-checkpoint"
    witness_vkey = witness_app.witness_vkey
    server = serve(env, port)
    try:
        status, _, answer = post(endpoint, source.body(0, 5))
        assert status == 200
        assert post(endpoint, source.body(5, 12))[0] == 200  # answered: so it was persisted
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    server = serve(env, port)
    try:
        # Never a smaller tree, never another tree of the same size, never an inconsistent one.
        assert post(endpoint, source.body(5, 12)) == (409, "text/x.tlog.size", "12\n")
        assert post(endpoint, source.body(0, 8)) == (409, "text/x.tlog.size", "12\n")
        assert post(endpoint, spec_body(12, [], fork.note(12)))[:2] == (409, "text/x.tlog.size")
        assert post(endpoint, fork.body(0, 12))[2] == "12\n"
        fork.grow(3, "fork")
        proof = fork.log.consistency_proof(12, 15)
        assert post(endpoint, spec_body(12, proof, fork.note(15)))[0] == 422
        status, _, answer = post(endpoint, source.body(12, 20))
        assert status == 200
        assert spec_cosigned_by(source.note(20) + answer, [witness_vkey]) == {witness_vkey}
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


# -- the commands -------------------------------------------------------------------------------


def test_init_makes_the_witness_key_and_the_commands_use_it(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    key_file = tmp_path / "keys" / "witness.key"
    assert f"created witness key {key_file}" in first.output
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = runner.invoke(args=["init"])
    assert again.exit_code == 0 and "created witness key" not in again.output
    vkey = runner.invoke(args=["witness", "vkey"]).output.strip()
    verifier = CosignatureVerifier.from_vkey(vkey)
    assert verifier.name == f"{ORIGIN}/witness"
    assert runner.invoke(args=["witness", "list"]).output == ""
    for bad in ("not-a-key", vkey):  # (a witness key is not a log key)
        refused = runner.invoke(args=["witness", "trust", bad])
        assert refused.exit_code == 1 and refused.output.startswith("error: ")
    log_vkey = Signer.generate("other.example/log").verifier().vkey()
    for _ in range(2):  # (trusting twice is trusting once)
        trusted = runner.invoke(args=["witness", "trust", log_vkey])
        assert trusted.output.startswith("witnessing other.example/log")
    listed = runner.invoke(args=["witness", "list"]).output
    assert listed == f"other.example/log  size 0  cosigned never  refusals 0\n  {log_vkey}\n"


def test_before_init_and_without_a_witness_key_nothing_is_cosigned(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    client = app.test_client()
    source = SourceLog.make(tmp_path / "source.db", "early.example/log", 3)
    for response in (client.get("/witness"), client.post("/witness/add-checkpoint")):
        assert response.status_code == 404
        assert response.get_json()["code"] == "not_found"
    assert runner.invoke(args=["init"]).exit_code == 0
    assert runner.invoke(args=["witness", "trust", source.vkey]).exit_code == 0
    (tmp_path / "keys" / "witness.key").unlink()  # (a database set up before witnessing)
    refused = client.post("/witness/add-checkpoint", data=source.body(0, 3))
    assert (refused.status_code, refused.get_json()["code"]) == (503, "no_witness_key")
    logs = client.get("/witness").get_json()["witness"]
    assert logs["vkey"] is None and logs["logs"][0]["size"] == 0
