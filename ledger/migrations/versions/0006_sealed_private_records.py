"""private_records are sealed: no plaintext of a private field in the database.

Rows hold the record encrypted under a data key of its own, wrapped by the vault key of
``LUNARIA_DATA_KEY_FILE`` (see ledger.fund.vault). Migrations have no key: rows written
before this revision move to ``private_records_legacy``, which ``lunaria init`` seals into
the new table and then drops (an empty one is dropped here).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("private_records", "private_records_legacy")
    if op.get_bind().dialect.name == "postgresql":  # (the key's index keeps its name)
        op.execute("ALTER INDEX private_records_pkey RENAME TO private_records_legacy_pkey")
    op.create_table(
        "private_records",
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("commitment"),
    )
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM private_records_legacy")).scalar() == 0:
        op.drop_table("private_records_legacy")


def downgrade() -> None:
    # Unsealing needs the vault key, which migrations do not have.
    raise RuntimeError("0006 cannot be undone: sealed private records stay sealed")
