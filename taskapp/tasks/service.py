"""Task rules and queries, always scoped to the acting user."""

from sqlalchemy import or_, select

from taskapp.errors import NotFound
from taskapp.extensions import db
from taskapp.pagination import paginate
from taskapp.tasks.models import Task

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


def get_task(user_id: int, task_id: int) -> Task:
    """The user's task, or NotFound (also for another user's task)."""
    task = db.session.scalar(select(Task).where(Task.id == task_id, Task.user_id == user_id))
    if task is None:
        raise NotFound("Task not found")
    return task


def create_task(user_id: int, *, fields: dict) -> Task:
    """Create a task owned by the user."""
    task = Task(user_id=user_id, **fields)
    db.session.add(task)
    db.session.commit()
    return task


def update_task(user_id: int, task_id: int, *, changes: dict) -> Task:
    """Apply changes (a partial or a full set of writable fields) to the user's task."""
    task = get_task(user_id, task_id)
    for name, value in changes.items():
        setattr(task, name, value)
    db.session.commit()
    return task


def delete_task(user_id: int, task_id: int) -> None:
    """Delete the user's task."""
    task = get_task(user_id, task_id)
    db.session.delete(task)
    db.session.commit()
