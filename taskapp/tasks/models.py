"""The task model and the indexes that serve its list queries."""

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from taskapp.extensions import db
from taskapp.timestamps import UTCDateTime


class Task(db.Model):
    """A user's task; ``created_at`` and ``updated_at`` are set by the database.

    ``version`` counts the task's writes (each write bumps it: tasks.totals.touched); the ETag
    derives from it, and a conditional write names the version it expects in its WHERE.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        # One index per sort key, scoped to the owner, with id as the tie-breaker.
        Index("ix_tasks_user_created", "user_id", "created_at", "id"),
        Index("ix_tasks_user_updated", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_title", "user_id", "title", "id"),
        # The same with the completed filter in front, so filtered pages stay index walks.
        Index("ix_tasks_user_completed_created_at", "user_id", "completed", "created_at", "id"),
        Index("ix_tasks_user_completed_updated_at", "user_id", "completed", "updated_at", "id"),
        Index("ix_tasks_user_completed_title", "user_id", "completed", "title", "id"),
        # Migration 0006: a list's tasks, the due-date range and sort, the priority sort.
        Index("ix_tasks_user_list_created", "user_id", "list_id", "created_at", "id"),
        Index("ix_tasks_user_due", "user_id", "due_at", "id"),
        # The open tasks by due date: overdue ones are a range of it (counted index-only).
        Index("ix_tasks_user_completed_due", "user_id", "completed", "due_at", "id"),
        Index("ix_tasks_user_priority", "user_id", "priority", "id"),
        Index("ix_tasks_parent_id", "parent_id"),  # a task's subtasks (and their cascade)
        Index("ix_tasks_user_list_position", "user_id", "list_id", "position", "id"),
        # The inbox's own: ``list_id IS NULL``, unlike ``list_id = 1``, does not make the column
        # a constant to the planner, so the two above cannot give the inbox its order (it
        # would read and sort every inbox task for one page).
        *(
            Index(
                f"ix_tasks_user_inbox_{column}",
                "user_id",
                column,
                "id",
                postgresql_where=text("list_id IS NULL"),
            )
            for column in ("created_at", "position")
        ),
        # Trigram indexes serve the case-insensitive substring search: global
        # ones, cheaper for a user with very many tasks, and per-user ones (btree_gin), which
        # read only the caller's postings; the planner picks by the statistics.
        *(
            Index(
                f"ix_tasks_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            for column in ("title", "description")
        ),
        *(
            Index(
                f"ix_tasks_user_{column}_trgm",
                "user_id",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            for column in ("title", "description")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    completed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=func.now(), onupdate=func.now()
    )
    version: Mapped[int] = mapped_column(server_default="1")
    # Migration 0006. NULL list: the user's inbox. Priority 0 to 3: none, low, medium, high.
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A subtask's parent: one level only, in the parent's list (tasks.placement keeps both).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    # A fractional key: lexicographic order is the manual order within the list. Set on every
    # insert (the end of the list) and move; a task inserted without one (by the release
    # before migration 0006) gets one from its id, by a trigger.
    position: Mapped[str | None] = mapped_column(String(255))
    # An RRULE value (taskapp.tasks.recurrence); only with a due date.
    recurrence: Mapped[str | None] = mapped_column(String(255))
    # The names of its labels (tasks.totals.LABEL_SEPARATOR between them), kept by triggers
    # on task_labels and labels (migration 0006) for the pages, which read no other table.
    label_names: Mapped[str | None] = mapped_column(Text)

    __mapper_args__ = {
        # Fetch created_at/updated_at with RETURNING in the INSERT or UPDATE itself.
        "eager_defaults": True,
    }


# The due_at sort descending puts undated tasks last, which a backward walk of
# ix_tasks_user_due (NULLs last ascending, so first descending) cannot give.
Index("ix_tasks_user_due_desc", Task.user_id, Task.due_at.desc().nulls_last(), Task.id.desc())


class TaskList(db.Model):
    """A user's named list of tasks; deleting it deletes its tasks (ON DELETE CASCADE).

    ``total`` and ``completed`` count its tasks, kept by triggers (migration 0006) as
    TaskCount's are, so a list's page reads its total here.
    """

    __tablename__ = "lists"
    __table_args__ = (
        UniqueConstraint("user_id", "name"),
        Index("ix_lists_user_position", "user_id", "position", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # A fractional key: lexicographic order is the order of the user's lists.
    position: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    total: Mapped[int] = mapped_column(server_default="0")
    completed: Mapped[int] = mapped_column(server_default="0")


class Label(db.Model):
    """A user's label; ``key`` (the name case-folded) is what makes two names the same."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(50))
    key: Mapped[str] = mapped_column(String(200))


