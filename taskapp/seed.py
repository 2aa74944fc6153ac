"""Bulk loading of synthetic users and tasks, for benchmarks and demos (``flask seed``)."""

import io
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from taskapp.auth.models import User
from taskapp.auth.passwords import hash_password
from taskapp.extensions import db
from taskapp.tasks.models import Label, TaskList
from taskapp.tasks.totals import LABEL_SEPARATOR, fold_counts

COMMON = (
    "report meeting invoice review design deploy budget client email call draft plan "
    "sprint release backup audit refactor database migrate onboarding hiring quarterly "
    "roadmap contract vendor security patch incident postmortem feedback survey training"
).split()
SYLLABLES = "ka lo mi ne ru sa te vo zi pa da fe gu hi jo ku le ma no pe ri so tu va we".split()
BATCH = 50_000


def _vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    """Made-up words, so that, as in real text, most words are rare."""
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _title(rng: random.Random, rare: list[str]) -> str:
    words = [rng.choice(COMMON if rng.random() < 0.5 else rare) for _ in range(rng.randint(2, 6))]
    return " ".join(words).capitalize()


COLUMNS = (
    *("user_id", "title", "description", "completed", "created_at", "updated_at"),
    *("list_id", "due_at", "priority", "position", "recurrence"),
)
LIST_NAMES = ("Work", "Home", "Errands", "Side project", "Reading")
LABEL_NAMES = ("urgent", "waiting", "phone", "computer", "office", "quick", "deep work", "money")


def _rows(user_id: int, count: int, rng: random.Random, list_ids: list[int]):
    """Rows of COLUMNS, oldest first: a third in the inbox, most with a due date in the year
    around now, a few recurring weekly; positions in creation order."""
    rare = _vocabulary(rng)
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    places = [None, None, *list_ids] if list_ids else [None]
    for index in range(count):
        created = start + step * index
        updated = created + timedelta(minutes=rng.randint(0, 600))
        description = None
        if rng.random() >= 0.3:
            description = _title(rng, rare) + ". " + _title(rng, rare).lower() + "."
        due = None
        if rng.random() < 0.6:
            due = (now + timedelta(days=rng.uniform(-180, 180))).replace(microsecond=0)
        rule = "FREQ=WEEKLY" if due is not None and rng.random() < 0.03 else None
        # "j" and ten digits: a fractional-indexing key, in creation order (as migration 0005).
        position = f"j{index + 1:010d}"
        yield (
            *(user_id, _title(rng, rare), description, rng.random() < 0.3, created, updated),
            *(rng.choice(places), due, rng.choice((0, 0, 0, 1, 2, 3)), position, rule),
        )


def seed(*, users: int, tasks: int, prefix: str, password: str, rng_seed: int = 42) -> list[int]:
    """Create ``users`` users named ``<prefix>-<n>@example.com`` with ``tasks`` tasks each."""
    rng = random.Random(rng_seed)
    password_hash = hash_password(password)
    emails = [f"{prefix}-{n}@example.com" for n in range(users)]
    db.session.execute(
        insert(User), [{"email": email, "password_hash": password_hash} for email in emails]
    )
    user_ids = list(db.session.scalars(select(User.id).where(User.email.in_(emails))))
    for user_id in user_ids:
        list_ids, labels = _make_lists(user_id)
        _load_tasks(tasks, _rows(user_id, tasks, rng, list_ids), labels)
        fold_counts(user_id)  # the load's count deltas, so reads sum none of them
    db.session.commit()
    return user_ids


def _make_lists(user_id: int) -> tuple[list[int], list[tuple[int, str, str]]]:
    """The user's lists (LIST_NAMES) and labels (LABEL_NAMES): the lists' ids, and the labels'
    (id, name, key) in the order of their keys."""
    lists = TaskList.__table__
    rows = [
        {"user_id": user_id, "name": name, "position": f"a{n}"} for n, name in enumerate(LIST_NAMES)
    ]
    ids = db.session.scalars(insert(lists).returning(lists.c.id), rows).all()
    labels = Label.__table__
    rows = [{"user_id": user_id, "name": name, "key": name} for name in LABEL_NAMES]
    made = db.session.execute(
        insert(labels).returning(labels.c.id, labels.c.name, labels.c.key), rows
    ).all()
    return list(ids), sorted(map(tuple, made), key=lambda label: label[2])


def _labels_of(task_id: int, labels: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The labels a task gets: about one in eight, by its id and theirs."""
    return [label for label in labels if (task_id * 7 + label[0] * 3) % 8 == 0]


def _nested(rows, ids: list[int], labels: list[tuple[int, str, str]]):
    """Each row of COLUMNS with its id first and its parent_id and label_names last: every
    tenth task (by id) a subtask of the task before it, in that task's list; label_names as
    migration 0006's triggers write them (the names in the order of their keys)."""
    previous = None
    list_at = COLUMNS.index("list_id")
    for task_id, row in zip(ids, rows, strict=True):
        parent_id = None
        if task_id % 10 == 0 and previous is not None and previous[0] == task_id - 1:
            parent_id = previous[0]
            row = (*row[:list_at], previous[1 + list_at], *row[list_at + 1 :])
        names = [name for _id, name, _key in _labels_of(task_id, labels)]
        current = (task_id, *row, parent_id, LABEL_SEPARATOR.join(names) or None)
        yield current
        previous = current


def _load_tasks(count: int, rows, labels: list[tuple[int, str, str]]) -> None:
    """COPY the tasks, each written whole (its id, subtask and label names included), then
    their label links.

    Loading the rows as they end up, rather than updating them after, writes each task once:
    the labelling and nesting UPDATEs rewrote a fifth of a million rows, firing every task
    trigger again (over a minute for 100,000 tasks, against seconds). The label-names
    trigger then finds every task's label_names right and writes nothing.
    """
    connection = db.session.connection()
    # statement_timeout guards request paths; a bulk load is meant to run long.
    connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    # Ids taken from the sequence first, as a default would, so each row's id is known.
    ids = sorted(
        connection.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('tasks', 'id')) FROM generate_series(1, %s)",
            (count,),
        ).scalars()
    )
    _copy(
        connection,
        "tasks",
        ("id", *COLUMNS, "parent_id", "label_names"),
        _nested(rows, ids, labels),
    )
    # The label-names trigger of the links' COPY reads tasks and task_labels. Its plans,
    # cached by this connection since it last ran them on a few rows, would be reused as they
    # are (it then scanned task_labels once per task: over ten minutes for 100,000 tasks).
    # ANALYZE gives the planner the new sizes and makes every cached plan over these tables
    # be made again.
    connection.exec_driver_sql("ANALYZE tasks, task_labels, labels, lists")
    links = ((task_id, label_id) for task_id in ids for label_id, *_ in _labels_of(task_id, labels))
    _copy(connection, "task_labels", ("task_id", "label_id"), links)


def _copy(connection, table: str, columns: tuple[str, ...], rows) -> None:
    """COPY in chunks: an order of magnitude faster than INSERTs for a million rows."""
    cursor = connection.connection.driver_connection.cursor()

    def escape(value) -> str:
        if value is None:
            return r"\N"
        if isinstance(value, datetime):
            return value.isoformat()
        text = str(value)
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    def flush(buffer: io.StringIO) -> None:
        buffer.seek(0)
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)

    buffer = io.StringIO()
    for count, row in enumerate(rows, start=1):
        buffer.write("\t".join(escape(value) for value in row) + "\n")
        if count % BATCH == 0:
            flush(buffer)
            buffer = io.StringIO()
    flush(buffer)
