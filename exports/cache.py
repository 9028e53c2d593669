"""Reports rendered once: the last rendering of each (pool, cycle, format, language), kept in
the database so every server process (and the next one) finds it.

    key = report_key(engine, "food-bank", "latest", "pdf", now=..., options=options)
    cached = lookup(engine, key)              # a RenderedReport, or None
    store(engine, key, render_report(...))

What the bytes depend on is the key (:class:`ReportKey`): the pool, the cycle, the size of
its covering checkpoint, the newest anchor or redaction (which change a report after its
checkpoint: :func:`exports.data.locate`), the format, the language (PDF and JSON only), the
public URL the report prints, and the version of this code. Reports are deterministic, so
the key's digest is a strong ETag: a client's copy is checked without rendering or reading
the bytes. A rendering for a new key replaces the row of the same (pool, cycle, format,
language): the table holds at most one row per report a client can ask for. Reports with
their own CSV columns or time range (``fields``, ``since``, ``until``) are not kept: there
are too many to keep.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from exports.data import locate
from exports.formats import (
    MEDIA_TYPES,
    RenderedReport,
    ReportInfo,
    ReportOptions,
    check_format,
)
from ledger.log import write_transaction

LANGUAGE_FORMATS = frozenset({"pdf", "json"})
"""The formats whose bytes depend on the language (the JSON names the PDF's SHA-256)."""
CODE_VERSION = version("lunaria")

report_cache = Table(
    "report_cache",
    MetaData(),
    Column("pool", String(64), primary_key=True),
    Column("cycle", Integer, primary_key=True, autoincrement=False),
    Column("format", String(16), primary_key=True),
    Column("lang", String(8), primary_key=True),
    Column("etag", String(64), nullable=False),
    Column("checkpoint_size", BigInteger, nullable=False),
    Column("interim", Boolean, nullable=False),
    Column("filename", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class ReportKey:
    """What a report's bytes are a function of; ``etag`` is its digest."""

    pool: str
    cycle: int
    checkpoint_size: int
    revision: int
    interim: bool
    format: str
    lang: str  # "" for the formats that have one language
    base_url: str
    kept: bool  # False for CSV with its own columns or range: rendered, not kept

    @property
    def etag(self) -> str:
        fields = [
            CODE_VERSION,
            self.pool,
            self.cycle,
            self.checkpoint_size,
            self.revision,
            self.interim,
            self.format,
            self.lang,
            self.base_url,
        ]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:40]


def report_key(
    engine: Engine, pool: str, cycle: int | str, fmt: str, *, now: datetime, options: ReportOptions
) -> ReportKey:
    """The key of a report (raises what :func:`exports.formats.write_report` would)."""
    check_format(fmt)
    where = locate(engine, pool, cycle, now)
    own_rows = options.fields is not None or options.since is not None or options.until is not None
    return ReportKey(
        pool=where.pool,
        cycle=where.cycle,
        checkpoint_size=where.checkpoint_size,
        revision=where.revision,
        interim=where.interim,
        format=fmt,
        lang=options.lang if fmt in LANGUAGE_FORMATS else "",
        base_url=options.base_url or "",
        kept=not own_rows,
    )


def _row_of(key: ReportKey) -> ColumnElement[bool]:
    return and_(
        report_cache.c.pool == key.pool,
        report_cache.c.cycle == key.cycle,
        report_cache.c.format == key.format,
        report_cache.c.lang == key.lang,
        report_cache.c.etag == key.etag,
    )


def lookup(engine: Engine, key: ReportKey, *, content: bool = True) -> RenderedReport | None:
    """The kept rendering of ``key``, or None; without ``content`` the bytes are not read
    (the answer's ``content`` is then empty: for HEAD)."""
    if not key.kept:
        return None
    c = report_cache.c
    body = (c.content if content else func.length(c.content)).label("body")
    with engine.connect() as conn:
        row = conn.execute(
            select(c.filename, c.sha256, c.checkpoint_size, c.interim, body).where(_row_of(key))
        ).first()
    if row is None:
        return None
    data = bytes(row.body) if content else b""
    info = ReportInfo(
        format=key.format,
        media_type=MEDIA_TYPES[key.format],
        filename=row.filename,
        sha256=row.sha256,
        size=len(data) if content else int(row.body),
        pool=key.pool,
        cycle=key.cycle,
        interim=bool(row.interim),
        checkpoint_size=int(row.checkpoint_size),
    )
    return RenderedReport(info, data)


def store(engine: Engine, key: ReportKey, rendered: RenderedReport) -> bool:
    """Keep ``rendered`` under ``key``, replacing an older rendering of the same report.

    False when it was not kept: not a kept report, or another process stored the same one
    first, or the database was busy (a cache never fails a request).
    """
    if not key.kept:
        return False
    c = report_cache.c
    same_report = and_(
        c.pool == key.pool, c.cycle == key.cycle, c.format == key.format, c.lang == key.lang
    )
    info = rendered.info
    try:
        with write_transaction(engine) as conn:
            conn.execute(delete(report_cache).where(same_report))
            conn.execute(
                report_cache.insert().values(
                    pool=key.pool,
                    cycle=key.cycle,
                    format=key.format,
                    lang=key.lang,
                    etag=key.etag,
                    checkpoint_size=info.checkpoint_size,
                    interim=info.interim,
                    filename=info.filename,
                    sha256=info.sha256,
                    content=rendered.content,
                )
            )
    except IntegrityError:
        return False  # (another process kept it meanwhile)
    except OperationalError:
        return False  # (SQLite busy past its timeout: the report is served all the same)
    return True


def clear(engine: Engine) -> int:
    """Forget every kept report (``lunaria init`` does, so an upgrade renders afresh)."""
    with write_transaction(engine) as conn:
        return conn.execute(delete(report_cache)).rowcount or 0
