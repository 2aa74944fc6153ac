"""Task rules and queries, always scoped to the acting user."""

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple, NoReturn

from flask import current_app
from fractional_indexing import generate_key_between
from sqlalchemy import (
    Date,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from taskapp.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from taskapp.extensions import db
from taskapp.pagination import after_keys, keyset_page
from taskapp.sync import service as sync
from taskapp.tasks import recurrence
from taskapp.tasks.models import (
    Label,
    LabelCount,
    Task,
    TaskCount,
    TaskDueCount,
    TaskList,
    TaskPriorityCount,
    task_labels,
)

STALE = "The task has changed since that ETag was read; fetch it again"
NOT_FOUND = "Task not found"
QUOTA = "Task limit reached: a user may have at most {limit} tasks; delete some first"
TASK_LIST = "tasks"  # the cursor_list of TaskQuerySchema
LIKE_ESCAPE = "/"
# From this many skipped rows on, an offset page finds its rows by a deferred join (see
# _page_statement). Below it, the plain index scan is cheaper: the join costs about 0.15 ms.
DEFERRED_JOIN_OFFSET = 1_000
# Between the names of a task's labels in tasks.label_names (chr(31) in migration 0006's
# triggers): a control character, which LabelName refuses, so never part of a name.
LABEL_SEPARATOR = "\x1f"


class Version(NamedTuple):
    """One state of a task a conditional write expects: its write count, and its creation
    time (which tells a task from a later one that reused its id)."""

    number: int
    created_at: datetime


# Filters of GET /tasks beyond completed and search, by the name of their bound parameter.
# What the rules read of a task they lock: its placement, and its recurrence state.
LOCKED_COLUMNS = ("id", "list_id", "parent_id", "recurrence", "due_at", "completed")
FILTERS = ("list_id", "parent_id", "priority", "label", "due_after", "due_before", "overdue")
# The filter shapes whose total the kept due-day counts give (TaskDueCount), when the range
# spans more than one day: (the parameter of its lower bound, of its upper bound).
DUE_RANGES = {
    ("due_after",): ("due_after", None),
    ("due_before",): (None, "due_before"),
    ("due_after", "due_before"): ("due_after", "due_before"),
    ("overdue",): (None, "now"),
}
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
) -> dict:
    """One page of the user's tasks, filtered and totally ordered (ties broken by id).

    The page comes by offset (``page``) or by keyset (``cursor``, from a previous page's
    ``meta.next_cursor``), and with its total and its tasks' labels in the same round trip.
    Without a search, the total of no filter, a list or the inbox, ``priority``, one label
    (without ``completed``), a due range or ``overdue`` (each alone) is read from the kept
    counts (TaskCount, TaskList, TaskPriorityCount, LabelCount, TaskDueCount: a due range
    sums its whole days and counts the tasks of its first and last day), so no total counts
    a heavy user's rows; with several labels alone it is counted in task_labels; otherwise
    the matches are counted (their number, not the user's, sets the cost), unless
    ``include_total`` is false.
    ``filters``: any of FILTERS (``list_id=None``: the inbox).
    """
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
            label_ids = _label_ids(user_id, value)
            if label_ids is None:
                # A label the user does not have: nothing matches, nothing to ask.
                empty = 0 if include_total else None
                return keyset_page(
                    TASK_LIST,
                    [],
                    sort=sort,
                    order=order,
                    page=None if cursor is not None else page,
                    page_size=page_size,
                    total=empty,
                )
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
    due_days = include_total and not search and _bind_due_days(params, tuple(shape), completed)
    statement, total = _page_statement(
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
        row["labels"] = _split_labels(row.pop("label_names"))
    if total is None:
        count = None
    else:
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
    """The user's tasks changed and deleted since the ``since`` sync token, and the next one
    (each changed task with its labels, as GET /tasks/{id} shows it)."""
    changed, deleted, token, has_more = sync.read_changes(
        user_id, kind="task", table=Task.__table__, token=since, limit=limit
    )
    names = _labels_of([task["id"] for task in changed])
    changed = [{**task, "labels": names.get(task["id"], [])} for task in changed]
    return {"changed": changed, "deleted": deleted, "sync_token": token, "has_more": has_more}


@functools.cache
def _page_statement(
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
    """The page query of one shape of list, and its total alone (None unless ``counted``),
    built once per shape.

    ``paging`` is "keyset" (after a cursor), "keyset_null" (after a task without a due date,
    in the due_at sort), "offset", or "deferred" (an offset by deferred join; never with a
    search, whose matches are already read once). ``filters`` names the filters present (see
    list_tasks); ``due_days``: the due range's days are bound (_bind_due_days). Values come as
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
        only_labels = len(filters) == 1 and filters[0].startswith("label:")
        if only_labels and not searching and completed is None:
            total = _labelled_total(int(filters[0].split(":")[1]))
        elif filters == ("priority",) and not searching:
            total = _kept_priority_total(completed)
        elif due_days:
            # overdue: the open tasks only, whatever ``completed`` (None or False) says.
            kept_completed = False if filters == ("overdue",) else completed
            total = _kept_due_total(kept_completed, *DUE_RANGES[filters])
        elif filters in (("list_id",), ("inbox",)) and not searching:
            total = _kept_list_total(filters[0], completed)
        elif filters or searching:
            total = select(func.count()).where(*conditions).scalar_subquery()
        else:
            total = _kept_total(completed)
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
    page = query
    if not counted:
        return page.order_by(*ordering).limit(bindparam("limit")), None
    page = page.add_columns(total.label("total"))
    return page.order_by(*ordering).limit(bindparam("limit")), select(total)


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


def _label_ids(user_id: int, names: list[str]) -> list[int] | None:
    """The ids of the user's labels with these names (case-insensitive), or None if the user
    has not every one of them."""
    keys = {name.casefold() for name in names}
    labels = Label.__table__
    ids = db.session.scalars(
        select(labels.c.id).where(labels.c.user_id == user_id, labels.c.key.in_(keys))
    ).all()
    return sorted(ids) if len(ids) == len(keys) else None


def _labelled_total(count: int):
    """How many tasks carry all ``count`` labels bound as label_0 ...: counted in task_labels
    alone (one label: its kept count, LabelCount). The labels are the user's, and a user's
    labels are only ever on the user's tasks, so no task row is read (counting a label's
    125,000 links this way took 10 ms, against 400 ms joining each to its task to check its
    owner)."""
    if count == 1:  # one label: its kept count (LabelCount)
        counts = LabelCount.__table__
        kept = select(counts.c.tasks).where(counts.c.label_id == bindparam("label_0"))
        return func.coalesce(kept.scalar_subquery(), 0)
    first = task_labels.alias("first_label")
    others = [
        exists().where(
            task_labels.c.task_id == first.c.task_id,
            task_labels.c.label_id == bindparam(f"label_{n}"),
        )
        for n in range(1, count)
    ]
    return (
        select(func.count())
        .select_from(first)
        .where(first.c.label_id == bindparam("label_0"), *others)
        .scalar_subquery()
    )


def _now():
    """The request's time, bound as ``now`` (list_tasks): the page and its total, counted or
    kept, compare due dates with the same instant."""
    return bindparam("now", type_=Task.__table__.c.due_at.type)


def _bind_due_days(params: dict, shape: tuple[str, ...], completed: bool | None) -> bool:
    """Bind the days of a due range (a shape of DUE_RANGES) that spans more than one UTC day,
    and say whether it does: ``first_day`` and ``last_day`` bound the days counted whole (the
    lower bound's next day, the upper bound's own day, excluded), ``low_day_end`` and
    ``high_day_start`` the parts of the bounds' days counted task by task. A range within one
    day, or empty, is counted as any filter is: it costs that day's tasks at most. So are
    overdue completed tasks (there are none)."""
    if shape not in DUE_RANGES or (shape == ("overdue",) and completed):
        return False
    low, high = (params[name] if name else None for name in DUE_RANGES[shape])
    if low is not None and high is not None and (low >= high or _day(low) == _day(high)):
        return False
    if low is not None:
        try:
            params["low_day_end"] = _day(low) + timedelta(days=1)
        except OverflowError:  # from 9999-12-31 on: a range within its one day, counted
            return False
        params["first_day"] = params["low_day_end"].date()
    if high is not None:
        params["high_day_start"] = _day(high)
        params["last_day"] = params["high_day_start"].date()
    return True


def _day(moment: datetime) -> datetime:
    """The start of the UTC day of ``moment``."""
    return datetime.combine(moment.astimezone(UTC).date(), time(), tzinfo=UTC)


def _kept_priority_total(completed: bool | None):
    """How many of the user's tasks (all, completed or open) have a priority bound as
    ``priority``: summed from TaskPriorityCount, as a scalar subquery."""
    counts = TaskPriorityCount.__table__
    kept = select(func.sum(_kept_column(counts, completed))).where(
        counts.c.user_id == bindparam("user_id"),
        counts.c.priority.in_(bindparam("priority", expanding=True)),
    )
    return func.coalesce(kept.scalar_subquery(), 0)


def _kept_due_total(completed: bool | None, low: str | None, high: str | None):
    """How many of the user's tasks (all, completed or open) are due from the bound ``low``
    (inclusive) to the bound ``high`` (exclusive), either open-ended if None: the days between
    summed from TaskDueCount, the tasks of the bounds' own days counted in the due index
    (bound by _bind_due_days), as a scalar subquery."""
    counts, tasks = TaskDueCount.__table__, Task.__table__
    due = tasks.c.due_at

    def counted(start: str, end: str):
        conditions = [
            tasks.c.user_id == bindparam("user_id"),
            due >= bindparam(start, type_=due.type),
            due < bindparam(end, type_=due.type),
        ]
        if completed is not None:
            conditions.append(tasks.c.completed.is_(completed))
        return select(func.count()).where(*conditions).scalar_subquery()

    days = [counts.c.user_id == bindparam("user_id")]
    total = []
    if low is not None:
        days.append(counts.c.due_on >= bindparam("first_day", type_=Date()))
        total.append(counted(low, "low_day_end"))
    if high is not None:
        days.append(counts.c.due_on < bindparam("last_day", type_=Date()))
        total.append(counted("high_day_start", high))
    kept = select(func.sum(_kept_column(counts, completed))).where(*days).scalar_subquery()
    return sum(total, func.coalesce(kept, 0))


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


def _split_labels(names: str | None) -> list[str]:
    """A task's label_names (kept by triggers) as a list, in the order of their keys."""
    return sorted(names.split(LABEL_SEPARATOR), key=str.casefold) if names else []


def _kept_total(completed: bool | None):
    """The user's task count (all, completed or open) from TaskCount, as a scalar subquery."""
    counts = TaskCount.__table__
    kept = (
        select(_kept_column(counts, completed))
        .where(counts.c.user_id == bindparam("user_id"))
        .scalar_subquery()
    )
    return func.coalesce(kept, 0)


def _kept_list_total(which: str, completed: bool | None):
    """The task count (all, completed or open) of the list bound as list_id (``which``
    "list_id") or of the inbox ("inbox": the user's count less those of the user's lists),
    from the kept counts of TaskList and TaskCount, as a scalar subquery."""
    lists = TaskList.__table__
    column = _kept_column(lists, completed)
    if which == "list_id":
        kept = select(column).where(
            lists.c.id == bindparam("list_id"), lists.c.user_id == bindparam("user_id")
        )
        return func.coalesce(kept.scalar_subquery(), 0)
    in_lists = select(func.coalesce(func.sum(column), 0)).where(
        lists.c.user_id == bindparam("user_id")
    )
    return _kept_total(completed) - in_lists.scalar_subquery()


def _kept_column(table, completed: bool | None):
    """Of a table with kept ``total`` and ``completed`` counts: all, completed or open."""
    return {
        None: table.c.total,
        True: table.c.completed,
        False: table.c.total - table.c.completed,
    }[completed]


def _escape_like(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE LIKE_ESCAPE: no wildcard in it is live."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def get_task(user_id: int, task_id: int) -> dict:
    """The user's task (else NotFound)."""
    task = db.session.execute(
        select(*_tasks().c).where(_tasks().c.id == task_id, _tasks().c.user_id == user_id)
    ).one_or_none()
    if task is None:
        raise NotFound(NOT_FOUND)
    return _with_labels(task)


def create_task(user_id: int, *, fields: dict) -> dict:
    """Create a task owned by the user, in its list (NotFound if not the user's)."""
    fields = dict(fields)
    labels = fields.pop("labels", [])
    lock_user_tasks(user_id)
    _place(user_id, None, fields)
    if fields.get("completed"):
        fields["completed_at"] = func.now()
    fields["position"] = _end_of_list(user_id, fields.get("list_id"))
    statement = insert(_tasks()).values(user_id=user_id, **fields).returning(*_tasks().c)
    task = db.session.execute(statement).one()
    check_task_quota(user_id)
    _set_labels(user_id, task.id, labels)
    task = _with_labels(task)
    db.session.commit()
    return task


def check_task_quota(user_id: int) -> None:
    """Call after inserting a user's new tasks: Conflict, rolled back, if the user now owns
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
    tasks = _tasks()
    changes = dict(changes)
    labels = changes.pop("labels", None)
    lock_user_tasks(user_id)
    _place(user_id, task_id, changes)
    if {"recurrence", "due_at"} & changes.keys() or changes.get("completed"):
        _recur(_lock_task(user_id, task_id), changes)
    relabelled = False
    if labels is not None:
        _lock_task(user_id, task_id)
        relabelled = _set_labels(user_id, task_id, labels)
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
    statement = (
        update(tasks).where(*_target(user_id, task_id, expected)).values(values).returning(*tasks.c)
    )
    task = db.session.execute(statement).one_or_none()
    if task is None:
        _refuse(user_id, task_id)
    if "list_id" in changes:
        _subtasks_follow(task)
    task = _with_labels(task)
    db.session.commit()
    return task


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
    None for the inbox) list, or at the end of that list, by giving it a key between its new
    neighbours' keys: no other task is renumbered.

    The list's lock (see _lock_list_order) makes the read of the neighbours and the write one
    step, so two moves or creates in one list never produce one key twice. A subtask stays in
    its parent's list; a parent's subtasks follow it to another list.
    """
    tasks = _tasks()
    lock_user_tasks(user_id)
    current = _lock_task(user_id, task_id)
    anchor_id = after if after is not None else before
    if anchor_id == task_id:
        raise Unprocessable("A task cannot be placed next to itself")
    anchor = None
    if anchor_id is not None:
        anchor = db.session.execute(
            select(tasks.c.list_id, tasks.c.position).where(
                tasks.c.id == anchor_id, tasks.c.user_id == user_id
            )
        ).one_or_none()
        if anchor is None:
            raise NotFound("The task to place it next to is not found")
    if list_id is not UNSET:
        _check_list(user_id, list_id)
        target = list_id
    else:
        target = anchor.list_id if anchor is not None else current.list_id
    if anchor is not None and anchor.list_id != target:
        raise Unprocessable("The task to place it next to is in another list")
    if current.parent_id is not None and target != current.list_id:
        raise Unprocessable("A subtask is in its parent's list")
    _lock_list_order(user_id, target)
    others = [*_in_list(user_id, target), tasks.c.id != task_id]
    if anchor is None:
        position = _end_of_list(user_id, target, locked=True, excluding=task_id)
    elif after is not None:
        following = select(func.min(tasks.c.position)).where(
            *others, tasks.c.position > anchor.position
        )
        position = generate_key_between(anchor.position, db.session.scalar(following))
    else:
        preceding = select(func.max(tasks.c.position)).where(
            *others, tasks.c.position < anchor.position
        )
        position = generate_key_between(db.session.scalar(preceding), anchor.position)
    statement = (
        update(tasks)
        .where(*_target(user_id, task_id, expected))
        .values(position=position, list_id=target, **_touched())
        .returning(*tasks.c)
    )
    task = db.session.execute(statement).one_or_none()
    if task is None:
        _refuse(user_id, task_id)
    _subtasks_follow(task)
    task = _with_labels(task)
    db.session.commit()
    return task


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

    The user's writes are serialised first (lock_user_tasks), then the rows are locked in id
    order; each action is then one statement over them all where it can be, so the kept
    counts and the change log follow by their triggers.
    """
    tasks = _tasks()
    wanted = sorted(set(ids))
    lock_user_tasks(user_id)
    rows = db.session.execute(
        select(*(tasks.c[name] for name in LOCKED_COLUMNS))
        .where(tasks.c.user_id == user_id, tasks.c.id.in_(wanted))
        .order_by(tasks.c.id)
        .with_for_update()
    ).all()
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
            .values(completed=done, completed_at=func.now() if done else None, **_touched())
        )
    elif action == "delete":
        statement = delete(tasks).where(chosen)
    elif action == "move":
        changed = _bulk_move(user_id, rows, list_id)
        return _bulk_result(action, changed)
    else:
        changed = _bulk_label(user_id, wanted, labels, remove=action == "unlabel")
        return _bulk_result(action, changed)
    changed = db.session.scalars(statement.returning(tasks.c.id)).all()
    return _bulk_result(action, [*changed, *advanced])


def _advance_recurring(rows) -> list[int]:
    """Move the open recurring tasks among the locked rows to their next occurrence; their
    ids (not those whose last occurrence this was: those are completed as any task)."""
    tasks = _tasks()
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
            .values(due_at=due_at, recurrence=rule, **_touched())
        )
        advanced.append(row.id)
    return advanced


def _bulk_result(action: str, changed: Sequence[int]) -> dict:
    db.session.commit()
    return {"action": action, "ids": sorted(changed)}


def _bulk_move(user_id: int, rows, list_id: int | None) -> list[int]:
    """Move the locked tasks to the end of a list, in id order; a subtask only with its
    parent (it stays in its parent's list), and a parent's subtasks follow it."""
    tasks = _tasks()
    _check_list(user_id, list_id)
    moving = {row.id for row in rows}
    if any(row.parent_id is not None and row.parent_id not in moving for row in rows):
        raise Unprocessable("A subtask is in its parent's list: move its parent")
    _lock_list_order(user_id, list_id)
    last = db.session.scalar(
        select(func.max(tasks.c.position)).where(
            *_in_list(user_id, list_id), tasks.c.id.not_in(moving)
        )
    )
    changed = []
    for row in rows:
        last = generate_key_between(last, None)
        task = db.session.execute(
            update(tasks)
            .where(tasks.c.id == row.id)
            .values(position=last, list_id=list_id, **_touched())
            .returning(*tasks.c)
        ).one()
        _subtasks_follow(task)
        changed.append(row.id)
    return changed


def _bulk_label(user_id: int, ids: list[int], names: Sequence[str], *, remove: bool) -> list[int]:
    """Add labels to (or remove them from) the locked tasks; the tasks whose labels changed
    get a new version."""
    tasks = _tasks()
    keys = label_keys(names)
    if remove:
        labels = Label.__table__
        label_ids = list(
            db.session.scalars(
                select(labels.c.id).where(labels.c.user_id == user_id, labels.c.key.in_(keys))
            )
        )
        gone = db.session.execute(
            delete(task_labels)
            .where(task_labels.c.task_id.in_(ids), task_labels.c.label_id.in_(label_ids))
            .returning(task_labels.c.task_id)
        )
        changed = {row.task_id for row in gone}
    else:
        label_ids = list(ensure_labels(user_id, keys).values())
        present = {
            (row.task_id, row.label_id)
            for row in db.session.execute(
                select(task_labels.c.task_id, task_labels.c.label_id).where(
                    task_labels.c.task_id.in_(ids), task_labels.c.label_id.in_(label_ids)
                )
            )
        }
        missing = [
            {"task_id": task_id, "label_id": label_id}
            for task_id in ids
            for label_id in label_ids
            if (task_id, label_id) not in present
        ]
        if missing:
            db.session.execute(insert(task_labels), missing)
        changed = {row["task_id"] for row in missing}
    if changed:
        db.session.execute(update(tasks).where(tasks.c.id.in_(changed)).values(**_touched()))
    return sorted(changed)


def delete_task(user_id: int, task_id: int, *, expected: Sequence[Version] | None = None) -> None:
    """Delete the user's task; with ``expected``, only while it is at one of those versions."""
    lock_user_tasks(user_id)
    statement = (
        delete(_tasks()).where(*_target(user_id, task_id, expected)).returning(_tasks().c.id)
    )
    if db.session.execute(statement).one_or_none() is None:
        _refuse(user_id, task_id)
    db.session.commit()


def label_keys(names: Sequence[str]) -> dict[str, str]:
    """Label names by their key (case-folded), the first spelling of each kept."""
    keys: dict[str, str] = {}
    for name in names:
        keys.setdefault(name.casefold(), name)
    return keys


def _check_list(user_id: int, list_id: int | None) -> None:
    """NotFound unless ``list_id`` is None (the inbox) or one of the user's lists. The caller
    holds the user's lock (lock_user_tasks), which deleting a list takes too: the list is still
    there when the caller writes."""
    if list_id is None:
        return
    lists = TaskList.__table__
    found = select(lists.c.id).where(lists.c.id == list_id, lists.c.user_id == user_id)
    if db.session.scalar(found) is None:
        raise NotFound("List not found")


def lock_user_tasks(user_id: int) -> None:
    """Take the lock of the user's task_counts row first in every write to the user's tasks
    (or to rows they reference: lists, labels), until the commit.

    Every write of a task takes that lock anyway, by the count and change-stamp triggers
    (migrations 0003, 0006), and holds it to the commit; taken after other rows (a task, a
    parent, a list, a label, a list's order lock), it would wait for a writer that waits for
    those rows: a deadlock. Taken first, the user's writers queue on it instead. The row is
    made if missing (a user's first task), so there is always one to queue on. SQLite writes
    one transaction at a time: nothing to do.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.execute(
        postgresql.insert(TaskCount.__table__)
        .values(user_id=user_id)
        .on_conflict_do_update(
            index_elements=["user_id"], set_={"user_id": TaskCount.__table__.c.user_id}
        )
    )


def _lock_task(user_id: int, task_id: int, *, missing: str = NOT_FOUND):
    """Lock the user's task row until the commit and return what the rules read of it;
    NotFound(``missing``) if there is none."""
    tasks = _tasks()
    locked = (
        select(*(tasks.c[name] for name in LOCKED_COLUMNS))
        .where(tasks.c.id == task_id, tasks.c.user_id == user_id)
        .with_for_update()
    )
    row = db.session.execute(locked).one_or_none()
    if row is None:
        raise NotFound(missing)
    return row


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


def _touched() -> dict:
    """The SET of a write that changes a task: a new version (so ETag), a new updated_at."""
    tasks = _tasks()
    return {"version": tasks.c.version + 1, "updated_at": func.now()}


def _subtasks_follow(task) -> None:
    """A parent's subtasks follow it into its list (keeping their keys: a key is only
    compared within a list, and theirs stay distinct)."""
    tasks = _tasks()
    db.session.execute(
        update(tasks)
        .where(tasks.c.parent_id == task.id, tasks.c.list_id.is_distinct_from(task.list_id))
        .values(list_id=task.list_id, **_touched())
    )


def _lock_list_order(user_id: int, list_id: int | None) -> None:
    """Serialise the writers of one list's order (the inbox: list 0) until the commit.

    A transaction-scoped advisory lock on PostgreSQL; SQLite runs one writer at a time anyway.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(user_id, list_id or 0)))


