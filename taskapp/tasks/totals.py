"""The registry of totals: for each filter, kept (from which table) or counted; and the rules
the triggers that keep the counts and this Python must agree on, written once.

A kept count is its base row plus the sum of its delta rows. Whoever writes tasks or links
(the services, a cascade, a bulk load), a trigger appends what the statement changes to the
delta tables in the writer's transaction (migration 0009: task_count_deltas, one row per user,
list, priority and due day a statement touches; label_count_deltas), which locks nothing
another writer waits for; task_counts_fold() (fold_counts) moves a user's delta rows into the
base rows: task_counts (0003; its ``stamp``, 0005), lists' ``total``/``completed`` (0006),
task_priority_counts, task_due_counts and label_counts (0007). tasks.label_names is kept by
0006's triggers. Migrations are frozen history: the rules below document what their SQL does;
a change of a rule is a new migration and a change here, together.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import (
    Date,
    Integer,
    Select,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from taskapp.extensions import db
from taskapp.tasks.models import (
    LabelCount,
    Task,
    TaskCount,
    TaskDueCount,
    TaskList,
    TaskPriorityCount,
    label_count_deltas,
    task_count_deltas,
    task_labels,
)

# ---------------------------------------------------------------------------------------------
# The rules SQL and Python share.

# Between the names of a task's labels in tasks.label_names: chr(31) in migration 0006's
# task_label_names_apply() (SEPARATOR there). A control character, which LabelName refuses,
# so never part of a name.
LABEL_SEPARATOR = "\x1f"


def due_day(moment: datetime) -> date:
    """The day a due date counts on in task_due_counts: its UTC date, as migration 0007's
    ``(due_at AT TIME ZONE 'UTC')::date`` (tasks_due_count triggers) computes it."""
    return moment.astimezone(UTC).date()


def due_day_of(due_at: ColumnElement) -> ColumnElement:
    """due_day in SQL, as the triggers write it: ``(due_at AT TIME ZONE 'UTC')::date``."""
    return cast(func.timezone("UTC", due_at), Date)


def day_start(moment: datetime) -> datetime:
    """The start of the UTC day of ``moment`` (the first instant of its due_day)."""
    return datetime.combine(due_day(moment), time(), tzinfo=UTC)


def split_labels(names: str | None) -> list[str]:
    """A task's label_names (kept by 0006's triggers, LABEL_SEPARATOR between them, in the
    order of the labels' keys) as a list, sorted case-insensitively."""
    return sorted(names.split(LABEL_SEPARATOR), key=str.casefold) if names else []


def touched() -> dict:
    """The SET of a write that changes how a task reads: a new version (so a new ETag) and a
    new updated_at.

    When a version is bumped: a write that changes a task's fields, its labels, its list or
    its position; a change that changes nothing keeps both. Migration 0006's label triggers
    do the same (``_TOUCHED``: ``version = t.version + 1, updated_at = now()``) for the tasks
    of a label renamed or deleted; adding or removing a link through the services bumps in
    Python (labelling), the trigger then only rewrites label_names.
    """
    tasks = Task.__table__
    return {"version": tasks.c.version + 1, "updated_at": func.now()}


# ---------------------------------------------------------------------------------------------
# The kept counts, and how each is counted from the rows (what the triggers must keep).


class Kept(NamedTuple):
    """A count kept by triggers as base rows plus delta rows, and the rows it should hold,
    counted from tasks and task_labels (zero rows left out)."""

    table: str
    key: tuple[str, ...]
    counts: tuple[str, ...]
    # Where it is kept: the migration of its base table, and the prefix of the names of the
    # triggers that append its delta rows (0009).
    migration: str
    triggers: str
    # What a count that falls to 0 does when folded. "deleted": the row goes, so the table
    # holds no more rows than keys in use; "kept": the row stays at 0.
    at_zero: str
    recount: Callable[[], Select]
    # Its delta rows not folded yet, named as the base table's key and counts.
    pending: Callable[[], Select]


def _tasks_by(*keys) -> Select:
    """Count tasks per key: (key..., total, completed), tasks without a key left out."""
    tasks = Task.__table__
    completed = func.count().filter(tasks.c.completed.is_(True))
    return (
        select(*keys, func.count().label("total"), completed.label("completed"))
        .where(*(key.is_not(None) for key in keys))
        .group_by(*keys)
    )


def _recount_due() -> Select:
    tasks = Task.__table__
    return _tasks_by(tasks.c.user_id, due_day_of(tasks.c.due_at).label("due_on"))


def _recount_labels() -> Select:
    return select(task_labels.c.label_id, func.count().label("tasks")).group_by(
        task_labels.c.label_id
    )


