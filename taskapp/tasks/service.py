"""Single-task writes, always scoped to the acting user: get, create, update, move, delete,
the recurrence's advance, the quota."""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, NoReturn

from flask import current_app
from sqlalchemy import and_, case, delete, false, func, insert, or_, select, true, update

from taskapp.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from taskapp.extensions import db
from taskapp.tasks import recurrence
from taskapp.tasks.labelling import set_labels, with_labels, with_row_labels
from taskapp.tasks.locks import NOT_FOUND, lock_task, lock_user_tasks
from taskapp.tasks.models import Task
from taskapp.tasks.placement import UNSET, end_of_list, move_position, place, subtasks_follow
from taskapp.tasks.totals import touched, user_task_count

STALE = "The task has changed since that ETag was read; fetch it again"
QUOTA = "Task limit reached: a user may have at most {limit} tasks; delete some first"


class Version(NamedTuple):
    """One state of a task a conditional write expects: its write count, and its creation
    time (which tells a task from a later one that reused its id)."""

    number: int
    created_at: datetime


def get_task(user_id: int, task_id: int) -> dict:
    """The user's task (else NotFound)."""
    tasks = Task.__table__
    task = db.session.execute(
        select(*tasks.c).where(tasks.c.id == task_id, tasks.c.user_id == user_id)
    ).one_or_none()
    if task is None:
        raise NotFound(NOT_FOUND)
    return with_row_labels(task)


def create_task(user_id: int, *, fields: dict) -> dict:
    """Create a task owned by the user, in its list (NotFound if not the user's)."""
    tasks = Task.__table__
    fields = dict(fields)
    labels = fields.pop("labels", [])
    lock_user_tasks(user_id)
    place(user_id, None, fields)
    if fields.get("completed"):
        fields["completed_at"] = func.now()
    fields["position"] = end_of_list(user_id, fields.get("list_id"))
    statement = insert(tasks).values(user_id=user_id, **fields).returning(*tasks.c)
    task = db.session.execute(statement).one()
    check_task_quota(user_id)
    if labels:
        set_labels(user_id, task.id, labels)
        task = with_labels(task)  # the row was returned before its labels existed
    else:
        task = with_row_labels(task)
    db.session.commit()
    return task


def check_task_quota(user_id: int) -> None:
    """Call after inserting a user's new tasks: Conflict, rolled back, if the user now owns
    more than MAX_TASKS_PER_USER (0: no limit).

    The count is the kept one (totals.user_task_count), which the insert's trigger raised under
    the count row's lock: concurrent creators for one user queue on it, and each sees the
    others' tasks, so no race gets past the quota.
    """
    limit = current_app.config["MAX_TASKS_PER_USER"]
    if not limit:
        return
    if user_task_count(user_id) > limit:
        db.session.rollback()
        raise Conflict(QUOTA.format(limit=limit))


def update_task(
    user_id: int, task_id: int, *, changes: dict, expected: Sequence[Version] | None = None
) -> dict:
    """Apply changes (some or all writable fields); with ``expected``, only while the task is
    at one of those versions (else PreconditionFailed).

    One ``UPDATE ... WHERE id AND user_id [AND version] RETURNING``: the database settles a
    race, so of two writers expecting one version exactly one wins, and a write without a
    condition is applied to whatever row it finds (last writer wins). A change that changes
    nothing keeps the version and updated_at (so the ETag too). New labels are written first,
    under the task's row lock, so that the UPDATE knows whether they changed; a refused UPDATE
    rolls them back.
    """
    changes = dict(changes)
    labels = changes.pop("labels", None)
    lock_user_tasks(user_id)
    place(user_id, task_id, changes)
    rule_changes = bool({"recurrence", "due_at"} & changes.keys())
    locked = lock_task(user_id, task_id) if rule_changes or labels is not None else None
    if locked is not None and (rule_changes or changes.get("completed")):
        _recur(locked, changes)
    relabelled = False
    if labels is not None:
        relabelled = set_labels(user_id, task_id, labels)
    task = None
    if locked is None and changes.get("completed"):
        # Completing a task is the common write, and most tasks do not recur: it is first
        # tried on the condition that this one does not, which spares reading the row for
        # the rule. No row (a recurring task, or a missing or stale one): that UPDATE wrote
        # and locked nothing (its statement triggers saw no row), and the rule's way follows.
        task = _write(user_id, task_id, changes, relabelled, expected, non_recurring=True)
        if task is None:
            _recur(lock_task(user_id, task_id), changes)
    if task is None:
        task = _write(user_id, task_id, changes, relabelled, expected)
    if task is None:
        _refuse(user_id, task_id)
    if "list_id" in changes:
        subtasks_follow(task)
    task = with_row_labels(task)
    db.session.commit()
    return task


