"""The manual order's keys cannot run out: every path that mints a key (create, move, bulk
move) keeps it at most MAX_KEY_LENGTH long, respacing the neighbours of a crowded gap (which
then read differently: new versions, ETags, changes-feed entries), never a 500."""

import time

import pytest
from fractional_indexing import generate_key_between
from sqlalchemy import func, select, update

from taskapp.extensions import db
from taskapp.tasks.locks import lock_task
from taskapp.tasks.models import Task
from taskapp.tasks.placement import MAX_KEY_LENGTH, move_position

# The column's length: a key minted past it was a 500.
COLUMN_LENGTH = Task.__table__.c.position.type.length
# The largest key and the smallest, each as long as the column allows: nothing fits after the
# first or before the second without a longer key.
LAST_KEY = "z" * COLUMN_LENGTH
FIRST_KEY = "A" + "0" * (COLUMN_LENGTH - 2) + "1"


@pytest.fixture
def headers(auth):
    return auth()


def user_id(client, headers) -> int:
    return client.get("/me", headers=headers).json["id"]


def order(client, headers, list_id="null") -> list[str]:
    listed = client.get(
        f"/tasks?sort=position&order=asc&page_size=100&list_id={list_id}", headers=headers
    )
    assert listed.status_code == 200, listed.json
    return [task["title"] for task in listed.json["data"]]


def longest_key() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.max(func.length(Task.position))))


def stored_versions() -> dict[int, int]:
    db.session.expire_all()
    return dict(db.session.execute(select(Task.id, Task.version)).all())


def set_position(task_id: int, position: str) -> None:
    db.session.execute(update(Task).where(Task.id == task_id).values(position=position))
    db.session.commit()


@pytest.mark.committing
def test_two_thousand_alternating_moves_into_one_gap_all_succeed(client, headers, make_task):
    ids = {title: make_task(headers, title=title)["id"] for title in "abcd"}
    owner = user_id(client, headers)
    started = time.monotonic()
    # The bulk through placement, as move_task mints and writes a key, a commit per hundred
    # moves (the whole service takes about 25 ms a move here); a sample through HTTP below.
    for step in range(2000):
        moved = ids["c"] if step % 2 == 0 else ids["b"]
        _, position = move_position(owner, lock_task(owner, moved), after=ids["a"])
        db.session.execute(update(Task).where(Task.id == moved).values(position=position))
        if step % 100 == 99:
            db.session.commit()
            assert order(client, headers) == ["a", "b", "c", "d"]
            assert longest_key() <= MAX_KEY_LENGTH
    for step in range(40):
        moved = ids["c"] if step % 2 == 0 else ids["b"]
        response = client.post(f"/tasks/{moved}/move", json={"after": ids["a"]}, headers=headers)
        assert response.status_code == 200, response.json
        assert len(response.json["position"]) <= MAX_KEY_LENGTH
    assert order(client, headers) == ["a", "b", "c", "d"]
    assert longest_key() <= MAX_KEY_LENGTH
    assert len(set(db.session.scalars(select(Task.position)))) == 4
    assert time.monotonic() - started < 60  # about 10 s here: the respacing stays cheap


@pytest.mark.parametrize(
    "how",
    ["create", "move to the end", "bulk move", "move after the last", "move before the first"],
)
def test_every_path_that_mints_a_key_stays_bounded_next_to_a_key_at_the_limit(
    client, headers, make_task, how
):
    ids = {title: make_task(headers, title=title)["id"] for title in "abc"}
    set_position(ids["a"], FIRST_KEY)
    set_position(ids["c"], LAST_KEY)
    post = {
        "create": lambda: client.post("/tasks", json={"title": "x"}, headers=headers),
        "move to the end": lambda: client.post(f"/tasks/{ids['b']}/move", json={}, headers=headers),
        "bulk move": lambda: client.post(
            "/tasks/bulk",
            json={"action": "move", "ids": [ids["b"]], "list_id": None},
            headers=headers,
        ),
        "move after the last": lambda: client.post(
            f"/tasks/{ids['b']}/move", json={"after": ids["c"]}, headers=headers
        ),
        "move before the first": lambda: client.post(
            f"/tasks/{ids['b']}/move", json={"before": ids["a"]}, headers=headers
        ),
    }[how]
    response = post()
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    expected = {
        "create": ["a", "b", "c", "x"],
        "move to the end": ["a", "c", "b"],
        "bulk move": ["a", "c", "b"],
        "move after the last": ["a", "c", "b"],
        "move before the first": ["b", "a", "c"],
    }[how]
    assert order(client, headers) == expected
    assert longest_key() <= MAX_KEY_LENGTH


