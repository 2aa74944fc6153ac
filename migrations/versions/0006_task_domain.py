"""Task lists, labels, due dates, priorities, completion times, subtasks, manual order,
recurrence.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Safe on a live tasks table of millions of rows: the new task columns are nullable or have a
constant default (no table rewrite on PostgreSQL 11+, so their ACCESS EXCLUSIVE lock lasts
milliseconds); the list foreign key is added NOT VALID (instant) and validated afterwards
under a lock that lets reads and writes go on; the indexes are built CONCURRENTLY, outside
the migration's transaction, and the foreign keys validated there too. Only positions are
backfilled, in batches each committed alone:
every existing task is in the inbox (list_id NULL), top-level, has no due date, priority
"none", and completed_at NULL (tasks completed before this migration have no completion time).
A trigger gives a position to a task inserted without one: the previous release, still serving
during a rolling deploy, inserts such tasks during and after the backfill.
"""

import contextlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
TASK_INDEXES = {
    "ix_tasks_user_list_created": ["user_id", "list_id", "created_at", "id"],
    "ix_tasks_user_due": ["user_id", "due_at", "id"],
    "ix_tasks_user_completed_due": ["user_id", "completed", "due_at", "id"],
    "ix_tasks_user_priority": ["user_id", "priority", "id"],
    "ix_tasks_parent_id": ["parent_id"],
    "ix_tasks_user_list_position": ["user_id", "list_id", "position", "id"],
}
# The inbox's order (list_id IS NULL is no constant to the planner: see the model).
INBOX_INDEXES = {
    f"ix_tasks_user_inbox_{column}": ["user_id", column, "id"]
    for column in ("created_at", "position")
}
INBOX = sa.text("list_id IS NULL")
# The due_at sort, descending.
DUE_DESC = (
    "ix_tasks_user_due_desc",
    ["user_id", sa.text("due_at DESC NULLS LAST"), sa.text("id DESC")],
)
# Existing tasks get positions in the order of their ids: "j" and the id in ten decimal digits
# is a fractional-indexing key (head "j": an integer part of 10 base-62 digits) that sorts as
# the id does. Written in batches of ids, each committed alone, so no lock is held for long.
# A batch's rows stay locked until it commits: a write of one of them waits that long.
BACKFILL_BATCH = 5_000
POSITION_FROM_ID = "'j' || lpad(id::text, 10, '0')"
# Created before the backfill, so no task inserted after the backfill's last id is left out.
DEFAULT_POSITION = [
    "CREATE FUNCTION tasks_default_position() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN NEW.position := {POSITION_FROM_ID.replace('id', 'NEW.id')}; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER tasks_default_position BEFORE INSERT ON tasks FOR EACH ROW "
    "WHEN (NEW.position IS NULL) EXECUTE FUNCTION tasks_default_position()",
]
# Each list's task counts, kept as task_counts keeps the user's (0003): by triggers, in the
# writer's transaction, per statement. Named to fire after the tasks_count_ triggers
# (alphabetical order), so a writer locks task_counts before lists, as the services do. No
# backfill: every task is in the inbox when the lists table is made.
LIST_COUNTS_DELTAS = {
    "INSERT": "SELECT list_id, 1 AS n, completed::int AS done FROM new_rows",
    "DELETE": "SELECT list_id, -1 AS n, -(completed::int) AS done FROM old_rows",
}
LIST_COUNTS_DELTAS["UPDATE"] = (
    f"{LIST_COUNTS_DELTAS['INSERT']} UNION ALL {LIST_COUNTS_DELTAS['DELETE']}"
)
LIST_COUNTS = [
    "CREATE FUNCTION list_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + " ".join(
        f"{'IF' if n == 0 else 'ELSIF'} TG_OP = '{operation}' THEN "
        "UPDATE lists AS l SET total = l.total + d.n, completed = l.completed + d.done "
        "FROM (SELECT list_id, sum(n) AS n, sum(done) AS done "
        f"FROM ({deltas}) AS rows WHERE list_id IS NOT NULL GROUP BY list_id) AS d "
        "WHERE l.id = d.list_id AND (d.n <> 0 OR d.done <> 0);"
        for n, (operation, deltas) in enumerate(LIST_COUNTS_DELTAS.items())
    )
    + " END IF; RETURN NULL; END $$",
    "CREATE TRIGGER tasks_list_count_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION list_counts_apply()",
    "CREATE TRIGGER tasks_list_count_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION list_counts_apply()",
    "CREATE TRIGGER tasks_list_count_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS "
    "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION list_counts_apply()",
]
# Each task's label names on its own row (tasks.label_names, LABEL_SEPARATOR between them),
# kept by triggers on task_labels and labels whoever writes them (a label's rename and
# deletion, a cascade, a bulk load included): a page reads one column instead of running a
# subquery per task. A label's rename or deletion changes how its tasks read, so there the
# same write gives each task a new version (its ETag) and updated_at, as a task write does:
# one write per task, which is what such a request costs (docs/performance.md). A write that
# would change nothing is skipped. No backfill: there are no labels before this revision.
SEPARATOR = "chr(31)"
LABEL_NAMES_OF_TASK = (
    f"SELECT string_agg(l.name, {SEPARATOR} ORDER BY l.key) "
    "FROM task_labels AS tl JOIN labels AS l ON l.id = tl.label_id WHERE tl.task_id = t.id"
)
_TOUCHED = "version = t.version + 1, updated_at = now()"
LABEL_NAMES = [
    "CREATE FUNCTION task_label_names_apply() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_TABLE_NAME = 'labels' THEN "
    f"UPDATE tasks AS t SET label_names = ({{names}}), {_TOUCHED} WHERE t.id IN "
    "(SELECT tl.task_id FROM task_labels AS tl JOIN new_rows AS n ON n.id = tl.label_id) "
    "AND t.label_names IS DISTINCT FROM ({names}); "
    "ELSIF TG_OP = 'INSERT' THEN "
    "UPDATE tasks AS t SET label_names = ({names}) WHERE t.id IN (SELECT task_id FROM new_rows) "
    "AND t.label_names IS DISTINCT FROM ({names}); "
    "ELSE "
    # The links of a deleted label (its cascade): those tasks are touched.
    f"UPDATE tasks AS t SET label_names = ({{names}}), {_TOUCHED} WHERE t.id IN "
    "(SELECT o.task_id FROM old_rows AS o WHERE NOT EXISTS "
    "(SELECT 1 FROM labels AS l WHERE l.id = o.label_id)); "
    "UPDATE tasks AS t SET label_names = ({names}) WHERE t.id IN (SELECT task_id FROM old_rows) "
    "AND t.label_names IS DISTINCT FROM ({names}); "
    "END IF; RETURN NULL; END $$".replace("{names}", LABEL_NAMES_OF_TASK),
    "CREATE TRIGGER task_labels_names_insert AFTER INSERT ON task_labels REFERENCING NEW TABLE "
    "AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_label_names_apply()",
    "CREATE TRIGGER task_labels_names_delete AFTER DELETE ON task_labels REFERENCING OLD TABLE "
    "AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_label_names_apply()",
    "CREATE TRIGGER labels_names_update AFTER UPDATE ON labels REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_label_names_apply()",
]
LIST_FK = "fk_tasks_list_id_lists"
PARENT_FK = "fk_tasks_parent_id_tasks"
# (column, the foreign key it gets, the table that key refers to)
REFERENCES = [("list_id", LIST_FK, "lists"), ("parent_id", PARENT_FK, "tasks")]


