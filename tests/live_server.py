"""The real web service in a subprocess, as ``make run`` starts it (no tests here).

:func:`environment` is a deployment's environment (a database URL from the ``db_url`` fixture,
key files in a folder of the test's own); :func:`init` runs ``lunaria init`` and makes the
first admin token; :func:`serve` starts ``lunaria serve`` and :func:`make_run` ``make run``
(server and worker) on a free port, each waiting until the server answers.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
LUNARIA = ROOT / ".venv" / "bin" / "lunaria"
TOKEN = re.compile(r"lun_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")
HEALTH = "/api/v1/ledger/checkpoint"


def environment(db_url: str, folder: Path, **settings: str) -> dict[str, str]:
    """The process environment of a deployment at ``db_url``, keys under ``folder``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUNARIA_")}
    return env | {
        "LUNARIA_DATABASE_URL": db_url,
        "LUNARIA_KEY_FILE": str(folder / "keys" / "log.key"),
        "LUNARIA_DATA_KEY_FILE": str(folder / "keys" / "data.key"),
        **settings,
    }


def lunaria(env: dict[str, str], *args: str) -> str:
    """Run a ``lunaria`` command; its stdout."""
    done = subprocess.run(
        [str(LUNARIA), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def init(env: dict[str, str]) -> str:
    """``lunaria init`` and the first admin token."""
    lunaria(env, "init")
    match = TOKEN.search(lunaria(env, "token", "create", "--role", "admin"))
    assert match is not None
    return match.group(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 10, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: status, headers (lower-case names), body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            sent = {name.replace("_", "-"): value for name, value in headers.items()}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            received = {name.lower(): value for name, value in response.getheaders()}
            return response.status, received, response.read()
        finally:
            connection.close()

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log.read_text()}")
            try:
                if self.request("GET", HEALTH, timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the server did not answer in {timeout} s:\n{self.log.read_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the whole process group (``make run``'s shell, server and worker)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        return self.process.wait(timeout=30)


@contextmanager
def _started(command: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[Server]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches every child
        )
    server = Server(process, port, log)
    try:
        server.wait_until_serving()
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextmanager
def serve(env: dict[str, str], folder: Path, port: int | None = None) -> Iterator[Server]:
    """``lunaria serve`` on ``port`` (a free one by default)."""
    port = port or free_port()
    command = [str(LUNARIA), "serve", "--port", str(port)]
    with _started(command, env, folder / "serve.log", port) as server:
        yield server


@contextmanager
def make_run(env: dict[str, str], folder: Path) -> Iterator[Server]:
    """``make run`` (init, worker, server) on a free port. ``-o`` keeps make from reinstalling
    the virtualenv when pyproject.toml is newer than its stamp."""
    port = free_port()
    command = ["make", "--no-print-directory", "-o", ".venv/.installed-base", "run"]
    command += [f"PORT={port}", "HOST=127.0.0.1"]
    with _started(command, env | {"LUNARIA_DEMO": "0"}, folder / "make-run.log", port) as server:
        yield server
