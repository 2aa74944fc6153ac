"""Task rules and queries, always scoped to the acting user."""

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, NoReturn

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from taskapp.errors import NotFound, PreconditionFailed
from taskapp.extensions import db
from taskapp.pagination import encode_cursor, page_meta
from taskapp.tasks.models import Task, TaskCount

STALE = "The task has changed since that ETag was read; fetch it again"
NOT_FOUND = "Task not found"
LIKE_ESCAPE = "/"
# From this many skipped rows on, an offset page finds its rows by a deferred join (see
# _page_statement). Below it, the plain index scan is cheaper: the join costs about 0.15 ms.
DEFERRED_JOIN_OFFSET = 1_000


class Version(NamedTuple):
    """One state of a task a conditional write expects: its write count, and its creation
    time (which tells a task from a later one that reused its id)."""

    number: int
    created_at: datetime


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
        params["after_value"], params["after_id"] = cursor["k"]
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
    next_cursor = None
    if len(rows) == page_size:
        last = rows[-1]
        next_cursor = encode_cursor(sort, order, _cursor_text(last[sort]), last["id"])
    meta = page_meta(
        page=None if cursor is not None else page,
        page_size=page_size,
        total=count,
        next_cursor=next_cursor,
    )
    return {"data": rows, "meta": meta}


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
        after = tuple_(column, row_id)
        bound = tuple_(bindparam("after_value", type_=tasks.c[sort].type), bindparam("after_id"))
        query = query.where(after < bound if descending else after > bound)
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


def _cursor_text(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


def get_task(user_id: int, task_id: int) -> dict:
    """The user's task (else NotFound)."""
    task = db.session.execute(
        select(*_tasks().c).where(_tasks().c.id == task_id, _tasks().c.user_id == user_id)
    ).one_or_none()
    if task is None:
        raise NotFound(NOT_FOUND)
    return task._asdict()


def create_task(user_id: int, *, fields: dict) -> dict:
    """Create a task owned by the user."""
    statement = insert(_tasks()).values(user_id=user_id, **fields).returning(*_tasks().c)
    task = db.session.execute(statement).one()._asdict()
    db.session.commit()
    return task


def update_task(
    user_id: int, task_id: int, *, changes: dict, expected: Sequence[Version] | None = None
) -> dict:
    """Apply changes (some or all writable fields); with ``expected``, only while the task is
    at one of those versions (else PreconditionFailed).

    One ``UPDATE ... WHERE id AND user_id [AND version] RETURNING``: the database settles a
    race, so of two writers expecting one version exactly one wins, and a write without a
    condition is applied to whatever row it finds (last writer wins). A change that changes
    nothing keeps the version and updated_at (so the ETag too).
    """
    tasks = _tasks()
    changed = or_(false(), *(tasks.c[name].is_distinct_from(v) for name, v in changes.items()))
    statement = (
        update(tasks)
        .where(*_target(user_id, task_id, expected))
        .values(
            **changes,
            version=case((changed, tasks.c.version + 1), else_=tasks.c.version),
            updated_at=case((changed, func.now()), else_=tasks.c.updated_at),
        )
        .returning(*tasks.c)
    )
    task = db.session.execute(statement).one_or_none()
    if task is None:
        _refuse(user_id, task_id)
    db.session.commit()
    return task._asdict()


def delete_task(user_id: int, task_id: int, *, expected: Sequence[Version] | None = None) -> None:
    """Delete the user's task; with ``expected``, only while it is at one of those versions."""
    statement = (
        delete(_tasks()).where(*_target(user_id, task_id, expected)).returning(_tasks().c.id)
    )
    if db.session.execute(statement).one_or_none() is None:
        _refuse(user_id, task_id)
    db.session.commit()


def _tasks():
    return Task.__table__


def _target(user_id: int, task_id: int, expected: Sequence[Version] | None) -> list:
    """The WHERE of a write to one task: the user's, and at an expected version if any."""
    tasks = _tasks()
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
    db.session.rollback()
    exists = select(_tasks().c.id).where(_tasks().c.id == task_id, _tasks().c.user_id == user_id)
    if db.session.scalar(exists) is not None:
        raise PreconditionFailed(STALE)
    raise NotFound(NOT_FOUND)
