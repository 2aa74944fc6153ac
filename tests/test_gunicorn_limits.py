"""Real gunicorn with two workers on PostgreSQL and Redis: limits and tokens span the workers.

Which worker answers is steered, not left to luck: a request whose head is held back keeps
the worker that accepted it busy (gunicorn's sync workers serve one connection at a time),
so everything sent meanwhile is served by the other worker. The access log (with each
worker's pid) confirms it.
"""

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from conftest import PASSWORD, requires_postgres, requires_redis

pytestmark = [requires_postgres, requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

PROJECT = Path(__file__).resolve().parents[1]
ACCESS_LINE = re.compile(r"^<(\d+)> (\S+) (\S+) (\d{3})$")
LOGIN_LIMIT = 5


@dataclass
class Server:
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[tuple[int, str, str, int]]:
        """(pid, method, path, status) of every request served so far."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [
            (int(pid), method, path, int(status))
            for pid, method, path, status in (
                match.groups() for match in map(ACCESS_LINE.match, lines) if match
            )
        ]

    def pids_by_status(self, method: str, path: str, *, expected: int) -> dict[int, set[int]]:
        """Which worker pids answered ``method path`` with each status (waits for the log)."""
        deadline = time.monotonic() + 10
        while True:
            served = [entry for entry in self.access_log() if entry[1:3] == (method, path)]
            if len(served) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pids = defaultdict(set)
        for pid, _method, _path, status in served:
            pids[status].add(pid)
        return dict(pids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clear_limiter_keys() -> None:
    """Forget every rate-limit counter of the app (key prefix "taskapp")."""
    client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    try:
        for key in client.scan_iter(match="*taskapp*"):
            client.delete(key)
        assert not list(client.scan_iter(match="*taskapp*"))
    finally:
        client.close()


def server_env() -> dict:
    """Production settings over the test PostgreSQL and Redis, with a shared signing key."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RATELIMIT_", "GUNICORN_", "DB_")) and name != "TRUSTED_PROXIES"
    }
    env.update(
        DATABASE_URL=os.environ["TEST_DATABASE_URL"],
        REDIS_URL=os.environ["TEST_REDIS_URL"],
        TASKAPP_ENV="production",
        JWT_SECRET_KEY=secrets.token_urlsafe(30)[:40],
        BCRYPT_ROUNDS="4",
        GUNICORN_ACCESSLOG="-",
    )
    return env


@pytest.fixture
def server(app, tmp_path):
    """gunicorn -w 2 serving wsgi:app; ``app`` truncates what the workers committed."""
    clear_limiter_keys()
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        # Else every gunicorn on the machine shares ~/.gunicorn/gunicorn.ctl.
        "--no-control-socket",
        "--access-logformat",
        "%(p)s %(m)s %(U)s %(s)s",
        "wsgi:app",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT, env=server_env(), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        served = Server(port=port, log_path=log_path)
        wait_until_serving(process, served)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        clear_limiter_keys()


def wait_until_serving(process: subprocess.Popen, server: Server) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{_log(server)}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=5).status_code == 200:
                # Both workers must be up before the steering below can work.
                if len(set(re.findall(r"Booting worker with pid: (\d+)", _log(server)))) >= 2:
                    return
        except requests.RequestException:
            pass  # not listening yet, or the workers are still loading the app
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not serve /healthz in time:\n{_log(server)}")


def _log(server: Server) -> str:
    return server.log_path.read_text(errors="replace")


def call(server: Server, method: str, path: str, **kwargs) -> requests.Response:
    """One request on a new connection (so any worker may take it)."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    return requests.request(method, server.url + path, headers=headers, timeout=15, **kwargs)


class HeldResponse:
    """The response to a held request, filled in when it is released."""

    status: int
    headers: dict
    body: bytes


@contextmanager
def held_request(server: Server, method: str, path: str, *, body: bytes = b"", headers=None):
    """Send a request's head but its last line; the worker that took it is busy until exit.

    On exit the request is completed and its response stored in the yielded object.
    """
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    held = HeldResponse()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n")
        # Give a worker time to accept it and block reading the rest of the head.
        time.sleep(0.3)
        yield held
        sock.sendall(b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            held.status = response.status
            held.headers = dict(response.getheaders())
            held.body = response.read()
        finally:
            response.close()


def assert_rate_limited(status: int, headers, body: dict) -> None:
    assert status == 429
    retry_after = headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), headers
    assert 0 < int(retry_after) <= 60
    assert body["code"] == 429
    assert body["status"] == "Too Many Requests"
    assert isinstance(body["message"], str) and body["message"]


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

    sixth = call(server, "POST", "/login", json=attempt)
    assert sixth.headers["Content-Type"].startswith("application/json")
    assert_rate_limited(sixth.status_code, sixth.headers, sixth.json())

    # And both workers refuse from now on.
    with held_request(server, "POST", "/login", body=held_attempt) as on_one_worker:
        on_the_other = call(server, "POST", "/login", json=attempt)
    assert_rate_limited(on_the_other.status_code, on_the_other.headers, on_the_other.json())
    assert_rate_limited(on_one_worker.status, on_one_worker.headers, json.loads(on_one_worker.body))
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