def crowded_gap(headers, make_task) -> dict:
    """Tasks a, b, then x, y, z after them, with b's key so close to a's that the next key
    between them would be longer than MAX_KEY_LENGTH."""
    ids = {t: make_task(headers, title=t)["id"] for t in "abxyz"}
    key = "a1"
    while len(generate_key_between("a0", key)) <= MAX_KEY_LENGTH:
        key = generate_key_between("a0", key)
    set_position(ids["a"], "a0")
    set_position(ids["b"], key)
    return ids


def test_respaced_neighbours_read_differently_and_keep_their_order(client, headers, make_task):
    ids = crowded_gap(headers, make_task)
    before = {t: client.get(f"/tasks/{i}", headers=headers) for t, i in ids.items()}
    versions = stored_versions()

    moved = client.post(f"/tasks/{ids['z']}/move", json={"after": ids["a"]}, headers=headers)
    assert moved.status_code == 200, moved.json
    assert len(moved.json["position"]) <= MAX_KEY_LENGTH
    assert order(client, headers) == ["a", "z", "b", "x", "y"]
    respaced = set()
    for title in "abxy":
        now = client.get(f"/tasks/{ids[title]}", headers=headers)
        was = before[title]
        assert len(now.json["position"]) <= MAX_KEY_LENGTH
        if now.json["position"] == was.json["position"]:
            assert stored_versions()[ids[title]] == versions[ids[title]]
            assert now.headers["ETag"] == was.headers["ETag"]
            continue
        respaced.add(title)
        assert stored_versions()[ids[title]] == versions[ids[title]] + 1
        assert now.headers["ETag"] != was.headers["ETag"]
        stale = client.patch(
            f"/tasks/{ids[title]}",
            json={"title": "stale"},
            headers={**headers, "If-Match": was.headers["ETag"]},
        )
        assert stale.status_code == 412
    assert "b" in respaced  # the long key


def test_a_refused_move_respaces_nothing(client, headers, make_task):
    ids = crowded_gap(headers, make_task)
    db.session.expire_all()
    before = dict(db.session.execute(select(Task.id, Task.position)).all())
    stale = '"not-a-current-etag"'
    response = client.post(
        f"/tasks/{ids['z']}/move",
        json={"after": ids["a"]},
        headers={**headers, "If-Match": stale},
    )
    assert response.status_code == 412
    db.session.expire_all()
    assert dict(db.session.execute(select(Task.id, Task.position)).all()) == before


@pytest.mark.committing
def test_respaced_neighbours_are_in_the_changes_feed(app, client, headers, make_task):
    ids = crowded_gap(headers, make_task)
    token = client.get("/tasks/changes", headers=headers).json["sync_token"]
    listed = client.get("/tasks", headers=headers)
    was = {task["id"]: task["position"] for task in listed.json["data"]}
    moved = client.post(f"/tasks/{ids['z']}/move", json={"after": ids["a"]}, headers=headers)
    assert moved.status_code == 200
    changed = {}
    while True:
        answer = client.get("/tasks/changes", query_string={"since": token}, headers=headers)
        changed.update({task["id"]: task for task in answer.json["changed"]})
        token = answer.json["sync_token"]
        if not answer.json["has_more"]:
            break
    now = {
        task["id"]: task["position"] for task in client.get("/tasks", headers=headers).json["data"]
    }
    respaced = {task_id for task_id in now if now[task_id] != was[task_id]}
    assert {ids["b"], ids["z"]} <= respaced
    assert respaced <= changed.keys()
    for task_id in respaced:
        assert changed[task_id]["position"] == now[task_id]
    again = client.get("/tasks", headers={**headers, "If-None-Match": listed.headers["ETag"]})
    assert again.status_code == 200
