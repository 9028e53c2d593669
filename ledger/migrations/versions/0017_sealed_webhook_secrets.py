"""webhook secrets are sealed: no webhook signing secret in the clear in the database.

``webhook_secrets`` holds each endpoint's ``whsec_`` secret sealed by the vault (AES-GCM under
a data key of its own, wrapped by the vault key of ``LUNARIA_DATA_KEY_FILE``, the endpoint id
bound as associated data; see ledger.fund.webhooks). ``webhook_endpoints`` loses its plaintext
``secret`` column. Migrations have no key: the secrets of endpoints made before this revision
move to ``webhook_secrets_legacy``, which ``lunaria init`` seals into ``webhook_secrets`` and
then drops (an empty one is dropped here). Until then the worker refuses to deliver to those
endpoints, and says so.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint"),
    )
    op.create_table(
        "webhook_secrets_legacy",
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("endpoint"),
    )
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO webhook_secrets_legacy (endpoint, secret)"
            " SELECT id, secret FROM webhook_endpoints"
        )
    )
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("secret")
    if bind.execute(sa.text("SELECT count(*) FROM webhook_secrets_legacy")).scalar() == 0:
        op.drop_table("webhook_secrets_legacy")


def downgrade() -> None:
    # Unsealing needs the vault key, which migrations do not have: only a database with no
    # webhook endpoint goes back (a test of an older migration, or a fund that never used them).
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM webhook_endpoints")).scalar():
        raise RuntimeError("0017 cannot be undone: sealed webhook secrets stay sealed")
    if sa.inspect(bind).has_table("webhook_secrets_legacy"):
        op.drop_table("webhook_secrets_legacy")
    op.drop_table("webhook_secrets")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("secret", sa.String(length=64), nullable=False))