def _end_of_list(
    user_id: int, list_id: int | None, *, locked: bool = False, excluding: int | None = None
) -> str:
    """A key after every task of the list (taking the list's order lock unless ``locked``)."""
    if not locked:
        _lock_list_order(user_id, list_id)
    tasks = _tasks()
    last = select(func.max(tasks.c.position)).where(
        *_in_list(user_id, list_id), tasks.c.id != (excluding or 0)
    )
    return generate_key_between(db.session.scalar(last), None)


def _in_list(user_id: int, list_id: int | None) -> list:
    """The conditions of the user's tasks in a list (None: the inbox), as the index has them."""
    tasks = _tasks()
    in_list = tasks.c.list_id.is_(None) if list_id is None else tasks.c.list_id == list_id
    return [tasks.c.user_id == user_id, in_list]


def _place(user_id: int, task_id: int | None, fields: dict) -> None:
    """Check the list and parent of a new (``task_id`` None) or changed task: the list must be
    the user's, a parent the user's and top-level, a task with subtasks cannot get a parent,
    and a subtask is in its parent's list (it takes the parent's list_id; another one, not
    null, is refused).

    The rows are locked (the task first, then its parent), so two requests cannot together
    build a second level: making P a subtask waits for, or is seen by, a request giving P a
    subtask.
    """
    if "list_id" not in fields and "parent_id" not in fields:
        return
    _check_list(user_id, fields.get("list_id"))
    current = _lock_task(user_id, task_id) if task_id is not None else None
    parent_id = fields.get("parent_id", current.parent_id if current else None)
    if parent_id is None:
        return
    if parent_id == task_id:
        raise Unprocessable("A task cannot be its own parent")
    tasks = _tasks()
    if task_id is not None and "parent_id" in fields:
        has_subtasks = select(tasks.c.id).where(tasks.c.parent_id == task_id).limit(1)
        if db.session.scalar(has_subtasks) is not None:
            raise Unprocessable("A task with subtasks cannot become a subtask")
    parent = _lock_task(user_id, parent_id, missing="Parent task not found")
    if parent.parent_id is not None:
        raise Unprocessable("A subtask cannot have subtasks: subtasks are one level deep")
    if fields.get("list_id") not in (None, parent.list_id):
        raise Unprocessable("A subtask is in its parent's list")
    fields["list_id"] = parent.list_id


