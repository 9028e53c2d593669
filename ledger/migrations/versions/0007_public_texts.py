"""public_texts: public text behind the commitments of entry data version 2, redactable.

Entry data version 2 holds a donor's display name, a grant's purpose, a vote's note and the
reason of a cancellation or correction as a salted commitment (ledger.fund.public_text); the
text and its salt are kept here, served beside the entry, and set to NULL when redacted. The
grants and votes projections gain the commitment of their version-2 purpose and note (NULL
for the version-1 rows already written, whose text stays in ``purpose`` and ``note``).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "public_texts",
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("field", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("salt", sa.String(length=64), nullable=True),
        sa.Column("redacted_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("commitment"),
    )
    op.create_index(op.f("ix_public_texts_seq"), "public_texts", ["seq"], unique=False)
    op.add_column("grants", sa.Column("purpose_commitment", sa.String(length=64), nullable=True))
    op.add_column("votes", sa.Column("note_commitment", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Version-2 entries need the commitments and the texts: dropping them loses both.
    raise RuntimeError("0007 cannot be undone: entries of data version 2 need public_texts")