def _pending(*keys) -> Callable[[], Select]:
    """The task_count_deltas rows of a count keyed by ``keys`` (their names there, or
    (name there, name in the base table)), rows without a key left out."""

    def rows() -> Select:
        deltas = task_count_deltas
        columns = [
            deltas.c[key].label(key) if isinstance(key, str) else deltas.c[key[0]].label(key[1])
            for key in keys
        ]
        return select(*columns, deltas.c.total, deltas.c.completed).where(
            *(column.is_not(None) for column in columns)
        )

    return rows


def _pending_lists() -> Select:
    """The delta rows of lists that still exist (a deleted list's are dropped by the fold)."""
    lists = TaskList.__table__
    return _pending(("list_id", "id"))().where(task_count_deltas.c.list_id.in_(select(lists.c.id)))


KEPT = (
    # Made by the first fold of a user, with the change stamp (0005) on it: never deleted but
    # with the user.
    Kept(
        "task_counts",
        ("user_id",),
        ("total", "completed"),
        "0003",
        "tasks_changed",
        "kept",
        lambda: _tasks_by(Task.__table__.c.user_id),
        _pending("user_id"),
    ),
    # A list's counts live on its row.
    Kept(
        "lists",
        ("id",),
        ("total", "completed"),
        "0006",
        "tasks_changed",
        "kept",
        lambda: _tasks_by(Task.__table__.c.list_id.label("id")),
        _pending_lists,
    ),
    Kept(
        "task_priority_counts",
        ("user_id", "priority"),
        ("total", "completed"),
        "0007",
        "tasks_changed",
        "deleted",
        lambda: _tasks_by(Task.__table__.c.user_id, Task.__table__.c.priority),
        _pending("user_id", "priority"),
    ),
    Kept(
        "task_due_counts",
        ("user_id", "due_on"),
        ("total", "completed"),
        "0007",
        "tasks_changed",
        "deleted",
        _recount_due,
        _pending("user_id", "due_on"),
    ),
    # The row goes with its label, and so do its delta rows.
    Kept(
        "label_counts",
        ("label_id",),
        ("tasks",),
        "0007",
        "task_labels_delta",
        "kept",
        _recount_labels,
        lambda: select(label_count_deltas.c.label_id, label_count_deltas.c.tasks),
    ),
)

# A writer folds the user's delta rows first when there are more than this many (locks.
# lock_user_tasks): so a kept total sums at most about this many rows, plus those of the
# writes in flight, whatever the user's number of tasks.
FOLD_AFTER = 32


def kept_rows(kept: Kept) -> set[tuple]:
    """The nonzero rows of a kept count as they read: base plus deltas, (key..., count...)."""
    table = db.metadata.tables[kept.table]
    base = select(*(table.c[name] for name in (*kept.key, *kept.counts)))
    both = union_all(base, kept.pending()).subquery()
    sums = [func.sum(both.c[name]) for name in kept.counts]
    rows = db.session.execute(
        select(*(both.c[name] for name in kept.key), *sums)
        .group_by(*(both.c[name] for name in kept.key))
        .having(or_(*(total != 0 for total in sums)))
    )
    return {tuple(row) for row in rows}


def counted_rows(kept: Kept) -> set[tuple]:
    """The rows a kept count should hold, counted from tasks and task_labels."""
    return {tuple(row) for row in db.session.execute(kept.recount())}


def zero_rows(kept: Kept) -> int:
    """How many base rows of a kept count stand at zero (none where its ``at_zero`` is
    "deleted")."""
    table = db.metadata.tables[kept.table]
    zero = [table.c[name] == 0 for name in kept.counts]
    return db.session.scalar(select(func.count()).where(*zero)) or 0


def fold_counts(user_id: int) -> int:
    """Move the user's delta rows into the base rows (migration 0009's task_counts_fold), in
    the caller's transaction; how many task delta rows it moved (0 if another transaction is
    folding them: it never waits for one)."""
    return db.session.scalar(select(func.task_counts_fold(user_id))) or 0


def _deltas_of(column, *where) -> ColumnElement:
    """The sum of a column of task_count_deltas over the rows of the bound user and
    ``where``, as a scalar (0 without rows)."""
    deltas = task_count_deltas
    added = select(func.sum(column)).where(deltas.c.user_id == bindparam("user_id"), *where)
    return func.coalesce(added.scalar_subquery(), 0)


# ---------------------------------------------------------------------------------------------
# The totals of GET /tasks: kept or counted, by the shape of the filters.


class Total(NamedTuple):
    """How the total of one shape of filters is found without a search (with a search, it
    is always counted: the matches are found anyway)."""

    kept: bool  # read from kept counts; else counted
    tables: tuple[str, ...]  # the tables read
    # The total as a scalar SQL expression, given ``completed`` and the shape.
    read: Callable[[bool | None, tuple[str, ...]], ColumnElement]
    # Also kept when ``completed`` is given (else counted then).
    with_completed: bool = True
    # Kept only for a due range spanning more than one UTC day (bind_due_days).
    whole_days: bool = False


