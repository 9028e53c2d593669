"""The Lunaria web service: Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": "sqlite:///var/lunaria.db",
    "KEY_FILE": "var/log.key",
    "ORIGIN": None,  # default: the origin stored in the database, or DEFAULT_ORIGIN at init
    "CHECKPOINT_EVERY": 1000,
    "CHECKPOINT_INTERVAL": 60,  # seconds
    "CLOCK": None,  # a ledger.clock.Clock; tests inject a ManualClock
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Configuration from ``LUNARIA_*`` environment variables, or ``test_config`` in tests."""
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    if test_config is None:
        app.config.from_prefixed_env("LUNARIA")
    else:
        app.config.update(test_config)

    from api import cli, db

    db.init_app(app)
    cli.init_app(app)
    return app
