"""Labels on tasks: label keys, the user's labels made on first use, a task's labels set,
added or removed, and the labels of tasks read."""

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql

from taskapp.extensions import db
from taskapp.quotas import check_quota
from taskapp.tasks.models import Label, Task, task_labels
from taskapp.tasks.totals import split_labels, touched


def label_keys(names: Sequence[str]) -> dict[str, str]:
    """Label names by their key (case-folded), the first spelling of each kept."""
    keys: dict[str, str] = {}
    for name in names:
        keys.setdefault(name.casefold(), name)
    return keys


def label_ids(user_id: int, names: Sequence[str]) -> list[int] | None:
    """The ids of the user's labels with these names (case-insensitive), sorted, or None if
    the user has not every one of them."""
    keys = set(label_keys(names))
    labels = Label.__table__
    ids = db.session.scalars(
        select(labels.c.id).where(labels.c.user_id == user_id, labels.c.key.in_(keys))
    ).all()
    return sorted(ids) if len(ids) == len(keys) else None


def ensure_labels(user_id: int, keys: dict[str, str]) -> dict[str, int]:
    """The ids of the user's labels with these keys (``{key: name}``), creating the missing
    ones; two requests creating one label at once both end with the same row. The caller
    holds the user's queue (locks.lock_user_tasks), under which LABELS_PER_USER is checked."""
    if not keys:
        return {}
    labels = Label.__table__
    created = db.session.execute(
        postgresql.insert(labels)
        .values([{"user_id": user_id, "key": key, "name": name} for key, name in keys.items()])
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
    ).rowcount
    if created:
        owned = select(func.count()).where(labels.c.user_id == user_id)
        check_quota("labels", db.session.scalar(owned))
    found = select(labels.c.key, labels.c.id).where(
        labels.c.user_id == user_id, labels.c.key.in_(keys)
    )
    return dict(db.session.execute(found).all())


def set_labels(user_id: int, task_id: int, names: Sequence[str]) -> bool:
    """Give the task exactly these labels (creating the user's unknown ones); whether that
    changed its labels. The caller holds the task (just inserted, or locked)."""
    wanted = set(ensure_labels(user_id, label_keys(names)).values())
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


def add_labels(user_id: int, task_ids: Sequence[int], names: Sequence[str]) -> list[int]:
    """Add labels to the locked tasks (creating the user's unknown ones); the tasks whose
    labels changed, which get a new version."""
    label_ids = list(ensure_labels(user_id, label_keys(names)).values())
    present = {
        (row.task_id, row.label_id)
        for row in db.session.execute(
            select(task_labels.c.task_id, task_labels.c.label_id).where(
                task_labels.c.task_id.in_(task_ids), task_labels.c.label_id.in_(label_ids)
            )
        )
    }
    missing = [
        {"task_id": task_id, "label_id": label_id}
        for task_id in task_ids
        for label_id in label_ids
        if (task_id, label_id) not in present
    ]
    if missing:
        db.session.execute(insert(task_labels), missing)
        most = (
            select(func.count())
            .where(task_labels.c.task_id.in_(task_ids))
            .group_by(task_labels.c.task_id)
            .order_by(func.count().desc())
            .limit(1)
        )
        check_quota("task_labels", db.session.scalar(most))
    return _touch({row["task_id"] for row in missing})


def remove_labels(user_id: int, task_ids: Sequence[int], names: Sequence[str]) -> list[int]:
    """Remove labels from the locked tasks; the tasks whose labels changed, which get a new
    version."""
    labels = Label.__table__
    keys = label_keys(names)
    ids = db.session.scalars(
        select(labels.c.id).where(labels.c.user_id == user_id, labels.c.key.in_(keys))
    )
    gone = db.session.execute(
        delete(task_labels)
        .where(task_labels.c.task_id.in_(task_ids), task_labels.c.label_id.in_(list(ids)))
        .returning(task_labels.c.task_id)
    )
    return _touch({row.task_id for row in gone})


def _touch(changed: set[int]) -> list[int]:
    """Give the tasks whose labels changed a new version (totals.touched); their ids, sorted."""
    if changed:
        tasks = Task.__table__
        db.session.execute(update(tasks).where(tasks.c.id.in_(changed)).values(**touched()))
    return sorted(changed)


def labels_of(task_ids: Sequence[int]) -> dict[int, list[str]]:
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


def with_labels(task) -> dict:
    """A task row as a dict with its label names (sorted case-insensitively), read from
    task_labels: for a row returned before its labels were written."""
    return {**task._asdict(), "labels": labels_of([task.id]).get(task.id, [])}


def with_row_labels(task) -> dict:
    """A task row as a dict with its label names from the row itself (tasks.label_names, which
    0006's triggers rewrite at the end of each statement that changes its links): for a row
    read or returned after its labels were written. No round trip."""
    return {**task._asdict(), "labels": split_labels(task.label_names)}