# Filters of GET /tasks whose totals are kept only over due ranges: the parameter of their
# lower bound, of their upper bound.
DUE_RANGES = {
    ("due_after",): ("due_after", None),
    ("due_before",): (None, "due_before"),
    ("due_after", "due_before"): ("due_after", "due_before"),
    ("overdue",): (None, "now"),
}


def _kept_column(table, completed: bool | None):
    """Of a table with kept ``total`` and ``completed`` counts: all, completed or open."""
    return {
        None: table.c.total,
        True: table.c.completed,
        False: table.c.total - table.c.completed,
    }[completed]


def _user_total(completed: bool | None, shape=()):
    """The user's task count (all, completed or open) from TaskCount and its deltas."""
    counts = TaskCount.__table__
    kept = select(_kept_column(counts, completed)).where(counts.c.user_id == bindparam("user_id"))
    added = _deltas_of(_kept_column(task_count_deltas, completed))
    return func.coalesce(kept.scalar_subquery(), 0) + added


def _list_total(completed: bool | None, shape=()):
    """The task count of the list bound as list_id, from its row's kept counts and their
    deltas."""
    lists, deltas = TaskList.__table__, task_count_deltas
    kept = select(_kept_column(lists, completed)).where(
        lists.c.id == bindparam("list_id"), lists.c.user_id == bindparam("user_id")
    )
    added = _deltas_of(_kept_column(deltas, completed), deltas.c.list_id == bindparam("list_id"))
    return func.coalesce(kept.scalar_subquery(), 0) + added


def _inbox_total(completed: bool | None, shape=()):
    """The inbox's task count: the user's less those of the user's lists (each with its
    deltas; the deltas of a list deleted since count in the user's only, as its tasks)."""
    lists, deltas = TaskList.__table__, task_count_deltas
    mine = lists.c.user_id == bindparam("user_id")
    in_lists = select(func.coalesce(func.sum(_kept_column(lists, completed)), 0)).where(mine)
    added = _deltas_of(
        _kept_column(deltas, completed), deltas.c.list_id.in_(select(lists.c.id).where(mine))
    )
    return _user_total(completed) - in_lists.scalar_subquery() - added


def _priority_total(completed: bool | None, shape=()):
    """How many of the user's tasks have a priority bound as ``priority``, summed from
    TaskPriorityCount and its deltas."""
    counts, deltas = TaskPriorityCount.__table__, task_count_deltas
    kept = select(func.sum(_kept_column(counts, completed))).where(
        counts.c.user_id == bindparam("user_id"),
        counts.c.priority.in_(bindparam("priority", expanding=True)),
    )
    added = _deltas_of(
        _kept_column(deltas, completed),
        deltas.c.priority.in_(bindparam("priority", expanding=True)),
    )
    return func.coalesce(kept.scalar_subquery(), 0) + added


def _due_total(completed: bool | None, shape: tuple[str, ...]):
    """How many of the user's tasks are due in the range of ``shape`` (DUE_RANGES): the days
    between summed from TaskDueCount, the tasks of the bounds' own days counted in the due
    index (bound by bind_due_days). overdue: the open tasks only."""
    if shape == ("overdue",):
        completed = False
    low, high = DUE_RANGES[shape]
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

    deltas = task_count_deltas
    days, added = [counts.c.user_id == bindparam("user_id")], [deltas.c.due_on.is_not(None)]
    total = []
    if low is not None:
        days.append(counts.c.due_on >= bindparam("first_day", type_=Date()))
        added.append(deltas.c.due_on >= bindparam("first_day", type_=Date()))
        total.append(counted(low, "low_day_end"))
    if high is not None:
        days.append(counts.c.due_on < bindparam("last_day", type_=Date()))
        added.append(deltas.c.due_on < bindparam("last_day", type_=Date()))
        total.append(counted("high_day_start", high))
    kept = select(func.sum(_kept_column(counts, completed))).where(*days).scalar_subquery()
    return sum(total, func.coalesce(kept, 0) + _deltas_of(_kept_column(deltas, completed), *added))


def _labelled_total(completed: bool | None, shape: tuple[str, ...]):
    """How many tasks carry all the labels bound as label_0 ...: one label, its kept count
    (LabelCount); several, counted in task_labels alone. The labels are the user's, and a
    user's labels are only ever on the user's tasks, so no task row is read (counting a
    label's 125,000 links this way took 10 ms, against 400 ms joining each to its task)."""
    count = label_count(shape)
    if count == 1:
        return label_total(bindparam("label_0"))
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


