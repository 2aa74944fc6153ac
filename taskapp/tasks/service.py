"""Single-task writes, always scoped to the acting user: get, create, update, move, delete,
the recurrence's advance, the quota."""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, NoReturn

from flask import current_app
from sqlalchemy import and_, case, delete, false, func, insert, or_, select, true, update

from taskapp.database import LEAD_OPTION
from taskapp.errors import NotFound, PreconditionFailed, Unprocessable
from taskapp.extensions import db
from taskapp.quotas import check_quota
from taskapp.tasks import recurrence
from taskapp.tasks.labelling import set_labels, with_labels, with_row_labels
from taskapp.tasks.locks import NOT_FOUND, lock_task, lock_user_tasks, shared_queue_lead
from taskapp.tasks.models import Task
from taskapp.tasks.placement import UNSET, end_of_list, move_position, place, subtasks_follow
from taskapp.tasks.totals import room_below, touched, user_task_count

STALE = "The task has changed since that ETag was read; fetch it again"


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
    _check_rule(fields.get("recurrence"), fields.get("due_at"))
    limit = current_app.config["MAX_TASKS_PER_USER"]
    # A single-task write, so shared; exclusive near the quota (check_task_quota) or when it
    # may make labels (LABELS_PER_USER is counted under the exclusive queue: quotas).
    roomy = room_below(limit) if limit else True
    shared = lock_user_tasks(user_id, shared=False if labels else roomy)
    place(user_id, None, fields)
    if fields.get("completed"):
        fields["completed_at"] = func.now()
    fields["position"] = end_of_list(user_id, fields.get("list_id"))
    statement = insert(tasks).values(user_id=user_id, **fields).returning(*tasks.c)
    task = db.session.execute(statement).one()
    if not shared:
        check_task_quota(user_id)
    if labels:
        set_labels(user_id, task.id, labels)
        task = with_labels(task)  # the row was returned before its labels existed
    else:
        task = with_row_labels(task)
    db.session.commit()
    return task


