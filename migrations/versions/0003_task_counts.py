"""Per-user task counts kept by triggers; indexes for the completed filter and per-user search.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Counting a heavy user's tasks on every list request costs as much as reading them all; the
counts are kept instead, in the same transaction as every insert, update and delete of a
task, whoever writes it (the API, a bulk COPY, an ON DELETE CASCADE). The triggers are per
statement with transition tables, so a bulk load updates each user's count once, not once per
row.

Per-user trigram indexes join the global ones (btree_gin puts user_id in the same GIN index):
for a user with few tasks a search then reads only that user's postings; for a user with very
many, the global index is cheaper, and the planner picks by the statistics.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SORT_COLUMNS = ("created_at", "updated_at", "title")

COUNT_TRIGGERS = """
CREATE FUNCTION task_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- One statement's rows at once: inserted rows add, deleted rows remove, updates move.
  IF TG_OP = 'INSERT' THEN
    INSERT INTO task_counts AS c (user_id, total, completed)
      SELECT user_id, count(*), count(*) FILTER (WHERE completed) FROM new_rows GROUP BY user_id
      ON CONFLICT (user_id) DO UPDATE
        SET total = c.total + EXCLUDED.total, completed = c.completed + EXCLUDED.completed;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE task_counts AS c SET total = c.total - d.n, completed = c.completed - d.done
      FROM (SELECT user_id, count(*) AS n, count(*) FILTER (WHERE completed) AS done
              FROM old_rows GROUP BY user_id) AS d
      WHERE c.user_id = d.user_id;
  ELSE
    UPDATE task_counts AS c SET total = c.total + d.n, completed = c.completed + d.done
      FROM (SELECT user_id, sum(n) AS n, sum(done) AS done FROM (
              SELECT user_id, 1 AS n, completed::int AS done FROM new_rows
              UNION ALL
              SELECT user_id, -1, -(completed::int) FROM old_rows) AS rows
            GROUP BY user_id) AS d
      WHERE c.user_id = d.user_id AND (d.n <> 0 OR d.done <> 0);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
CREATE TRIGGER tasks_count_update AFTER UPDATE ON tasks
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
"""


def upgrade():
    op.create_table(
        "task_counts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_counts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_task_counts")),
    )
    # The counts of the tasks that exist already, before the triggers take over.
    op.execute(
        "INSERT INTO task_counts (user_id, total, completed) "
        "SELECT user_id, count(*), sum(CASE WHEN completed THEN 1 ELSE 0 END) "
        "FROM tasks GROUP BY user_id"
    )
    op.execute(COUNT_TRIGGERS)
    for column in SORT_COLUMNS:
        op.create_index(
            f"ix_tasks_user_completed_{column}", "tasks", ["user_id", "completed", column, "id"]
        )
    # Trusted extension: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for column in ("title", "description"):
        op.create_index(
            f"ix_tasks_user_{column}_trgm",
            "tasks",
            ["user_id", column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade():
    for column in ("title", "description"):
        op.drop_index(f"ix_tasks_user_{column}_trgm", table_name="tasks")
    for column in SORT_COLUMNS:
        op.drop_index(f"ix_tasks_user_completed_{column}", table_name="tasks")
    for operation in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER tasks_count_{operation} ON tasks")
    op.execute("DROP FUNCTION task_counts_apply()")
    op.drop_table("task_counts")
