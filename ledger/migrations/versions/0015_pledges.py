"""pledges: anonymous recurring pledges (ledger.fund.pledges) and the private link between a
pledge and the donations matched to it by its payment reference.

Neither is in the log nor derived from it, and neither is public: a pledge keeps no name, no
email, nothing personal; its secret and its payment reference are stored only as SHA-256
hashes. ``pledge_payments`` links a pledge to the donations (by seq) whose bank remittance or
chain memo carried its reference: publishing it would let anyone follow one donor's payments
over time, so only aggregates per pool, currency and cycle leave it. The server's database role
may update these rows (a pledge is ended by its secret).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pledges",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),  # minor units per cycle
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("reference_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.Column("created_cycle", sa.Integer(), nullable=False),
        sa.Column("ended_ts", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash", name="uq_pledges_secret_hash"),
        sa.UniqueConstraint("reference_hash", name="uq_pledges_reference_hash"),
    )
    op.create_index("ix_pledges_pool", "pledges", ["pool"])
    op.create_table(
        "pledge_payments",
        sa.Column("seq", sa.BigInteger(), nullable=False),  # the donation's entry
        sa.Column("pledge", sa.String(length=16), nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),  # minor units
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("matched_ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_pledge_payments_pledge", "pledge_payments", ["pledge"])
    op.create_index("ix_pledge_payments_pool_cycle", "pledge_payments", ["pool", "cycle"])


def downgrade() -> None:
    op.drop_index("ix_pledge_payments_pool_cycle", table_name="pledge_payments")
    op.drop_index("ix_pledge_payments_pledge", table_name="pledge_payments")
    op.drop_table("pledge_payments")
    op.drop_index("ix_pledges_pool", table_name="pledges")
    op.drop_table("pledges")
