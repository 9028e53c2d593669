"""SQLite: the log's integer keys become the rowid, so each row lives in one B-tree.

In SQLite only a column declared ``INTEGER PRIMARY KEY`` is the rowid; the ``BIGINT`` keys of
0001 made ``entries``, ``nodes`` and ``checkpoints`` each a rowid table plus a separate
primary-key index, so every append wrote two more pages than it needs to (and reads went
through the index first). The tables are rebuilt with the same rows in key order, and their
append-only triggers recreated. SQLite integers are 64-bit either way; PostgreSQL is unchanged.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = {
    "entries": (
        "seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, kind VARCHAR(40) NOT NULL, "
        "ts VARCHAR(27) NOT NULL, body BLOB NOT NULL",
        "seq, hash, kind, ts, body",
        "seq",
    ),
    "nodes": ("key INTEGER PRIMARY KEY, hash BLOB NOT NULL", "key, hash", "key"),
    "checkpoints": (
        "size INTEGER PRIMARY KEY, root BLOB NOT NULL, ts VARCHAR(27) NOT NULL, note TEXT NOT NULL",
        "size, root, ts, note",
        "size",
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, (columns, names, key) in TABLES.items():
        # DROP TABLE fires no DELETE triggers and takes the table's own triggers with it.
        op.execute(f"CREATE TABLE {table}_rowid ({columns})")
        op.execute(
            f"INSERT INTO {table}_rowid ({names}) SELECT {names} FROM {table} ORDER BY {key}"
        )
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {table}_rowid RENAME TO {table}")
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'lunaria: {operation} on {table} refused: "
                "the log is append-only'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the log core cannot be downgraded: the ledger is append-only")
