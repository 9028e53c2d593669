"""The static site ``lunaria publish DIR`` writes beside the tiles: what a donor reads offline.

``index.html`` (pools, their balances and newest entries, the published checkpoint),
``verify.html`` (how to check the directory, with the exact commands), ``vkey.txt`` (the
log's verifier key) and the web pages' stylesheet and icon, next to the ``checkpoint`` and
``tile/`` that :func:`ledger.log.publish` writes. Rendered with the web pages' Jinja
environment and filters (``money``, ``when``) outside any request, in English; every link is
relative, so the directory can be served under any path or opened from disk. It reads what
the web pages read (public tables only, through the views), and public texts as served:
a redacted one shows as redacted, never its old text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale  # type: ignore[import-untyped]
from sqlalchemy import Engine

from api import db
from ledger.errors import NotFound
from ledger.fund import public_text, views
from ledger.log import CHECKPOINT_PATH, Entry, PublishReport, write_atomically

LANGUAGE = "en"
RECENT_ENTRIES = 10
VKEY_FILE = "vkey.txt"
PAGES = ("index.html", "verify.html")
STATIC_FILES = ("site.css", "moon.svg")  # copied from api/static, byte for byte


@dataclass(frozen=True)
class RecentEntry:
    """One of a pool's newest entries with its public texts as served (None: redacted or
    not kept), by field (``purpose``, ``note``, ``reason``, ``donor.name``)."""

    entry: Entry
    texts: dict[str, str | None]


@dataclass(frozen=True)
class PoolSummary:
    pool: views.PoolView
    recent: tuple[RecentEntry, ...]


@dataclass(frozen=True)
class SiteReport:
    """What :func:`write_site` wrote."""

    files: tuple[str, ...]

    def summary(self) -> str:
        return f"site: {', '.join(self.files)} (open index.html)"


def _recent(engine: Engine, slug: str) -> tuple[RecentEntry, ...]:
    entries = views.pool_entries(engine, slug, RECENT_ENTRIES)
    served = public_text.texts_beside(engine, [{"kind": e.kind, "data": e.data} for e in entries])
    return tuple(
        RecentEntry(entry, {field: text["text"] for field, text in texts.items()})
        for entry, texts in zip(entries, served, strict=True)
    )


def _pools(engine: Engine, now: datetime) -> list[PoolSummary]:
    return [PoolSummary(p, _recent(engine, p.slug)) for p in views.list_pools(engine, now)]


def _render(report: PublishReport, checkpoint: str, vkey: str) -> dict[str, str]:
    engine = db.get_engine()
    now = db.get_clock().now()
    context: dict[str, Any] = {
        "report": report,
        "checkpoint": checkpoint,
        "vkey": vkey,
        "vkey_file": VKEY_FILE,
        "published": now,
        "names": {c.slug: c.name for c in views.list_collectives(engine)},
    }
    with force_locale(LANGUAGE):  # (no request: the web pages' locale selector is not asked)
        return {
            "index.html": render_template(
                "mirror/index.html", pools=_pools(engine, now), **context
            ),
            "verify.html": render_template("mirror/verify.html", **context),
        }


def write_site(directory: Path, report: PublishReport) -> SiteReport:
    """Write the site into ``directory``, where :func:`ledger.log.publish` just wrote the
    checkpoint of ``report``. Pages are rewritten on every publish (balances move on)."""
    checkpoint = (directory / CHECKPOINT_PATH).read_text(encoding="utf-8")
    vkey = views.published_vkey(db.get_engine())
    if vkey is None:
        raise NotFound("the log has published no verifier key")
    for name, page in _render(report, checkpoint, vkey).items():
        write_atomically(directory / name, page.encode("utf-8"))
    write_atomically(directory / VKEY_FILE, f"{vkey}\n".encode())
    static = Path(current_app.static_folder or "static")
    for name in STATIC_FILES:
        write_atomically(directory / name, (static / name).read_bytes())
    return SiteReport((*PAGES, VKEY_FILE, *STATIC_FILES))
