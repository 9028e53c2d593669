"""urgency: each pool's urgency policy, when grants were decided or cancelled, and the response
figures a handover states.

``pool_created`` of entry data version 2 carries a pool's decision deadline for urgent grants
and whether an overdue one may be approved by a single custodian member
(ledger.fund.urgency); pools created before have the defaults (72 hours, no). The grants
projection keeps the ``ts`` of the decision and of the cancellation entries, from which the
response figures are computed; here they are filled from the entries already written. The
cycles projection keeps the figures a handover of data version 2 states (NULL before).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "pools",
        sa.Column("urgent_deadline_hours", sa.Integer(), nullable=False, server_default="72"),
    )
    op.add_column(
        "pools", sa.Column("overdue_approval", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("cycles", sa.Column("response", sa.Text(), nullable=True))
    op.add_column("grants", sa.Column("decided_ts", sa.String(length=27), nullable=True))
    op.add_column("grants", sa.Column("closed_ts", sa.String(length=27), nullable=True))
    for column, seq in (("decided_ts", "decided_seq"), ("closed_ts", "closed_seq")):
        op.execute(
            f"UPDATE grants SET {column} = (SELECT ts FROM entries WHERE entries.seq = "
            f"grants.{seq}) WHERE {seq} IS NOT NULL"
        )


def downgrade() -> None:
    for table, column in (
        ("grants", "closed_ts"),
        ("grants", "decided_ts"),
        ("cycles", "response"),
        ("pools", "overdue_approval"),
        ("pools", "urgent_deadline_hours"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
