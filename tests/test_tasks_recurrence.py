"""Recurring tasks: an RRULE subset, validated; completing one moves it to its next
occurrence (evaluated in UTC) until the last, which completes it."""

import pytest

from conftest import assert_error


@pytest.fixture
def headers(auth):
    return auth()


DUE = "2026-12-02T09:00:00+00:00"


def recurring(make_task, headers, rule: str, due: str = DUE) -> dict:
    return make_task(headers, title="r", due_at=due, recurrence=rule)


@pytest.mark.parametrize(
    ("rule", "next_due", "next_rule"),
    [
        ("FREQ=DAILY", "2026-12-03T09:00:00+00:00", "FREQ=DAILY"),
        ("freq=weekly;byday=mo,we", "2026-12-07T09:00:00+00:00", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("FREQ=MONTHLY;BYMONTHDAY=31", "2026-12-31T09:00:00+00:00", "FREQ=MONTHLY;BYMONTHDAY=31"),
        ("FREQ=YEARLY;INTERVAL=2", "2028-12-02T09:00:00+00:00", "FREQ=YEARLY;INTERVAL=2"),
        ("FREQ=DAILY;COUNT=3", "2026-12-03T09:00:00+00:00", "FREQ=DAILY;COUNT=2"),
        ("FREQ=DAILY;UNTIL=20261203", "2026-12-03T09:00:00+00:00", "FREQ=DAILY;UNTIL=20261203"),
    ],
)
def test_completing_moves_to_the_next_occurrence(
    client, headers, make_task, rule, next_due, next_rule
):
    task = recurring(make_task, headers, rule)

    done = client.patch(f"/tasks/{task['id']}", json={"completed": True}, headers=headers)

    assert done.status_code == 200
    assert (done.json["completed"], done.json["completed_at"]) == (False, None)
    assert (done.json["due_at"], done.json["recurrence"]) == (next_due, next_rule)


@pytest.mark.parametrize("rule", ["FREQ=DAILY;COUNT=1", "FREQ=DAILY;UNTIL=20261202"])
def test_completing_the_last_occurrence_completes_it(client, headers, make_task, rule):
    task = recurring(make_task, headers, rule)

    done = client.patch(f"/tasks/{task['id']}", json={"completed": True}, headers=headers).json

    assert done["completed"] is True and done["completed_at"] is not None
    assert done["due_at"] == DUE


def test_count_runs_out(client, headers, make_task):
    task = recurring(make_task, headers, "FREQ=WEEKLY;COUNT=2")
    url = f"/tasks/{task['id']}"

    first = client.patch(url, json={"completed": True}, headers=headers).json
    assert (first["completed"], first["recurrence"]) == (False, "FREQ=WEEKLY;COUNT=1")
    second = client.patch(url, json={"completed": True}, headers=headers).json
    assert second["completed"] is True
    assert second["due_at"] == "2026-12-09T09:00:00+00:00"


def test_bulk_complete_advances_recurring_tasks(client, headers, make_task):
    task = recurring(make_task, headers, "FREQ=DAILY")
    plain = make_task(headers)

    done = client.post(
        "/tasks/bulk",
        json={"action": "complete", "ids": [task["id"], plain["id"]]},
        headers=headers,
    )

    assert done.json["ids"] == sorted([task["id"], plain["id"]])
    advanced = client.get(f"/tasks/{task['id']}", headers=headers).json
    assert (advanced["completed"], advanced["due_at"]) == (False, "2026-12-03T09:00:00+00:00")
    assert client.get(f"/tasks/{plain['id']}", headers=headers).json["completed"] is True


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY",
        "FREQ=DAILY;BYHOUR=9",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=2;UNTIL=20270101",
        "BYDAY=MO",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=MONTHLY;BYMONTHDAY=40",
        "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=DAILY;UNTIL=2027",
        "RRULE:FREQ=DAILY",
        "",
        5,
    ],
)
def test_invalid_rules_are_422(client, headers, rule):
    response = client.post(
        "/tasks", json={"title": "t", "due_at": DUE, "recurrence": rule}, headers=headers
    )
    assert_error(response, 422, field="recurrence")


def test_a_recurring_task_needs_a_due_date(client, headers, make_task):
    assert_error(
        client.post("/tasks", json={"title": "t", "recurrence": "FREQ=DAILY"}, headers=headers),
        422,
        field="recurrence",
    )
    task = recurring(make_task, headers, "FREQ=DAILY")
    url = f"/tasks/{task['id']}"
    assert_error(client.patch(url, json={"due_at": None}, headers=headers), 422)
    plain = make_task(headers)
    assert_error(
        client.patch(f"/tasks/{plain['id']}", json={"recurrence": "FREQ=DAILY"}, headers=headers),
        422,
    )
    assert client.get(url, headers=headers).json["due_at"] == DUE
    stopped = client.patch(url, json={"recurrence": None, "due_at": None}, headers=headers)
    assert stopped.status_code == 200