def check_task_quota(user_id: int) -> None:
    """Call after inserting a user's new tasks, holding the user's queue exclusive: Conflict,
    rolled back, if the user now owns more than MAX_TASKS_PER_USER (quotas.check_quota).

    The queue exclusive waits for every single-task writer in flight (they hold it shared) and
    keeps new ones out, so the kept count read here (totals.user_task_count) holds every other
    committed task. A create far from the quota (totals.room_below: even if every transaction
    PostgreSQL allows created one, the user stays within it) holds the queue shared and skips
    this check: so no race gets past the quota.
    """
    if current_app.config["MAX_TASKS_PER_USER"]:
        check_quota("tasks", user_task_count(user_id))


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
    rolls them back. A recurrence is evaluated before any lock is taken (_plan_recurrence).
    """
    changes = dict(changes)
    labels = changes.pop("labels", None)
    planned = _plan_recurrence(user_id, task_id, changes)
    # Only its own fields: a single-task write (locks), so shared.
    own_fields = labels is None and not {"list_id", "parent_id"} & changes.keys()
    # The rule's changes, planned before any lock from the row as read then; applied under the
    # row lock if the row is still in that state, else planned again under it.
    recurs = planned is not None and (
        planned.read.recurrence is not None or changes.get("recurrence") is not None
    )
    if own_fields and planned is not None and not recurs:
        # The common write (completing a task without a rule): the queue rides with the
        # UPDATE, one message (_write_without_rule).
        return _write_without_rule(user_id, task_id, changes, expected)
    lock_user_tasks(user_id, shared=own_fields)
    place(user_id, task_id, changes)
    locked = lock_task(user_id, task_id) if recurs or labels is not None else None
    if recurs:
        same = _state(locked) == _state(planned.read)
        changes.update(planned if same else _recur(locked, changes))
    relabelled = False
    if labels is not None:
        relabelled = set_labels(user_id, task_id, labels)
    task = _write(user_id, task_id, changes, relabelled, expected)
    if task is None:
        _refuse(user_id, task_id)
    if "list_id" in changes:
        subtasks_follow(task)
    task = with_row_labels(task)
    db.session.commit()
    return task


def _write_without_rule(
    user_id: int, task_id: int, changes: dict, expected: Sequence[Version] | None
) -> dict:
    """update_task for a change of a task's own fields, read with no rule and given none: the
    user's queue (shared) and the UPDATE in one message, on the condition that the task still
    has no rule. No row (a rule set meanwhile, or a missing or stale task): that UPDATE wrote
    and locked nothing (its statement triggers saw no row), and the rule's way follows under
    the row lock, in this rare race (its evaluation still bounded: recurrence.BUDGET)."""
    lead = shared_queue_lead(user_id)
    task = _write(user_id, task_id, changes, False, expected, non_recurring=True, lead=lead)
    if task is None:
        changes.update(_recur(lock_task(user_id, task_id), changes))
        task = _write(user_id, task_id, changes, False, expected)
    if task is None:
        _refuse(user_id, task_id)
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
    lead: str | None = None,
):
    """update_task's one UPDATE ... RETURNING (None: no row matched), ``lead`` (SQL text) in
    front of it in the same message."""
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
    if lead is not None:
        statement = statement.execution_options(**{LEAD_OPTION: lead})
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
    lock_user_tasks(user_id, shared=True)  # a single-task write
    statement = delete(tasks).where(*_target(user_id, task_id, expected)).returning(tasks.c.id)
    if db.session.execute(statement).one_or_none() is None:
        _refuse(user_id, task_id)
    db.session.commit()


class _Planned(dict):
    """What a write does to a task's recurrence (extra changes), and the row state it was
    worked out from."""

    def __init__(self, changes: dict, read):
        super().__init__(changes)
        self.read = read


def _state(row) -> tuple:
    return (row.recurrence, row.due_at, row.completed)


def _plan_recurrence(user_id: int, task_id: int, changes: dict) -> _Planned | None:
    """Evaluate the task's rule for this write before any lock is taken, from its row as read
    now (None if the write touches no rule, or there is no such task: the write then finds
    none). The caller uses it under the row lock if the row is still in that state, else
    evaluates again: either way, within recurrence.BUDGET, but normally with no lock held."""
    if not ({"recurrence", "due_at"} & changes.keys() or changes.get("completed")):
        return None
    tasks = Task.__table__
    read = db.session.execute(
        select(tasks.c.recurrence, tasks.c.due_at, tasks.c.completed).where(
            tasks.c.id == task_id, tasks.c.user_id == user_id
        )
    ).one_or_none()
    if read is None:
        return None
    return _Planned(_recur(read, changes), read)


def _recur(current, changes: dict) -> dict:
    """The changes a write makes to a recurring task beyond its own: a recurring task keeps a
    due date and a rule whose next occurrence is found (recurrence.check); completing it
    (while open) moves it to its next occurrence instead, unless that was the last (see
    taskapp.tasks.recurrence)."""
    rule = changes.get("recurrence", current.recurrence)
    due_at = changes.get("due_at", current.due_at)
    if rule is None:
        return {}
    if {"recurrence", "due_at"} & changes.keys():
        _check_rule(rule, due_at)
    if changes.get("completed") and not current.completed:
        following = recurrence.next_occurrence(rule, due_at)
        if following is not None:
            due_at, rule = following
            return {"completed": False, "due_at": due_at, "recurrence": rule}
    return {}


def _check_rule(rule: str | None, due_at: datetime | None) -> None:
    """Unprocessable unless a rule (if any) has a due date and a next occurrence found within
    recurrence.BUDGET."""
    if rule is None:
        return
    if due_at is None:
        raise Unprocessable("A recurring task needs due_at")
    try:
        recurrence.check(rule, due_at)
    except ValueError as error:
        raise Unprocessable(str(error)) from None  # recurrence's own fixed messages


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
