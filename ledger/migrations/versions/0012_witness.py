"""witness: this instance as a C2SP tlog-witness, and the cosignatures its own log collects.

As a witness: ``witness_keys`` (the log verifier keys it trusts, by origin), ``witness_logs``
(per origin, the latest checkpoint it cosigned: updated only by compare-and-set, never rolled
back) and ``witness_refusals`` (validly signed checkpoints it refused: evidence of a fork).
As a log: ``cosignatures`` (the witnesses' lines on its checkpoints, added, never changed)
and ``witnesses`` (what each witness last cosigned, and every refusal it answered).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "witness_keys",
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("added", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("vkey"),
    )
    op.create_index("ix_witness_keys_origin", "witness_keys", ["origin"])
    op.create_table(
        "witness_logs",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("origin"),
    )
    op.create_table(
        "witness_refusals",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_witness_refusals_origin", "witness_refusals", ["origin"])
    op.create_table(
        "cosignatures",
        sa.Column("size", _KEY, autoincrement=False, nullable=False),
        sa.Column("witness", sa.Text(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness"),
    )
    op.create_table(
        "witnesses",
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("cosigned_size", sa.BigInteger(), nullable=False),
        sa.Column("cosigned_ts", sa.String(length=27), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_ts", sa.String(length=27), nullable=True),
        sa.Column("refusals", sa.Integer(), nullable=False),
        sa.Column("last_refusal", sa.Text(), nullable=True),
        sa.Column("last_refusal_ts", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("vkey"),
    )


def downgrade() -> None:
    for table in ("witnesses", "cosignatures", "witness_refusals", "witness_logs"):
        op.drop_table(table)
    op.drop_index("ix_witness_keys_origin", "witness_keys")
    op.drop_table("witness_keys")
