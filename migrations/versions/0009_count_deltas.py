"""Kept counts as delta rows that writers append and readers sum, folded in later; one
trigger per statement on tasks instead of five.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

Every task write used to update the user's task_counts row (and its list's row, its priority
and due day rows) in the writer's transaction: one user's writers waited on one another's
row locks until each committed. Now a task statement appends what it changes to
task_count_deltas (one row per user, list, priority and due day it touches: usually one) and
a link statement appends to label_count_deltas; INSERTs take no lock another writer waits
for. A count is its base row plus the sum of its delta rows, and task_counts.stamp (the list
ETags) is its base plus the number of the user's delta rows, so it grows with every write.
task_counts_fold(user) moves a user's delta rows into the base rows (DELETE ... RETURNING,
under a transaction-scoped advisory lock that only folders try, never wait for): readers sum
a bounded number of rows. A delta row of a list deleted since is dropped by the fold.

The old count and sync triggers (0003, 0005, 0006, 0007: five statement triggers on a task
INSERT) give way to one, tasks_changed(), which writes sync_changes and the deltas from one
pass over the transition tables. Their functions stay, so the downgrade attaches them again.

Safe on a live tasks table of millions of rows: nothing is backfilled (the base rows are
exact when the triggers are swapped, and the delta tables start empty). The swap holds tasks
and task_labels in SHARE ROW EXCLUSIVE mode (reads go on; writes wait for the swap, which
lasts milliseconds) so that no write is counted by both trigger sets or by neither.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DUE_ON = "(({row}.due_at AT TIME ZONE 'UTC')::date)"
# One row per (user, list, priority, due day) a statement touches, with what it adds; rows of
# an update that nets to nothing (a new title) are written too: each is a write for the stamp.
DELTAS = (
    "INSERT INTO task_count_deltas (user_id, list_id, priority, due_on, total, completed) "
    "SELECT user_id, list_id, priority, due_on, sum(n), sum(done) FROM ({rows}) AS rows "
    "GROUP BY user_id, list_id, priority, due_on;"
)
ROWS = (
    "SELECT {alias}.user_id, {alias}.list_id, {alias}.priority, "
    + DUE_ON.format(row="{alias}")
    + " AS due_on, {sign} AS n, {sign} * {alias}.completed::int AS done FROM {table} AS {alias}"
)
NEW = ROWS.format(alias="n", sign="1", table="new_rows")
# A task deleted by its user's deletion (a cascade) leaves no delta: its user has gone.
OLD = ROWS.format(alias="o", sign="-1", table="old_rows") + " JOIN users AS u ON u.id = o.user_id"
SYNC = (
    "INSERT INTO sync_changes AS c (user_id, kind, entity_id, seq, deleted) "
    "SELECT {alias}.user_id, 'task', {alias}.id, xact, {deleted} FROM {rows} "
    "ON CONFLICT (user_id, kind, entity_id) DO UPDATE "
    "SET seq = EXCLUDED.seq, deleted = {deleted}, changed_at = now();"
)
TASKS_CHANGED = [
    "CREATE FUNCTION tasks_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE xact bigint := pg_current_xact_id()::text::bigint; BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    + SYNC.format(alias="n", rows="new_rows AS n", deleted="false")
    + DELTAS.format(rows=NEW)
    + " ELSIF TG_OP = 'DELETE' THEN "
    + SYNC.format(alias="o", rows="old_rows AS o JOIN users AS u ON u.id = o.user_id", deleted="true")
    + DELTAS.format(rows=OLD)
    + " ELSE "
    + SYNC.format(alias="n", rows="new_rows AS n", deleted="false")
    + DELTAS.format(rows=f"{NEW} UNION ALL {OLD}")
    + " END IF; RETURN NULL; END $$",
    *(
        f"CREATE TRIGGER tasks_changed_{operation.lower()} AFTER {operation} ON tasks "
        f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION tasks_changed()"
        for operation, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        )
    ),
]
# A link removed by its label's deletion (a cascade) leaves no delta: its label has gone.
LABEL_DELTAS = [
    "CREATE FUNCTION label_count_deltas_append() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    "INSERT INTO label_count_deltas (label_id, tasks) "
    "SELECT label_id, count(*) FROM new_rows GROUP BY label_id; "
    "ELSE "
    "INSERT INTO label_count_deltas (label_id, tasks) "
    "SELECT o.label_id, -count(*) FROM old_rows AS o JOIN labels AS l ON l.id = o.label_id "
    "GROUP BY o.label_id; "
    "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER task_labels_delta_insert AFTER INSERT ON task_labels REFERENCING NEW "
    "TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION label_count_deltas_append()",
    "CREATE TRIGGER task_labels_delta_delete AFTER DELETE ON task_labels REFERENCING OLD "
    "TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION label_count_deltas_append()",
]
# The fold key's class (the first of the two int4 keys of pg_try_advisory_xact_lock): the
# list order's advisory locks take (user id, list id) and user ids are positive, so a
# negative class is nobody else's.
FOLD_LOCK_CLASS = -8
KEPT_BY_KEY = {  # table: (its key, the delta rows' expression of it)
    "task_priority_counts": ("priority", "priority"),
    "task_due_counts": ("due_on", "due_on"),
}
UPSERT_BY_KEY = " ".join(
    f", {table}_folded AS (INSERT INTO {table} AS c (user_id, {key}, total, completed) "
    f"SELECT p_user, {expression}, sum(total), sum(completed) FROM moved "
    f"WHERE {expression} IS NOT NULL GROUP BY {expression} "
    "HAVING sum(total) <> 0 OR sum(completed) <> 0 "
    f"ON CONFLICT (user_id, {key}) DO UPDATE SET total = c.total + EXCLUDED.total, "
    "completed = c.completed + EXCLUDED.completed)"
    for table, (key, expression) in KEPT_BY_KEY.items()
)
FOLD = (
    "CREATE FUNCTION task_counts_fold(p_user integer) RETURNS integer LANGUAGE plpgsql AS $$ "
    "DECLARE folded integer; days date[]; priorities smallint[]; BEGIN "
    # Another transaction folds this user's rows: they are its, and nobody waits.
    f"IF NOT pg_try_advisory_xact_lock({FOLD_LOCK_CLASS}, p_user) THEN RETURN 0; END IF; "
    # The user stays until the commit (an account deletion waits), or has gone: nothing to do.
    "PERFORM 1 FROM users WHERE id = p_user FOR KEY SHARE; "
    "IF NOT FOUND THEN RETURN 0; END IF; "
    "WITH moved AS (DELETE FROM task_count_deltas WHERE user_id = p_user RETURNING *), "
    "user_folded AS (INSERT INTO task_counts AS c (user_id, total, completed, stamp) "
    "SELECT p_user, sum(total), sum(completed), count(*) FROM moved HAVING count(*) > 0 "
    "ON CONFLICT (user_id) DO UPDATE SET total = c.total + EXCLUDED.total, "
    "completed = c.completed + EXCLUDED.completed, stamp = c.stamp + EXCLUDED.stamp), "
    "lists_folded AS (UPDATE lists AS l SET total = l.total + d.n, completed = l.completed + d.done "
    "FROM (SELECT list_id, sum(total) AS n, sum(completed) AS done FROM moved "
    "WHERE list_id IS NOT NULL GROUP BY list_id) AS d "
    "WHERE l.id = d.list_id AND (d.n <> 0 OR d.done <> 0))"
    + UPSERT_BY_KEY
    + " SELECT count(*), array_agg(DISTINCT due_on) FILTER (WHERE due_on IS NOT NULL), "
    "array_agg(DISTINCT priority) INTO folded, days, priorities FROM moved; "
    # A count fallen to 0 is deleted (as 0007's triggers did), in the next statement: the
    # one above cannot see its own upserts.
    "DELETE FROM task_priority_counts WHERE user_id = p_user AND priority = ANY(priorities) "
    "AND total = 0; "
    "DELETE FROM task_due_counts WHERE user_id = p_user AND due_on = ANY(days) AND total = 0; "
    "WITH moved AS (DELETE FROM label_count_deltas AS d USING labels AS l "
    "WHERE l.id = d.label_id AND l.user_id = p_user RETURNING d.label_id, d.tasks) "
    "INSERT INTO label_counts AS c (label_id, tasks) "
    "SELECT label_id, sum(tasks) FROM moved GROUP BY label_id "
    "ON CONFLICT (label_id) DO UPDATE SET tasks = c.tasks + EXCLUDED.tasks; "
    "RETURN folded; END $$"
)
# (trigger, table, its function, its transition tables) of 0003, 0005, 0006 and 0007 that
# tasks_changed() and label_count_deltas_append() replace.
OLD_TRIGGERS = [
    *(
        (f"{prefix}_{operation.lower()}", "tasks", function, tables)
        for prefix, function in (
            ("tasks_count", "task_counts_apply"),
            ("tasks_list_count", "list_counts_apply"),
            ("tasks_priority_count", "task_priority_counts_apply"),
            ("tasks_due_count", "task_due_counts_apply"),
        )
        for operation, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        )
    ),
    ("tasks_sync_insert", "tasks", "sync_tasks_changed", "NEW TABLE AS new_rows"),
    ("tasks_sync_delete", "tasks", "sync_tasks_changed", "OLD TABLE AS old_rows"),
    ("tasks_sync_update", "tasks", "sync_tasks_changed", "NEW TABLE AS new_rows"),
    ("task_labels_count_insert", "task_labels", "label_counts_apply", "NEW TABLE AS new_rows"),
    ("task_labels_count_delete", "task_labels", "label_counts_apply", "OLD TABLE AS old_rows"),
]
NEW_TRIGGERS = [
    ("tasks_changed_insert", "tasks"),
    ("tasks_changed_delete", "tasks"),
    ("tasks_changed_update", "tasks"),
    ("task_labels_delta_insert", "task_labels"),
    ("task_labels_delta_delete", "task_labels"),
]


def upgrade():
    # Writers wait from here to the commit (milliseconds); readers do not.
    op.execute("LOCK TABLE tasks, task_labels IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "task_count_deltas",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_task_count_deltas_user_id_users"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_task_count_deltas_user_id", "task_count_deltas", ["user_id"])
    op.create_table(
        "label_count_deltas",
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["labels.id"],
            name=op.f("fk_label_count_deltas_label_id_labels"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_label_count_deltas_label_id", "label_count_deltas", ["label_id"])
    for trigger, table, _function, _tables in OLD_TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for statement in [*TASKS_CHANGED, *LABEL_DELTAS, FOLD]:
        op.execute(statement)


def downgrade():
    op.execute("LOCK TABLE tasks, task_labels IN SHARE ROW EXCLUSIVE MODE")
    # Every delta into its base rows, so the old triggers go on from exact counts.
    op.execute(
        "SELECT task_counts_fold(user_id) FROM (SELECT DISTINCT user_id FROM task_count_deltas "
        "UNION SELECT l.user_id FROM label_count_deltas AS d JOIN labels AS l "
        "ON l.id = d.label_id) AS users"
    )
    for trigger, table in NEW_TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for trigger, table, function, tables in OLD_TRIGGERS:
        operation = trigger.rsplit("_", 1)[1].upper()
        op.execute(
            f"CREATE TRIGGER {trigger} AFTER {operation} ON {table} REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    op.execute("DROP FUNCTION task_counts_fold(integer)")
    op.execute("DROP FUNCTION label_count_deltas_append()")
    op.execute("DROP FUNCTION tasks_changed()")
    op.drop_table("label_count_deltas")
    op.drop_table("task_count_deltas")
