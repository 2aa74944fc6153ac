"""Reading pages of tasks: filters, sorts, search, cursors; and the sync feed."""

import functools
from datetime import UTC, datetime

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select

from taskapp.extensions import db
from taskapp.pagination import after_keys, keyset_page
from taskapp.sync import service as sync
from taskapp.tasks import labelling
from taskapp.tasks.models import Task, task_labels
from taskapp.tasks.totals import bind_due_days, change_stamp_of, split_labels, total_of

TASK_LIST = "tasks"  # the cursor_list of TaskQuerySchema
LIKE_ESCAPE = "/"
# From this many skipped rows on, an offset page finds its rows by a deferred join (see
# page_statement). Below it, the plain index scan is cheaper: the join costs about 0.15 ms.
DEFERRED_JOIN_OFFSET = 1_000
# Filters of GET /tasks beyond completed and search, by the name of their bound parameter.
FILTERS = ("list_id", "parent_id", "priority", "label", "due_after", "due_before", "overdue")
UNSET = object()


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
    include_total: bool = True,
    **filters,
) -> tuple[dict, int]:
    """One page of the user's tasks, filtered and totally ordered (ties broken by id), and the
    user's change stamp as the page's statement read it (totals.change_stamp_of).

    The page comes by offset (``page``) or by keyset (``cursor``, from a previous page's
    ``meta.next_cursor``), and with its total and its tasks' labels in the same round trip.
    Without a search, the totals of the shapes totals.TOTALS names are read from kept
    counts (or counted in task_labels), so no total counts a heavy user's rows; otherwise the
    matches are counted (their number, not the user's, sets the cost), unless
    ``include_total`` is false.
    ``filters``: any of FILTERS (``list_id=None``: the inbox).
    """
    answer = functools.partial(
        keyset_page,
        TASK_LIST,
        sort=sort,
        order=order,
        page=None if cursor is not None else page,
        page_size=page_size,
    )
    params = {"user_id": user_id, "limit": page_size}
    if search:
        params["pattern"] = "%" + _escape_like(search) + "%"
    shape = []
    for name in FILTERS:
        value = filters.get(name, UNSET)
        if value is UNSET:
            continue
        if name == "list_id" and value is None:
            shape.append("inbox")
            continue
        if name == "parent_id" and value is None:
            shape.append("top_level")
            continue
        if name == "overdue":
            shape.append("overdue" if value else "not_overdue")
            params["now"] = datetime.now(UTC)
            continue
        if name == "label":
            label_ids = labelling.label_ids(user_id, value)
            if label_ids is None:
                # A label the user does not have: nothing matches, nothing to ask.
                return answer([], total=0 if include_total else None), _stamp(user_id)
            params.update((f"label_{n}", label_id) for n, label_id in enumerate(label_ids))
            shape.append(f"label:{len(label_ids)}")
            continue
        shape.append(name)
        params[name] = value
    if cursor is not None:
        params["after_value"], params["after_id"] = cursor["keys"]
        paging = "keyset" if params["after_value"] is not None else "keyset_null"
    else:
        params["offset"] = (page - 1) * page_size
        deep = not search and params["offset"] >= DEFERRED_JOIN_OFFSET
        paging = "deferred" if deep else "offset"
    due_days = include_total and not search and bind_due_days(params, tuple(shape), completed)
    statement, total = page_statement(
        sort,
        order,
        completed=completed,
        searching=bool(search),
        paging=paging,
        filters=tuple(shape),
        counted=include_total,
        due_days=due_days,
    )
    # Plain dicts, not ORM instances: a page is rendered, never changed, so identity and change
    # tracking would be spent for nothing; and a dict is what the schema reads fastest.
    rows = [row._asdict() for row in db.session.execute(statement, params)]
    for row in rows:
        row["labels"] = split_labels(row.pop("label_names"))
    if rows:
        count, stamp = rows[0].get("total"), rows[0]["stamp"]
    elif total is None:
        count, stamp = None, _stamp(user_id)
    else:
        # Past the end there is no row to carry the total: ask for it alone.
        count, stamp = db.session.execute(total, params).one()
    return answer(rows, total=count), stamp


def _stamp(user_id: int) -> int:
    return db.session.scalar(select(change_stamp_of(user_id)))


def list_task_changes(user_id: int, *, since: str | None = None, limit: int = 100) -> dict:
    """The user's tasks changed and deleted since the ``since`` sync token, and the next one
    (each changed task with its labels, as GET /tasks/{id} shows it)."""
    changed, deleted, token, has_more = sync.read_changes(
        user_id, kind="task", table=Task.__table__, token=since, limit=limit
    )
    names = labelling.labels_of([task["id"] for task in changed])
    changed = [{**task, "labels": names.get(task["id"], [])} for task in changed]
    return {"changed": changed, "deleted": deleted, "sync_token": token, "has_more": has_more}


