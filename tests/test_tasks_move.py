"""Manual order: new tasks at the end of their list, POST /tasks/{id}/move between two
neighbours without renumbering, the position sort."""

import pytest
from sqlalchemy import select

from conftest import assert_error
from taskapp.extensions import db
from taskapp.tasks.models import Task


@pytest.fixture
def headers(auth):
    return auth()


def order(client, headers, query: str = "list_id=null") -> list[str]:
    listed = client.get(f"/tasks?sort=position&order=asc&page_size=100&{query}", headers=headers)
    assert listed.status_code == 200, listed.json
    return [task["title"] for task in listed.json["data"]]


@pytest.fixture
def abcd(headers, make_task):
    return {title: make_task(headers, title=title)["id"] for title in "abcd"}


def move(client, headers, task_id, **body):
    return client.post(f"/tasks/{task_id}/move", json=body, headers=headers)


def test_new_tasks_go_to_the_end_of_their_list(client, headers, abcd):
    assert order(client, headers) == ["a", "b", "c", "d"]
    assert order(client, headers, "") == ["a", "b", "c", "d"]
    descending = client.get("/tasks?sort=position&order=desc", headers=headers).json["data"]
    assert [task["title"] for task in descending] == ["d", "c", "b", "a"]


def test_move_after_and_before_renumbers_nothing(client, headers, abcd):
    before = {row.id: row.position for row in db.session.execute(select(Task.id, Task.position))}

    moved = move(client, headers, abcd["d"], after=abcd["a"])
    assert moved.status_code == 200
    assert order(client, headers) == ["a", "d", "b", "c"]
    assert move(client, headers, abcd["a"], before=abcd["c"]).status_code == 200
    assert order(client, headers) == ["d", "b", "a", "c"]
    assert move(client, headers, abcd["d"]).status_code == 200  # to the end
    assert order(client, headers) == ["b", "a", "c", "d"]

    db.session.expire_all()
    after = {row.id: row.position for row in db.session.execute(select(Task.id, Task.position))}
    assert after[abcd["b"]] == before[abcd["b"]] and after[abcd["c"]] == before[abcd["c"]]
    assert len(set(after.values())) == 4


def test_many_moves_between_the_same_neighbours_keep_keys_distinct(client, headers, abcd):
    for _ in range(30):
        assert move(client, headers, abcd["c"], after=abcd["a"]).status_code == 200
        assert move(client, headers, abcd["b"], after=abcd["a"]).status_code == 200
    assert order(client, headers) == ["a", "b", "c", "d"]


def test_move_into_another_list(client, headers, abcd, make_task):
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    x = make_task(headers, title="x", list_id=work)["id"]

    moved = move(client, headers, abcd["b"], before=x)
    assert moved.json["list_id"] == work
    assert order(client, headers, f"list_id={work}") == ["b", "x"]
    assert move(client, headers, abcd["c"], list_id=work).json["list_id"] == work
    assert order(client, headers, f"list_id={work}") == ["b", "x", "c"]
    assert move(client, headers, abcd["c"], list_id=None).json["list_id"] is None
    assert order(client, headers) == ["a", "d", "c"]


def test_bad_moves(client, auth, headers, abcd, make_task):
    theirs = make_task(auth())["id"]
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]

    assert_error(move(client, headers, abcd["a"], after=theirs), 404)
    assert_error(move(client, headers, theirs, after=abcd["a"]), 404)
    assert_error(move(client, headers, abcd["a"], after=abcd["a"]), 422)
    assert_error(move(client, headers, abcd["a"], after=abcd["b"], list_id=work), 422)
    assert_error(move(client, headers, abcd["a"], after=abcd["b"], before=abcd["c"]), 422)
    assert_error(move(client, headers, abcd["a"], after="2"), 422)
    parent = make_task(headers, title="p")["id"]
    child = make_task(headers, title="c", parent_id=parent)["id"]
    assert_error(move(client, headers, child, list_id=work), 422)
    assert order(client, headers) == ["a", "b", "c", "d", "p", "c"]


def test_move_honours_if_match(client, headers, abcd):
    url = f"/tasks/{abcd['a']}"
    etag = client.get(url, headers=headers).headers["ETag"]

    moved = client.post(
        f"{url}/move", json={"after": abcd["b"]}, headers={**headers, "If-Match": etag}
    )
    assert moved.status_code == 200
    assert moved.headers["ETag"] != etag
    stale = client.post(
        f"{url}/move", json={"after": abcd["c"]}, headers={**headers, "If-Match": etag}
    )
    assert_error(stale, 412)
    assert order(client, headers) == ["b", "a", "c", "d"]


def test_cursor_walks_the_position_sort(client, headers, abcd):
    page = client.get("/tasks?sort=position&order=asc&page_size=3", headers=headers).json
    cursor = page["meta"]["next_cursor"]
    rest = client.get(
        f"/tasks?sort=position&order=asc&page_size=3&cursor={cursor}", headers=headers
    )
    assert [t["title"] for t in page["data"] + rest.json["data"]] == ["a", "b", "c", "d"]
