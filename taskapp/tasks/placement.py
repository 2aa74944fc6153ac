"""Positions and moves: which list a task is in, its parent, and its place in the list's
manual order (fractional keys: a move gives one task a key between its neighbours'; where
those have grown too long, the neighbours are respaced first)."""

from collections.abc import Sequence

from fractional_indexing import generate_key_between, generate_n_keys_between
from sqlalchemy import Integer, String, column, func, select, update, values

from taskapp.database import LEAD_OPTION
from taskapp.errors import NotFound, Unprocessable
from taskapp.extensions import db
from taskapp.tasks.locks import list_order_lock, lock_list_order, lock_task
from taskapp.tasks.models import Task, TaskList
from taskapp.tasks.totals import touched

# A keyword argument not given (``list_id=None`` names the inbox).
UNSET = object()
# The longest key minted (the column holds 255). A key between two others is about one
# character longer per six moves into the same gap; one that would pass this bound is minted
# by respacing the gap's neighbours instead (_respace), so the key space never runs out.
MAX_KEY_LENGTH = 64
# A respacing rewrites this many tasks on each side of the gap, doubled until the new keys are
# at most SPACED_KEY_LENGTH long: the window widens past a crowd of long keys to short ones
# (the list's ends at worst), and leaves room for MAX_KEY_LENGTH - SPACED_KEY_LENGTH more.
WINDOW = 8
SPACED_KEY_LENGTH = MAX_KEY_LENGTH // 2


def check_list(user_id: int, list_id: int | None) -> None:
    """NotFound unless ``list_id`` is None (the inbox) or one of the user's lists. The caller
    holds the user's queue (locks.lock_user_tasks), which deleting a list takes too: the list
    is still there when the caller writes."""
    if list_id is None:
        return
    lists = TaskList.__table__
    found = select(lists.c.id).where(lists.c.id == list_id, lists.c.user_id == user_id)
    if db.session.scalar(found) is None:
        raise NotFound("List not found")


def _in_list(user_id: int, list_id: int | None) -> list:
    """The conditions of the user's tasks in a list (None: the inbox), as the index has them."""
    tasks = Task.__table__
    in_list = tasks.c.list_id.is_(None) if list_id is None else tasks.c.list_id == list_id
    return [tasks.c.user_id == user_id, in_list]


def end_of_list(
    user_id: int, list_id: int | None, *, locked: bool = False, excluding: Sequence[int] = ()
) -> str:
    """A key after every task of the list but ``excluding`` (taking the list's order lock
    unless ``locked``: in the same message as the read, which sees the writes committed
    before the lock was granted)."""
    tasks = Task.__table__
    last = select(func.max(tasks.c.position)).where(
        *_in_list(user_id, list_id), tasks.c.id.not_in(excluding or [0])
    )
    if not locked:
        last = last.execution_options(**{LEAD_OPTION: list_order_lock(user_id, list_id)})
    return key_between(user_id, list_id, db.session.scalar(last), None, excluding=excluding)


def key_between(
    user_id: int, list_id: int | None, low: str | None, high: str | None, *, excluding=()
) -> str:
    """A key between ``low`` and ``high`` (None: the list's start or end), two neighbouring
    keys of the list's tasks but ``excluding``, at most MAX_KEY_LENGTH long: if the plain
    one would be longer, the neighbours are respaced around the gap first. The caller holds
    the list's order lock."""
    key = generate_key_between(low, high)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return _respace(user_id, list_id, low, high, excluding)


def _respace(
    user_id: int, list_id: int | None, low: str | None, high: str | None, excluding
) -> str:
    """Give the tasks nearest a gap (between the keys ``low`` and ``high``) new, evenly spaced
    keys, in their order (position, then id), and return the key left free for the gap.

    The window starts at WINDOW tasks each side and doubles until the keys between the tasks
    just outside it (or the list's ends) are short enough. Each respaced task gets a new
    version and updated_at (touched): its position is part of how it reads, so ETags and the
    changes feed see the change.
    """
    tasks = Task.__table__
    others = [*_in_list(user_id, list_id), tasks.c.id.not_in(excluding or [0])]
    size = WINDOW
    while True:
        before = [] if low is None else _side(others, tasks.c.position <= low, size, True)
        after = [] if high is None else _side(others, tasks.c.position >= high, size, False)
        outer_low = before[size].position if len(before) > size else None
        outer_high = after[size].position if len(after) > size else None
        window = [*reversed(before[:size]), None, *after[:size]]  # None: the gap
        keys = generate_n_keys_between(outer_low, outer_high, len(window))
        if (outer_low is None and outer_high is None) or max(map(len, keys)) <= SPACED_KEY_LENGTH:
            break
        size *= 2
    moved = [
        (row.id, key)
        for row, key in zip(window, keys, strict=True)
        if row is not None and row.position != key
    ]
    if moved:  # a task whose key stays reads the same: its version stays too
        columns = (column("id", Integer), column("position", String))
        spaced = values(*columns, name="spaced").data(moved)
        db.session.execute(
            update(tasks)
            .where(tasks.c.id == spaced.c.id)
            .values(position=spaced.c.position, **touched())
        )
    return keys[len(before[:size])]


