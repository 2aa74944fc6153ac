"""Kept task counts per priority, per due day and per label.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The totals of ``GET /tasks?priority=``, of a due-date range, of ``overdue=true`` and of a
single ``label`` counted their matches: 200,000 of a heavy user's tasks cost 17 to 21 ms a
page. They are kept instead, as task_counts keeps the user's (0003) and lists theirs (0006):
by triggers, in the writer's transaction, per statement. A due range sums the days it covers
and counts only the tasks of its first and last day (the app's page queries).

Safe on a live tasks table of millions of rows: the new tables are made, the triggers created
and the counts of the existing rows filled in one transaction, which holds tasks and
task_labels in SHARE ROW EXCLUSIVE mode (reads go on; writes wait for the backfill: up to
1.3 s for 1,000,000 tasks, BENCHMARKS.md), so no write is counted twice or missed.
"""

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


class Kept(NamedTuple):
    """A count of tasks kept per (user_id, ``key``)."""

    table: str
    key: str  # its key column
    type: sa.types.TypeEngine
    # The key of a task row; {row} is the row's alias (a table, a transition table). A NULL
    # key (a task without a due date) is not kept.
    expression: str
    triggers: str  # the prefix of its triggers' names


KEPT = [
    Kept(
        "task_priority_counts",
        "priority",
        sa.SmallInteger(),
        "{row}.priority",
        "tasks_priority_count",
    ),
    Kept(
        "task_due_counts",
        "due_on",
        sa.Date(),
        "({row}.due_at AT TIME ZONE 'UTC')::date",
        "tasks_due_count",
    ),
]


def _triggers(kept: Kept) -> list[str]:
    """The function and triggers that keep ``kept``.

    Inserted rows add, deleted rows remove, updated rows move (an upsert: a task's new key
    may have no row yet); a statement's rows are grouped first, and groups that net to
    nothing (an update of a title) write nothing. Deletions only update (the user may be
    going, by a cascade, and with it the count rows); a count that falls to 0 is deleted, so
    the table holds no more rows than the keys in use.
    """
    table, key, expression = kept.table, kept.key, kept.expression
    new, old = expression.format(row="new_rows"), expression.format(row="old_rows")
    deltas = {
        "new": f"SELECT user_id, {new} AS k, 1 AS n, completed::int AS done FROM new_rows",
        "old": f"SELECT user_id, {old} AS k, -1 AS n, -(completed::int) AS done FROM old_rows",
    }
    grouped = (
        "SELECT user_id, k, sum(n) AS n, sum(done) AS done FROM ({rows}) AS rows "
        "WHERE k IS NOT NULL GROUP BY user_id, k HAVING sum(n) <> 0 OR sum(done) <> 0"
    )
    upsert = (
        f"INSERT INTO {table} AS c (user_id, {key}, total, completed) "
        f"{grouped} ON CONFLICT (user_id, {key}) DO UPDATE "
        "SET total = c.total + EXCLUDED.total, completed = c.completed + EXCLUDED.completed;"
    )
    remove = (
        f"UPDATE {table} AS c SET total = c.total + d.n, completed = c.completed + d.done "
        f"FROM ({grouped}) AS d WHERE c.user_id = d.user_id AND c.{key} = d.k;"
    )
    emptied = (
        f"DELETE FROM {table} AS c USING (SELECT DISTINCT user_id, {old} AS k FROM old_rows) "
        f"AS o WHERE c.user_id = o.user_id AND c.{key} = o.k AND c.total = 0;"
    )
    function = f"{table}_apply"
    body = (
        "IF TG_OP = 'INSERT' THEN "
        + upsert.format(rows=deltas["new"])
        + " ELSIF TG_OP = 'DELETE' THEN "
        + remove.format(rows=deltas["old"])
        + f" {emptied}"
        + " ELSE "
        + upsert.format(rows=f"{deltas['new']} UNION ALL {deltas['old']}")
        + f" {emptied} END IF;"
    )
    name = kept.triggers
    return [
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
        "RETURN NULL; END $$",
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS "
        f"new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS "
        f"old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS "
        f"old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


# How many tasks carry each label, kept by triggers on task_labels. Its own table, not a
# column of labels: a write to labels fires the label names trigger of 0006.
LABEL_COUNTS = [
    "CREATE FUNCTION label_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    "INSERT INTO label_counts AS c (label_id, tasks) "
    "SELECT label_id, count(*) FROM new_rows GROUP BY label_id "
    "ON CONFLICT (label_id) DO UPDATE SET tasks = c.tasks + EXCLUDED.tasks; "
    "ELSE "
    "UPDATE label_counts AS c SET tasks = c.tasks - d.n "
    "FROM (SELECT label_id, count(*) AS n FROM old_rows GROUP BY label_id) AS d "
    "WHERE c.label_id = d.label_id; "
    "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER task_labels_count_insert AFTER INSERT ON task_labels REFERENCING NEW "
    "TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION label_counts_apply()",
    "CREATE TRIGGER task_labels_count_delete AFTER DELETE ON task_labels REFERENCING OLD "
    "TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION label_counts_apply()",
]
TRIGGERS = [
    *(
        (f"{kept.triggers}_{operation}", "tasks")
        for kept in KEPT
        for operation in ("insert", "delete", "update")
    ),
    ("task_labels_count_insert", "task_labels"),
    ("task_labels_count_delete", "task_labels"),
]


def upgrade():
    # Writers wait from here to the commit (the backfill); readers do not.
    op.execute("LOCK TABLE tasks, task_labels IN SHARE ROW EXCLUSIVE MODE")
    for kept in KEPT:
        table, key = kept.table, kept.key
        op.create_table(
            table,
            sa.Column("user_id", sa.Integer(), nullable=False),
            sa.Column(key, kept.type, nullable=False),
            sa.Column("total", sa.Integer(), server_default="0", nullable=False),
            sa.Column("completed", sa.Integer(), server_default="0", nullable=False),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["users.id"],
                name=op.f(f"fk_{table}_user_id_users"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("user_id", key, name=op.f(f"pk_{table}")),
        )
        row = kept.expression.format(row="tasks")
        op.execute(
            f"INSERT INTO {table} (user_id, {key}, total, completed) "
            f"SELECT user_id, {row}, count(*), sum(CASE WHEN completed THEN 1 ELSE 0 END) "
            f"FROM tasks WHERE {row} IS NOT NULL GROUP BY user_id, {row}"
        )
        for statement in _triggers(kept):
            op.execute(statement)
    op.create_table(
        "label_counts",
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["labels.id"],
            name=op.f("fk_label_counts_label_id_labels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("label_id", name=op.f("pk_label_counts")),
    )
    op.execute(
        "INSERT INTO label_counts (label_id, tasks) "
        "SELECT label_id, count(*) FROM task_labels GROUP BY label_id"
    )
    for statement in LABEL_COUNTS:
        op.execute(statement)


def downgrade():
    for trigger, table in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for kept in KEPT:
        op.execute(f"DROP FUNCTION {kept.table}_apply()")
    op.execute("DROP FUNCTION label_counts_apply()")
    op.drop_table("label_counts")
    for kept in reversed(KEPT):
        op.drop_table(kept.table)
