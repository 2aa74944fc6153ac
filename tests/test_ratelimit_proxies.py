"""Real gunicorn: the client address the limits count is the peer's, unless TRUSTED_PROXIES
says which X-Forwarded-For entry a proxy of ours appended."""

import json

import pytest

from conftest import requires_redis
from tests.support.servers import assert_rate_limited, call, gunicorn, on_every_worker

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

LOGIN_LIMIT = 5
ATTEMPT = {"email": "nobody@example.com", "password": "not the password"}


def spoofed(number: int) -> dict:
    """Every header a client might forge to pass for someone else."""
    address = f"203.0.113.{number}"
    return {
        "X-Forwarded-For": address,
        "X-Real-IP": address,
        "Forwarded": f"for={address}",
        "X-Client-IP": address,
    }


def test_spoofed_forwarded_for_does_not_reset_the_count(app, tmp_path):
    with gunicorn(tmp_path, steerable=True, workers=2) as server:  # TRUSTED_PROXIES unset: 0
        answers = on_every_worker(
            server, "POST", "/login", body=json.dumps(ATTEMPT).encode(), headers=spoofed(1)
        )
        answers += [
            call(server, "POST", "/login", json=ATTEMPT, headers=spoofed(number))
            for number in range(2, LOGIN_LIMIT)
        ]
        assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == list("43210")

        for number in range(LOGIN_LIMIT, LOGIN_LIMIT + 3):
            assert_rate_limited(
                call(server, "POST", "/login", json=ATTEMPT, headers=spoofed(number))
            )


def test_with_one_trusted_proxy_forwarded_clients_are_counted_apart(app, tmp_path):
    def attempt(forwarded_for: str | None):
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return call(server, "POST", "/login", json=ATTEMPT, headers=headers)

    with gunicorn(tmp_path, steerable=True, workers=2, env={"TRUSTED_PROXIES": "1"}) as server:
        first = [attempt("198.51.100.1") for _ in range(LOGIN_LIMIT)]
        assert [answer.status_code for answer in first] == [401] * LOGIN_LIMIT
        assert_rate_limited(attempt("198.51.100.1"))

        # Another client behind the same proxy has its own count.
        second = attempt("198.51.100.2")
        assert second.status_code == 401
        assert second.headers["X-RateLimit-Remaining"] == str(LOGIN_LIMIT - 1)

        # The proxy appends the address it saw: whatever the client put before it is ignored.
        assert_rate_limited(attempt("203.0.113.7, 198.51.100.1"))
        assert_rate_limited(attempt("203.0.113.8, 10.0.0.1, 198.51.100.1"))
        # And the first client is still refused on every worker.
        for refused in on_every_worker(
            server,
            "POST",
            "/login",
            body=json.dumps(ATTEMPT).encode(),
            headers={"X-Forwarded-For": "198.51.100.1"},
        ):
            assert_rate_limited(refused)
