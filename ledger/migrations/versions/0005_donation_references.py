"""donation_references: one bank or chain reference, one donation, per pool.

References are private, so the table holds their keyed digests (HMAC-SHA256 under the log's
fingerprint key over the pool and the reference: unique per pool, so the digest alone is
the key), which migrations do not have: ``lunaria init`` fills the table from the
private records of donations written before this revision.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "donation_references",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )


def downgrade() -> None:
    op.drop_table("donation_references")
