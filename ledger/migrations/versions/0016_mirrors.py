"""mirrors: this instance as a mirror of other logs (ledger.log.mirroring).

``mirrors`` (per mirrored log: origin, URL, verifier key, the checkpoint held with this
mirror's cosignature, moved only by compare-and-set; when last copied and checked, the last
error), ``mirror_tiles`` (the origin's tlog-tiles and entry bundles, byte for byte, by path:
public already) and ``mirror_incidents`` (validly signed checkpoints refused as inconsistent
with the tree held: split views, kept as evidence).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mirrors",
        sa.Column("origin_hash", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("added", sa.String(length=27), nullable=False),
        sa.Column("copied", sa.String(length=27), nullable=False),
        sa.Column("checked", sa.String(length=27), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("origin_hash"),
    )
    op.create_table(
        "mirror_tiles",
        sa.Column("origin_hash", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("origin_hash", "path"),
    )
    op.create_table(
        "mirror_incidents",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("origin_hash", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("held_note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_mirror_incidents_origin_hash", "mirror_incidents", ["origin_hash"])


def downgrade() -> None:
    op.drop_index("ix_mirror_incidents_origin_hash", "mirror_incidents")
    for table in ("mirror_incidents", "mirror_tiles", "mirrors"):
        op.drop_table(table)
