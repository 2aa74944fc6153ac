"""Lists that stay cheap for heavy users: keyset cursors, kept counts, index-only plans."""

import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import OperationalError

from conftest import assert_error, own_connection, row_count
from taskapp import seed as seed_module
from taskapp.auth.models import User
from taskapp.extensions import db
from taskapp.seed import COMMON, seed
from taskapp.tasks import queries
from taskapp.tasks.models import Task, TaskCount, TaskList, task_count_deltas
from tests.support.totals import kept_counts

SORTS = list(itertools.product(["created_at", "updated_at", "title"], ["asc", "desc"]))


def walk_by_cursor(client, headers, **query) -> list[int]:
    """Every id, following meta.next_cursor from the first page."""
    ids, params = [], {**query}
    while True:
        response = client.get("/tasks", query_string=params, headers=headers)
        assert response.status_code == 200, response.json
        body = response.json
        ids += [task["id"] for task in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return ids
        if "cursor" in params:
            assert body["meta"]["page"] is None
        params = {**query, "cursor": cursor}


def walk_by_page(client, headers, **query) -> list[int]:
    ids, page = [], 1
    while True:
        body = client.get("/tasks", query_string={**query, "page": page}, headers=headers).json
        if not body["data"]:
            return ids
        ids += [task["id"] for task in body["data"]]
        page += 1


@pytest.fixture
def tied_tasks(auth, make_task):
    """Nine tasks in three groups that tie on every sort key (same title, same timestamps)."""
    headers = auth()
    ids = [make_task(headers, title=f"group {n % 3}")["id"] for n in range(9)]
    db.session.execute(
        update(Task).where(Task.id.in_(ids)).values(created_at=func.now(), updated_at=func.now())
    )
    db.session.commit()
    return headers, ids


@pytest.mark.parametrize(("sort", "order"), SORTS)
@pytest.mark.parametrize("page_size", [1, 2, 4, 9, 100])
@pytest.mark.parametrize("deferred_join", [False, True], ids=["offset", "deferred-join"])
def test_cursor_walk_returns_every_task_once_in_page_order(
    client, tied_tasks, monkeypatch, sort, order, page_size, deferred_join
):
    if deferred_join:
        # Every page after the first as a deep page is read (the same rows, the same order).
        monkeypatch.setattr(queries, "DEFERRED_JOIN_OFFSET", 1)
    headers, ids = tied_tasks
    query = {"sort": sort, "order": order, "page_size": page_size}

    by_cursor = walk_by_cursor(client, headers, **query)

    assert sorted(by_cursor) == sorted(ids)
    assert by_cursor == walk_by_page(client, headers, **query)


@pytest.mark.parametrize("search", [None, "task"])
def test_deep_offset_pages_skip_rows_in_the_index_by_a_deferred_join(app, search):
    """From DEFERRED_JOIN_OFFSET on, the page's ids come from a subquery on the list index."""
    deep = queries.DEFERRED_JOIN_OFFSET // 10 + 1

    def page_statements(page: int) -> str:
        call = lambda: queries.list_tasks(1, page=page, page_size=10, search=search)  # noqa: E731
        return " ".join(statement for statement, _ in capture_statements(call))

    assert "page_ids" not in page_statements(deep - 1)
    # A search reads its matches once anyway: no deferred join there.
    assert ("page_ids" in page_statements(deep)) is (search is None)


@pytest.mark.parametrize("deferred_join", [False, True], ids=["offset", "deferred-join"])
def test_cursor_and_page_walks_keep_filters(client, auth, make_task, monkeypatch, deferred_join):
    if deferred_join:
        monkeypatch.setattr(queries, "DEFERRED_JOIN_OFFSET", 1)
    headers = auth()
    done = [make_task(headers, title=f"done {n}", completed=True)["id"] for n in range(5)]
    for n in range(4):
        make_task(headers, title=f"open {n}")

    walked = walk_by_cursor(client, headers, completed="true", page_size=2)

    assert sorted(walked) == sorted(done)
    assert walk_by_page(client, headers, completed="true", page_size=2) == walked


def test_a_cursor_is_422_with_another_sort_or_with_a_page(client, auth, make_task):
    headers = auth()
    for _ in range(3):
        make_task(headers)
    cursor = client.get("/tasks?page_size=1", headers=headers).json["meta"]["next_cursor"]

    for query in ({"sort": "title"}, {"order": "asc"}, {"page": 1}):
        response = client.get("/tasks", query_string={"cursor": cursor, **query}, headers=headers)
        assert_error(response, 422, field="cursor")


def user_counts(user_id: int) -> tuple[int, int]:
    return kept_counts("task_counts", user_id)


def counted(user_id: int) -> tuple[int, int]:
    total = db.session.scalar(select(func.count()).where(Task.user_id == user_id))
    done = db.session.scalar(
        select(func.count()).where(Task.user_id == user_id, Task.completed.is_(True))
    )
    return total, done


def test_kept_counts_follow_every_write(client, auth, make_task):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    tasks = [make_task(headers, completed=n % 2 == 0)["id"] for n in range(6)]
    assert user_counts(user_id) == counted(user_id) == (6, 3)

    client.patch(f"/tasks/{tasks[1]}", json={"completed": True}, headers=headers)
    client.patch(f"/tasks/{tasks[0]}", json={"title": "renamed"}, headers=headers)
    client.put(f"/tasks/{tasks[2]}", json={"title": "replaced"}, headers=headers)
    client.delete(f"/tasks/{tasks[3]}", headers=headers)
    assert user_counts(user_id) == counted(user_id) == (5, 3)

    for completed, expected in ((None, 5), ("true", 3), ("false", 2)):
        query = {} if completed is None else {"completed": completed}
        meta = client.get("/tasks", query_string=query, headers=headers).json["meta"]
        assert meta["total"] == expected


def assert_list_totals(client, headers, user_id: int) -> None:
    """Each list's kept counts, and every list and inbox total the API gives (all, completed,
    open), equal the tasks counted."""
    db.session.expire_all()
    list_ids = db.session.scalars(select(TaskList.id).where(TaskList.user_id == user_id)).all()
    for list_id in [*list_ids, None]:
        in_list = Task.list_id.is_(None) if list_id is None else Task.list_id == list_id
        for completed in (None, True, False):
            conditions = [Task.user_id == user_id, in_list]
            if completed is not None:
                conditions.append(Task.completed.is_(completed))
            expected = db.session.scalar(select(func.count()).where(*conditions))
            query = {"list_id": "null" if list_id is None else list_id}
            if completed is not None:
                query["completed"] = str(completed).lower()
            meta = client.get("/tasks", query_string=query, headers=headers).json["meta"]
            assert meta["total"] == expected, (list_id, completed)
        if list_id is not None:
            done = db.session.scalar(select(func.count()).where(in_list, Task.completed.is_(True)))
            assert kept_counts("lists", list_id) == (
                db.session.scalar(select(func.count()).where(in_list)),
                done,
            )


def test_list_counts_follow_every_writer(client, auth, make_task):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    work, home = (
        client.post("/lists", json={"name": name}, headers=headers).json["id"]
        for name in ("Work", "Home")
    )
    tasks = [
        make_task(headers, list_id=work if n < 4 else None, completed=n % 2 == 0)["id"]
        for n in range(6)
    ]
    parent = make_task(headers, list_id=home)["id"]
    make_task(headers, parent_id=parent, completed=True)
    due = "2030-01-01T09:00:00Z"
    weekly = make_task(headers, list_id=home, due_at=due, recurrence="FREQ=WEEKLY")["id"]
    assert_list_totals(client, headers, user_id)

    steps = [
        ("patch", f"/tasks/{tasks[0]}", {"list_id": home}),
        ("patch", f"/tasks/{tasks[1]}", {"completed": True}),
        ("put", f"/tasks/{tasks[2]}", {"title": "to the inbox"}),
        ("post", f"/tasks/{tasks[4]}/move", {"list_id": work}),
        ("post", f"/tasks/{parent}/move", {"list_id": work}),  # its subtask follows
        ("post", "/tasks/bulk", {"action": "move", "ids": tasks[3:6], "list_id": home}),
        ("post", "/tasks/bulk", {"action": "complete", "ids": tasks}),
        ("post", "/tasks/bulk", {"action": "reopen", "ids": tasks[:3]}),
        ("patch", f"/tasks/{weekly}", {"completed": True}),  # advances, stays open
        ("delete", f"/tasks/{parent}", None),  # with its subtask
        ("post", "/tasks/bulk", {"action": "delete", "ids": tasks[:1]}),
        ("delete", f"/lists/{home}", None),  # with its tasks
    ]
    for method, path, body in steps:
        response = client.open(path, method=method.upper(), json=body, headers=headers)
        assert response.status_code < 300, (path, response.json)
        assert_list_totals(client, headers, user_id)


def test_bulk_seed_and_account_deletion_keep_counts(app, client, auth):
    seeded = seed(users=2, tasks=40, prefix="bulk", password="bulk password")
    for user_id in seeded:
        assert user_counts(user_id) == counted(user_id)
        assert user_counts(user_id)[0] == 40
    db.session.execute(Task.__table__.delete().where(Task.user_id == seeded[0]))
    db.session.execute(User.__table__.delete().where(User.id == seeded[1]))
    db.session.commit()
    assert user_counts(seeded[0]) == (0, 0)
    assert db.session.get(TaskCount, seeded[1]) is None
    deltas = select(func.count()).where(task_count_deltas.c.user_id == seeded[1])
    assert db.session.scalar(deltas) == 0  # gone with the user


@pytest.mark.slow
@pytest.mark.committing
def test_bulk_seed_is_not_cut_short_by_the_request_statement_timeout(app, monkeypatch, build_app):
    # ``app`` (committing) truncates the tables afterwards: the seed commits for real.
    # Request paths get a statement_timeout; a bulk COPY far outlasts this one.
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "250")
    seeding = build_app()
    with seeding.app_context():
        (user_id,) = seed(users=1, tasks=20_000, prefix="timed", password="timed password")
        assert user_counts(user_id) == counted(user_id)
        assert user_counts(user_id)[0] == 20_000
        # The request path keeps its timeout.
        with pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(text("SELECT pg_sleep(1)"))
        db.session.rollback()