def _side(others: list, bound, size: int, descending: bool) -> list:
    """Up to ``size`` + 1 of the tasks on one side of a gap, nearest first."""
    tasks = Task.__table__
    order = (tasks.c.position, tasks.c.id)
    return db.session.execute(
        select(tasks.c.id, tasks.c.position)
        .where(*others, bound)
        .order_by(*(key.desc() for key in order) if descending else order)
        .limit(size + 1)
    ).all()


def place(user_id: int, task_id: int | None, fields: dict) -> None:
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
    check_list(user_id, fields.get("list_id"))
    current = lock_task(user_id, task_id) if task_id is not None else None
    parent_id = fields.get("parent_id", current.parent_id if current else None)
    if parent_id is None:
        return
    if parent_id == task_id:
        raise Unprocessable("A task cannot be its own parent")
    tasks = Task.__table__
    if task_id is not None and "parent_id" in fields:
        has_subtasks = select(tasks.c.id).where(tasks.c.parent_id == task_id).limit(1)
        if db.session.scalar(has_subtasks) is not None:
            raise Unprocessable("A task with subtasks cannot become a subtask")
    parent = lock_task(user_id, parent_id, missing="Parent task not found")
    if parent.parent_id is not None:
        raise Unprocessable("A subtask cannot have subtasks: subtasks are one level deep")
    if fields.get("list_id") not in (None, parent.list_id):
        raise Unprocessable("A subtask is in its parent's list")
    fields["list_id"] = parent.list_id


def subtasks_follow(task) -> None:
    """A parent's subtasks follow it into its list (keeping their keys: a key is only
    compared within a list, and theirs stay distinct)."""
    tasks = Task.__table__
    db.session.execute(
        update(tasks)
        .where(tasks.c.parent_id == task.id, tasks.c.list_id.is_distinct_from(task.list_id))
        .values(list_id=task.list_id, **touched())
    )


def move_position(
    user_id: int,
    current,
    *,
    after: int | None = None,
    before: int | None = None,
    list_id=UNSET,
) -> tuple[int | None, str]:
    """The list and key of the locked task ``current`` placed right after or before another
    task of its (or the given: ``list_id``, None for the inbox) list, or at the end of that
    list: a key between its new neighbours' keys (key_between: no other task is renumbered
    unless the gap's keys have grown long).

    The list's order lock makes the read of the neighbours and the caller's write one step,
    so two moves or creates in one list never produce one key twice. A subtask stays in its
    parent's list.
    """
    tasks = Task.__table__
    anchor_id = after if after is not None else before
    if anchor_id == current.id:
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
        check_list(user_id, list_id)
        target = list_id
    else:
        target = anchor.list_id if anchor is not None else current.list_id
    if anchor is not None and anchor.list_id != target:
        raise Unprocessable("The task to place it next to is in another list")
    if current.parent_id is not None and target != current.list_id:
        raise Unprocessable("A subtask is in its parent's list")
    lock_list_order(user_id, target)
    others = [*_in_list(user_id, target), tasks.c.id != current.id]
    if anchor is None:
        position = end_of_list(user_id, target, locked=True, excluding=[current.id])
    elif after is not None:
        following = select(func.min(tasks.c.position)).where(
            *others, tasks.c.position > anchor.position
        )
        low, high = anchor.position, db.session.scalar(following)
        position = key_between(user_id, target, low, high, excluding=[current.id])
    else:
        preceding = select(func.max(tasks.c.position)).where(
            *others, tasks.c.position < anchor.position
        )
        low, high = db.session.scalar(preceding), anchor.position
        position = key_between(user_id, target, low, high, excluding=[current.id])
    return target, position


def move_to_end(user_id: int, rows, list_id: int | None) -> list[int]:
    """Move the locked tasks to the end of a list, in id order; a subtask only with its
    parent (it stays in its parent's list), and a parent's subtasks follow it."""
    tasks = Task.__table__
    check_list(user_id, list_id)
    moving = [row.id for row in rows]
    if any(row.parent_id is not None and row.parent_id not in moving for row in rows):
        raise Unprocessable("A subtask is in its parent's list: move its parent")
    lock_list_order(user_id, list_id)
    last = None
    changed = []
    for index, row in enumerate(rows):
        last = (
            end_of_list(user_id, list_id, locked=True, excluding=moving)
            if last is None
            else key_between(user_id, list_id, last, None, excluding=moving[index:])
        )
        task = db.session.execute(
            update(tasks)
            .where(tasks.c.id == row.id)
            .values(position=last, list_id=list_id, **touched())
            .returning(*tasks.c)
        ).one()
        subtasks_follow(task)
        changed.append(row.id)
    return changed
