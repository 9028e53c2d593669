"""Serving for the benchmarks as ``make run`` serves: ``lunaria serve`` (waitress, with
api/serve_cli.py's settings), and the ``lunaria`` commands that set a server up (a module of
the benchmarks, not one of them).

* :func:`lunaria` runs a ``lunaria`` command in this process, with the settings of an
  environment (a new process per command costs seconds on a loaded machine);
* :func:`lunaria_serve` starts ``lunaria serve`` (or a bench's own app served the same way:
  :func:`serve_app`) in a process group of its own, on a free loopback port, waits until a
  given path answers 200, and stops the group at the end; if the server dies or does not
  answer, the error carries its log.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from api import create_app
from api.serve_cli import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUNARIA_SERVE = (str(BIN / "lunaria"), "serve")
THREADS: int = SETTINGS["threads"]  # lunaria serve's default


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings(threads: int | None = None) -> str:
    """What a server started here serves with, for a bench's header."""
    chosen = {**SETTINGS, "threads": threads or THREADS}
    shown = ", ".join(f"{name} {value}" for name, value in chosen.items())
    return f"lunaria serve (waitress: {shown})"


def lunaria(env: Mapping[str, str], *args: str) -> str:
    """``lunaria ARGS`` with ``env``'s ``LUNARIA_*`` settings (read as ``lunaria`` reads them,
    a JSON value where one parses), run in this process; its standard output."""
    config: dict[str, Any] = {}
    for name, value in env.items():
        if name.startswith("LUNARIA_"):
            try:
                config[name.removeprefix("LUNARIA_")] = json.loads(value)
            except ValueError:
                config[name.removeprefix("LUNARIA_")] = value
    app = create_app(config)
    app.config["TESTING"] = True
    try:
        done = app.test_cli_runner().invoke(args=list(args))
    finally:
        state = app.extensions.get("lunaria")
        if state is not None:
            state.engine.dispose()
    if done.exit_code != 0:
        raise RuntimeError(f"lunaria {' '.join(args)}: {done.output}") from done.exception
    return str(done.stdout)


@contextmanager
def lunaria_serve(
    env: Mapping[str, str],
    ready: str,
    threads: int | None = None,
    command: Sequence[str] = LUNARIA_SERVE,
    timeout: float = 120.0,
) -> Iterator[int]:
    """``command --host 127.0.0.1 --port P [--threads N]`` with ``env`` (``lunaria serve``
    by default), in a process group of its own; yields P once ``GET ready`` answers 200.

    Fails with the server's log if it exits or does not answer within ``timeout`` seconds (a
    loaded machine starts it slowly); at the end, SIGTERM to the group, SIGKILL after 30 s,
    and the log's errors, if any, on stderr."""
    port = free_port()
    options = ["--host", "127.0.0.1", "--port", str(port)]
    if threads is not None:
        options += ["--threads", str(threads)]
    with tempfile.TemporaryDirectory(prefix="lunaria-bench-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [*command, *options],
                env=dict(env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_until_serving(process, port, ready, timeout, log_path)
                yield port
            finally:
                _stop(process)
                server_log = log_path.read_text(errors="replace")
                if "Traceback" in server_log or "ERROR" in server_log:
                    print(f"the server's log has errors:\n{server_log[-4000:]}", file=sys.stderr)


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _wait_until_serving(
    process: subprocess.Popen[bytes], port: int, path: str, timeout: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(port, path):
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log}")
        if time.monotonic() > deadline:
            log = log_path.read_text(errors="replace")
            raise RuntimeError(f"GET {path} did not answer 200 in {timeout:g} s:\n{log}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The measurements are over and no request is in flight: SIGTERM to the group."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):  # (it ended already)
            os.killpg(process.pid, sent)
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def serve_app(app: Any, argv: Sequence[str]) -> int:
    """``--host H --port P --threads N``: serve a bench's own WSGI ``app`` as ``lunaria
    serve`` serves Lunaria (waitress, api/serve_cli.py's settings); for a bench script's
    ``--serve`` mode, the ``command`` of :func:`lunaria_serve`."""
    import argparse

    import waitress

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    waitress.serve(
        app, **{**SETTINGS, "host": args.host, "port": args.port, "threads": args.threads}
    )
    return 0