@pytest.mark.slow
@pytest.mark.committing
def test_flask_seed_is_not_ended_by_the_request_idle_timeout(app, build_app, monkeypatch):
    """The seed builds its rows in Python between statements of one transaction: a request's
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS is not for it (commands have their own)."""
    timeouts = replace(app.config["DATABASE_TIMEOUTS"], idle_in_transaction_ms=50)
    seeding = build_app(DATABASE_TIMEOUTS=timeouts)
    vocabulary = seed_module._vocabulary

    def slow_vocabulary(*args, **kwargs):  # a generator slower than the timeout
        time.sleep(0.3)
        return vocabulary(*args, **kwargs)

    monkeypatch.setattr(seed_module, "_vocabulary", slow_vocabulary)
    monkeypatch.setenv("TASKAPP_SEED_PASSWORD", "idle password")
    with seeding.app_context():  # else the command would run in the test's app (its context)
        result = seeding.test_cli_runner().invoke(args=["seed", "--tasks", "30", "--users", "2"])
    assert result.exit_code == 0, result.output
    assert "seeded 2 user(s) with 30 task(s) each" in result.output
    assert row_count(Task) == 60


@pytest.mark.committing
def test_no_list_query_scans_the_tasks_table(app):
    """EXPLAIN every list query on a seeded database: index scans only, never a Seq Scan."""
    heavy, *_ = seed(users=1, tasks=100_000, prefix="heavy", password="heavy password")
    seed(users=20, tasks=50, prefix="light", password="light password")
    db.session.commit()
    # As autovacuum leaves a table (and bench/run.py its database): the seed's label and
    # subtask updates leave pages that index-only scans would have to visit.
    connection = own_connection()
    try:
        connection.cursor().execute("VACUUM ANALYZE")
    finally:
        connection.close()
    first = queries.list_tasks(heavy, page_size=20)[0]["meta"]["next_cursor"]
    work = db.session.scalar(select(TaskList.id).where(TaskList.user_id == heavy).limit(1))
    parent = db.session.scalar(
        select(Task.parent_id).where(Task.user_id == heavy, Task.parent_id.is_not(None)).limit(1)
    )
    now = datetime.now(UTC)
    # A word of the user's own text: as in real text, most words are rare.
    titles = db.session.scalars(select(Task.title).where(Task.user_id == heavy).limit(50))
    word = next(w for t in titles for w in t.lower().split() if w not in COMMON)
    variants = [
        {},
        {"completed": False},
        {"completed": True, "sort": "updated_at"},
        {"sort": "title", "order": "asc"},
        {"search": word},
        {"search": word, "completed": False, "sort": "title"},
        {"page": 500},
        {"cursor": decode(first)},
        # Issue 15's filters and sorts.
        {"list_id": work},
        {"list_id": work, "sort": "position", "order": "asc"},
        # The inbox has partial indexes of its own: list_id IS NULL, unlike list_id = 1, is
        # no constant to the planner, which sorted (and counted) it after a Seq Scan.
        {"list_id": None},
        {"list_id": None, "sort": "position", "order": "asc", "include_total": False},
        {"label": ["urgent"]},
        {"label": ["urgent", "phone"], "completed": False},
        {"priority": [3]},
        {"priority": [2, 3], "sort": "priority"},
        {"due_after": now - timedelta(days=7), "due_before": now},
        {"overdue": True},
        {"sort": "due_at", "order": "asc"},
        {"sort": "due_at", "order": "desc"},
        {"sort": "priority", "order": "desc"},
        {"parent_id": parent},
    ]
    # Every shape uncounted too (include_total=false): its page alone.
    variants += [{**variant, "include_total": False} for variant in variants]
    # Their totals (migration 0007): read from the kept counts, not counted in the matches.
    kept = [
        ("task_priority_counts", {"priority": [3]}),
        ("label_counts", {"label": ["urgent"]}),
        ("task_due_counts", {"due_after": now - timedelta(days=7), "due_before": now}),
        ("task_due_counts", {"overdue": True}),
    ]
    for variant in variants:
        statements = capture_statements(lambda v=variant: queries.list_tasks(heavy, **v))
        for statement, parameters in statements:
            plan = db.session.execute(text(f"EXPLAIN {statement}"), parameters)
            plan_text = "\n".join(row[0] for row in plan)
            assert "Seq Scan on tasks" not in plan_text, (variant, plan_text)
            for table, shape in kept:
                if variant == shape:
                    assert f"on {table}" in plan_text, (variant, plan_text)


def decode(cursor: str) -> dict:
    from taskapp.tasks.schemas import TaskQuerySchema

    return TaskQuerySchema().load({"cursor": cursor})["cursor"]


def capture_statements(call) -> list[tuple[str, dict]]:
    """The SQL statements ``call`` runs, with their bound parameters (pyformat, psycopg2)."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM tasks" in statement:
            seen.append((statement, parameters))

    engine = db.session.get_bind()
    target = engine.engine if hasattr(engine, "engine") else engine
    event.listen(target, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(target, "before_cursor_execute", record)
    assert seen
    return [(convert_placeholders(statement), parameters) for statement, parameters in seen]


def convert_placeholders(statement: str) -> str:
    """psycopg2's %(name)s placeholders as SQLAlchemy text() :name binds."""
    import re

    return re.sub(r"%\((\w+)\)s", r":\1", statement).replace("%%", "%")
