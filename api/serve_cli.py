"""``lunaria serve``: the web service, served by waitress.

Why waitress and not gunicorn's threads: a gunicorn ``gthread`` worker hands a connection to a
thread as soon as its first bytes arrive, and the thread then reads the rest of the request
itself, so a client that sends one byte a second holds a thread for as long as it likes; eight
such clients stopped a server of 2 x 4 threads. waitress reads every connection in one event
loop and hands a request to a thread only once it has all of it (headers and body, the body
spooled to a temporary file past 512 KiB); it also takes the response from the thread at once
and feeds a slow reader itself. Slow clients then cost a socket and a buffer, not a thread.
gevent or eventlet workers would do the same for I/O, but they run the app in greenlets of one
thread: a report render (seconds of CPU), a SQLite ``flock`` or a wait in libpq or SQLite would
stop every other request of the process, and they need the standard library monkey-patched
under SQLAlchemy, psycopg and the group commit's threads. waitress needs none of that: the app
runs in ordinary threads, as it did under gunicorn.

One process: the ledger's writes serialise on the database's write lock anyway, and reads
scale out with more hosts (or more processes behind the proxy), which share the database, the
rate-limit counters included (:mod:`api.throttle`).
"""

from __future__ import annotations

from typing import Any

import click
import waitress

from api import create_app, public_url

# The app's own limit is 64 KiB (1 MiB for a donations batch), answered as a 413 problem+json.
# waitress refuses bodies over its own limit with a plain-text 413 before the app sees them; it
# is set above the app's so the app answers every body that is merely too large, chunked ones
# included (waitress decodes a chunked body and gives the app its length).
MAX_BODY = 16 * 1024 * 1024

SETTINGS: dict[str, Any] = {
    # Threads run the app; connections do not occupy them while they are being read.
    "threads": 8,
    # Open connections (slow ones included) before waitress stops accepting more; poll(), not
    # select(), so the count is not capped by select's 1,024 file descriptors.
    "connection_limit": 1000,
    "asyncore_use_poll": True,
    # Seconds a connection may stay silent (an idle keep-alive, or a client that stopped
    # sending) before it is closed.
    "channel_timeout": 30,
    "max_request_header_size": 64 * 1024,
    "max_request_body_size": MAX_BODY,
    # No X-Forwarded-* handling here, and none removed (waitress's default removes them all):
    # the app applies LUNARIA_PROXY_HOPS (werkzeug ProxyFix, api/throttle.py).
    "trusted_proxy": None,
    "clear_untrusted_proxy_headers": False,
    "ident": "lunaria",
}


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=SETTINGS["threads"],
    show_default=True,
    help="Threads running requests (slow clients do not hold one).",
)
def serve_command(host: str, port: int, threads: int) -> None:
    """Serve the web service (the API, the pages, /tlog/) until SIGTERM or Ctrl-C."""
    app = create_app()
    with app.app_context():
        url = public_url.get()  # where browsers go: passkeys need its host name, not an IP
    click.echo(f"Lunaria is serving on http://{host}:{port}/", err=True)
    click.echo(f"open {url}/ (members: {url}/workspace)", err=True)
    waitress.serve(app, **{**SETTINGS, "host": host, "port": port, "threads": threads})


COMMANDS: tuple[click.Command, ...] = (serve_command,)
