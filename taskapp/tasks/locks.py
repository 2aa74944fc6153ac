"""The one lock order every writer of a user's tasks, lists and labels takes.

A writer takes its locks in the order of LOCK_ORDER, each through a function here, and first of
all the user's queue (lock_user_tasks): the user's task_counts row, which every write of a task
would lock anyway, through the triggers, until the commit. Taken first, it makes the user's
writers queue on one row; every later lock (a task, a parent, a list's order, a label, and the
kept count rows the triggers write: task_due_counts, lists, task_priority_counts, label_counts,
sync_changes) is then taken by one writer of that user at a time, so their order among
themselves no longer decides whether two writers can deadlock. Before, it did: migration 0006
named its list-count triggers to fire after the tasks_count ones (alphabetical order), so that
a writer locked task_counts before lists.
"""

from typing import NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from taskapp.errors import NotFound
from taskapp.extensions import db
from taskapp.tasks.models import Label, Task, TaskCount, TaskList


class Lock(NamedTuple):
    """One step of the lock order: what it locks, and who takes it."""

    name: str
    what: str


LOCK_ORDER = (
    Lock(
        "user",
        "the users row (auth.service.lock_user; lists.service.create_list): writes to the "
        "account itself, and a list's creation (its quota)",
    ),
    Lock("user_tasks", "the user's task_counts row (lock_user_tasks): every writer, first"),
    Lock("list", "a list row deleted (lock_list), before the tasks its cascade deletes"),
    Lock("label", "a label row renamed or deleted (lock_label), before its tasks' rows"),
    Lock("tasks", "task rows (lock_task, lock_tasks): a task before its parent; bulk: by id"),
    Lock("list_order", "a list's order (lock_list_order): an advisory lock, per list"),
    Lock(
        "writes",
        "the rows written, and those the triggers write: the kept counts (totals.KEPT) and "
        "sync_changes; under the user's queue, so in any order among themselves",
    ),
)

# What the rules read of a task they lock: its placement, and its recurrence state.
LOCKED_COLUMNS = ("id", "list_id", "parent_id", "recurrence", "due_at", "completed")
NOT_FOUND = "Task not found"


def lock_user_tasks(user_id: int) -> None:
    """Take the user's queue (LOCK_ORDER's "user_tasks"): lock the user's task_counts row
    until the commit, first in every write of the user's tasks or of rows they reference.

    The row is made if missing (a user's first task), so there is always one to queue on.
    """
    counts = TaskCount.__table__
    db.session.execute(
        postgresql.insert(counts)
        .values(user_id=user_id)
        .on_conflict_do_update(index_elements=["user_id"], set_={"user_id": counts.c.user_id})
    )


def lock_list(user_id: int, list_id: int) -> bool:
    """Lock the user's list row until the commit (the user's queue held); whether it exists."""
    lists = TaskList.__table__
    found = select(lists.c.id).where(lists.c.id == list_id, lists.c.user_id == user_id)
    return db.session.scalar(found.with_for_update()) is not None


def lock_label(user_id: int, key: str) -> int | None:
    """Lock the user's label with this key until the commit (the user's queue held); its id,
    or None if the user has no such label."""
    labels = Label.__table__
    found = select(labels.c.id).where(labels.c.user_id == user_id, labels.c.key == key)
    return db.session.scalar(found.with_for_update())


def lock_task(user_id: int, task_id: int, *, missing: str = NOT_FOUND):
    """Lock the user's task row until the commit and return what the rules read of it;
    NotFound(``missing``) if there is none."""
    tasks = Task.__table__
    locked = (
        select(*(tasks.c[name] for name in LOCKED_COLUMNS))
        .where(tasks.c.id == task_id, tasks.c.user_id == user_id)
        .with_for_update()
    )
    row = db.session.execute(locked).one_or_none()
    if row is None:
        raise NotFound(missing)
    return row


def lock_tasks(user_id: int, task_ids: list[int]) -> list:
    """Lock those of these tasks that are the user's, in id order, until the commit; what the
    rules read of each, in id order."""
    tasks = Task.__table__
    return db.session.execute(
        select(*(tasks.c[name] for name in LOCKED_COLUMNS))
        .where(tasks.c.user_id == user_id, tasks.c.id.in_(task_ids))
        .order_by(tasks.c.id)
        .with_for_update()
    ).all()


def lock_list_order(user_id: int, list_id: int | None) -> None:
    """Serialise the writers of one list's order (the inbox: list 0) until the commit: a
    transaction-scoped advisory lock."""
    db.session.execute(text(list_order_lock(user_id, list_id)))


def list_order_lock(user_id: int, list_id: int | None) -> str:
    """lock_list_order's statement, to send in front of the read it guards
    (``taskapp.database.LEAD_OPTION``)."""
    return f"SELECT pg_advisory_xact_lock({int(user_id)}, {int(list_id or 0)})"