@functools.cache
def page_statement(
    sort: str,
    order: str,
    *,
    completed: bool | None,
    searching: bool,
    paging: str,
    filters: tuple[str, ...] = (),
    counted: bool = True,
    due_days: bool = False,
) -> tuple[Select, Select | None]:
    """The page query of one shape of list (each row carries the change stamp, and the total
    if ``counted``), and its total with the stamp alone (None unless ``counted``), built once
    per shape.

    ``paging`` is "keyset" (after a cursor), "keyset_null" (after a task without a due date,
    in the due_at sort), "offset", or "deferred" (an offset by deferred join; never with a
    search, whose matches are already read once). ``filters`` names the filters present (see
    list_tasks); ``due_days``: the due range's days are bound (totals.bind_due_days). Values come as
    bound parameters (user_id, limit, offset or after_value and after_id, pattern, now, the
    filters' values), so each request only binds them: building the statement cost more than
    running it.
    """
    tasks = Task.__table__
    conditions = [tasks.c.user_id == bindparam("user_id"), *_filter_conditions(filters)]
    if completed is not None:
        conditions.append(tasks.c.completed.is_(completed))
    if searching:
        pattern = bindparam("pattern", type_=tasks.c.title.type)
        conditions.append(
            or_(
                tasks.c.title.ilike(pattern, escape=LIKE_ESCAPE),
                tasks.c.description.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    if searching and counted:
        # The matches are found once (the trigram index) and both counted and paged.
        source = select(tasks).where(*conditions).cte("matches").prefix_with("MATERIALIZED")
        total = select(func.count()).select_from(source).scalar_subquery()
        query = select(source)
    else:
        source = tasks
        total = None if searching else total_of(filters, completed=completed, due_days=due_days)
        if total is None:
            total = select(func.count()).where(*conditions).scalar_subquery()
        query = select(tasks).where(*conditions)
    column, row_id = source.c[sort], source.c.id
    descending = order == "desc"
    ordering = _ordering(column, row_id, descending, nulls_last=sort == "due_at")
    if paging in ("keyset", "keyset_null"):
        query = query.where(
            _after(column, row_id, descending, null=paging == "keyset_null", sort=sort)
        )
    elif paging == "deferred":
        # The rows an offset skips are counted off in the list index alone (an index-only
        # scan: the index holds the filter, the sort key and the id), and only the page's own
        # rows are read from the table: a deep page no longer reads every row it skips.
        page_ids = (
            select(tasks.c.id)
            .where(*conditions)
            .order_by(*ordering)
            .offset(bindparam("offset"))
            .limit(bindparam("limit"))
            .subquery("page_ids")
        )
        query = select(tasks).join(page_ids, page_ids.c.id == tasks.c.id)
    else:
        query = query.offset(bindparam("offset"))
    # The ETag's change stamp rides on every row: no round trip of its own.
    stamp = change_stamp_of(bindparam("user_id")).label("stamp")
    page = query.add_columns(stamp)
    if not counted:
        return page.order_by(*ordering).limit(bindparam("limit")), None
    page = page.add_columns(total.label("total"))
    return page.order_by(*ordering).limit(bindparam("limit")), select(total, stamp)


def _filter_conditions(filters: tuple[str, ...]) -> list:
    """The WHERE conditions of the named filters, on bound parameters of the same names."""
    tasks = Task.__table__
    conditions = []
    for name in filters:
        if name == "inbox":
            conditions.append(tasks.c.list_id.is_(None))
        elif name == "list_id":
            conditions.append(tasks.c.list_id == bindparam("list_id"))
        elif name == "top_level":
            conditions.append(tasks.c.parent_id.is_(None))
        elif name == "parent_id":
            conditions.append(tasks.c.parent_id == bindparam("parent_id"))
        elif name == "priority":
            conditions.append(tasks.c.priority.in_(bindparam("priority", expanding=True)))
        elif name.startswith("label:"):
            conditions += [_has_label(f"label_{n}") for n in range(int(name.split(":")[1]))]
        elif name == "due_after":
            conditions.append(tasks.c.due_at >= bindparam("due_after", type_=tasks.c.due_at.type))
        elif name == "due_before":
            conditions.append(tasks.c.due_at < bindparam("due_before", type_=tasks.c.due_at.type))
        elif name == "overdue":
            conditions.append(and_(tasks.c.due_at < _now(), tasks.c.completed.is_(False)))
        elif name == "not_overdue":
            conditions.append(
                or_(
                    tasks.c.due_at.is_(None),
                    tasks.c.due_at >= _now(),
                    tasks.c.completed.is_(True),
                )
            )
    return conditions


def _has_label(parameter: str):
    """The condition that a task carries the label whose id is bound to ``parameter``.

    One EXISTS per label, on the label's id (resolved first): the planner then knows from the
    statistics how common the label is, and walks the sort index probing
    ``(task_id, label_id)`` for a page, where a GROUP BY over every task of the label, its
    count guessed, read and sorted all of them (1.3 s for a label of 125,000 tasks).
    """
    tasks = Task.__table__
    return exists().where(
        task_labels.c.task_id == tasks.c.id, task_labels.c.label_id == bindparam(parameter)
    )


def _ordering(column, row_id, descending: bool, *, nulls_last: bool) -> tuple:
    """ORDER BY the sort column, then id, in one direction (NULLs last if asked)."""
    first = column.desc() if descending else column.asc()
    if nulls_last:
        first = first.nulls_last()
    return first, (row_id.desc() if descending else row_id.asc())


def _after(column, row_id, descending: bool, *, null: bool, sort: str):
    """The keyset condition: the rows after (:after_value, :after_id) in the page's order.

    In the due_at order the tasks without a due date come last: after one of them come only
    the others without one; after a dated one, the later dated ones and every undated one.
    """
    after_id = bindparam("after_id")
    if null:
        return and_(column.is_(None), row_id < after_id if descending else row_id > after_id)
    bound = [bindparam("after_value", type_=Task.__table__.c[sort].type), after_id]
    condition = after_keys([column, row_id], bound, descending=descending)
    return or_(condition, column.is_(None)) if sort == "due_at" else condition


def _escape_like(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE LIKE_ESCAPE: no wildcard in it is live."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def _now():
    """The request's time, bound as ``now`` (list_tasks): the page and its total, counted or
    kept, compare due dates with the same instant."""
    return bindparam("now", type_=Task.__table__.c.due_at.type)