def _write(
    user_id: int,
    task_id: int,
    changes: dict,
    relabelled: bool,
    expected: Sequence[Version] | None,
    *,
    non_recurring: bool = False,
):
    """update_task's one UPDATE ... RETURNING (None: no row matched)."""
    tasks = Task.__table__
    changed = or_(
        false(),
        true() if relabelled else false(),
        *(tasks.c[name].is_distinct_from(value) for name, value in changes.items()),
    )
    values = {
        **changes,
        "version": case((changed, tasks.c.version + 1), else_=tasks.c.version),
        "updated_at": case((changed, func.now()), else_=tasks.c.updated_at),
    }
    if "completed" in changes:
        # Set when the task becomes completed, kept while it stays so, cleared on reopening.
        values["completed_at"] = (
            case((tasks.c.completed.is_(False), func.now()), else_=tasks.c.completed_at)
            if changes["completed"]
            else None
        )
    where = _target(user_id, task_id, expected)
    if non_recurring:
        where.append(tasks.c.recurrence.is_(None))
    statement = update(tasks).where(*where).values(values).returning(*tasks.c)
    return db.session.execute(statement).one_or_none()


def move_task(
    user_id: int,
    task_id: int,
    *,
    after: int | None = None,
    before: int | None = None,
    list_id=UNSET,
    expected: Sequence[Version] | None = None,
) -> dict:
    """Place the task right after or before another task of its (or the given: ``list_id``,
    None for the inbox) list, or at the end of that list (placement.move_position); with
    ``expected``, only while it is at one of those versions. A parent's subtasks follow it to
    another list.
    """
    tasks = Task.__table__
    lock_user_tasks(user_id)
    current = lock_task(user_id, task_id)
    target, position = move_position(user_id, current, after=after, before=before, list_id=list_id)
    statement = (
        update(tasks)
        .where(*_target(user_id, task_id, expected))
        .values(position=position, list_id=target, **touched())
        .returning(*tasks.c)
    )
    task = db.session.execute(statement).one_or_none()
    if task is None:
        _refuse(user_id, task_id)
    subtasks_follow(task)
    task = with_row_labels(task)
    db.session.commit()
    return task


def delete_task(user_id: int, task_id: int, *, expected: Sequence[Version] | None = None) -> None:
    """Delete the user's task; with ``expected``, only while it is at one of those versions."""
    tasks = Task.__table__
    lock_user_tasks(user_id)
    statement = delete(tasks).where(*_target(user_id, task_id, expected)).returning(tasks.c.id)
    if db.session.execute(statement).one_or_none() is None:
        _refuse(user_id, task_id)
    db.session.commit()


def _recur(current, changes: dict) -> None:
    """A recurring task keeps a due date; completing it (while open) moves it to its next
    occurrence instead, unless that was the last (see taskapp.tasks.recurrence)."""
    rule = changes.get("recurrence", current.recurrence)
    due_at = changes.get("due_at", current.due_at)
    if rule is None:
        return
    if due_at is None:
        raise Unprocessable("A recurring task needs due_at")
    if changes.get("completed") and not current.completed:
        following = recurrence.next_occurrence(rule, due_at)
        if following is not None:
            changes["completed"] = False
            changes["due_at"], changes["recurrence"] = following


def _target(user_id: int, task_id: int, expected: Sequence[Version] | None) -> list:
    """The WHERE of a write to one task: the user's, and at an expected version if any."""
    tasks = Task.__table__
    where = [tasks.c.id == task_id, tasks.c.user_id == user_id]
    if expected is not None:
        where.append(
            or_(
                false(),
                *(
                    and_(tasks.c.version == v.number, tasks.c.created_at == v.created_at)
                    for v in expected
                ),
            )
        )
    return where


def _refuse(user_id: int, task_id: int) -> NoReturn:
    """A conditional write matched no row: 412 if the task is there (so at another version),
    else 404."""
    tasks = Task.__table__
    db.session.rollback()
    exists = select(tasks.c.id).where(tasks.c.id == task_id, tasks.c.user_id == user_id)
    if db.session.scalar(exists) is not None:
        raise PreconditionFailed(STALE)
    raise NotFound(NOT_FOUND)
