"""Task rules and queries, always scoped to the acting user."""

from collections.abc import Callable

from sqlalchemy import or_, select
from sqlalchemy.orm.exc import StaleDataError

from taskapp import etags
from taskapp.errors import Conflict, NotFound, NotModified, PreconditionFailed
from taskapp.extensions import db
from taskapp.pagination import paginate
from taskapp.tasks.models import Task

STALE = "The task has changed since that ETag was read; fetch it again"
# A write without If-Match that keeps losing the race to other writers of the same task gives
# up after this many tries (409), rather than retrying for ever.
WRITE_ATTEMPTS = 5
CONTENDED = "The task is being changed by other requests; retry"

SORT_COLUMNS = {"created_at": Task.created_at, "updated_at": Task.updated_at, "title": Task.title}


def list_tasks(
    user_id: int,
    *,
    completed: bool | None = None,
    search: str | None = None,
    sort: str = "created_at",
    order: str = "desc",
    page: int = 1,
    page_size: int = 10,
) -> dict:
    """One page of the user's tasks, filtered and totally ordered (ties broken by id)."""
    query = select(Task).where(Task.user_id == user_id)
    if completed is not None:
        query = query.where(Task.completed.is_(completed))
    if search:
        # autoescape: %, _ and the escape character match literally.
        query = query.where(
            or_(
                Task.title.icontains(search, autoescape=True),
                Task.description.icontains(search, autoescape=True),
            )
        )
    column = SORT_COLUMNS[sort]
    direction = (lambda c: c.asc()) if order == "asc" else (lambda c: c.desc())
    query = query.order_by(direction(column), direction(Task.id))
    return paginate(query, page=page, page_size=page_size)


def get_task(user_id: int, task_id: int, *, if_none_match: str | None = None) -> Task:
    """The user's task (else NotFound); NotModified if ``if_none_match`` matches its ETag."""
    task = _owned_task(user_id, task_id)
    if not etags.if_none_match_passes(if_none_match, task_etag(task)):
        raise NotModified(headers={"ETag": str(task_etag(task))})
    return task


def task_etag(task: Task) -> etags.EntityTag:
    """The task's strong ETag, from its version (every write) and created_at (a reused id)."""
    return etags.make_etag(task.id, task.version, task.created_at.isoformat())


def create_task(user_id: int, *, fields: dict) -> Task:
    """Create a task owned by the user."""
    task = Task(user_id=user_id, **fields)
    db.session.add(task)
    _commit_keeping(task)
    return task


def update_task(user_id: int, task_id: int, *, changes: dict, if_match: str | None = None) -> Task:
    """Apply changes (some or all writable fields); with ``if_match``, only if it still matches."""

    def apply(task: Task) -> None:
        for name, value in changes.items():
            setattr(task, name, value)

    return _write(user_id, task_id, if_match=if_match, change=apply)


def delete_task(user_id: int, task_id: int, *, if_match: str | None = None) -> None:
    """Delete the user's task; with ``if_match`` (an If-Match value), only if it still matches."""
    _write(user_id, task_id, if_match=if_match, change=db.session.delete)


def _owned_task(user_id: int, task_id: int) -> Task:
    task = db.session.scalar(select(Task).where(Task.id == task_id, Task.user_id == user_id))
    if task is None:
        raise NotFound("Task not found")
    return task


def _write(
    user_id: int, task_id: int, *, if_match: str | None, change: Callable[[Task], None]
) -> Task:
    """Read the task, check If-Match, change it and commit, with the database as the referee.

    The flush is ``UPDATE/DELETE ... WHERE id = :id AND version = :read`` (the mapper's
    version_id_col): if another writer got there since the read, no row matches and
    StaleDataError follows. So the If-Match check is atomic and two writers with one ETag
    cannot both win: the loser gets 412. A write without If-Match is redone on the fresh row
    instead, as last-writer-wins always was.
    """
    for _attempt in range(WRITE_ATTEMPTS):
        task = _owned_task(user_id, task_id)
        if not etags.if_match_passes(if_match, task_etag(task)):
            raise PreconditionFailed(STALE)
        change(task)
        try:
            db.session.flush()
        except StaleDataError:
            db.session.rollback()
            if if_match is not None:
                raise PreconditionFailed(STALE) from None
            continue
        _commit_keeping(task)
        return task
    raise Conflict(CONTENDED)


def _commit_keeping(task: Task) -> None:
    """Commit, keeping ``task`` as this request wrote it, for the response.

    Flushed (RETURNING brings the database's timestamps) and detached before the commit, it is
    not expired by it: rendering needs no second query, which a concurrent DELETE could turn
    into a 500, and shows this write and its ETag rather than a later one.
    """
    db.session.flush()
    if task in db.session:  # not when deleted
        db.session.expunge(task)
    db.session.commit()
