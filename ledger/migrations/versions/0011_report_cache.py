"""report_cache and settings: reports rendered once, and the service's public URL.

``report_cache`` keeps the last rendering of each (pool, cycle, format, language): the bytes,
their SHA-256 and what identifies what they were rendered from (the covering checkpoint's
size, the newest entry that can change a closed report, the public URL; together the
``etag``). A rendering of another checkpoint replaces the row. The rows are a cache: any may
be deleted (``lunaria init`` empties the table), none is ever needed to rebuild anything.

``settings`` holds the deployment's settings that every process must agree on; the first is
``public_url`` (LUNARIA_PUBLIC_URL, stored by ``lunaria init``): the only source of absolute
URLs in reports, feeds and receipts.

``ix_entries_report_revisions`` indexes the few entries that change a closed cycle's report
after it closed (anchors and redactions), so the newest is found without a scan.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

REVISION_KINDS = "kind IN ('checkpoint_anchored', 'text_redacted')"


def upgrade() -> None:
    op.create_table(
        "report_cache",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("interim", sa.Boolean(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("pool", "cycle", "format", "lang"),
    )
    op.create_table(
        "settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index(
        "ix_entries_report_revisions",
        "entries",
        ["seq"],
        sqlite_where=sa.text(REVISION_KINDS),
        postgresql_where=sa.text(REVISION_KINDS),
    )


def downgrade() -> None:
    op.drop_index("ix_entries_report_revisions", table_name="entries")
    op.drop_table("settings")
    op.drop_table("report_cache")
