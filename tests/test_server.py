"""The web service as deployed, in a subprocess on loopback: slow clients, restarts, bodies.

``make run`` (and ``lunaria serve``) serve with waitress (api/serve_cli.py says why). These
tests start it for real, on SQLite and on PostgreSQL, and talk to it over sockets.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from api.web import HSTS
from tests.live_server import Server, environment, init, lunaria, make_run, serve
from tests.test_api_support import PROBLEM, Http, cli_admin_token

SLOW_CONNECTIONS = 64
TRICKLE_SECONDS = 8
PROOF_READS = ("/api/v1/ledger/checkpoint", "/api/v1/ledger/proofs/inclusion?index=1&size=2")


def _log_with_a_proof(server: Server, token: str, env: dict[str, str]) -> None:
    """A pool (seq 1) and a checkpoint of size 2, so the proof reads have something to prove."""
    body = json.dumps({"slug": "food", "name": "Food bank", "currencies": ["EUR"]}).encode()
    status, _, answer = server.request(
        "POST",
        "/api/v1/pools",
        body,
        Authorization=f"Bearer {token}",
        Idempotency_Key=uuid.uuid4().hex,
        Content_Type="application/json",
    )
    assert status == 201, answer
    lunaria(env, "checkpoint", "--new")
    for path in PROOF_READS:
        assert server.request("GET", path)[0] == 200, path


def _slow_connections(port: int, token: str) -> list[tuple[socket.socket, bytes]]:
    """Half trickle their headers, half send valid headers at once and trickle the body."""
    body = json.dumps({"amount": "100", "currency": "EUR", "channel": "cash"}).encode()
    head = (
        "POST /api/v1/pools/food/donations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    opened = []
    for number in range(SLOW_CONNECTIONS):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        if number % 2:
            connection.sendall(head)
            opened.append((connection, body))
        else:
            opened.append((connection, head + body))
    return opened


def _trickle(connections: list[tuple[socket.socket, bytes]], seconds: int) -> None:
    """One byte a second on every connection."""
    for offset in range(seconds):
        for connection, rest in connections:
            connection.sendall(rest[offset : offset + 1])
        time.sleep(1)


def _still_open(connection: socket.socket) -> bool:
    """True when the server has neither closed nor answered the connection."""
    connection.setblocking(False)
    try:
        return connection.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_proof_reads_answer_within_a_second_while_64_clients_trickle(
    db_url: str, tmp_path: Path
) -> None:
    env = environment(db_url, tmp_path)
    token = init(env)
    with make_run(env, tmp_path) as server:
        _log_with_a_proof(server, token, env)
        slow = _slow_connections(server.port, token)
        trickler = threading.Thread(target=_trickle, args=(slow, TRICKLE_SECONDS))
        trickler.start()
        latencies: list[float] = []
        while trickler.is_alive():
            for path in PROOF_READS:
                started = time.perf_counter()
                status, _, _ = server.request("GET", path, timeout=5)
                latencies.append(time.perf_counter() - started)
                assert status == 200
            time.sleep(0.1)
        trickler.join()
        held = sum(_still_open(connection) for connection, _ in slow)
        for connection, _ in slow:
            connection.close()
        print(
            f"\n{db_url.split(':')[0]}: {len(latencies)} proof reads beside {held} slow "
            f"connections: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
        assert held == SLOW_CONNECTIONS  # the server kept them all, waiting for the rest
        assert len(latencies) >= 2 * TRICKLE_SECONDS
        assert max(latencies) < 1.0
        # Ctrl-C (SIGINT to the terminal's process group) stops make run: server and worker.
        server.stop(signal.SIGINT)
        assert not _anyone_serving(server.port)
        assert not _group_alive(server.process.pid), server.log.read_text()[-2000:]


def _group_alive(group: int) -> bool:
    """True while any process of the group is left (the worker, the server, make's shell)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def _anyone_serving(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_restart_after_kill_9_serves_and_writes(db_url: str, tmp_path: Path) -> None:
    """No pid file, no lock left behind: the kernel drops the flocks of a killed process."""
    env = environment(db_url, tmp_path)
    token = init(env)
    with serve(env, tmp_path) as first:
        port = first.port
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    with serve(env, tmp_path, port) as again:
        _log_with_a_proof(again, token, env)


def _chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    body = b'{"slug": "' + b"x" * size + b'"}'
    for start in range(0, len(body), piece):
        yield body[start : start + piece]


def test_a_chunked_body_over_the_limit_is_413(db_url: str, tmp_path: Path) -> None:
    env = environment(db_url, tmp_path)
    token = init(env)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
    }
    with serve(env, tmp_path) as server:
        for size in (100 * 1024, 10 * 1024 * 1024):
            status, received, body = _post_chunked(server, headers, _chunks(size))
            assert (status, received["content-type"]) == (413, PROBLEM), body[:200]
            assert json.loads(body)["code"] == "body_too_large"
        pool = json.dumps({"slug": "food", "name": "Food bank", "currencies": ["EUR"]}).encode()
        status, _, body = _post_chunked(server, headers, iter([pool[:10], pool[10:]]))
        assert status == 201, body  # a chunked body under the limit is read whole


def _post_chunked(
    server: Server, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = headers | {"Idempotency-Key": uuid.uuid4().hex}
        connection.request("POST", "/api/v1/pools", body=chunks, headers=sent, encode_chunked=True)
        response = connection.getresponse()
        received = {name.lower(): value for name, value in response.getheaders()}
        return response.status, received, response.read()
    finally:
        connection.close()


def test_a_chunked_body_over_the_limit_is_413_in_the_app(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """The same through the WSGI interface alone (gunicorn and werkzeug pass a chunked body
    as a stream without length; waitress de-chunks it and gives its length)."""
    api = Http(app, app.test_client())
    token = cli_admin_token(runner)
    for size, status, code in ((100 * 1024, 413, "body_too_large"), (10, 400, "malformed_json")):
        response = api.client.post(
            "/api/v1/pools",
            input_stream=io.BytesIO(b"".join(_chunks(size))[:-1]),  # (cut: malformed if read)
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
            },
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert (response.status_code, response.get_json()["code"]) == (status, code)
        assert response.mimetype == PROBLEM
    assert api.size() == 1


@pytest.mark.parametrize(
    ("public_url", "hsts"),
    [("https://ledger.example.org", HSTS), ("http://localhost:8000", None)],
)
def test_hsts_only_when_the_public_url_is_https(
    app: Flask, runner: FlaskCliRunner, public_url: str, hsts: str | None
) -> None:
    app.config["PUBLIC_URL"] = public_url
    assert runner.invoke(args=["init"]).exit_code == 0
    client = app.test_client()
    for path in ("/", "/api/v1/ledger/checkpoint", "/api/v1/pools/none"):
        assert client.get(path).headers.get("Strict-Transport-Security") == hsts, path
