"""The kept counts per priority, due day and label (migration 0007) against the tasks counted,
and the totals GET /tasks reads from them, after every kind of write."""

from collections import Counter
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select

from taskapp.auth.models import User
from taskapp.extensions import db
from taskapp.tasks.models import (
    Label,
    LabelCount,
    Task,
    TaskDueCount,
    TaskPriorityCount,
    task_labels,
)

PRIORITIES = ["none", "low", "medium", "high"]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def midnight(days: int) -> datetime:
    """The start of the UTC day ``days`` from today."""
    return datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC) + timedelta(days=days)


def ranges() -> list[dict]:
    """Due ranges: open-ended, within a day, across days, on midnights, empty, reversed."""
    now = datetime.now(UTC)
    return [
        {"due_after": iso(midnight(-2) + timedelta(hours=12))},
        {"due_before": iso(midnight(1) + timedelta(hours=6))},
        {"due_after": iso(midnight(-3)), "due_before": iso(midnight(2))},
        {
            "due_after": iso(midnight(-3) + timedelta(hours=9)),
            "due_before": iso(midnight(1) + timedelta(hours=9)),
        },
        {"due_after": iso(midnight(-1) + timedelta(hours=1)), "due_before": iso(midnight(0))},
        {"due_after": iso(midnight(0)), "due_before": iso(now)},
        {"due_after": iso(midnight(0) + timedelta(hours=8)), "due_before": iso(midnight(0))},
        {"due_after": "2026-01-01T10:00:00+05:00", "due_before": "2030-06-01T00:00:00-07:00"},
        {"overdue": "true"},
        # The ends of the years a due date can have.
        {"due_after": "9999-12-31T12:00:00Z"},
        {"due_after": "0001-01-01T00:00:00Z", "due_before": "9999-12-31T23:59:59Z"},
        {"due_before": "0001-01-01T00:00:01Z"},
    ]


def tasks_of(user_id: int) -> list[dict]:
    db.session.expire_all()
    rows = db.session.execute(
        select(Task.id, Task.priority, Task.completed, Task.due_at).where(Task.user_id == user_id)
    )
    links = db.session.execute(select(task_labels.c.task_id, task_labels.c.label_id)).all()
    labels = {}
    for task_id, label_id in links:
        labels.setdefault(task_id, set()).add(label_id)
    return [{**row._asdict(), "label_ids": labels.get(row.id, set())} for row in rows]


def matches(task: dict, query: dict, now: datetime) -> bool:
    """Whether ``task`` matches a GET /tasks query of priority, due range, overdue, completed."""
    due = task["due_at"]
    if "completed" in query and task["completed"] != (query["completed"] == "true"):
        return False
    if "priority" in query and PRIORITIES[task["priority"]] not in query["priority"]:
        return False
    for name, keep in (
        ("due_after", lambda bound: due >= bound),
        ("due_before", lambda b: due < b),
    ):
        if name in query and (due is None or not keep(datetime.fromisoformat(query[name]))):
            return False
    if "overdue" in query and (due is None or due >= now or task["completed"]):
        return False
    return True


def assert_kept_counts(user_id: int) -> None:
    """The kept rows equal the tasks grouped, and no row is kept for a count of 0."""
    tasks = tasks_of(user_id)
    for model, key in ((TaskPriorityCount, "priority"), (TaskDueCount, "due_at")):
        expected = Counter()
        for task in tasks:
            if task[key] is not None:
                value = task[key].date() if key == "due_at" else task[key]
                expected[value, "total"] += 1
                expected[value, "completed"] += task["completed"]
        kept = db.session.scalars(select(model).where(model.user_id == user_id)).all()
        column = "due_on" if key == "due_at" else key
        got = Counter()
        for row in kept:
            assert row.total > 0, (model.__tablename__, getattr(row, column))
            got[getattr(row, column), "total"] += row.total
            got[getattr(row, column), "completed"] += row.completed
        assert +got == +expected, model.__tablename__
    links = Counter(label for task in tasks for label in task["label_ids"])
    kept = dict(db.session.execute(select(LabelCount.label_id, LabelCount.tasks)).all())
    assert {label: n for label, n in kept.items() if n} == dict(links)