def label_total(label_id) -> ColumnElement:
    """How many tasks carry a label: its LabelCount row and its deltas, as a scalar."""
    counts, deltas = LabelCount.__table__, label_count_deltas
    kept = select(counts.c.tasks).where(counts.c.label_id == label_id)
    added = select(func.sum(deltas.c.tasks)).where(deltas.c.label_id == label_id)
    return func.coalesce(kept.scalar_subquery(), 0) + func.coalesce(added.scalar_subquery(), 0)


def label_count(shape: tuple[str, ...]) -> int:
    """How many labels a shape's ``label:<n>`` filter names (0 if none)."""
    for name in shape:
        if name.startswith("label:"):
            return int(name.split(":")[1])
    return 0


# The shapes of filters (as queries.list_tasks names them) whose totals are not counted in
# tasks; every other shape, and any with a search, counts its matches. "labels" stands for
# ``label:<n>`` with n > 1.
TOTALS = {
    (): Total(True, ("task_counts",), _user_total),
    ("list_id",): Total(True, ("lists",), _list_total),
    ("inbox",): Total(True, ("task_counts", "lists"), _inbox_total),
    ("priority",): Total(True, ("task_priority_counts",), _priority_total),
    ("label:1",): Total(True, ("label_counts",), _labelled_total, with_completed=False),
    ("labels",): Total(False, ("task_labels",), _labelled_total, with_completed=False),
    **{
        shape: Total(True, ("task_due_counts", "tasks"), _due_total, whole_days=True)
        for shape in DUE_RANGES
    },
}


def total_of(shape: tuple[str, ...], *, completed: bool | None, due_days: bool):
    """The total of a page without a search as a scalar SQL expression, from TOTALS; None if
    its matches are counted in tasks."""
    key = ("labels",) if len(shape) == 1 and label_count(shape) > 1 else shape
    total = TOTALS.get(key)
    if total is None or (completed is not None and not total.with_completed):
        return None
    if total.whole_days and not due_days:
        return None
    return total.read(completed, shape)


def bind_due_days(params: dict, shape: tuple[str, ...], completed: bool | None) -> bool:
    """Bind the days of a due range (a shape of DUE_RANGES) that spans more than one UTC day,
    and say whether it does: ``first_day`` and ``last_day`` bound the days counted whole (the
    lower bound's next day, the upper bound's own day, excluded), ``low_day_end`` and
    ``high_day_start`` the parts of the bounds' days counted task by task. A range within one
    day, or empty, is counted as any filter is: it costs that day's tasks at most. So are
    overdue completed tasks (there are none)."""
    if shape not in DUE_RANGES or (shape == ("overdue",) and completed):
        return False
    low, high = (params[name] if name else None for name in DUE_RANGES[shape])
    if low is not None and high is not None and (low >= high or due_day(low) == due_day(high)):
        return False
    if low is not None:
        try:
            params["low_day_end"] = day_start(low) + timedelta(days=1)
        except OverflowError:  # from 9999-12-31 on: a range within its one day, counted
            return False
        params["first_day"] = params["low_day_end"].date()
    if high is not None:
        params["high_day_start"] = day_start(high)
        params["last_day"] = params["high_day_start"].date()
    return True


def change_stamp_of(user_id) -> ColumnElement:
    """A number that grows with every write of the user's tasks (0 before the first): the
    base task_counts.stamp plus the number of the user's delta rows (each task statement
    appends at least one; a fold moves them into the stamp), migration 0009. In SQL, so that a
    page reads it in its own statement (one snapshot: the stamp of exactly the rows it shows).

    The writes a snapshot sees only grow (a later snapshot sees every commit an earlier one
    saw), so one stamp never names two sets of writes.
    """
    counts, deltas = TaskCount.__table__, task_count_deltas
    kept = select(counts.c.stamp).where(counts.c.user_id == user_id)
    added = select(func.count()).where(deltas.c.user_id == user_id)
    return func.coalesce(kept.scalar_subquery(), 0) + added.scalar_subquery()


def change_stamp(user_id: int) -> int:
    """change_stamp_of, alone: a list's ETag before its rows are read (a conditional request
    answered 304 reads nothing else)."""
    return db.session.scalar(select(change_stamp_of(user_id)))


def user_task_count(user_id: int) -> int:
    """How many tasks the user has, from the kept count (no row: none yet)."""
    return db.session.scalar(select(_user_total(None)), {"user_id": user_id})


def room_below(limit: int) -> ColumnElement:
    """Whether the user bound as ``user_id`` stays within ``limit`` tasks whatever the
    writes in flight add: the committed count plus max_connections (each transaction in
    flight creates one task at most) at most ``limit``."""
    in_flight = cast(func.current_setting("max_connections"), Integer)
    return _user_total(None) + in_flight <= limit


def label_tasks(label_id: int) -> int:
    """How many tasks carry a label, from its kept count (no row: never on a task)."""
    return db.session.scalar(select(label_total(literal(label_id))))
