"""Real gunicorn over a private redis-server that the tests kill and start again: a Redis
outage costs no request, limits still hold per process, and shared counting comes back."""

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import requires_redis
from tests.support.servers import Held, assert_rate_limited, call, gunicorn, redis_server

requires_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server program"
)
pytestmark = [
    requires_redis,  # gunicorn() clears the limiter keys of TEST_REDIS_URL's database
    requires_redis_server,
    pytest.mark.gunicorn,
    pytest.mark.committing,
]

LOGIN_LIMIT = 5
ATTEMPT = {"email": "nobody@example.com", "password": "not the password"}
BODY = json.dumps(ATTEMPT).encode()
FELL_BACK = "Rate limit storage unreachable - falling back to in-memory storage"
RECOVERED = "Rate limit storage recovered"


@pytest.fixture
def redis(tmp_path):
    """A redis-server of this test's own, on a free port; the machine's Redis is never touched."""
    with redis_server(tmp_path) as server:
        yield server


def attempt(server):
    return call(server, "POST", "/login", json=ATTEMPT)


def test_killing_redis_costs_no_request_and_each_process_keeps_limiting(app, tmp_path, redis):
    with gunicorn(tmp_path, steerable=True, workers=2, env={"REDIS_URL": redis.url()}) as server:
        before = [attempt(server) for _ in range(2)]
        assert [answer.headers["X-RateLimit-Remaining"] for answer in before] == ["4", "3"]
        assert redis.keys("*taskapp*auth.Login*")

        redis.kill()

        # The worker holding this request is busy: everything else goes to the other one,
        # which counts from zero in its own memory, and stops at the limit.
        on_first = Held(server, "POST", "/login", body=BODY)
        answers = [attempt(server) for _ in range(LOGIN_LIMIT)]
        assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == list("43210")
        assert_rate_limited(attempt(server))
        # Now the first worker: held while the second is, so calls go to the first one.
        on_second = Held(server, "POST", "/login", body=BODY)
        assert on_first.release().status_code == 401
        answers = [attempt(server) for _ in range(LOGIN_LIMIT - 1)]
        assert [answer.status_code for answer in answers] == [401] * (LOGIN_LIMIT - 1)
        assert_rate_limited(attempt(server))
        assert_rate_limited(on_second.release())

        pids = server.pids_by_status("POST", "/login", expected=2 + 2 * (LOGIN_LIMIT + 1) + 1)
        assert set(pids) == {401, 429}, server.access_log()  # never a 5xx
        assert len(pids[401]) == 2 and len(pids[429]) == 2, server.access_log()

        ready = call(server, "GET", "/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "redis": "degraded"}
        # Each worker logged its fall-back once, not once per request.
        assert server.log().count(FELL_BACK) == 2, server.log()


def test_redis_coming_back_restores_shared_counting(app, tmp_path, redis):
    with gunicorn(tmp_path, steerable=True, workers=2, env={"REDIS_URL": redis.url()}) as server:
        redis.kill()
        # Both workers meet the outage (held requests are on distinct workers).
        first, second = (Held(server, "POST", "/login", body=BODY) for _ in range(2))
        assert [first.release().status_code, second.release().status_code] == [401, 401]
        assert server.log().count(FELL_BACK) == 2, server.log()

        redis.start()  # empty, as after a crash without persistence
        wait_for_log(server, RECOVERED, count=2)

        # One count again, whichever worker answers.
        on_first = Held(server, "POST", "/login", body=BODY)
        answers = [attempt(server) for _ in range(2)]
        on_second = Held(server, "POST", "/login", body=BODY)
        answers.append(on_first.release())
        answers += [attempt(server) for _ in range(1)]
        answers.append(on_second.release())
        assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == list("43210")
        assert redis.keys("*taskapp*auth.Login*")
        pids = server.pids_by_status("POST", "/login", expected=LOGIN_LIMIT)
        assert len(pids[401]) == 2, server.access_log()

        assert_rate_limited(attempt(server))
        assert call(server, "GET", "/readyz").json()["checks"]["redis"] == "ok"


def test_a_hung_redis_does_not_stall_requests(app, tmp_path, redis):
    with gunicorn(tmp_path, workers=1, env={"REDIS_URL": redis.url()}) as server:
        assert attempt(server).headers["X-RateLimit-Remaining"] == "4"

        redis.pause()
        try:
            # Each would wait for Redis until gunicorn killed the worker (30 s), or until
            # call() gave up (15 s), were it not for the socket timeouts.
            answers = [attempt(server) for _ in range(LOGIN_LIMIT)]
            ready = call(server, "GET", "/readyz")
        finally:
            redis.resume()

        assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT
        # Counted in the worker's memory from the first request that found Redis hung.
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == list("43210")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"] == "degraded"
        assert server.log().count(FELL_BACK) == 1, server.log()


def test_requests_in_flight_when_redis_hangs_are_served_not_500(app, tmp_path, redis):
    # Each thread's request is waiting on Redis when the first of them gives up and switches
    # the worker to its memory: the others' errors then arrive with the switch already made,
    # which Flask-Limiter re-raises unless told to swallow them (one 500 per thread).
    threads = 4
    env = {"REDIS_URL": redis.url(), "GUNICORN_THREADS": str(threads)}
    with gunicorn(tmp_path, workers=1, env=env) as server:
        assert attempt(server).status_code == 401

        redis.pause()
        try:
            with ThreadPoolExecutor(threads) as pool:
                answers = list(pool.map(lambda _: attempt(server), range(threads)))
        finally:
            redis.resume()

        assert [answer.status_code for answer in answers] == [401] * threads, server.log()


def wait_for_log(server, text: str, *, count: int) -> None:
    """Serve requests to every worker until ``text`` was logged ``count`` times.

    Flask-Limiter looks for its storage again on a request, at most every 1, 2, 4, ... 32 s
    since it lost it; the requests here keep each worker asking (not probes: the limiter
    filters them out before it looks, taskapp.health).
    """
    deadline = time.monotonic() + 45
    while server.log().count(text) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} was not logged {count} times:\n{server.log()}")
        held = [Held(server, "GET", "/tasks") for _ in range(server.workers)]
        for request in held:
            assert request.release().status_code == 401
