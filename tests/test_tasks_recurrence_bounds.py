"""What a client's rule may cost: a rule is accepted only if its next occurrence is found
within a fixed budget of steps, its numbers are in RFC 5545's ranges and ASCII, and it is
evaluated before any lock is taken; what was stored before ends instead of costing more."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, update

from conftest import assert_error
from taskapp.extensions import db
from taskapp.tasks import recurrence
from taskapp.tasks.models import Task

DUE = "2024-01-01T09:00:00+00:00"  # a Monday
NEVER = [
    "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
    "FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=31",
    "FREQ=DAILY;INTERVAL=14;BYDAY=WE;UNTIL=99991231",
    "FREQ=YEARLY;BYDAY=53MO;BYMONTHDAY=1",
    "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30",  # from a February 29th: every February
]


@pytest.fixture
def headers(auth):
    return auth()


@pytest.mark.parametrize("rule", NEVER)
def test_a_rule_whose_next_occurrence_is_not_found_is_refused_everywhere(
    client, headers, make_task, rule
):
    due = "2024-02-29T09:00:00+00:00" if "INTERVAL=12" in rule else DUE
    body = {"title": "t", "due_at": due, "recurrence": rule}
    assert_error(client.post("/tasks", json=body, headers=headers), 422)
    task = make_task(headers, due_at=due)
    url = f"/tasks/{task['id']}"
    assert_error(client.put(url, json=body, headers=headers), 422)
    assert_error(client.patch(url, json={"recurrence": rule}, headers=headers), 422)
    assert client.get(url, headers=headers).json["recurrence"] is None


def test_a_due_date_that_makes_the_rule_never_match_is_refused(client, headers, make_task):
    task = make_task(headers, due_at=DUE, recurrence="FREQ=DAILY;INTERVAL=7;BYDAY=MO")
    url = f"/tasks/{task['id']}"
    tuesday = "2024-01-02T09:00:00+00:00"
    assert_error(client.patch(url, json={"due_at": tuesday}, headers=headers), 422)
    assert client.get(url, headers=headers).json["due_at"] == DUE


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=\u0661\u0662",  # Arabic-Indic digits, which int() reads
        "FREQ=DAILY;COUNT=\u0663",
        "FREQ=MONTHLY;BYMONTHDAY=\u0661",
        "FREQ=DAILY;UNTIL=\u0662\u0660\u0662\u0667\u0660\u0661\u0660\u0661",
        "FREQ=MONTHLY;BYDAY=\u0661MO",
        "FREQ=DAILY;INTERVAL=\uff11",  # a full-width digit
        "FREQ=MONTHLY;BYDAY=6MO",
        "FREQ=MONTHLY;BYDAY=-6FR",
        "FREQ=YEARLY;BYDAY=54MO",
        "FREQ=YEARLY;BYDAY=0MO",
        "FREQ=WEEKLY;BYDAY=1MO",  # ordinals only in MONTHLY and YEARLY (RFC 5545)
        "FREQ=DAILY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYMONTHDAY=0",
        "FREQ=MONTHLY;BYMONTHDAY=-32",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;INTERVAL=10001",
        "FREQ=DAILY;INTERVAL=99999999999999999999",
        "FREQ=DAILY;COUNT=-1",
        "FREQ=DAILY;UNTIL=20270230",
        "FREQ=DAILY;BYDAY=MO,",
    ],
)
def test_numbers_out_of_range_or_not_ascii_are_422(client, headers, rule):
    body = {"title": "t", "due_at": DUE, "recurrence": rule}
    assert_error(client.post("/tasks", json=body, headers=headers), 422, field="recurrence")


def test_a_next_occurrence_past_the_year_9999_is_refused(client, headers, make_task):
    body = {"title": "t", "due_at": "9999-06-01T09:00:00+00:00", "recurrence": "FREQ=YEARLY"}
    assert_error(client.post("/tasks", json=body, headers=headers), 422)
    # One that still has an occurrence is accepted; the series ends with the calendar.
    task = make_task(headers, due_at="9999-12-30T09:00:00+00:00", recurrence="FREQ=DAILY")
    url = f"/tasks/{task['id']}"
    first = client.patch(url, json={"completed": True}, headers=headers)
    assert (first.status_code, first.json["due_at"]) == (200, "9999-12-31T09:00:00+00:00")
    last = client.patch(url, json={"completed": True}, headers=headers)
    assert (last.status_code, last.json["completed"]) == (200, True)


@pytest.mark.parametrize("rule", NEVER)
def test_evaluation_is_bounded_by_construction(monkeypatch, rule):
    periods = 0
    walk = recurrence._periods

    def counted(*args):
        nonlocal periods
        for period in walk(*args):
            periods += 1
            yield period

    monkeypatch.setattr(recurrence, "_periods", counted)
    start = datetime(2024, 2, 29, 9, tzinfo=UTC)
    with pytest.raises(recurrence.Unbounded):
        recurrence.check(rule, start)
    assert 0 < periods <= recurrence.BUDGET
    assert recurrence.next_occurrence(rule, start) is None


def test_rare_rules_a_person_means_are_found_within_the_budget():
    friday_13th = recurrence.compile_rule(recurrence.parse("FREQ=DAILY;BYDAY=FR;BYMONTHDAY=13"))
    # From the day after a Friday 13th (January 2023), the next is in October: 273 days.
    start = datetime(2023, 1, 14, 9, tzinfo=UTC)
    assert recurrence.occurrence_after(friday_13th, start) == datetime(2023, 10, 13, 9, tzinfo=UTC)


def test_a_stored_rule_that_never_matches_costs_one_budget_and_ends(client, headers, make_task):
    """Rows stored before the check: completing them (one by one or in bulk) ends them."""
    ids = [make_task(headers, due_at=DUE, recurrence="FREQ=DAILY")["id"] for _ in range(20)]
    with client.application.app_context():
        db.session.execute(
            update(Task).where(Task.id.in_(ids)).values(recurrence="FREQ=DAILY;INTERVAL=7;BYDAY=TU")
        )
        db.session.commit()
    started = datetime.now(UTC)
    done = client.patch(f"/tasks/{ids[0]}", json={"completed": True}, headers=headers)
    assert (done.status_code, done.json["completed"]) == (200, True)
    bulk = client.post("/tasks/bulk", json={"action": "complete", "ids": ids[1:]}, headers=headers)
    assert bulk.status_code == 200 and bulk.json["ids"] == sorted(ids[1:])
    # dateutil walked to the year 9999: about 0.7 s each, 14 s for these; here a few ms each.
    assert (datetime.now(UTC) - started).total_seconds() < 5


@pytest.mark.parametrize("bulk", [False, True])
def test_completion_evaluates_the_rule_before_taking_any_lock(
    client, headers, make_task, monkeypatch, bulk
):
    task = make_task(headers, due_at=DUE, recurrence="FREQ=WEEKLY")
    statements: list[str] = []
    evaluated_after: list[list[str]] = []
    real = recurrence.next_occurrence

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    def spy(*args):
        evaluated_after.append(list(statements))
        return real(*args)

    monkeypatch.setattr(recurrence, "next_occurrence", spy)
    with client.application.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        if bulk:
            body = {"action": "complete", "ids": [task["id"]]}
            response = client.post("/tasks/bulk", json=body, headers=headers)
        else:
            response = client.patch(
                f"/tasks/{task['id']}", json={"completed": True}, headers=headers
            )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    assert len(evaluated_after) == 1
    assert any("FOR UPDATE" in statement for statement in statements)
    # Nothing before it locked a row or took the user's queue (an upsert of task_counts).
    assert not any(
        "FOR UPDATE" in statement or "task_counts" in statement for statement in evaluated_after[0]
    )
