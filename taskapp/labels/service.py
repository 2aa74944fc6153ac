"""Label rules and queries, always scoped to the acting user."""

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from taskapp.database import allow_long_statements
from taskapp.errors import Conflict, NotFound
from taskapp.extensions import db
from taskapp.pagination import page_of
from taskapp.tasks.locks import lock_label, lock_user_tasks
from taskapp.tasks.models import Label
from taskapp.tasks.totals import label_tasks, label_total

NOT_FOUND = "Label not found"


LABEL_LIST = "labels"  # the cursor_list of LabelQuerySchema


def list_labels(
    user_id: int, *, page: int = 1, page_size: int = 100, cursor: dict | None = None
) -> dict:
    """A page of the user's labels with their task counts (kept: LabelCount and its deltas),
    by key."""
    labels = Label.__table__
    query = select(
        labels.c.id, labels.c.key, labels.c.name, label_total(labels.c.id).label("tasks")
    ).where(labels.c.user_id == user_id)
    return page_of(
        LABEL_LIST,
        query,
        columns=[labels.c.key, labels.c.id],
        sort="key",
        page=page,
        page_size=page_size,
        cursor=cursor,
    )


def rename_label(user_id: int, name: str, *, new_name: str) -> dict:
    """Rename the user's label on every task; Conflict if another label has the new name.

    The labels table's trigger (migration 0006) rewrites the names on the task rows and, in
    the same write, gives each task a new version and updated_at: one write per task.
    """
    labels = Label.__table__
    lock_user_tasks(user_id)  # it rewrites the user's tasks: first, as every writer of them
    label_id = lock_label(user_id, name.casefold())
    if label_id is None:
        raise NotFound(NOT_FOUND)
    allow_long_statements()  # as many tasks as carry the label
    statement = (
        update(labels)
        .where(labels.c.id == label_id)
        .values(name=new_name, key=new_name.casefold())
        .returning(labels.c.name)
    )
    try:
        new = db.session.execute(statement).scalar_one()
    except IntegrityError:  # unique (user_id, key), settled by the database
        db.session.rollback()
        raise Conflict("You already have a label with that name") from None
    tasks = label_tasks(label_id)
    db.session.commit()
    return {"name": new, "tasks": tasks}


def delete_label(user_id: int, name: str) -> None:
    """Delete the user's label, and so remove it from every task."""
    labels = Label.__table__
    lock_user_tasks(user_id)  # it rewrites the user's tasks: first, as every writer of them
    allow_long_statements()  # as many tasks as carry the label
    label_id = lock_label(user_id, name.casefold())
    if label_id is None:
        raise NotFound(NOT_FOUND)
    # The cascade's trigger (migration 0006) takes the name off each task row and gives the
    # task a new version and updated_at, in one write per task.
    db.session.execute(delete(labels).where(labels.c.id == label_id))
    db.session.commit()
