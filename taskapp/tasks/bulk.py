"""Bulk writes: one action on many of the user's tasks, all or nothing."""

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update

from taskapp.errors import NotFound
from taskapp.extensions import db
from taskapp.tasks import recurrence
from taskapp.tasks.labelling import add_labels, remove_labels
from taskapp.tasks.locks import lock_tasks, lock_user_tasks
from taskapp.tasks.models import Task
from taskapp.tasks.placement import UNSET, move_to_end
from taskapp.tasks.totals import touched


def bulk_update(
    user_id: int,
    *,
    action: str,
    ids: Sequence[int],
    list_id=UNSET,
    labels: Sequence[str] = (),
) -> dict:
    """One action on many of the user's tasks, all or nothing: NotFound (and no change) if
    one id is not the user's. The answer lists the tasks the action changed.

    The user's queue is taken first, then the rows are locked in id order (locks.LOCK_ORDER);
    each action is then one statement over them all where it can be, so the kept counts and
    the change log follow by their triggers. Completing works out the recurring tasks' next
    occurrences before any lock is taken (_plan_advances).
    """
    tasks = Task.__table__
    wanted = sorted(set(ids))
    planned = _plan_advances(user_id, wanted) if action == "complete" else {}
    lock_user_tasks(user_id)
    rows = lock_tasks(user_id, wanted)
    if len(rows) != len(wanted):
        db.session.rollback()
        raise NotFound("Some of these tasks are not found; none was changed")
    chosen = tasks.c.id.in_(wanted)
    advanced = []
    if action == "complete":
        advanced = _advance_recurring(rows, planned)
        chosen = tasks.c.id.in_(sorted(set(wanted) - set(advanced)))
    if action in ("complete", "reopen"):
        done = action == "complete"
        statement = (
            update(tasks)
            .where(chosen, tasks.c.completed.is_(not done))
            .values(completed=done, completed_at=func.now() if done else None, **touched())
        )
    elif action == "delete":
        statement = delete(tasks).where(chosen)
    elif action == "move":
        return _result(action, move_to_end(user_id, rows, list_id))
    elif action == "unlabel":
        return _result(action, remove_labels(user_id, wanted, labels))
    else:
        return _result(action, add_labels(user_id, wanted, labels))
    changed = db.session.scalars(statement.returning(tasks.c.id)).all()
    return _result(action, [*changed, *advanced])


def _plan_advances(user_id: int, ids: Sequence[int]) -> dict:
    """The next occurrences of the user's open recurring tasks among ``ids``, worked out
    before any lock is taken, keyed by (rule, due date): each within recurrence.BUDGET."""
    tasks = Task.__table__
    rows = db.session.execute(
        select(tasks.c.recurrence, tasks.c.due_at).where(
            tasks.c.user_id == user_id,
            tasks.c.id.in_(ids),
            tasks.c.completed.is_(False),
            tasks.c.recurrence.is_not(None),
        )
    ).all()
    return {(rule, due_at): recurrence.next_occurrence(rule, due_at) for rule, due_at in rows}


def _advance_recurring(rows, planned: dict) -> list[int]:
    """Move the open recurring tasks among the locked rows to their next occurrence (as
    planned, or worked out now for a row that changed since); their ids (not those whose
    last occurrence this was: those are completed as any task)."""
    tasks = Task.__table__
    advanced = []
    for row in rows:
        if row.completed or row.recurrence is None:
            continue
        key = (row.recurrence, row.due_at)
        following = planned[key] if key in planned else recurrence.next_occurrence(*key)
        if following is None:
            continue
        due_at, rule = following
        db.session.execute(
            update(tasks)
            .where(tasks.c.id == row.id)
            .values(due_at=due_at, recurrence=rule, **touched())
        )
        advanced.append(row.id)
    return advanced


def _result(action: str, changed: Sequence[int]) -> dict:
    """Commit, and answer with the tasks the action changed."""
    db.session.commit()
    return {"action": action, "ids": sorted(changed)}
