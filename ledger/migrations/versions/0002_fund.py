"""The fund: projections (pools, collectives, custody, grants, balances), lunar schedule,
private records and API tokens.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "balances",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("account", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=48), nullable=False),
        sa.PrimaryKeyConstraint("pool", "currency", "account"),
    )
    op.create_table(
        "collectives",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=True),
        sa.Column("created_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slug"),
    )
    op.create_table(
        "cycle_flows",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("donations", sa.String(length=48), nullable=False),
        sa.Column("disbursements", sa.String(length=48), nullable=False),
        sa.Column("corrections", sa.String(length=48), nullable=False),
        sa.Column("fast_lane_used", sa.String(length=48), nullable=False),
        sa.PrimaryKeyConstraint("pool", "cycle", "currency"),
    )
    op.create_table(
        "cycles",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("starts_at", sa.String(length=27), nullable=False),
        sa.Column("ends_at", sa.String(length=27), nullable=False),
        sa.Column("custodian", sa.String(length=64), nullable=True),
        sa.Column("opened_seq", sa.BigInteger(), nullable=False),
        sa.Column("opening", sa.Text(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("closed_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("pool", "number"),
    )
    op.create_table(
        "donations",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("donor", sa.Text(), nullable=False),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("corrected_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_donations_pool"), "donations", ["pool"], unique=False)
    op.create_table(
        "grants",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("proposer", sa.String(length=100), nullable=False),
        sa.Column("proposed_ts", sa.String(length=27), nullable=False),
        sa.Column("proposed_cycle", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lane", sa.String(length=12), nullable=True),
        sa.Column("decided_seq", sa.BigInteger(), nullable=True),
        sa.Column("decided_cycle", sa.Integer(), nullable=True),
        sa.Column("disbursed_seq", sa.BigInteger(), nullable=True),
        sa.Column("closed_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_grants_pool"), "grants", ["pool"], unique=False)
    op.create_table(
        "lunar_boundaries",
        sa.Column("lunation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("starts_at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("lunation"),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("added_seq", sa.BigInteger(), nullable=False),
        sa.Column("removed_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_members_collective"), "members", ["collective"], unique=False)
    op.create_table(
        "pools",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("currencies", sa.Text(), nullable=False),
        sa.Column("fast_lane_cap", sa.Text(), nullable=False),
        sa.Column("cycle_allowance", sa.Text(), nullable=False),
        sa.Column("created_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_cycle", sa.Integer(), nullable=False),
        sa.Column("current_cycle", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slug"),
    )
    op.create_table(
        "private_records",
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("commitment"),
    )
    op.create_table(
        "rosters",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("effective_cycle", sa.Integer(), nullable=False),
        sa.Column("collectives", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_rosters_pool"), "rosters", ["pool"], unique=False)
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=True),
        sa.Column("member", sa.String(length=64), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.Column("expires_ts", sa.String(length=27), nullable=True),
        sa.Column("revoked_ts", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "votes",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("grant_id", sa.BigInteger(), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=False),
        sa.Column("vote", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("void", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_votes_grant_id"), "votes", ["grant_id"], unique=False)
    # A past new-moon boundary never moves: the schedule is append-only like the log.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER lunar_boundaries_append_only BEFORE UPDATE OR DELETE "
            "ON lunar_boundaries FOR EACH ROW EXECUTE FUNCTION lunaria_refuse_change()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER lunar_boundaries_no_{operation.lower()} BEFORE {operation} "
                f"ON lunar_boundaries BEGIN SELECT RAISE(ABORT, 'lunaria: {operation} on "
                "lunar_boundaries refused: the schedule is append-only'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the fund schema cannot be downgraded: projections hold the books")
