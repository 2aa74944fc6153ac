"""Bulk writes: one action on many of the user's tasks, all or nothing."""

from collections.abc import Sequence

from sqlalchemy import delete, func, update

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
    the change log follow by their triggers.
    """
    tasks = Task.__table__
    wanted = sorted(set(ids))
    lock_user_tasks(user_id)
    rows = lock_tasks(user_id, wanted)
    if len(rows) != len(wanted):
        db.session.rollback()
        raise NotFound("Some of these tasks are not found; none was changed")
    chosen = tasks.c.id.in_(wanted)
    advanced = []
    if action == "complete":
        advanced = _advance_recurring(rows)
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


def _advance_recurring(rows) -> list[int]:
    """Move the open recurring tasks among the locked rows to their next occurrence; their
    ids (not those whose last occurrence this was: those are completed as any task)."""
    tasks = Task.__table__
    advanced = []
    for row in rows:
        if row.completed or row.recurrence is None:
            continue
        following = recurrence.next_occurrence(row.recurrence, row.due_at)
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
