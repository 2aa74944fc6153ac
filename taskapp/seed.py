"""Bulk loading of synthetic users and tasks, for benchmarks and demos (``flask seed``)."""

import io
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, text

from taskapp.auth.models import User
from taskapp.auth.passwords import hash_password
from taskapp.extensions import db
from taskapp.tasks.models import Label, TaskList
from taskapp.tasks.totals import fold_counts

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
        list_ids = _make_lists(user_id)
        _load_tasks(_rows(user_id, tasks, rng, list_ids))
        _label_and_nest(user_id)
        fold_counts(user_id)  # the load's count deltas, so reads sum none of them
    db.session.commit()
    return user_ids


def _make_lists(user_id: int) -> list[int]:
    """The user's lists (LIST_NAMES) and labels (LABEL_NAMES); the lists' ids."""
    lists = TaskList.__table__
    rows = [
        {"user_id": user_id, "name": name, "position": f"a{n}"} for n, name in enumerate(LIST_NAMES)
    ]
    ids = db.session.scalars(insert(lists).returning(lists.c.id), rows).all()
    labels = [{"user_id": user_id, "name": name, "key": name} for name in LABEL_NAMES]
    db.session.execute(insert(Label), labels)
    return list(ids)


def _label_and_nest(user_id: int) -> None:
    """About one label in eight per task, and every tenth task a subtask of the task before
    it (in that task's list), by set-based statements."""
    db.session.execute(
        text(
            "INSERT INTO task_labels (task_id, label_id) SELECT t.id, l.id FROM tasks t "
            "JOIN labels l ON l.user_id = t.user_id "
            "WHERE t.user_id = :user_id AND (t.id * 7 + l.id * 3) % 8 = 0"
        ),
        {"user_id": user_id},
    )
    db.session.execute(
        text(
            "UPDATE tasks SET parent_id = id - 1, "
            "list_id = (SELECT p.list_id FROM tasks p WHERE p.id = tasks.id - 1) "
            "WHERE user_id = :user_id AND id % 10 = 0 AND EXISTS "
            "(SELECT 1 FROM tasks p WHERE p.id = tasks.id - 1 AND p.user_id = tasks.user_id)"
        ),
        {"user_id": user_id},
    )


def _load_tasks(rows) -> None:
    connection = db.session.connection()
    # statement_timeout guards request paths; a bulk load is meant to run long.
    connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    _copy_tasks(connection, rows)
    # The labelling and nesting statements that follow fire the task triggers over every
    # task loaded. Their plans, cached by this connection since it last ran them on a few
    # rows, would be reused as they are: the label-names trigger then scanned task_labels
    # once per task (over ten minutes for 100,000 tasks, against 40 s). ANALYZE gives the
    # planner the new sizes and makes every cached plan over these tables be made again.
    connection.exec_driver_sql("ANALYZE tasks, task_labels, labels, lists")


def _copy_tasks(connection, rows) -> None:
    """COPY in chunks: an order of magnitude faster than INSERTs for a million rows."""
    cursor = connection.connection.driver_connection.cursor()

    def escape(value) -> str:
        if value is None:
            return r"\N"
        if isinstance(value, datetime):
            return value.isoformat()
        text = str(value)
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    buffer = io.StringIO()
    for count, row in enumerate(rows, start=1):
        buffer.write("\t".join(escape(value) for value in row) + "\n")
        if count % BATCH == 0:
            _flush(cursor, buffer)
            buffer = io.StringIO()
    _flush(cursor, buffer)


def _flush(cursor, buffer: io.StringIO) -> None:
    buffer.seek(0)
    cursor.copy_expert(f"COPY tasks ({', '.join(COLUMNS)}) FROM STDIN", buffer)