def upgrade():
    op.create_table(
        "lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.String(length=255), nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.func.now(), nullable=False),
        sa.Column("total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_lists_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_lists_user_id")),
    )
    op.create_index("ix_lists_user_position", "lists", ["user_id", "position", "id"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_labels_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_labels_user_id")),
    )
    op.create_table(
        "task_labels",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["labels.id"],
            name=op.f("fk_task_labels_label_id_labels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_labels_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "label_id", name=op.f("pk_task_labels")),
    )
    op.create_index("ix_task_labels_label_task", "task_labels", ["label_id", "task_id"])

    for column, _key, _table in REFERENCES:
        op.add_column("tasks", sa.Column(column, sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("due_at", TIMESTAMP, nullable=True))
    op.add_column(
        "tasks", sa.Column("priority", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.add_column("tasks", sa.Column("completed_at", TIMESTAMP, nullable=True))
    op.add_column("tasks", sa.Column("position", sa.String(length=255), nullable=True))
    op.add_column("tasks", sa.Column("recurrence", sa.String(length=255), nullable=True))
    op.add_column("tasks", sa.Column("label_names", sa.Text(), nullable=True))
    for column, key, table in REFERENCES:
        op.execute(
            f"ALTER TABLE tasks ADD CONSTRAINT {key} FOREIGN KEY ({column}) "
            f"REFERENCES {table} (id) ON DELETE CASCADE NOT VALID"
        )
    with _outside_transactions():
        # Each in a transaction of its own, once the ACCESS EXCLUSIVE lock of the column
        # changes is released (the block commits them): a scan under SHARE UPDATE EXCLUSIVE,
        # which reads and writes go past.
        for _column, key, _table in REFERENCES:
            op.execute(f"ALTER TABLE tasks VALIDATE CONSTRAINT {key}")
        for name, columns in [*TASK_INDEXES.items(), DUE_DESC]:
            op.create_index(
                name, "tasks", columns, postgresql_concurrently=True, if_not_exists=True
            )
        for name, columns in INBOX_INDEXES.items():
            op.create_index(
                name,
                "tasks",
                columns,
                postgresql_where=INBOX,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    for statement in [*DEFAULT_POSITION, *LIST_COUNTS, *LABEL_NAMES]:
        op.execute(statement)
    backfill_positions()


def backfill_positions():
    """Every existing task's position, from its id, a batch of ids per transaction.

    The trigger of DEFAULT_POSITION exists already (creating it waited for every transaction
    that had inserted into tasks), so max(id) bounds what is left."""
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT max(id) FROM tasks")).scalar() or 0
    statement = sa.text(
        f"UPDATE tasks SET position = {POSITION_FROM_ID} "
        "WHERE id > :low AND id <= :high AND position IS NULL"
    )
    with _outside_transactions():
        for low in range(0, last, BACKFILL_BATCH):
            bind.execute(statement, {"low": low, "high": low + BACKFILL_BATCH})


# The app's execution option (TRANSACTION_SETTINGS_OPTION of taskapp/database.py) that, False
# on a connection, sends its statements without the app's SET LOCAL timeouts. Copied here, not
# imported: a revision is frozen history, and a later refactor of the app must not change what
# it does. The name must still match the app's, which runs this revision: if it did not, the
# timeouts would go ahead of CREATE INDEX CONCURRENTLY in one message, and PostgreSQL would
# refuse it (an upgrade fails loudly; tests/test_migrations.py checks the two names agree).
TRANSACTION_SETTINGS_OPTION = "taskapp_transaction_settings"


@contextlib.contextmanager
def _outside_transactions():
    """Autocommit, each statement sent alone: without the app's per-transaction SET LOCAL
    timeouts (taskapp.database), which would put CREATE INDEX CONCURRENTLY in a transaction
    block and cut a long index build or batch short."""
    bind = op.get_bind()
    with op.get_context().autocommit_block():
        bind.execution_options(**{TRANSACTION_SETTINGS_OPTION: False})
        try:
            yield
        finally:
            bind.execution_options(**{TRANSACTION_SETTINGS_OPTION: True})


def downgrade():
    for trigger in ["tasks_default_position"] + [
        f"tasks_list_count_{operation}" for operation in ("insert", "delete", "update")
    ]:
        op.execute(f"DROP TRIGGER {trigger} ON tasks")
    for trigger, table in [
        ("task_labels_names_insert", "task_labels"),
        ("task_labels_names_delete", "task_labels"),
        ("labels_names_update", "labels"),
    ]:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute("DROP FUNCTION tasks_default_position()")
    op.execute("DROP FUNCTION list_counts_apply()")
    op.execute("DROP FUNCTION task_label_names_apply()")
    for name in [*TASK_INDEXES, *INBOX_INDEXES, DUE_DESC[0]]:
        op.drop_index(name, table_name="tasks")
    for _column, key, _table in REFERENCES:
        op.drop_constraint(key, "tasks", type_="foreignkey")
    for column in (
        "label_names",
        "recurrence",
        "position",
        "completed_at",
        "priority",
        "due_at",
        "list_id",
        "parent_id",
    ):
        op.drop_column("tasks", column)
    op.drop_table("task_labels")
    op.drop_table("labels")
    op.drop_table("lists")
