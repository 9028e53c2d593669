"""notifications: the event outbox, webhook endpoints, mail opt-ins and their deliveries.

Events are derived from the log (and from time: custody coming up, urgent grants overdue) by
``lunaria worker`` and delivered by it (ledger.fund.events, delivery, webhooks, mail). None of
these tables is a projection: replaying the log does not rebuild them. A mail address is not
here but sealed in ``private_records`` (kind ``email``).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_cursors",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=True),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.Column("failures_in_a_row", sa.Integer(), nullable=False),
        sa.Column("disabled_ts", sa.String(length=27), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_webhook_endpoints_collective"), "webhook_endpoints", ["collective"], unique=False
    )
    op.create_table(
        "email_subscriptions",
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=False),
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("member"),
    )
    op.create_index(
        op.f("ix_email_subscriptions_collective"),
        "email_subscriptions",
        ["collective"],
        unique=False,
    )
    op.create_table(
        "deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.Column("next_attempt_ts", sa.String(length=27), nullable=True),
        sa.Column("last_attempt_ts", sa.String(length=27), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_ts", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "channel", "target", name="uq_deliveries_event_target"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_ts"], unique=False)
    op.create_index(
        "ix_deliveries_target", "deliveries", ["channel", "target", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_target", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index(op.f("ix_email_subscriptions_collective"), table_name="email_subscriptions")
    op.drop_table("email_subscriptions")
    op.drop_index(op.f("ix_webhook_endpoints_collective"), table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_table("notification_events")
    op.drop_table("notification_cursors")
