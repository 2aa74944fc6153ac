"""The task fields of issue 15 (list, due date, priority, labels, completion time) and the
GET /tasks filters and sorts over them."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from conftest import assert_error
from taskapp.extensions import db


@pytest.fixture
def headers(auth):
    return auth()


def titles(client, headers, query: str) -> list[str]:
    response = client.get(f"/tasks?page_size=100&{query}", headers=headers)
    assert response.status_code == 200, response.json
    return [task["title"] for task in response.json["data"]]


def test_defaults_keep_todays_clients_working(client, headers):
    created = client.post("/tasks", json={"title": "plain"}, headers=headers)

    assert created.status_code == 201
    assert {k: created.json[k] for k in ("list_id", "due_at", "priority", "labels")} == {
        "list_id": None,
        "due_at": None,
        "priority": "none",
        "labels": [],
    }
    assert created.json["completed_at"] is None


def test_due_at_is_stored_and_returned_in_utc(client, headers):
    created = client.post(
        "/tasks", json={"title": "t", "due_at": "2027-03-01T09:30:00+02:00"}, headers=headers
    )

    assert created.json["due_at"] == "2027-03-01T07:30:00+00:00"
    got = client.get(created.headers["Location"], headers=headers)
    assert got.json["due_at"] == "2027-03-01T07:30:00+00:00"
    cleared = client.patch(created.headers["Location"], json={"due_at": None}, headers=headers)
    assert cleared.json["due_at"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("due_at", "2027-03-01T09:30:00"),  # no offset
        ("due_at", "tomorrow"),
        ("due_at", "9999-12-31T23:00:00-05:00"),  # past year 9999 in UTC
        ("due_at", "0001-01-01T00:30:00+01:00"),  # before year 1 in UTC
        ("priority", "urgent"),
        ("priority", None),
        ("priority", 2),
        ("list_id", "1"),
        ("list_id", 0),
        ("list_id", 2**31),
    ],
)
def test_invalid_fields_are_422(client, headers, make_task, field, value):
    response = client.post("/tasks", json={"title": "t", field: value}, headers=headers)
    assert_error(response, 422, field=field)
    task = make_task(headers)
    patched = client.patch(f"/tasks/{task['id']}", json={field: value}, headers=headers)
    assert_error(patched, 422, field=field)


def test_completed_at_is_set_kept_and_cleared(client, headers, make_task):
    url = f"/tasks/{make_task(headers)['id']}"

    done = client.patch(url, json={"completed": True}, headers=headers).json
    assert done["completed_at"] is not None
    again = client.patch(url, json={"completed": True, "title": "x"}, headers=headers).json
    assert again["completed_at"] == done["completed_at"]
    reopened = client.patch(url, json={"completed": False}, headers=headers).json
    assert reopened["completed_at"] is None
    assert client.post("/tasks", json={"title": "t", "completed": True}, headers=headers).json[
        "completed_at"
    ]


def test_moving_a_task_to_a_list(client, auth, headers, make_task):
    mine = client.post("/lists", json={"name": "Mine"}, headers=headers).json
    theirs = client.post("/lists", json={"name": "Theirs"}, headers=auth()).json
    url = f"/tasks/{make_task(headers)['id']}"

    assert (
        client.patch(url, json={"list_id": mine["id"]}, headers=headers).json["list_id"]
        == mine["id"]
    )
    assert_error(client.patch(url, json={"list_id": theirs["id"]}, headers=headers), 404)
    assert client.get(url, headers=headers).json["list_id"] == mine["id"]
    assert client.patch(url, json={"list_id": None}, headers=headers).json["list_id"] is None


@pytest.fixture
def catalogue(client, headers, make_task):
    """Six tasks over two lists and the inbox, with due dates, priorities and labels."""
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    home = client.post("/lists", json={"name": "Home"}, headers=headers).json["id"]
    now = datetime.now(UTC)
    past, soon, later = (now + timedelta(days=d) for d in (-2, 1, 10))
    specs = [
        ("a", work, past, "high", ["x", "y"], False),
        ("b", work, soon, "low", ["x"], False),
        ("c", home, later, "medium", ["y"], False),
        ("d", home, None, "none", [], False),
        ("e", None, past, "high", ["X", "Y", "z"], True),
        ("f", None, None, "low", ["y"], False),
    ]
    for title, list_id, due, priority, labels, completed in specs:
        make_task(
            headers,
            title=title,
            list_id=list_id,
            due_at=due.isoformat() if due else None,
            priority=priority,
            labels=labels,
            completed=completed,
        )
    return {"work": work, "home": home, "soon": soon}


def test_filters(client, headers, catalogue):
    def matching(query):
        return sorted(titles(client, headers, query))

    assert matching(f"list_id={catalogue['work']}") == ["a", "b"]
    assert matching("list_id=null") == ["e", "f"]
    assert matching("priority=high") == ["a", "e"]
    assert matching("priority=high&priority=low") == ["a", "b", "e", "f"]
    assert matching("label=x") == ["a", "b", "e"]
    assert matching("label=X&label=y") == ["a", "e"]  # all of them, any case
    assert matching("label=x&label=y&label=z") == ["e"]
    assert matching("label=nothing") == []
    assert matching("label=x&label=nothing") == []
    assert matching("label=x&label=X") == ["a", "b", "e"]  # one label, named twice
    soon = catalogue["soon"].isoformat().replace("+00:00", "Z")
    assert matching(f"due_before={soon}") == ["a", "e"]
    assert matching(f"due_after={soon}") == ["b", "c"]
    assert matching("overdue=true") == ["a"]  # e is overdue but completed
    assert matching("overdue=false") == ["b", "c", "d", "e", "f"]
    assert matching("overdue=true&completed=false&search=A") == ["a"]
    assert matching(f"list_id={catalogue['home']}&priority=medium&label=y") == ["c"]


def test_filtered_totals_count_the_matches(client, headers, catalogue):
    listed = client.get("/tasks?page_size=1&label=y", headers=headers).json
    assert listed["meta"]["total"] == 4
    assert listed["meta"]["pages"] == 4
    # Counted in task_labels alone when labels are the only filter; with another, over tasks.
    for query, total in [("label=x&label=Y", 2), ("label=x&label=y&label=z", 1)]:
        assert client.get(f"/tasks?{query}", headers=headers).json["meta"]["total"] == total
    both = client.get("/tasks?label=y&completed=false", headers=headers).json["meta"]
    assert both["total"] == 3
    unknown = client.get("/tasks?label=y&label=nothing&page=2", headers=headers).json
    assert unknown == {
        "data": [],
        "meta": {"page": 2, "page_size": 10, "total": 0, "pages": 0, "next_cursor": None},
    }


@pytest.mark.parametrize(
    "query",
    [
        "list_id=x",
        "list_id=0",
        "priority=urgent",
        "label=",
        "due_before=2027-01-01T00:00:00",
        "due_after=soon",
        "due_before=9999-12-31T23:00:00-05:00",
        "overdue=yes",
        "sort=rank",
    ],
)
def test_invalid_filters_are_422(client, headers, query):
    assert_error(client.get(f"/tasks?{query}", headers=headers), 422)


def test_sorts_by_due_date_with_undated_tasks_last(client, headers, catalogue):
    assert titles(client, headers, "sort=due_at&order=asc") == ["a", "e", "b", "c", "d", "f"]
    assert titles(client, headers, "sort=due_at&order=desc") == ["c", "b", "e", "a", "f", "d"]


def test_sorts_by_priority(client, headers, catalogue):
    assert titles(client, headers, "sort=priority&order=desc") == ["e", "a", "c", "f", "b", "d"]
    assert titles(client, headers, "sort=priority&order=asc") == ["d", "b", "f", "c", "a", "e"]


@pytest.mark.parametrize("sort", ["due_at", "priority"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursors_walk_the_new_sorts(client, headers, catalogue, sort, order):
    expected = titles(client, headers, f"sort={sort}&order={order}")
    walked, query = [], f"sort={sort}&order={order}&page_size=2"
    for _ in range(10):
        page = client.get(f"/tasks?{query}", headers=headers).json
        walked += [task["title"] for task in page["data"]]
        if page["meta"]["next_cursor"] is None:
            break
        query = f"sort={sort}&order={order}&page_size=2&cursor={page['meta']['next_cursor']}"
    assert walked == expected


def test_a_page_reads_its_labels_in_its_own_query(app, client, headers, make_task):
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    def queries_for_a_page() -> int:
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert client.get("/tasks?page_size=100", headers=headers).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    make_task(headers, labels=["a", "b"])
    one = queries_for_a_page()
    for n in range(9):
        make_task(headers, labels=[f"l{n}", "a"])
    assert queries_for_a_page() == one
    page = client.get("/tasks?page_size=100", headers=headers).json["data"]
    assert all(len(task["labels"]) == 2 for task in page)
