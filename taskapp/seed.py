"""Bulk loading of synthetic users and tasks, for benchmarks and demos (``flask seed``)."""

import io
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from taskapp.auth.models import User
from taskapp.auth.passwords import hash_password
from taskapp.extensions import db
from taskapp.tasks.models import Task

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


def _rows(user_id: int, count: int, rng: random.Random):
    """(user_id, title, description, completed, created_at, updated_at) rows, oldest first."""
    rare = _vocabulary(rng)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    for index in range(count):
        created = start + step * index
        updated = created + timedelta(minutes=rng.randint(0, 600))
        description = None
        if rng.random() >= 0.3:
            description = _title(rng, rare) + ". " + _title(rng, rare).lower() + "."
        yield user_id, _title(rng, rare), description, rng.random() < 0.3, created, updated


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
        _load_tasks(_rows(user_id, tasks, rng))
    db.session.commit()
    return user_ids


def _load_tasks(rows) -> None:
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        # statement_timeout guards request paths; a bulk load is meant to run long.
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        _copy_tasks(connection, rows)
        return
    columns = ("user_id", "title", "description", "completed", "created_at", "updated_at")
    batch = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) == BATCH:
            db.session.execute(insert(Task), batch)
            batch = []
    if batch:
        db.session.execute(insert(Task), batch)


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
    cursor.copy_expert(
        "COPY tasks (user_id, title, description, completed, created_at, updated_at) FROM STDIN",
        buffer,
    )
