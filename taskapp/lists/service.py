"""List rules and queries, always scoped to the acting user."""

from fractional_indexing import generate_key_between
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from taskapp.auth.models import User
from taskapp.database import allow_long_statements
from taskapp.errors import Conflict, NotFound
from taskapp.extensions import db
from taskapp.pagination import page_of
from taskapp.quotas import check_quota
from taskapp.tasks.locks import lock_list, lock_user_tasks
from taskapp.tasks.models import TaskList

NOT_FOUND = "List not found"
TAKEN = "You already have a list with that name"


LIST_LIST = "lists"  # the cursor_list of ListQuerySchema


def list_lists(
    user_id: int, *, page: int = 1, page_size: int = 100, cursor: dict | None = None
) -> dict:
    """A page of the user's lists, in their order."""
    lists = TaskList.__table__
    return page_of(
        LIST_LIST,
        select(lists).where(lists.c.user_id == user_id),
        columns=[lists.c.position, lists.c.id],
        sort="position",
        page=page,
        page_size=page_size,
        cursor=cursor,
    )


def create_list(user_id: int, *, name: str) -> dict:
    """A new list after the user's others; Conflict if the name is taken or the user would
    have more than LISTS_PER_USER lists."""
    lists = TaskList.__table__
    # The user's row lock serialises the user's list creations: the last position read below
    # and the count after the insert stay true until the commit.
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    last = db.session.scalar(select(func.max(lists.c.position)).where(lists.c.user_id == user_id))
    statement = (
        insert(lists)
        .values(user_id=user_id, name=name, position=generate_key_between(last, None))
        .returning(*lists.c)
    )
    return _commit_unique_name(statement, quota_of=user_id)


def get_list(user_id: int, list_id: int) -> dict:
    """The user's list (else NotFound)."""
    lists = TaskList.__table__
    row = db.session.execute(
        select(lists).where(lists.c.id == list_id, lists.c.user_id == user_id)
    ).one_or_none()
    if row is None:
        raise NotFound(NOT_FOUND)
    return row._asdict()


def rename_list(user_id: int, list_id: int, *, name: str) -> dict:
    """Rename the user's list; Conflict if another of them has the name."""
    lists = TaskList.__table__
    lock_user_tasks(user_id)  # it writes a row the task triggers write (its counts)
    statement = (
        update(lists)
        .where(lists.c.id == list_id, lists.c.user_id == user_id)
        .values(name=name, updated_at=func.now())
        .returning(*lists.c)
    )
    return _commit_unique_name(statement)


def delete_list(user_id: int, list_id: int) -> None:
    """Delete the user's list and, in the same transaction, its tasks (ON DELETE CASCADE;
    the kept task counts follow, by their triggers)."""
    lists = TaskList.__table__
    lock_user_tasks(user_id)  # it deletes the user's tasks: first, as every writer of them
    if not lock_list(user_id, list_id):
        raise NotFound(NOT_FOUND)
    allow_long_statements()  # as many tasks as the list holds
    db.session.execute(delete(lists).where(lists.c.id == list_id))
    db.session.commit()


def _commit_unique_name(statement, *, quota_of: int | None = None) -> dict:
    """Run an INSERT or UPDATE ... RETURNING of one list and commit; the unique constraint
    on (user_id, name) settles a name taken, even by a concurrent request. ``quota_of``: the
    user whose lists then count against LISTS_PER_USER (an insert)."""
    lists = TaskList.__table__
    try:
        row = db.session.execute(statement).one_or_none()
        if row is None:
            raise NotFound(NOT_FOUND)
        if quota_of is not None:
            owned = select(func.count()).where(lists.c.user_id == quota_of)
            check_quota("lists", db.session.scalar(owned))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(TAKEN) from None
    return row._asdict()