def _set_labels(user_id: int, task_id: int, names: Sequence[str]) -> bool:
    """Give the task exactly these labels (creating the user's unknown ones); whether that
    changed its labels. The caller holds the task (just inserted, or locked)."""
    keys = label_keys(names)
    wanted = set(ensure_labels(user_id, keys).values())
    current = set(
        db.session.scalars(select(task_labels.c.label_id).where(task_labels.c.task_id == task_id))
    )
    if wanted == current:
        return False
    if current - wanted:
        db.session.execute(
            delete(task_labels).where(
                task_labels.c.task_id == task_id, task_labels.c.label_id.in_(current - wanted)
            )
        )
    if wanted - current:
        db.session.execute(
            insert(task_labels),
            [{"task_id": task_id, "label_id": label_id} for label_id in wanted - current],
        )
    return True


def ensure_labels(user_id: int, keys: dict[str, str]) -> dict[str, int]:
    """The ids of the user's labels with these keys (``{key: name}``), creating the missing
    ones; two requests creating one label at once both end with the same row."""
    if not keys:
        return {}
    labels = Label.__table__
    dialect = db.session.get_bind().dialect.name
    new = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(labels)
    db.session.execute(
        new.values(
            [{"user_id": user_id, "key": key, "name": name} for key, name in keys.items()]
        ).on_conflict_do_nothing(index_elements=["user_id", "key"])
    )
    found = select(labels.c.key, labels.c.id).where(
        labels.c.user_id == user_id, labels.c.key.in_(keys)
    )
    return dict(db.session.execute(found).all())


def _with_labels(task) -> dict:
    """A task row as a dict with its label names (sorted case-insensitively)."""
    return {**task._asdict(), "labels": _labels_of([task.id]).get(task.id, [])}


def _labels_of(task_ids: Sequence[int]) -> dict[int, list[str]]:
    """The label names of these tasks (sorted case-insensitively), by task id, in one query."""
    if not task_ids:
        return {}
    labels = Label.__table__
    rows = db.session.execute(
        select(task_labels.c.task_id, labels.c.name)
        .join(task_labels, task_labels.c.label_id == labels.c.id)
        .where(task_labels.c.task_id.in_(task_ids))
        .order_by(task_labels.c.task_id, labels.c.key)
    )
    names: dict[int, list[str]] = {}
    for task_id, name in rows:
        names.setdefault(task_id, []).append(name)
    return names


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
