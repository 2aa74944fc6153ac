"""Task rules and queries, always scoped to the acting user."""

import functools
from collections.abc import Callable

from flask import current_app
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm.exc import StaleDataError

from taskapp import etags
from taskapp.errors import Conflict, NotFound, NotModified, PreconditionFailed
from taskapp.extensions import db
from taskapp.pagination import after_keys, keyset_page
from taskapp.sync import service as sync
from taskapp.tasks.models import Task, TaskCount

STALE = "The task has changed since that ETag was read; fetch it again"
# A write without If-Match that keeps losing the race to other writers of the same task gives
# up after this many tries (409), rather than retrying for ever.
WRITE_ATTEMPTS = 5
CONTENDED = "The task is being changed by other requests; retry"
QUOTA = "Task limit reached: a user may have at most {limit} tasks; delete some first"
LIKE_ESCAPE = "/"
TASK_LIST = "tasks"  # the cursor_list of TaskQuerySchema
# From this many skipped rows on, an offset page finds its rows by a deferred join (see
# _page_statement). Below it, the plain index scan is cheaper: the join costs about 0.15 ms.
DEFERRED_JOIN_OFFSET = 1_000


def list_tasks(
    user_id: int,
    *,
    completed: bool | None = None,
    search: str | None = None,
    sort: str = "created_at",
    order: str = "desc",
    page: int = 1,
    page_size: int = 10,
    cursor: dict | None = None,
) -> dict:
    """One page of the user's tasks, filtered and totally ordered (ties broken by id).

    The page comes by offset (``page``) or by keyset (``cursor``, from a previous page's
    ``meta.next_cursor``), and with its total in the same round trip: without a search the
    total is read from the kept counts (TaskCount), so no list counts a heavy user's rows;
    with one, the matches are counted (their number, not the user's, sets the cost).
    """
    params = {"user_id": user_id, "limit": page_size}
    if search:
        params["pattern"] = "%" + _escape_like(search) + "%"
    if cursor is not None:
        paging = "keyset"
        params["after_value"], params["after_id"] = cursor["keys"]
    else:
        params["offset"] = (page - 1) * page_size
        deep = not search and params["offset"] >= DEFERRED_JOIN_OFFSET
        paging = "deferred" if deep else "offset"
    statement, total = _page_statement(
        sort, order, completed=completed, searching=bool(search), paging=paging
    )
    # Plain dicts, not ORM instances: a page is rendered, never changed, so identity and change
    # tracking would be spent for nothing; and a dict is what the schema reads fastest.
    rows = [row._asdict() for row in db.session.execute(statement, params)]
    # Past the end there is no row to carry the total: ask for it alone.
    count = rows[0]["total"] if rows else db.session.scalar(total, params)
    return keyset_page(
        TASK_LIST,
        rows,
        sort=sort,
        order=order,
        page=None if cursor is not None else page,
        page_size=page_size,
        total=count,
    )


def change_stamp(user_id: int) -> int:
    """A number that grows with every write of the user's tasks (0 before the first).

    Read before a list's rows, it makes the list's ETag: a write committed in between changes
    the stamp, so at worst the next conditional request misses, never matches wrongly.
    """
    stamp = db.session.scalar(select(TaskCount.stamp).where(TaskCount.user_id == user_id))
    return stamp or 0


def list_task_changes(user_id: int, *, since: str | None = None, limit: int = 100) -> dict:
    """The user's tasks changed and deleted since the ``since`` sync token, and the next one."""
    changed, deleted, token, has_more = sync.read_changes(
        user_id, kind="task", table=Task.__table__, token=since, limit=limit
    )
    return {"changed": changed, "deleted": deleted, "sync_token": token, "has_more": has_more}


@functools.cache
def _page_statement(
    sort: str, order: str, *, completed: bool | None, searching: bool, paging: str
) -> tuple[Select, Select]:
    """The page query of one shape of list, and its total alone, built once per shape.

    ``paging`` is "keyset" (after a cursor), "offset", or "deferred" (an offset by deferred
    join; never with a search, whose matches are already read once). Values come as bound
    parameters (user_id, limit, offset or after_value and after_id, pattern), so each request
    only binds them: building the statement cost more than running it.
    """
    tasks = Task.__table__
    filters = [tasks.c.user_id == bindparam("user_id")]
    if completed is not None:
        filters.append(tasks.c.completed.is_(completed))
    if searching:
        pattern = bindparam("pattern", type_=tasks.c.title.type)
        filters.append(
            or_(
                tasks.c.title.ilike(pattern, escape=LIKE_ESCAPE),
                tasks.c.description.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
        # The matches are found once (the trigram index) and both counted and paged.
        source = select(tasks).where(*filters).cte("matches").prefix_with("MATERIALIZED")
        total = select(func.count()).select_from(source).scalar_subquery()
        query = select(source)
    else:
        source = tasks
        total = _kept_total(completed)
        query = select(tasks).where(*filters)
    column, row_id = source.c[sort], source.c.id
    descending = order == "desc"
    ordering = (column.desc(), row_id.desc()) if descending else (column.asc(), row_id.asc())
    if paging == "keyset":
        bound = [bindparam("after_value", type_=tasks.c[sort].type), bindparam("after_id")]
        query = query.where(after_keys([column, row_id], bound, descending=descending))
    elif paging == "deferred":
        # The rows an offset skips are counted off in the list index alone (an index-only
        # scan: the index holds the filter, the sort key and the id), and only the page's own
        # rows are read from the table: a deep page no longer reads every row it skips.
        page_ids = (
            select(tasks.c.id)
            .where(*filters)
            .order_by(*ordering)
            .offset(bindparam("offset"))
            .limit(bindparam("limit"))
            .subquery("page_ids")
        )
        query = select(tasks).join(page_ids, page_ids.c.id == tasks.c.id)
    else:
        query = query.offset(bindparam("offset"))
    page = query.add_columns(total.label("total")).order_by(*ordering)
    return page.limit(bindparam("limit")), select(total)


def _kept_total(completed: bool | None):
    """The user's task count (all, completed or open) from TaskCount, as a scalar subquery."""
    counts = TaskCount.__table__
    column = {
        None: counts.c.total,
        True: counts.c.completed,
        False: counts.c.total - counts.c.completed,
    }[completed]
    kept = select(column).where(counts.c.user_id == bindparam("user_id")).scalar_subquery()
    return func.coalesce(kept, 0)


def _escape_like(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE LIKE_ESCAPE: no wildcard in it is live."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


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
    """Create a task owned by the user, within MAX_TASKS_PER_USER."""
    task = Task(user_id=user_id, **fields)
    db.session.add(task)
    db.session.flush()
    check_task_quota(user_id)
    _commit_keeping(task)
    return task


def check_task_quota(user_id: int) -> None:
    """Call after flushing a user's new tasks: Conflict, rolled back, if the user now owns
    more than MAX_TASKS_PER_USER (0: no limit).

    The count is the kept one (TaskCount), which the insert's trigger already raised under
    the count row's lock: concurrent creators for one user queue on it, and each sees the
    others' tasks, so no race gets past the quota.
    """
    limit = current_app.config["MAX_TASKS_PER_USER"]
    if not limit:
        return
    total = db.session.scalar(select(TaskCount.total).where(TaskCount.user_id == user_id))
    if total is not None and total > limit:
        db.session.rollback()
        raise Conflict(QUOTA.format(limit=limit))


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
