"""workspace: members' invitations, passkeys, sessions, recovery codes and WebAuthn ceremonies
(ledger.fund.sign_in), and grant requests from outside waiting in a custodian's intake list
(ledger.fund.intake).

None of it is in the log or derived from it, and none of it is public: secrets are stored as
SHA-256 hashes, a request's contact is sealed in ``private_records``. The server's database
role may update and delete these rows (sessions end, invitations get used, access is revoked).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=27), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "member_invitations",
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _ts("created_ts"),
        _ts("expires_ts"),
        _ts("used_ts", nullable=True),
        sa.PrimaryKeyConstraint("secret_hash"),
    )
    op.create_table(
        "member_credentials",
        sa.Column("credential_id", sa.LargeBinary(), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        _ts("created_ts"),
        _ts("used_ts", nullable=True),
        sa.PrimaryKeyConstraint("credential_id"),
    )
    op.create_index("ix_member_credentials_member", "member_credentials", ["member"])
    op.create_table(
        "member_sessions",
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("collective", sa.String(length=64), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        _ts("created_ts"),
        _ts("seen_ts"),
        sa.PrimaryKeyConstraint("secret_hash"),
    )
    op.create_index("ix_member_sessions_member", "member_sessions", ["member"])
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        _ts("created_ts"),
        _ts("used_ts", nullable=True),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index("ix_recovery_codes_member", "recovery_codes", ["member"])
    op.create_table(
        "webauthn_ceremonies",
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=True),
        sa.Column("invitation_hash", sa.LargeBinary(length=32), nullable=True),
        _ts("expires_ts"),
        sa.PrimaryKeyConstraint("secret_hash"),
    )
    op.create_table(
        "grant_requests",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("urgency_reason", sa.Text(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("contact_commitment", sa.String(length=64), nullable=False),
        sa.Column("status_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("grant_id", sa.BigInteger(), nullable=True),
        _ts("created_ts"),
        _ts("decided_ts", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("status_hash"),
    )
    op.create_index("ix_grant_requests_pool", "grant_requests", ["pool"])


def downgrade() -> None:
    op.drop_index("ix_grant_requests_pool", table_name="grant_requests")
    op.drop_table("grant_requests")
    op.drop_table("webauthn_ceremonies")
    op.drop_index("ix_recovery_codes_member", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_member_sessions_member", table_name="member_sessions")
    op.drop_table("member_sessions")
    op.drop_index("ix_member_credentials_member", table_name="member_credentials")
    op.drop_table("member_credentials")
    op.drop_table("member_invitations")
