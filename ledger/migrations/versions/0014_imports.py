"""imports: the bank statements imported into each pool (ledger.fund.bank_import) and each
pool's saved CSV column mapping; the pools' receiving addresses on EVM chains, how far each
chain was read, the hashes of the last blocks read, and transfers held for review
(ledger.fund.chain); each pool's reconciliations (ledger.fund.reconcile).

Neither is in the log nor derived from it. A statement row keeps what reconciliation needs
(the statement's id, currency and closing balance) and what the import did (lines read, donations
recorded, the first one's seq); no account number, IBAN or name is stored here: the donors'
IBANs go sealed into ``private_records`` with their donations.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bank_statements",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("statement", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("closing", sa.String(length=40), nullable=True),  # signed minor units
        sa.Column("closing_date", sa.String(length=10), nullable=True),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("recorded", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=True),
        sa.Column("imported_ts", sa.String(length=27), nullable=False),
        # JSON: the lines the import did not record (unmatched debits, pending lines), no IBAN
        sa.Column("exceptions", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bank_statements_pool", "bank_statements", ["pool"])
    op.create_table(
        "bank_csv_mappings",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("mapping", sa.Text(), nullable=False),  # JSON (ledger.fund.statements)
        sa.Column("updated_ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("pool"),
    )
    op.create_table(
        "chain_receivers",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("from_block", sa.BigInteger(), nullable=False),
        sa.Column("created_ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("pool", "currency", "chain_id"),
    )
    op.create_table(
        "chain_cursors",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("last_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id"),
    )
    op.create_table(
        "chain_blocks",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number"),
    )
    op.create_table(
        "chain_held",
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=80), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("found_ts", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.Column("balanced", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),  # JSON (ledger.fund.reconcile)
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconciliations_pool", "reconciliations", ["pool"])


def downgrade() -> None:
    op.drop_index("ix_reconciliations_pool", table_name="reconciliations")
    op.drop_table("reconciliations")
    for table in ("chain_held", "chain_blocks", "chain_cursors", "chain_receivers"):
        op.drop_table(table)
    op.drop_table("bank_csv_mappings")
    op.drop_index("ix_bank_statements_pool", table_name="bank_statements")
    op.drop_table("bank_statements")
