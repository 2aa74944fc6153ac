"""Real gunicorn over one Redis: the login limits hold exactly across workers and instances."""

import json
import secrets

import pytest

from conftest import requires_redis
from tests.support.servers import assert_rate_limited, call, gunicorn, on_every_worker

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

LOGIN_LIMIT = 5
EMAIL_LIMIT = 10
ATTEMPT = {"email": "nobody@example.com", "password": "not the password"}


def shared_secret() -> dict:
    """Instances of one deployment share the signing key (it also keys the email limit)."""
    return {"JWT_SECRET_KEY": secrets.token_urlsafe(48)}


def test_login_limit_holds_exactly_with_three_workers(app, tmp_path):
    with gunicorn(tmp_path, steerable=True, workers=3) as server:
        # One attempt on each worker, then two more on any.
        answers = on_every_worker(server, "POST", "/login", body=json.dumps(ATTEMPT).encode())
        answers += [call(server, "POST", "/login", json=ATTEMPT) for _ in range(2)]

        assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT
        # One count, whichever worker took the attempt.
        remaining = [int(answer.headers["X-RateLimit-Remaining"]) for answer in answers]
        assert remaining == [4, 3, 2, 1, 0]
        pids = server.pids_by_status("POST", "/login", expected=LOGIN_LIMIT)
        assert len(pids[401]) == 3, server.access_log()

        # The sixth is refused by every worker.
        for refused in on_every_worker(server, "POST", "/login", body=json.dumps(ATTEMPT).encode()):
            assert_rate_limited(refused)
        pids = server.pids_by_status("POST", "/login", expected=LOGIN_LIMIT + 3)
        assert len(pids[429]) == 3, server.access_log()


def test_login_limit_is_shared_by_two_instances(app, tmp_path):
    env = shared_secret()
    with (
        gunicorn(tmp_path, steerable=True, workers=2, env=env) as first,
        gunicorn(tmp_path, workers=1, env=env) as second,
    ):
        instances = [first, second, first, second, first]
        answers = [call(server, "POST", "/login", json=ATTEMPT) for server in instances]

        assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == list("43210")

        assert_rate_limited(call(second, "POST", "/login", json=ATTEMPT))
        for refused in on_every_worker(first, "POST", "/login", body=json.dumps(ATTEMPT).encode()):
            assert_rate_limited(refused)


def test_login_limit_per_email_is_shared_by_two_instances(app, tmp_path):
    # Behind one proxy, so that each attempt comes from another client address.
    env = {**shared_secret(), "TRUSTED_PROXIES": "1"}
    target = {"email": "target@example.com", "password": "guess"}
    with (
        gunicorn(tmp_path, workers=2, env=env) as first,
        gunicorn(tmp_path, workers=1, env=env) as second,
    ):

        def attempt(server, client: int, body: dict):
            headers = {"X-Forwarded-For": f"198.51.100.{client}"}
            return call(server, "POST", "/login", json=body, headers=headers)

        for client in range(1, EMAIL_LIMIT + 1):
            answer = attempt((first, second)[client % 2], client, target)
            assert answer.status_code == 401, answer.text

        # From an address never seen before, on either instance: refused for the hour.
        for server in (first, second):
            assert_rate_limited(attempt(server, 99, target), window=3600)
        # Another account, from that same address, is not affected.
        other = attempt(first, 99, {"email": "other@example.com", "password": "guess"})
        assert other.status_code == 401, other.text
