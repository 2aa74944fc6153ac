"""Every kept count (each table tasks.totals.KEPT names) against the rows counted, and every
total GET /tasks gives (each shape tasks.totals.TOTALS names, and counted ones) against the
tasks matched, after every kind of writer: a new kept total is covered by adding it to the
registry."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from conftest import PASSWORD
from taskapp.extensions import db
from taskapp.tasks import totals
from taskapp.tasks.models import Label, Task, task_labels
from tests.support.totals import assert_kept_counts

PRIORITIES = ["none", "low", "medium", "high"]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def midnight(days: int) -> datetime:
    """The start of the UTC day ``days`` from today."""
    return totals.day_start(datetime.now(UTC)) + timedelta(days=days)


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


def queries(list_id: int) -> dict[tuple, list[dict]]:
    """Queries of GET /tasks by the shape of totals.TOTALS they exercise (None: counted)."""
    due = {}
    for query in ranges():
        shape = tuple(name for name in ("due_after", "due_before", "overdue") if name in query)
        due.setdefault(shape, []).append(query)
    return {
        (): [{}],
        ("list_id",): [{"list_id": list_id}],
        ("inbox",): [{"list_id": "null"}],
        ("priority",): [{"priority": [name]} for name in PRIORITIES]
        + [{"priority": ["low", "high"]}],
        ("label:1",): [{"label": ["home"]}, {"label": ["URGENT"]}, {"label": ["later"]}],
        ("labels",): [{"label": ["home", "urgent"]}],
        **due,
        None: [{"list_id": list_id, "priority": ["high"]}, {"parent_id": "null"}],
    }


def tasks_of(user_id: int) -> list[dict]:
    db.session.expire_all()
    rows = db.session.execute(
        select(
            Task.id, Task.priority, Task.completed, Task.due_at, Task.list_id, Task.parent_id
        ).where(Task.user_id == user_id)
    )
    links = db.session.execute(
        select(task_labels.c.task_id, Label.key).join(Label, Label.id == task_labels.c.label_id)
    ).all()
    keys = {}
    for task_id, key in links:
        keys.setdefault(task_id, set()).add(key)
    return [{**row._asdict(), "labels": keys.get(row.id, set())} for row in rows]


def matches(task: dict, query: dict, now: datetime) -> bool:
    """Whether ``task`` matches a GET /tasks query."""
    due = task["due_at"]
    if "completed" in query and task["completed"] != (query["completed"] == "true"):
        return False
    if "priority" in query and PRIORITIES[task["priority"]] not in query["priority"]:
        return False
    if "list_id" in query and task["list_id"] != (
        None if query["list_id"] == "null" else query["list_id"]
    ):
        return False
    if "parent_id" in query and task["parent_id"] is not None:
        return False
    if not {name.casefold() for name in query.get("label", [])} <= task["labels"]:
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


def assert_totals(client, headers, user_id: int, list_id: int) -> None:
    """Every total GET /tasks gives, kept or counted, equals the tasks matched, with and
    without ``completed``; and a kept one, with a search that every task matches, the same."""
    now = datetime.now(UTC)
    tasks = tasks_of(user_id)
    for shape, examples in queries(list_id).items():
        for query in [
            # One task a page: the total is the page's, whatever its size, and is all we read.
            {**example, **done, "page_size": 1}
            for example in examples
            for done in ({}, {"completed": "true"}, {"completed": "false"})
        ]:
            meta = client.get("/tasks", query_string=query, headers=headers).json["meta"]
            expected = sum(matches(task, query, now) for task in tasks)
            if "overdue" in query:  # the request's own now: a task may fall due in between
                assert abs(meta["total"] - expected) <= 1, (shape, query)
            else:
                assert meta["total"] == expected, (shape, query)
            if shape is None or "completed" in query or "overdue" in query:
                continue
            searched = {**query, "search": "a"}  # always counted, in the matches
            unkept = client.get("/tasks", query_string=searched, headers=headers).json["meta"]
            assert unkept["total"] == meta["total"], (shape, query)
    labels = client.get("/labels", headers=headers).json["data"]
    for label in labels:
        counted = sum(label["name"].casefold() in task["labels"] for task in tasks)
        assert label["tasks"] == counted, label


def test_every_shape_of_the_registry_is_exercised():
    assert set(totals.TOTALS) <= set(queries(1)), set(totals.TOTALS) - set(queries(1))
    kept = {count.table for count in totals.KEPT}
    for shape, total in totals.TOTALS.items():  # a kept total reads only counts KEPT checks
        assert not total.kept or set(total.tables) - {"tasks"} <= kept, shape


@pytest.mark.slow
def test_kept_counts_and_totals_follow_every_writer(client, auth, make_task):
    headers, other = auth(), auth()
    user_id = client.get("/me", headers=headers).json["id"]
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    home = client.post("/lists", json={"name": "Home"}, headers=headers).json["id"]
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
    mover = make_task(headers, title="a mover", list_id=work, labels=["urgent"])["id"]
    make_task(headers, title="a subtask that follows", parent_id=mover, completed=True)
    daily = make_task(
        headers, due_at=iso(dues[2]), recurrence="FREQ=DAILY;COUNT=3", priority="medium"
    )["id"]
    theirs = [
        make_task(other, title="theirs", due_at=iso(dues[3]), labels=["home"])["id"]
        for _ in range(2)
    ]
    assert_kept_counts()
    assert_totals(client, headers, user_id, work)

    steps = [
        ("patch", f"/tasks/{tasks[1]}", {"due_at": iso(dues[4]), "priority": "high"}),
        ("patch", f"/tasks/{tasks[2]}", {"due_at": None, "list_id": work}),
        ("patch", f"/tasks/{tasks[5]}", {"completed": True, "labels": ["later"]}),
        ("patch", f"/tasks/{tasks[6]}", {"completed": False}),
        ("put", f"/tasks/{tasks[4]}", {"title": "replaced"}),
        ("patch", f"/tasks/{mover}", {"list_id": home}),  # with its subtask
        ("post", f"/tasks/{mover}/move", {"list_id": None}),  # with its subtask
        ("post", f"/tasks/{tasks[3]}/move", {"after": tasks[0]}),  # into the inbox
        ("patch", f"/tasks/{daily}", {"completed": True}),  # the next day, still open
        ("patch", f"/tasks/{daily}", {"completed": True}),
        ("post", "/tasks/bulk", {"action": "complete", "ids": [*tasks[:8], daily]}),  # last
        ("post", "/tasks/bulk", {"action": "reopen", "ids": tasks[:4]}),
        ("post", "/tasks/bulk", {"action": "move", "ids": [tasks[8], parent], "list_id": home}),
        ("post", "/tasks/bulk", {"action": "label", "ids": tasks[6:12], "labels": ["Later"]}),
        ("post", "/tasks/bulk", {"action": "unlabel", "ids": tasks[:10], "labels": ["urgent"]}),
        ("patch", "/labels/home", {"name": "house"}),
        ("delete", "/labels/later", None),
        ("patch", f"/lists/{home}", {"name": "House"}),
        ("delete", f"/tasks/{parent}", None),  # with its subtask
        ("post", "/tasks/bulk", {"action": "delete", "ids": tasks[12:]}),
        ("delete", f"/lists/{work}", None),  # with its tasks
    ]
    for method, path, body in steps:
        response = client.open(path, method=method.upper(), json=body, headers=headers)
        assert response.status_code < 300, (path, response.json)
        assert_kept_counts()
        assert_totals(client, headers, user_id, home)

    response = client.delete("/me", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 204, response.json
    assert_kept_counts()
    for kept in totals.KEPT:  # nothing of the user is kept; the other user's counts stay
        table = db.metadata.tables[kept.table]
        if "user_id" in table.c:
            mine = select(func.count()).where(table.c.user_id == user_id)
            assert db.session.scalar(mine) == 0, kept.table
    assert client.get("/tasks", headers=other).json["meta"]["total"] == len(theirs)


@pytest.mark.parametrize(
    "table, trigger",
    [
        ("tasks", "tasks_changed_update"),  # task_counts, lists, priorities, due days
        ("task_labels", "task_labels_delta_insert"),  # label_counts
    ],
)
def test_a_disabled_trigger_is_caught(client, auth, make_task, table, trigger):
    """The comparison is no tautology: without any one trigger, a kept count drifts."""
    headers = auth()
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    task = make_task(headers, due_at=iso(midnight(1)))
    assert_kept_counts()
    db.session.execute(db.text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
    changes = {
        "completed": True,
        "due_at": iso(midnight(3)),
        "priority": "high",
        "list_id": work,
        "labels": ["x"],
    }
    response = client.patch(f"/tasks/{task['id']}", json=changes, headers=headers)
    assert response.status_code == 200
    with pytest.raises(AssertionError):
        assert_kept_counts()


def test_the_registry_names_every_counting_trigger(app):
    names = db.session.scalars(
        db.text(
            "SELECT t.tgname FROM pg_trigger AS t JOIN pg_proc AS p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND p.prosrc LIKE '%count%'"
        )
    )
    prefixes = {name.rsplit("_", 1)[0] for name in names}
    assert prefixes == {kept.triggers for kept in totals.KEPT}
