"""The public URLs a report prints (the HTTP API serves them; see the API's routes).

The base URL defaults to ``https://<origin>``: a log's origin is a schema-less URL.
"""

from __future__ import annotations

REPORT_PATH = "/api/v1/pools/{pool}/reports/{cycle}.{ext}"
CHECKPOINT_PATH = "/api/v1/ledger/checkpoints/{size}"


def base_url(origin: str, configured: str | None = None) -> str:
    return (configured or f"https://{origin}").rstrip("/")


def report_url(base: str, pool: str, cycle: int, ext: str) -> str:
    return base + REPORT_PATH.format(pool=pool, cycle=cycle, ext=ext)


def checkpoint_url(base: str, size: int) -> str:
    """Where the signed checkpoint of tree size ``size`` is served (the report's QR code)."""
    return base + CHECKPOINT_PATH.format(size=size)
