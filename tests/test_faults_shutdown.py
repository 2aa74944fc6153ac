"""Graceful shutdown: SIGTERM lets the requests in flight finish, then gunicorn exits cleanly."""

import json
import secrets
import signal

import pytest

from conftest import PASSWORD, requires_redis
from tests.support import wait_for
from tests.support.servers import call, gunicorn, held_request

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]


def test_sigterm_lets_a_slow_request_in_flight_finish(app, tmp_path):
    # 2^14 bcrypt rounds: the login below takes about a second of work after SIGTERM.
    with gunicorn(tmp_path, steerable=True, workers=2, env={"BCRYPT_ROUNDS": "14"}) as server:
        credentials = {"email": f"slow-{secrets.token_hex(4)}@example.com", "password": PASSWORD}
        assert call(server, "POST", "/signup", json=credentials).status_code == 201

        with held_request(
            server, "POST", "/login", body=json.dumps(credentials).encode()
        ) as in_flight:
            # One worker has accepted the login and waits for its last bytes: SIGTERM now.
            server.process.send_signal(signal.SIGTERM)
            # The idle worker has the signal and leaves at once; the busy one got it too.
            wait_for(lambda: server.log().count("Worker exiting") == 1, message="idle worker")
            assert server.process.poll() is None
        # Released: the worker reads the rest, checks the password, and still answers.

        assert in_flight.status == 200, in_flight.body
        tokens = json.loads(in_flight.body)
        assert tokens["token_type"] == "bearer" and tokens["access_token"]
        assert server.process.wait(timeout=30) == 0
        log = server.log()
        assert "Handling signal: term" in log
        assert log.count("Worker exiting") == 2
        # The busy worker left only after answering, long before the graceful timeout.
        assert log.rindex("Worker exiting") > log.index("POST /login 200"), log
        assert "SIGKILL" not in log and "WORKER TIMEOUT" not in log, log
        assert "Traceback" not in log, log
