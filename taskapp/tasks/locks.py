"""The one lock order every writer of a user's tasks, lists and labels takes.

A writer takes its locks in the order of LOCK_ORDER, each through a function here, and first of
all the user's queue (lock_user_tasks): a transaction-scoped advisory lock per user. The kept
counts no longer lock anything (migration 0009: the triggers append delta rows), so the queue
is there only to keep writers that lock several rows from deadlocking: they take it exclusive,
and every later lock (a task, a parent, a list's order, a label, a list or label deleted) is
then taken by one of them at a time, with no single-task writer in flight. The single-task
writes (a create, a change of a task's own fields, a deletion: services name them) take it
shared, so they never wait for one another; each locks at most its own task row (and a new
task's parent and list order) and then waits for nothing another single-task writer holds.
"""

import functools
from typing import NamedTuple

from sqlalchemy import Text, case, cast, func, literal, select, text
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.sql.elements import ColumnElement

from taskapp.errors import NotFound
from taskapp.extensions import db
from taskapp.tasks.models import Label, Task, TaskList, task_count_deltas
from taskapp.tasks.totals import FOLD_AFTER


class Lock(NamedTuple):
    """One step of the lock order: what it locks, and who takes it."""

    name: str
    what: str


LOCK_ORDER = (
    Lock(
        "new_keys",
        "the user's new Idempotency-Keys (idempotency.service.claim_key): an advisory lock, "
        "first in a write sent with a new key (IDEMPOTENCY_KEYS_PER_USER)",
    ),
    Lock(
        "user",
        "the users row (auth.service.lock_user; lists.service.create_list): writes to the "
        "account itself, and a list's creation (its quota)",
    ),
    Lock(
        "user_tasks",
        "the user's queue (lock_user_tasks), an advisory lock: every writer, first; shared by "
        "single-task writes, exclusive for the others",
    ),
    Lock("list", "a list row deleted (lock_list), before the tasks its cascade deletes"),
    Lock("label", "a label row renamed or deleted (lock_label), before its tasks' rows"),
    Lock("tasks", "task rows (lock_task, lock_tasks): a task before its parent; bulk: by id"),
    Lock("list_order", "a list's order (lock_list_order): an advisory lock, per list"),
    Lock(
        "writes",
        "the rows written, and those the triggers write: delta rows (appended: no waits) and "
        "a task's own sync_changes row; a fold's base rows (totals.KEPT), by one folder at a "
        "time (a try lock)",
    ),
)

# What the rules read of a task they lock: its placement, and its recurrence state.
LOCKED_COLUMNS = ("id", "list_id", "parent_id", "recurrence", "due_at", "completed")
NOT_FOUND = "Task not found"


# The class of the queue's advisory key (its second key is the user's id): negative, so no
# list order's (user id, list id) and no fold's (migration 0009: -8) key.
QUEUE_CLASS = -1


def lock_user_tasks(user_id: int, *, shared: bool | ColumnElement = False) -> bool:
    """Take the user's queue (LOCK_ORDER's "user_tasks") until the commit, first in every
    write of the user's tasks or of rows they reference: ``shared`` for a single-task write
    (a SQL condition: shared where it holds, with ``user_id`` bound); whether it was shared.

    In the same statement, fold the user's count deltas into the base rows when there are
    more than totals.FOLD_AFTER (unless another writer is folding them: it never waits).
    """
    statement = _queue(user_id, shared)
    return db.session.execute(statement, {"user_id": user_id}).scalar_one()


@functools.lru_cache(maxsize=4096)
def shared_queue_lead(user_id: int) -> str:
    """lock_user_tasks(shared=True)'s statement as SQL text, to send in front of a single-task
    write it guards (``taskapp.database.LEAD_OPTION``): the queue costs no round trip.

    Compiled once per user and worker: compiling with literal values bypasses SQLAlchemy's
    statement cache and cost about 0.8 ms a request."""
    statement = _queue(int(user_id), True)
    return str(statement.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


_DIALECT = psycopg2.dialect()


def _queue(user_id: int, shared: bool | ColumnElement):
    deltas = task_count_deltas
    condition = shared if isinstance(shared, ColumnElement) else literal(shared)
    take = case(
        (condition, cast(func.pg_advisory_xact_lock_shared(QUEUE_CLASS, user_id), Text)),
        else_=cast(func.pg_advisory_xact_lock(QUEUE_CLASS, user_id), Text),
    )
    pending = select(literal(1)).where(deltas.c.user_id == user_id).limit(FOLD_AFTER + 1)
    many = select(func.count()).select_from(pending.subquery()).scalar_subquery() > FOLD_AFTER
    fold = case((many, func.task_counts_fold(user_id)), else_=0)
    return select(condition, take, fold)


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