# Which labels each task has; the label_id index finds a label's tasks (filter, rename).
task_labels = Table(
    "task_labels",
    db.metadata,
    Column("task_id", ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("label_id", ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_task_labels_label_task", "label_id", "task_id"),
)


class KeptCounts:
    """The columns of a count of a user's tasks kept by triggers: in all and completed."""

    # First in the table, then the class's own key: the primary key's order.
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, sort_order=-1
    )
    total: Mapped[int] = mapped_column(server_default="0")
    completed: Mapped[int] = mapped_column(server_default="0")


class TaskCount(KeptCounts, db.Model):
    """How many tasks a user has, in all and completed: kept by triggers (migration 0003).

    Every insert, update and delete of tasks adjusts it in the same transaction, so a list
    without a search reads its total here instead of counting the user's rows. ``stamp``
    grows with every write of the user's tasks (migration 0006): the ETag of their lists.
    """

    __tablename__ = "task_counts"

    stamp: Mapped[int] = mapped_column(BigInteger, server_default="0")


class TaskPriorityCount(KeptCounts, db.Model):
    """How many of a user's tasks have each priority, in all and completed: kept by triggers
    (migration 0007), so a ``priority`` filter reads its total here."""

    __tablename__ = "task_priority_counts"

    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)


class TaskDueCount(KeptCounts, db.Model):
    """How many of a user's tasks are due on each day (UTC), in all and completed: kept by
    triggers (migration 0007). A due range's total sums the days it covers whole and counts
    only the tasks of its first and last day; a day whose count falls to 0 has no row."""

    __tablename__ = "task_due_counts"

    due_on: Mapped[date] = mapped_column(Date, primary_key=True)


class LabelCount(db.Model):
    """How many tasks carry a label: kept by triggers on task_labels (migration 0007)."""

    __tablename__ = "label_counts"

    label_id: Mapped[int] = mapped_column(
        ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True
    )
    tasks: Mapped[int] = mapped_column(server_default="0")


# What task statements add to the kept counts, appended by migration 0009's tasks_changed()
# (one row per user, list, priority and due day a statement touches) and summed by readers
# with the base rows (TaskCount, TaskList, TaskPriorityCount, TaskDueCount) until
# task_counts_fold() moves them there. Appending locks nothing another writer waits for.
task_count_deltas = Table(
    "task_count_deltas",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("list_id", db.Integer),  # no key: a deleted list's rows are dropped by the fold
    Column("priority", SmallInteger, nullable=False),
    Column("due_on", Date),
    Column("total", db.Integer, nullable=False),
    Column("completed", db.Integer, nullable=False),
    Index("ix_task_count_deltas_user_id", "user_id"),
)

# What link statements add to LabelCount, appended by triggers on task_labels (0009).
label_count_deltas = Table(
    "label_count_deltas",
    db.metadata,
    Column("label_id", ForeignKey("labels.id", ondelete="CASCADE"), nullable=False),
    Column("tasks", db.Integer, nullable=False),
    Index("ix_label_count_deltas_label_id", "label_id"),
)
