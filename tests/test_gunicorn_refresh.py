"""Real multi-worker gunicorn on PostgreSQL: one refresh token, many concurrent refreshes."""

import json
import secrets
import threading

import pytest
import requests
from flask_jwt_extended import decode_token
from sqlalchemy import select

from conftest import PASSWORD, TEST_JWT_SECRET, requires_redis
from taskapp.auth.models import RefreshToken
from taskapp.extensions import db
from tests.support.servers import Held, call, gunicorn

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

WORKERS = 4
LATECOMERS = 8  # queued behind the first round, on whichever worker frees first
CLIENTS = WORKERS + LATECOMERS


@pytest.fixture
def server(app, tmp_path):
    """gunicorn -w 4, steerable (each worker one connection at a time)."""
    env = {
        # All the clients come from 127.0.0.1: keep the address limit out of this test.
        "RATELIMIT_REFRESH": "1000 per minute",
        # The app's key, so that the test can read the session id of the tokens it is given.
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
    }
    with gunicorn(tmp_path, steerable=True, workers=WORKERS, env=env) as served:
        yield served


def test_concurrent_refreshes_with_one_token_succeed_exactly_once(app, server):
    email = f"race-{secrets.token_hex(4)}@example.com"
    assert call(server, "POST", "/signup", json={"email": email, "password": PASSWORD}).ok
    login = call(server, "POST", "/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["refresh_token"]

    # One refresh held on each worker, all released at the same instant: every worker runs
    # its rotation at once, each in its own process and database connection.
    body = json.dumps({"refresh_token": token}).encode()
    held = [Held(server, "POST", "/refresh", body=body) for _ in range(WORKERS)]
    barrier = threading.Barrier(CLIENTS)
    answers, failures = [], []

    def refresh(held_request: Held | None) -> None:
        try:
            barrier.wait(timeout=30)
            if held_request is not None:
                answers.append(held_request.release())
            else:
                answers.append(
                    requests.post(
                        f"{server.url}/refresh",
                        data=body,
                        headers={"Connection": "close", "Content-Type": "application/json"},
                        timeout=30,
                    )
                )
        except Exception as error:  # reported by the main thread
            failures.append(error)

    threads = [
        threading.Thread(target=refresh, args=(request,))
        for request in [*held, *([None] * LATECOMERS)]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for request in held:
        request.sock.close()

    assert not failures, failures
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [401] * (CLIENTS - 1), [a.text for a in answers]
    for answer in answers:
        assert answer.headers["Content-Type"].startswith("application/json")
        body = answer.json()
        if answer.status_code == 401:
            assert body["code"] == 401 and body["status"] == "Unauthorized", body
            assert isinstance(body["message"], str) and body["message"]
            assert "msg" not in body
        else:
            assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    # Every worker took part, and none answered with a 5xx.
    pids = server.pids_by_status("POST", "/refresh", expected=CLIENTS)
    assert set(pids) == {200, 401}, server.access_log()
    assert len(set().union(*pids.values())) == WORKERS, server.access_log()
    # Exactly one rotation: the session holds the first token and one successor.
    db.session.remove()
    session_id = decode_token(token)["sid"]
    issued = db.session.scalars(
        select(RefreshToken).where(RefreshToken.session_id == session_id)
    ).all()
    assert len(issued) == 2
