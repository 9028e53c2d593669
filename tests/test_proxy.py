"""The reverse-proxy configuration of docs/operations.md, run: Debian's nginx with that very
block (read from the docs) in front of ``lunaria serve``, over TLS on loopback.

The test replaces only what cannot be the same on a test machine (ports, the certificate
paths, the upstream's port), each exactly once, so a change to the documented block is a change
to what runs here. Without nginx (``make nginx``) the test skips, or fails when
LUNARIA_FORBID_SKIPS=1, as CI sets.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.web import HSTS
from tests.live_server import ROOT, environment, free_port, init, serve
from tests.test_api_support import PROBLEM

HOST = "ledger.example.org"
NGINX = os.environ.get("LUNARIA_NGINX", "/usr/sbin/nginx")
WRONG = "lun_0123456789abcdef_" + "A" * 43


def documented_block() -> str:
    """The nginx block of docs/operations.md's reverse-proxy section."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("## The reverse proxy: nginx") :]
    found = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def _nginx_or_skip() -> str:
    path = shutil.which(NGINX) or shutil.which("nginx")
    if path is None:
        message = f"nginx is not installed at {NGINX} (run `make nginx`)"
        if os.environ.get("LUNARIA_FORBID_SKIPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _substitute(block: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert block.count(old) == 1, f"the documented block should hold {old!r} once"
        block = block.replace(old, new)
    return block


@contextmanager
def nginx(folder: Path, upstream: int) -> Iterator[tuple[int, int]]:
    """nginx running the documented block; yields its (http, https) ports."""
    executable = _nginx_or_skip()
    folder.mkdir()
    cert, key = _certificate(folder)
    plain, secure = free_port(), free_port()
    block = _substitute(
        documented_block(),
        {
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
            "listen 80;": f"listen 127.0.0.1:{plain};",
            "listen 443 ssl;": f"listen 127.0.0.1:{secure} ssl;",
            f"/etc/letsencrypt/live/{HOST}/fullchain.pem": str(cert),
            f"/etc/letsencrypt/live/{HOST}/privkey.pem": str(key),
        },
    )
    user = "user root;" if os.geteuid() == 0 else ""  # (its workers then read our temp files)
    (folder / "nginx.conf").write_text(
        f"{user}\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {folder}/body;\n"
        f"proxy_temp_path {folder}/proxy;\n{block}\n}}\n"
    )
    command = [executable, "-p", str(folder), "-c", str(folder / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(secure, process)
        yield plain, secure
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=30)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx is not listening on {port}")


def _request(
    port: int, method: str, path: str, body: bytes | None = None, tls: bool = True, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # (self-signed)
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=30, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {"Host": HOST} | {name.replace("_", "-"): value for name, value in headers.items()}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        received = {name.lower(): value for name, value in response.getheaders()}
        return response.status, received, response.read()
    finally:
        connection.close()


def test_the_documented_proxy_configuration(db_url: str, tmp_path: Path) -> None:
    env = environment(
        db_url,
        tmp_path,
        LUNARIA_PUBLIC_URL=f"https://{HOST}",
        LUNARIA_PROXY_HOPS="1",
        LUNARIA_RATE_LIMIT_AUTH_FAILURES="3 per minute",
    )
    token = init(env)
    with serve(env, tmp_path) as server, nginx(tmp_path / "nginx", server.port) as (plain, tls):
        status, headers, _ = _request(plain, "GET", "/pools?x=1", tls=False)
        assert (status, headers["location"]) == (301, f"https://{HOST}/pools?x=1")

        status, headers, body = _request(tls, "GET", "/api/v1/ledger/checkpoint")
        assert status == 200, body
        assert headers["strict-transport-security"] == HSTS

        write = {"Authorization": f"Bearer {token}", "Content_Type": "application/json"}
        too_large = b'{"slug": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        status, headers, body = _request(tls, "POST", "/api/v1/pools", too_large, **write)
        assert (status, headers["content-type"]) == (413, PROBLEM)
        assert json.loads(body)["code"] == "body_too_large"

        # Whatever a client puts in X-Forwarded-For, the limit counts the address nginx saw.
        for number in range(4):
            status, _, body = _request(
                tls,
                "POST",
                "/api/v1/collectives",
                b"{}",
                Authorization=f"Bearer {WRONG}",
                Idempotency_Key=f"k{number}",
                Content_Type="application/json",
                X_Forwarded_For=f"203.0.113.{number}",
            )
            assert status == (401 if number < 3 else 429), body
        # (Straight to the server, the one hop it trusts is the client's own header: a proxy's
        # address has its own count. That is why only the proxy may reach the server.)
        status, _, _ = server.request(
            "POST",
            "/api/v1/collectives",
            b"{}",
            Authorization=f"Bearer {WRONG}",
            Idempotency_Key="direct",
            Content_Type="application/json",
            X_Forwarded_For="198.51.100.9",
        )
        assert status == 401