def assert_totals(client, headers, user_id: int, labels: list[str]) -> None:
    """Every priority, label and due-range total GET /tasks gives equals the tasks counted."""
    queries = [{"priority": [name]} for name in PRIORITIES]
    queries.append({"priority": ["low", "high"]})
    queries += ranges()
    queries += [
        {**query, "completed": done} for query in list(queries) for done in ("true", "false")
    ]
    now = datetime.now(UTC)
    tasks = tasks_of(user_id)
    for query in queries:
        meta = client.get("/tasks", query_string=query, headers=headers).json["meta"]
        expected = sum(matches(task, query, now) for task in tasks)
        if "overdue" in query:  # the request's own now: a task may fall due in between
            assert abs(meta["total"] - expected) <= 1, query
        else:
            assert meta["total"] == expected, query
        unkept = client.get("/tasks", query_string={**query, "search": "a"}, headers=headers).json[
            "meta"
        ]
        assert unkept["total"] == meta["total"] or "overdue" in query, query
    names = {
        label["name"].casefold(): label["tasks"]
        for label in client.get("/labels", headers=headers).json["data"]
    }
    for name in labels:
        counted = db.session.scalar(
            select(func.count())
            .select_from(task_labels)
            .join(Label, Label.id == task_labels.c.label_id)
            .where(Label.user_id == user_id, Label.key == name)
        )
        meta = client.get("/tasks", query_string={"label": name}, headers=headers).json["meta"]
        assert meta["total"] == names.get(name, 0) == counted, name


def test_kept_filter_counts_follow_every_writer(client, auth, make_task):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    dues = [
        midnight(-3) + timedelta(hours=9),
        midnight(-2) + timedelta(hours=23, minutes=59),
        midnight(-1),
        midnight(0) + timedelta(minutes=1),
        midnight(1) + timedelta(hours=5),
        midnight(2),
    ]
    tasks = [
        make_task(
            headers,
            title=f"a task {n}",
            priority=PRIORITIES[n % 4],
            due_at=iso(dues[n % len(dues)]) if n % 5 else None,
            labels=["Home", "urgent"][: n % 3],
            list_id=work if n % 2 else None,
            completed=n % 3 == 0,
        )["id"]
        for n in range(14)
    ]
    parent = make_task(headers, priority="high", due_at=iso(dues[0]), labels=["urgent"])["id"]
    make_task(headers, parent_id=parent, priority="low", due_at=iso(dues[1]), labels=["home"])
    weekly = make_task(
        headers, due_at=iso(dues[2]), recurrence="FREQ=DAILY;COUNT=3", priority="medium"
    )["id"]
    labels = ["home", "urgent", "later"]
    assert_kept_counts(user_id)
    assert_totals(client, headers, user_id, labels)

    steps = [
        ("patch", f"/tasks/{tasks[1]}", {"due_at": iso(dues[4]), "priority": "high"}),
        ("patch", f"/tasks/{tasks[2]}", {"due_at": None}),
        ("patch", f"/tasks/{tasks[5]}", {"completed": True, "labels": ["later"]}),
        ("put", f"/tasks/{tasks[4]}", {"title": "replaced"}),
        ("patch", f"/tasks/{weekly}", {"completed": True}),  # the next day, still open
        ("patch", f"/tasks/{weekly}", {"completed": True}),
        ("patch", f"/tasks/{weekly}", {"completed": True}),  # the last: completed
        ("post", "/tasks/bulk", {"action": "complete", "ids": tasks[:8]}),
        ("post", "/tasks/bulk", {"action": "reopen", "ids": tasks[:4]}),
        ("post", "/tasks/bulk", {"action": "label", "ids": tasks[6:12], "labels": ["Later"]}),
        ("post", "/tasks/bulk", {"action": "unlabel", "ids": tasks[:10], "labels": ["urgent"]}),
        ("patch", "/labels/home", {"name": "house"}),
        ("delete", "/labels/later", None),
        ("delete", f"/tasks/{parent}", None),  # with its subtask
        ("post", "/tasks/bulk", {"action": "delete", "ids": tasks[12:]}),
        ("delete", f"/lists/{work}", None),  # with its tasks
    ]
    for method, path, body in steps:
        response = client.open(path, method=method.upper(), json=body, headers=headers)
        assert response.status_code < 300, (path, response.json)
        assert_kept_counts(user_id)
        assert_totals(client, headers, user_id, ["house", "urgent", "later"])

    db.session.execute(User.__table__.delete().where(User.id == user_id))
    db.session.commit()
    for model in (TaskPriorityCount, TaskDueCount):
        assert db.session.scalars(select(model).where(model.user_id == user_id)).all() == []
    assert db.session.scalars(select(LabelCount)).all() == []
