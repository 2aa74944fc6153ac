"""Idempotency-Key on POST /tasks: replays, conflicts, per-user keys, expiry and the purge."""

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from conftest import PASSWORD, assert_error, own_connection, requires_redis
from taskapp.database import advisory_key
from taskapp.extensions import db
from taskapp.idempotency import service
from taskapp.idempotency.models import IdempotencyKey
from taskapp.tasks.models import Task
from tests.support.servers import call, gunicorn


def task_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Task))


def post(client, headers, key, **body):
    body.setdefault("title", "pay rent")
    return client.post("/tasks", json=body, headers={**headers, "Idempotency-Key": key})


def test_a_retry_replays_the_first_response_without_creating_again(client, auth):
    headers = auth()
    first = post(client, headers, "8e03978e-40d5-43e8-bc93-6894a57f9324")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = post(client, headers, "8e03978e-40d5-43e8-bc93-6894a57f9324")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    for name in ("Location", "ETag", "Content-Type"):
        assert again.headers[name] == first.headers[name]
    assert task_count() == 1


def test_the_quoted_form_of_the_draft_is_the_same_key(client, auth):
    headers = auth()
    assert post(client, headers, "abc").status_code == 201
    again = post(client, headers, '"abc"')
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert task_count() == 1


def test_the_same_key_with_another_request_is_a_422(client, auth):
    headers = auth()
    assert post(client, headers, "k1", title="one").status_code == 201
    assert_error(post(client, headers, "k1", title="two"), 422)
    assert task_count() == 1


def test_keys_are_per_user(client, auth):
    alice, bob = auth(), auth()
    first = post(client, alice, "shared")
    second = post(client, bob, "shared")
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert first.json["id"] != second.json["id"]
    assert task_count() == 2


def test_without_the_header_every_post_creates(client, auth):
    headers = auth()
    for _ in range(2):
        assert client.post("/tasks", json={"title": "t"}, headers=headers).status_code == 201
    assert task_count() == 2


@pytest.mark.parametrize(
    "key", ["", "a" * 256, "tab\there", "é", '"unterminated', '"a"b"'], ids=repr
)
def test_a_malformed_key_is_a_400_and_creates_nothing(client, auth, key):
    body = assert_error(post(client, auth(), key), 400)
    assert "Idempotency-Key" in body["errors"]["headers"]
    assert task_count() == 0


def test_a_key_of_255_characters_is_taken(client, auth):
    assert post(client, auth(), "k" * 255).status_code == 201


def test_a_failed_request_keeps_no_key(client, auth):
    headers = auth()
    assert_error(
        client.post("/tasks", json={"title": ""}, headers={**headers, "Idempotency-Key": "f"}),
        422,
    )
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    assert post(client, headers, "f").status_code == 201


def test_an_attempt_still_in_flight_is_a_409(client, auth, app):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    # The first attempt's transaction holds the key's lock until it commits or rolls back.
    first_attempt = own_connection()
    first_attempt.autocommit = False
    try:
        lock = advisory_key("idempotency", user_id, "k")
        first_attempt.cursor().execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        response = post(client, headers, "k")
        assert_error(response, 409)
        # At least the service's 1 s; Flask-Limiter raises it to the task-write window's
        # reset (it keeps the larger of the two), when a retry cannot be refused for rate.
        assert int(response.headers["Retry-After"]) >= 1
        assert task_count() == 0
    finally:
        first_attempt.close()
    assert post(client, headers, "k").status_code == 201
    assert task_count() == 1


def test_the_work_commits_only_with_its_stored_response(client, auth, monkeypatch):
    # A worker that dies after the work and before the response is stored leaves neither:
    # the retry does the work once, instead of finding it done and nothing to replay.
    headers = auth()
    stored = service.store_response

    def dies(*args, **kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(service, "store_response", dies)
    with pytest.raises(SystemExit):
        post(client, headers, "k")
    assert task_count() == 0
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    monkeypatch.setattr(service, "store_response", stored)
    first = post(client, headers, "k")
    assert first.status_code == 201
    again = post(client, headers, "k")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert task_count() == 1


def test_an_expired_key_is_used_afresh(client, auth, app):
    headers = auth()
    assert post(client, headers, "old").status_code == 201
    hours = app.config["IDEMPOTENCY_KEY_HOURS"]
    long_ago = datetime.now(UTC) - timedelta(hours=hours, minutes=1)
    db.session.execute(update(IdempotencyKey).values(created_at=long_ago))
    db.session.commit()
    again = post(client, headers, "old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert task_count() == 2


def test_the_purge_removes_old_keys_only(client, auth, runner):
    headers = auth()
    assert post(client, headers, "old").status_code == 201
    assert post(client, headers, "new").status_code == 201
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    db.session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == "old").values(created_at=long_ago)
    )
    db.session.commit()
    result = runner.invoke(args=["idempotency", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1" in result.output
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["new"]


def test_the_spec_documents_the_header_and_its_answers(client):
    operation = client.get("/openapi.json").json["paths"]["/tasks"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
    assert {"400", "409", "422"} <= set(operation["responses"])
    assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]


@requires_redis
@pytest.mark.gunicorn
@pytest.mark.committing
def test_concurrent_attempts_on_two_workers_create_once(app, tmp_path):
    attempts = 12
    with gunicorn(tmp_path, workers=2) as server:  # 4 threads each, as deployed
        email = "idem-race@example.com"
        call(server, "POST", "/signup", json={"email": email, "password": PASSWORD})
        login = call(server, "POST", "/login", json={"email": email, "password": PASSWORD})
        headers = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "Idempotency-Key": "race-1",
        }
        barrier = threading.Barrier(attempts)
        answers = []

        def attempt():
            barrier.wait(timeout=30)
            answers.append(call(server, "POST", "/tasks", json={"title": "once"}, headers=headers))

        threads = [threading.Thread(target=attempt) for _ in range(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == attempts
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) <= {201, 409}, statuses
        created = [answer for answer in answers if answer.status_code == 201]
        assert {answer.json()["id"] for answer in created} == {created[0].json()["id"]}
        # Once every attempt is answered, a retry replays.
        again = call(server, "POST", "/tasks", json={"title": "once"}, headers=headers)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == created[0].json()
    with app.app_context():
        assert task_count() == 1


KEYS = ["a", "k" * 255, "k" * 256, "with space", '"quoted"', '"esc\\"aped"', '"', '""', "", "é"]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_the_key_pattern_in_the_spec_is_the_rule(client, auth, key):
    parameters = client.get("/openapi.json").json["paths"]["/tasks"]["post"]["parameters"]
    (rule,) = [p["schema"]["pattern"] for p in parameters if p["name"] == "Idempotency-Key"]
    response = post(client, auth(), key)
    assert response.status_code == (201 if re.search(rule, key) else 400)
