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
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from taskapp.database import TRANSACTION_SETTINGS_OPTION

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
    f"ix_tasks_user_inbox_{column}": ["user_id", column, "id"] for column in ("created_at", "position")
}
INBOX = sa.text("list_id IS NULL")
# PostgreSQL only (SQLite has no NULLS LAST in an index): the due_at sort, descending.
DUE_DESC = ("ix_tasks_user_due_desc", ["user_id", sa.text("due_at DESC NULLS LAST"), sa.text("id DESC")])
# Existing tasks get positions in the order of their ids: "j" and the id in ten decimal digits
# is a fractional-indexing key (head "j": an integer part of 10 base-62 digits) that sorts as
# the id does. Written in batches of ids, each committed alone, so no lock is held for long.
# A batch's rows stay locked until it commits: a write of one of them waits that long.
BACKFILL_BATCH = 5_000
POSITION_FROM_ID = {
    "postgresql": "'j' || lpad(id::text, 10, '0')",
    "sqlite": "'j' || substr('0000000000' || id, -10, 10)",
}
# Created before the backfill, so no task inserted after the backfill's last id is left out.
DEFAULT_POSITION = {
    "postgresql": [
        "CREATE FUNCTION tasks_default_position() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN NEW.position := {POSITION_FROM_ID['postgresql'].replace('id', 'NEW.id')}; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER tasks_default_position BEFORE INSERT ON tasks FOR EACH ROW "
        "WHEN (NEW.position IS NULL) EXECUTE FUNCTION tasks_default_position()",
    ],
    # SQLite's triggers cannot change NEW: the row is updated just after.
    "sqlite": [
        "CREATE TRIGGER tasks_default_position AFTER INSERT ON tasks "
        "WHEN NEW.position IS NULL BEGIN "
        f"UPDATE tasks SET position = {POSITION_FROM_ID['sqlite'].replace('id', 'NEW.id')} "
        "WHERE id = NEW.id; END",
    ],
}
# Each list's task counts, kept as task_counts keeps the user's (0003): by triggers, in the
# writer's transaction, per statement on PostgreSQL. Named to fire after the tasks_count_
# triggers (alphabetical order), so a writer locks task_counts before lists, as the services
# do. No backfill: every task is in the inbox when the lists table is made.
LIST_COUNTS_DELTAS = {
    "INSERT": "SELECT list_id, 1 AS n, completed::int AS done FROM new_rows",
    "DELETE": "SELECT list_id, -1 AS n, -(completed::int) AS done FROM old_rows",
}
LIST_COUNTS_DELTAS["UPDATE"] = f"{LIST_COUNTS_DELTAS['INSERT']} UNION ALL {LIST_COUNTS_DELTAS['DELETE']}"
LIST_COUNTS_POSTGRES = [
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
LIST_COUNTS_SQLITE = [
    "CREATE TRIGGER tasks_list_count_insert AFTER INSERT ON tasks WHEN NEW.list_id IS NOT NULL "
    "BEGIN UPDATE lists SET total = total + 1, completed = completed + NEW.completed "
    "WHERE id = NEW.list_id; END",
    "CREATE TRIGGER tasks_list_count_delete AFTER DELETE ON tasks WHEN OLD.list_id IS NOT NULL "
    "BEGIN UPDATE lists SET total = total - 1, completed = completed - OLD.completed "
    "WHERE id = OLD.list_id; END",
    "CREATE TRIGGER tasks_list_count_update AFTER UPDATE OF list_id, completed ON tasks "
    "WHEN OLD.list_id IS NOT NEW.list_id OR OLD.completed <> NEW.completed BEGIN "
    "UPDATE lists SET total = total - 1, completed = completed - OLD.completed "
    "WHERE id = OLD.list_id; "
    "UPDATE lists SET total = total + 1, completed = completed + NEW.completed "
    "WHERE id = NEW.list_id; END",
]
# Each task's label names on its own row (tasks.label_names, LABEL_SEPARATOR between them),
# kept by triggers on task_labels and labels whoever writes them (a label's rename and
# deletion, a cascade, a bulk load included): a page reads one column instead of running a
# subquery per task. A label's rename or deletion changes how its tasks read, so there the
# same write gives each task a new version (its ETag) and updated_at, as a task write does:
# one write per task, which is what such a request costs (docs/performance.md). A write that
# would change nothing is skipped. No backfill: there are no labels before this revision.
SEPARATOR = {"postgresql": "chr(31)", "sqlite": "char(31)"}
LABEL_NAMES_OF_TASK = (
    "SELECT {aggregate} FROM task_labels AS tl JOIN labels AS l ON l.id = tl.label_id "
    "WHERE tl.task_id = {task}"
)
_POSTGRES_NAMES = LABEL_NAMES_OF_TASK.format(
    aggregate=f"string_agg(l.name, {SEPARATOR['postgresql']} ORDER BY l.key)", task="t.id"
)
_TOUCHED = "version = t.version + 1, updated_at = now()"
LABEL_NAMES_POSTGRES = [
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
    "END IF; RETURN NULL; END $$".replace("{names}", _POSTGRES_NAMES),
    "CREATE TRIGGER task_labels_names_insert AFTER INSERT ON task_labels REFERENCING NEW TABLE "
    "AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_label_names_apply()",
    "CREATE TRIGGER task_labels_names_delete AFTER DELETE ON task_labels REFERENCING OLD TABLE "
    "AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_label_names_apply()",
    "CREATE TRIGGER labels_names_update AFTER UPDATE ON labels REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_label_names_apply()",
]
_SQLITE_NAMES = LABEL_NAMES_OF_TASK.format(
    aggregate=f"group_concat(l.name, {SEPARATOR['sqlite']})", task="{task}"
)
_LABEL_GONE = "NOT EXISTS (SELECT 1 FROM labels WHERE id = OLD.label_id)"
LABEL_NAMES_SQLITE = [
    "CREATE TRIGGER task_labels_names_insert AFTER INSERT ON task_labels BEGIN "
    f"UPDATE tasks SET label_names = ({_SQLITE_NAMES.format(task='NEW.task_id')}) "
    f"WHERE id = NEW.task_id AND label_names IS NOT ({_SQLITE_NAMES.format(task='NEW.task_id')}); "
    "END",
    "CREATE TRIGGER task_labels_names_delete AFTER DELETE ON task_labels BEGIN "
    f"UPDATE tasks SET label_names = ({_SQLITE_NAMES.format(task='OLD.task_id')}), "
    "version = version + 1, updated_at = CURRENT_TIMESTAMP "
    f"WHERE id = OLD.task_id AND {_LABEL_GONE}; "
    f"UPDATE tasks SET label_names = ({_SQLITE_NAMES.format(task='OLD.task_id')}) "
    f"WHERE id = OLD.task_id AND label_names IS NOT ({_SQLITE_NAMES.format(task='OLD.task_id')}); "
    "END",
    "CREATE TRIGGER labels_names_update AFTER UPDATE OF name ON labels BEGIN "
    f"UPDATE tasks SET label_names = ({_SQLITE_NAMES.format(task='tasks.id')}), "
    "version = version + 1, updated_at = CURRENT_TIMESTAMP "
    "WHERE id IN (SELECT task_id FROM task_labels WHERE label_id = NEW.id) "
    f"AND label_names IS NOT ({_SQLITE_NAMES.format(task='tasks.id')}); END",
]
LIST_FK = "fk_tasks_list_id_lists"
PARENT_FK = "fk_tasks_parent_id_tasks"
# (column, the foreign key it gets, the table that key refers to)
REFERENCES = [("list_id", LIST_FK, "lists"), ("parent_id", PARENT_FK, "tasks")]


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
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

    for column, _key, table in REFERENCES:
        if postgres:
            op.add_column("tasks", sa.Column(column, sa.Integer(), nullable=True))
        else:
            # SQLite adds a column with its REFERENCES clause (ALTER TABLE adds no constraint).
            op.execute(
                f"ALTER TABLE tasks ADD COLUMN {column} INTEGER "
                f"REFERENCES {table} (id) ON DELETE CASCADE"
            )
    op.add_column("tasks", sa.Column("due_at", TIMESTAMP, nullable=True))
    op.add_column(
        "tasks", sa.Column("priority", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.add_column("tasks", sa.Column("completed_at", TIMESTAMP, nullable=True))
    op.add_column("tasks", sa.Column("position", sa.String(length=255), nullable=True))
    op.add_column("tasks", sa.Column("recurrence", sa.String(length=255), nullable=True))
    op.add_column("tasks", sa.Column("label_names", sa.Text(), nullable=True))
    if postgres:
        for column, key, table in REFERENCES:
            op.execute(
                f"ALTER TABLE tasks ADD CONSTRAINT {key} FOREIGN KEY ({column}) "
                f"REFERENCES {table} (id) ON DELETE CASCADE NOT VALID"
            )
        with _outside_transactions():
            # Each in a transaction of its own, once the ACCESS EXCLUSIVE lock of the column
            # changes is released (the block commits them): a scan under SHARE UPDATE
            # EXCLUSIVE, which reads and writes go past.
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
    else:
        for name, columns in TASK_INDEXES.items():
            op.create_index(name, "tasks", columns)
        for name, columns in INBOX_INDEXES.items():
            op.create_index(name, "tasks", columns, sqlite_where=INBOX)
    for statement in DEFAULT_POSITION[op.get_bind().dialect.name]:
        op.execute(statement)
    for statement in LIST_COUNTS_POSTGRES if postgres else LIST_COUNTS_SQLITE:
        op.execute(statement)
    for statement in LABEL_NAMES_POSTGRES if postgres else LABEL_NAMES_SQLITE:
        op.execute(statement)
    backfill_positions()


def backfill_positions():
    """Every existing task's position, from its id, a batch of ids per transaction.

    The trigger of DEFAULT_POSITION exists already (on PostgreSQL, creating it waited for
    every transaction that had inserted into tasks), so max(id) bounds what is left."""
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT max(id) FROM tasks")).scalar() or 0
    statement = sa.text(
        f"UPDATE tasks SET position = {POSITION_FROM_ID[bind.dialect.name]} "
        "WHERE id > :low AND id <= :high AND position IS NULL"
    )
    with _outside_transactions():
        for low in range(0, last, BACKFILL_BATCH):
            bind.execute(statement, {"low": low, "high": low + BACKFILL_BATCH})


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
    names = [*TASK_INDEXES, *INBOX_INDEXES]
    postgres = op.get_bind().dialect.name == "postgresql"
    triggers = ["tasks_default_position"] + [
        f"tasks_list_count_{operation}" for operation in ("insert", "delete", "update")
    ]
    for trigger in triggers:
        op.execute(f"DROP TRIGGER {trigger}" + (" ON tasks" if postgres else ""))
    for trigger, table in [
        ("task_labels_names_insert", "task_labels"),
        ("task_labels_names_delete", "task_labels"),
        ("labels_names_update", "labels"),
    ]:
        op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if postgres else ""))
    if postgres:
        names.append(DUE_DESC[0])
        op.execute("DROP FUNCTION tasks_default_position()")
        op.execute("DROP FUNCTION list_counts_apply()")
        op.execute("DROP FUNCTION task_label_names_apply()")
    for name in names:
        op.drop_index(name, table_name="tasks")
    # Batch mode: SQLite cannot drop a column with REFERENCES, so there the table is copied,
    # which drops its triggers: the count triggers of 0003 and the sync triggers of 0005 are
    # made again after it.
    with op.batch_alter_table("tasks") as batch:
        if op.get_bind().dialect.name == "postgresql":
            for _column, key, _table in REFERENCES:
                batch.drop_constraint(key, type_="foreignkey")
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
            batch.drop_column(column)
    if op.get_bind().dialect.name == "sqlite":
        for revision in ("0003_task_counts", "0005_idempotency_sync"):
            for statement in _revision(revision).SQLITE_UP:
                op.execute(statement)
    op.drop_table("task_labels")
    op.drop_table("labels")
    op.drop_table("lists")


def _revision(name: str):
    """The module of an earlier migration (its file name is no Python module name)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"taskapp_migration_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
