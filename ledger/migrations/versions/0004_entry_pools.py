"""entry_pools: which entries are each pool's, so a pool's entries are read by key.

A pool's page, its Atom feed and ``?pool=`` on the public entry list searched the newest
entries' bytes for the pool's name: in a large log a quiet pool's page showed no entries at
all. The table is a projection like the others (written with each entry, rebuilt by replay);
here it is filled from the log already written.

Revision ID: 0004
Revises: 0003
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 10_000


def _pool(kind: str, data: dict) -> str | None:  # type: ignore[type-arg]
    # The rule of ledger.fund.projections.entry_pool, frozen here with this revision.
    pool = data.get("slug") if kind == "pool_created" else data.get("pool")
    return pool if isinstance(pool, str) else None


def upgrade() -> None:
    table = op.create_table(
        "entry_pools",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("pool", "seq"),
    )
    bind = op.get_bind()
    found = bind.execute(
        sa.text("SELECT seq, kind, body FROM entries ORDER BY seq").execution_options(
            yield_per=BATCH
        )
    )
    rows = []
    for seq, kind, body in found:
        pool = _pool(kind, json.loads(bytes(body))["data"])
        if pool is not None:
            rows.append({"pool": pool, "seq": seq})
        if len(rows) >= BATCH:
            bind.execute(table.insert(), rows)
            rows = []
    if rows:
        bind.execute(table.insert(), rows)


def downgrade() -> None:
    op.drop_table("entry_pools")
