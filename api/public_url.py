"""The service's public URL (``LUNARIA_PUBLIC_URL``): the only source of absolute URLs.

Reports (PDF, JSON), their QR codes and the Atom feeds print absolute URLs. They all come
from here, never from the request's Host header, which any client can set: a report would
otherwise send auditors to whatever host a client named, and change its SHA-256 with it.

``lunaria init`` checks the configured URL (default ``http://localhost:8000``) and stores it in
the database (table ``settings``), so the web server and the command line print the same URL
and ``lunaria report`` gives the bytes of the HTTP download. To change it, set
LUNARIA_PUBLIC_URL and run ``lunaria init`` again. A process configured with another URL than
the stored one refuses to print either. ``current_app.config["PUBLIC_URL"]`` holds the URL in
force once :func:`load` has run (before each request).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import Column, Engine, MetaData, String, Table, Text, inspect, select

from api import db
from ledger.errors import LedgerError
from ledger.log import write_transaction

DEFAULT_PUBLIC_URL = "http://localhost:8000"
SETTING = "public_url"
LOADED = "lunaria.public_url"  # app.extensions: the URL once read from the database

settings = Table(
    "settings",
    MetaData(),
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\Z")  # DNS names, IPv4 too
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]\Z")


class InvalidPublicUrl(LedgerError):
    """LUNARIA_PUBLIC_URL is not an http(s) URL of a host (and port), with nothing after."""

    code = "invalid_public_url"


class PublicUrlMismatch(LedgerError):
    """The process is configured with another public URL than the database holds."""

    code = "public_url_mismatch"


def check(url: str) -> str:
    """``url`` as stored: ``scheme://host[:port]``, lowercase, no trailing slash.

    Refused: another scheme than http or https; no host; a user or password; a path (but
    ``/``), query or fragment; a port out of range; a host that is not a DNS name or an IP
    address.
    """
    problem = _problem(url)
    if problem:
        raise InvalidPublicUrl(
            f"LUNARIA_PUBLIC_URL {url!r} {problem}: give scheme and host only, "
            "such as https://lunaria.example.org or http://localhost:8000"
        )
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _problem(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"cannot be read ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password"
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.strip().endswith("?"):
        return "must have no path, query or fragment"
    host = (parts.hostname or "").lower()
    if not host:
        return "names no host"
    if port == 0:
        return "has port 0"
    bracketed = parts.netloc.rsplit("@", 1)[-1].startswith("[")
    if not (_IPV6.match(f"[{host}]") if bracketed else _HOST.match(host)):
        return f"has an invalid host {host!r}"
    return None


def stored(engine: Engine) -> str | None:
    """The public URL stored by ``lunaria init``, or None (no database or no URL yet)."""
    if not inspect(engine).has_table("settings"):
        return None
    with engine.connect() as conn:
        value = conn.execute(select(settings.c.value).where(settings.c.name == SETTING)).scalar()
    return None if value is None else str(value)


def store(engine: Engine, url: str) -> None:
    """Store ``url`` (``lunaria init``). Other processes read it when they start: a running
    server keeps the URL it read until it is restarted."""
    with write_transaction(engine) as conn:
        conn.execute(settings.delete().where(settings.c.name == SETTING))
        conn.execute(settings.insert().values(name=SETTING, value=url))
    current_app.extensions.pop(LOADED, None)  # (this process reads it again)


def configured() -> str | None:
    """LUNARIA_PUBLIC_URL checked, or None when it is not set."""
    value: str | None = current_app.config.get("PUBLIC_URL")
    return check(value) if value else None


def get() -> str:
    """The URL in force (also put in ``current_app.config["PUBLIC_URL"]``): the stored one;
    before ``lunaria init`` has stored one, the configured one or the default. Read from the
    database once per process."""
    known: str | None = current_app.extensions.get(LOADED)
    if known is not None:
        return known
    wanted, kept = configured(), stored(db.get_engine())
    if kept is None:
        return wanted or DEFAULT_PUBLIC_URL
    if wanted is not None and wanted != kept:
        raise PublicUrlMismatch(
            f"LUNARIA_PUBLIC_URL is {wanted!r} but the database holds {kept!r}: run "
            "`lunaria init` to store the new one (or unset LUNARIA_PUBLIC_URL)"
        )
    current_app.extensions[LOADED] = kept
    current_app.config["PUBLIC_URL"] = kept
    return kept


def load_before_request() -> None:
    """``before_request``: sets ``config["PUBLIC_URL"]`` for whatever reads it (such as the
    HSTS header). A misconfigured URL is logged here; what prints a URL refuses with it."""
    try:
        get()
    except (InvalidPublicUrl, PublicUrlMismatch) as exc:
        current_app.logger.error("%s", exc.message)
