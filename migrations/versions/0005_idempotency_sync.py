"""Idempotency keys; the change log for incremental sync; a per-user change stamp.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

sync_changes holds one row per task (and later list, label: ``kind``) with the id of the
transaction that last wrote it; triggers write it in the writer's own transaction, whoever
writes (the API, bulk loads, cascades), and mark deletions as tombstones.
The same triggers bump task_counts.stamp, which the list ETags are made of.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SYNC_TRIGGERS = """
CREATE FUNCTION sync_tasks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  xact bigint := pg_current_xact_id()::text::bigint;
BEGIN
  -- One statement's rows at once. The join with users skips the tasks of a user being
  -- deleted (ON DELETE CASCADE): their log rows go with the user.
  IF TG_OP = 'DELETE' THEN
    INSERT INTO sync_changes AS c (user_id, kind, entity_id, seq, deleted)
      SELECT o.user_id, 'task', o.id, xact, true FROM old_rows AS o JOIN users AS u ON u.id = o.user_id
      ON CONFLICT (user_id, kind, entity_id) DO UPDATE
        SET seq = EXCLUDED.seq, deleted = true, changed_at = now();
    INSERT INTO task_counts AS c (user_id, stamp)
      SELECT DISTINCT o.user_id, 1 FROM old_rows AS o JOIN users AS u ON u.id = o.user_id
      ON CONFLICT (user_id) DO UPDATE SET stamp = c.stamp + 1;
  ELSE
    INSERT INTO sync_changes AS c (user_id, kind, entity_id, seq, deleted)
      SELECT n.user_id, 'task', n.id, xact, false FROM new_rows AS n
      ON CONFLICT (user_id, kind, entity_id) DO UPDATE
        SET seq = EXCLUDED.seq, deleted = false, changed_at = now();
    INSERT INTO task_counts AS c (user_id, stamp)
      SELECT DISTINCT n.user_id, 1 FROM new_rows AS n
      ON CONFLICT (user_id) DO UPDATE SET stamp = c.stamp + 1;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER tasks_sync_insert AFTER INSERT ON tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_tasks_changed();
CREATE TRIGGER tasks_sync_delete AFTER DELETE ON tasks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_tasks_changed();
CREATE TRIGGER tasks_sync_update AFTER UPDATE ON tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_tasks_changed();
"""


def upgrade():
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_keys_user_id")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "sync_changes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sync_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", "entity_id", name=op.f("pk_sync_changes")),
    )
    op.create_index(
        "ix_sync_changes_user_id_kind_seq", "sync_changes", ["user_id", "kind", "seq", "entity_id"]
    )
    op.create_index("ix_sync_changes_changed_at", "sync_changes", ["changed_at"])
    # Constant default: no table rewrite on PostgreSQL.
    op.add_column(
        "task_counts", sa.Column("stamp", sa.BigInteger(), server_default="0", nullable=False)
    )
    # Tasks that exist already are in the log from the start: a first sync after the
    # upgrade needs no special case.
    op.execute(
        "INSERT INTO sync_changes (user_id, kind, entity_id, seq) "
        "SELECT user_id, 'task', id, pg_current_xact_id()::text::bigint FROM tasks"
    )
    op.execute(SYNC_TRIGGERS)


def downgrade():
    for operation in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER tasks_sync_{operation} ON tasks")
    op.execute("DROP FUNCTION sync_tasks_changed()")
    op.drop_column("task_counts", "stamp")
    op.drop_index("ix_sync_changes_changed_at", table_name="sync_changes")
    op.drop_index("ix_sync_changes_user_id_kind_seq", table_name="sync_changes")
    op.drop_table("sync_changes")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
