"""Real gunicorn with two workers on PostgreSQL and Redis: limits and tokens span the workers."""

import json
import secrets

import pytest

from conftest import PASSWORD, requires_redis
from tests.support.servers import assert_rate_limited, call, gunicorn, held_request

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

LOGIN_LIMIT = 5


@pytest.fixture
def server(app, tmp_path):
    """gunicorn -w 2 serving wsgi:app; ``app`` truncates what the workers committed."""
    with gunicorn(tmp_path, steerable=True) as served:
        yield served


def test_login_limit_is_shared_by_both_workers(server):
    attempt = {"email": "nobody@example.com", "password": "not the password"}
    held_attempt = json.dumps(attempt).encode()

    with held_request(server, "POST", "/login", body=held_attempt) as on_first_worker:
        # The first worker is busy with the held request: these two go to the second.
        codes = [call(server, "POST", "/login", json=attempt).status_code for _ in range(2)]
    codes.append(on_first_worker.status)
    codes += [call(server, "POST", "/login", json=attempt).status_code for _ in range(2)]

    assert codes == [401] * LOGIN_LIMIT
    pids = server.pids_by_status("POST", "/login", expected=LOGIN_LIMIT)
    assert len(pids[401]) == 2, server.access_log()  # both workers counted attempts

    assert_rate_limited(call(server, "POST", "/login", json=attempt))

    # And both workers refuse from now on.
    with held_request(server, "POST", "/login", body=held_attempt) as on_one_worker:
        on_the_other = call(server, "POST", "/login", json=attempt)
    assert_rate_limited(on_the_other)
    assert_rate_limited(on_one_worker)
    pids = server.pids_by_status("POST", "/login", expected=LOGIN_LIMIT + 3)
    assert len(pids[429]) == 2, server.access_log()


def test_signed_up_user_works_on_either_worker(server):
    email = f"gunicorn-{secrets.token_hex(4)}@example.com"
    signup = call(server, "POST", "/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = call(server, "POST", "/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    with held_request(
        server, "POST", "/tasks", body=b'{"title": "from the first worker"}', headers=headers
    ) as held:
        created = call(server, "POST", "/tasks", json={"title": "from the second"}, headers=headers)
        assert created.status_code == 201, created.text
        listed = call(server, "GET", "/tasks", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [task["title"] for task in listed.json()["data"]] == ["from the second"]
    assert held.status == 201, held.body

    pids = server.pids_by_status("POST", "/tasks", expected=2)
    assert len(pids[201]) == 2, server.access_log()  # the token worked on both workers

    for _ in range(4):
        listed = call(server, "GET", "/tasks", headers=headers)
        assert listed.status_code == 200
        titles = {task["title"] for task in listed.json()["data"]}
        assert titles == {"from the first worker", "from the second"}
        assert listed.json()["meta"]["total"] == 2
