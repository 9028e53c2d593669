"""The Lunaria web service: Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": "sqlite:///var/lunaria.db",
    "ADMIN_DATABASE_URL": None,  # the owner's, for `lunaria init` (PostgreSQL: two roles)
    "KEY_FILE": "var/log.key",
    "DATA_KEY_FILE": None,  # the vault key of private records; default: data.key beside KEY_FILE
    "ORIGIN": None,  # default: the origin stored in the database, or DEFAULT_ORIGIN at init
    "CHECKPOINT_EVERY": 1000,
    "CHECKPOINT_INTERVAL": 10,  # seconds: the oldest an unsigned entry gets (lunaria worker)
    "CLOCK": None,  # a ledger.log.clock.Clock; tests inject a ManualClock
    "MAX_CONTENT_LENGTH": 64 * 1024,  # request bodies; a donations batch may send 1 MiB
    "PROXY_HOPS": 0,  # proxies in front that set X-Forwarded-For/-Proto; 0: trust none
    # Rate limits (api/throttle.py), in the `limits` notation; "" turns one off, RATE_LIMITS=0 all.
    "RATE_LIMITS": True,
    "RATE_LIMIT_AUTH_FAILURES": "20 per minute",  # failed authentications per client address
    "RATE_LIMIT_WRITES": "600 per minute",  # writes per token; workspace forms per person
    "RATE_LIMIT_REPORTS": "30 per minute",  # report renders per client address
    "RATE_LIMIT_GRANT_REQUESTS": "5 per hour",  # grant-request form posts per client address
    "RATE_LIMIT_PLEDGES": "10 per hour",  # new pledges (form and API) per client address
    "ANCHOR_RPC_URL": None,  # chain node JSON-RPC URL for `lunaria anchor`
    "ANCHOR_CONTRACT": None,  # LedgerAnchor address, printed by `lunaria anchor deploy`
    "ANCHOR_KEY_FILE": None,  # the anchoring account's private key file (mode 0600)
    "ANCHOR_EVERY_HOURS": None,  # `lunaria anchor --if-due` anchors at most this often
    "ANCHOR_AT_HANDOVER": False,  # `lunaria rotate` anchors the checkpoint of each handover
    "CHAIN_RPC_URL": None,  # chain node JSON-RPC URL for `lunaria ingest chain`
    "CHAIN_CONFIRMATIONS": 12,  # blocks a transfer waits before it is recorded
    "PUBLIC_URL": None,  # http(s)://host[:port]; stored by `lunaria init` (api/public_url.py)
    "WITNESS_KEY_FILE": None,  # this instance's witness key; default: witness.key beside KEY_FILE
    "WITNESS_NAME": None,  # the name of a new witness key; default: <origin>/witness
    "WITNESSES": None,  # a file of `VKEY URL` lines: the witnesses this log asks to cosign
    "WITNESS_QUORUM": None,  # cosignatures wanted per checkpoint; default: a majority
    "MIRROR_KEY_FILE": None,  # this instance's mirror key; default: mirror.key beside KEY_FILE
    "MIRROR_NAME": None,  # the name of a new mirror key; default: <origin>/mirror
    "MIRROR_INTERVAL": None,  # seconds between the worker's syncs of each mirror; default: 60
    "WEBHOOK_ALLOW_PRIVATE": False,  # 1: webhooks may target loopback and private addresses
    "WEBHOOK_TIMEOUT": 5,  # seconds a webhook target has to answer
    "WEBHOOK_DISABLE_AFTER": 50,  # failed attempts in a row that disable an endpoint
    "NOTIFY_RETRY_BASE": 30,  # seconds before the first retry; doubled each time, up to 1 h
    "NOTIFY_RETRY_HOURS": 24,  # a delivery is retried this long, then failed
    "SMTP_URL": None,  # smtp://host:port: members may opt in to mail
    "SMTP_FROM": "lunaria@localhost",
    "REPORT_RENDERS": 1,  # reports rendered at once per process; 0: no bound (api/reports.py)
    "REPORT_WAIT": 0.0,  # seconds a report request waits for a render slot, then 503
    "REPORT_CACHE": True,  # keep rendered reports (exports/cache.py); off only to measure
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Configuration from ``LUNARIA_*`` environment variables, or ``test_config`` in tests."""
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    if test_config is None:
        app.config.from_prefixed_env("LUNARIA")
    else:
        app.config.update(test_config)

    from api import (
        asks,
        auth,
        cli,
        collectives,
        corrections,
        db,
        docs,
        donations,
        erasures,
        errors,
        federation,
        feeds,
        grants,
        imports,
        ledger_api,
        me,
        mirrors,
        notifications,
        passkeys,
        pledges,
        pools,
        public_url,
        redactions,
        reports,
        throttle,
        tlog,
        tokens,
        web,
        witness,
        workspace,
    )

    db.init_app(app)
    cli.init_app(app)
    api = docs.make_api(app)
    writes = (
        pools,
        collectives,
        donations,
        imports,
        pledges,
        grants,
        corrections,
        tokens,
        erasures,
        redactions,
        notifications,
        me,
    )
    for module in writes:
        api.register_blueprint(module.blp)
    for public in (ledger_api, feeds, reports):  # the public reads of the log
        api.register_blueprint(public.blp)
    app.register_blueprint(tlog.bp)  # the log as C2SP tlog-tiles under /tlog/
    app.register_blueprint(witness.bp)  # C2SP tlog-witness under /witness
    app.register_blueprint(mirrors.bp)  # mirrored logs as C2SP tlog-tiles under /mirror/
    app.register_blueprint(federation.bp)  # the logs witnessed and mirrored, for people
    app.register_blueprint(docs.blp)
    # members' workspace, grant requests and pledges from outside
    for pages in (workspace, passkeys, asks, pledges):
        app.register_blueprint(pages.bp)
    app.before_request(db.require_current_schema)
    app.before_request(public_url.load_before_request)
    app.before_request(auth.guard_writes)
    errors.init_app(app)  # after the Api: its handlers replace flask-smorest's
    throttle.init_app(app)  # rate limits, the client address behind proxies
    web.init_app(app)  # the public pages, flask-babel, security headers
    return app
