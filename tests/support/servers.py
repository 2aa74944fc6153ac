"""Real servers for tests: gunicorn serving wsgi:app, helpers to steer and call it, and a
private redis-server that a test may kill and restart.

gunicorn runs as deployed: gunicorn.conf.py, its worker class (gthread) and its settings, with
the test database, Redis and a few overrides from the environment. Which worker answers can be
steered, not left to luck: with ``steerable=True`` each worker takes one connection at a time
(``--worker-connections 1``, the one setting that differs), so a request whose head is held
back keeps the worker that accepted it from accepting another, everything sent meanwhile is
served by another worker, and N requests held at once are on N different workers. The access
log (with each worker's pid) confirms it.
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
from requests.structures import CaseInsensitiveDict

from tests.support import PROJECT, SERVE

ACCESS_LINE = re.compile(r"^<(\d+)> (\S+) (\S+) (\d{3})$")


@dataclass
class Server:
    port: int
    log_path: Path
    process: subprocess.Popen
    workers: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

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


def render_deploy_file(name: str, **values: str) -> str:
    """deploy/<name> with its placeholders (in double braces) filled, as an operator would."""
    text = (PROJECT / "deploy" / name).read_text()
    for placeholder, value in values.items():
        text = text.replace("{{" + placeholder + "}}", value)
    assert "{{" not in text, f"deploy/{name}: a placeholder is left unfilled"
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accept_queue(port: int) -> int | None:
    """Connections waiting in the accept queue of the socket listening on 127.0.0.1:``port``
    (Linux: a listening socket's rx_queue in /proc/net/tcp), or None if none listens."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[4].split(":")[1], 16)
    return None


def wait_until_accepted(port: int, timeout: float = 10) -> None:
    """Wait until every connection made to ``port`` has been accepted by a worker."""
    deadline = time.monotonic() + timeout
    while accept_queue(port) != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no worker accepted a connection on port {port}")
        time.sleep(0.005)


def clear_limiter_keys(url: str | None = None) -> None:
    """Forget every rate-limit counter of the app (key prefix "taskapp") in ``url``'s database
    (default: TEST_REDIS_URL's; without it, the counters are in the workers' memory)."""
    url = url or os.environ.get("TEST_REDIS_URL")
    if not url:
        return
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match="*taskapp*"):
            client.delete(key)
        assert not list(client.scan_iter(match="*taskapp*"))
    finally:
        client.close()


def server_env() -> dict:
    """Production settings over the test PostgreSQL and Redis, with a shared signing key.

    Without TEST_REDIS_URL, no Redis at all (each worker counts the limits in its memory): a
    test that needs the limits shared says so with ``requires_redis``.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RATELIMIT_", "GUNICORN_", "DB_"))
        and name not in ("TRUSTED_PROXIES", "REDIS_URL")
    }
    if os.environ.get("TEST_REDIS_URL"):
        env["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    env.update(
        DATABASE_URL=os.environ["TEST_DATABASE_URL"],
        TASKAPP_ENV="production",
        JWT_SECRET_KEY=secrets.token_urlsafe(30)[:40],
        BCRYPT_ROUNDS="4",
        GUNICORN_ACCESSLOG="-",
    )
    return env


def start_gunicorn(
    log_path: Path, *, env: dict, workers: int = 2, args=(), port: int | None = None
) -> Server:
    """Start ``gunicorn -c gunicorn.conf.py -w N wsgi:app`` on 127.0.0.1 (a free port unless
    given), its output in ``log_path``; returns once every worker serves. Stop it with stop()."""
    port = port or free_port()
    *options, app = SERVE
    command = [sys.executable, "-m", *options, "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    command += [*args, app]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    served = Server(port=port, log_path=log_path, process=process, workers=workers)
    try:
        wait_until_serving(served)
    except BaseException:
        stop(served)
        raise
    return served


@contextmanager
def gunicorn(
    tmp_path: Path,
    *,
    workers: int = 2,
    env: dict | None = None,
    args=(),
    steerable: bool = False,
):
    """Run gunicorn as deployed (``server_env()`` over ``env``) until the block exits (then
    SIGTERM), with gunicorn's access log of pids.

    ``steerable``: one connection per worker at a time, for held_request() and
    on_every_worker(); otherwise every setting is gunicorn.conf.py's.
    """
    clear_limiter_keys()
    port = free_port()
    served = start_gunicorn(
        tmp_path / f"gunicorn-{port}.log",
        env={**server_env(), **(env or {})},
        workers=workers,
        port=port,
        args=[
            *("--access-logformat", "%(p)s %(m)s %(U)s %(s)s"),
            *(("--worker-connections", "1") if steerable else ()),
            *args,
        ],
    )
    try:
        yield served
    finally:
        stop(served)
        clear_limiter_keys()


def stop(server: "Server") -> None:
    """SIGTERM, then wait for the graceful shutdown (kill after 30 s)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def wait_until_serving(server: "Server") -> None:
    """Wait until /healthz answers and every worker has booted."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=5).status_code == 200:
                # Every worker must be up before requests can be steered between them.
                booted = set(re.findall(r"Booting worker with pid: (\d+)", server.log()))
                if len(booted) >= server.workers:
                    return
        except requests.RequestException:
            pass  # not listening yet, or the workers are still loading the app
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not serve /healthz in time:\n{server.log()}")


def assert_rate_limited(response, *, window: int = 60) -> dict:
    """A 429 in the JSON envelope with Retry-After (seconds, within ``window``) and the
    rate-limit headers; ``response`` is a ``requests`` response or a HeldResponse."""
    assert response.status_code == 429, (response.status_code, response.headers)
    assert response.headers["Content-Type"].startswith("application/json")
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), response.headers
    assert 0 < int(retry_after) <= window
    assert response.headers["X-RateLimit-Remaining"] == "0"
    body = response.json()
    assert body["code"] == 429
    assert body["status"] == "Too Many Requests"
    assert isinstance(body["message"], str) and body["message"]
    return body


def call(server: Server, method: str, path: str, **kwargs) -> requests.Response:
    """One request on a new connection (so any worker may take it)."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    return requests.request(method, server.url + path, headers=headers, timeout=15, **kwargs)


class HeldResponse:
    """The response to a held request, filled in when it is released."""

    status: int
    headers: CaseInsensitiveDict
    body: bytes

    @property
    def status_code(self) -> int:
        """As on a ``requests`` response, so helpers take either."""
        return self.status

    def json(self):
        return json.loads(self.body)


class Held:
    """A request sent but for its last line: the worker that accepted it waits for the rest."""

    def __init__(self, server: Server, method: str, path: str, *, body: bytes = b"", headers=None):
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{server.port}",
            "Connection: close",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.body = body
        self.response = HeldResponse()
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        self.sock.sendall("\r\n".join(lines).encode() + b"\r\n")
        # Held only once a worker has accepted it (and so is busy reading the rest of it).
        wait_until_accepted(server.port)

    def release(self) -> HeldResponse:
        """Send the rest; the worker serves it. Returns (and fills in) the response."""
        try:
            self.sock.sendall(b"\r\n" + self.body)
            response = http.client.HTTPResponse(self.sock)
            try:
                response.begin()
                self.response.status = response.status
                self.response.headers = CaseInsensitiveDict(response.getheaders())
                self.response.body = response.read()
            finally:
                response.close()
        finally:
            self.sock.close()
        return self.response


@contextmanager
def held_request(server: Server, method: str, path: str, *, body: bytes = b"", headers=None):
    """Send a request's head but its last line; the worker that took it is busy until exit.

    On exit the request is completed and its response stored in the yielded object.
    """
    held = Held(server, method, path, body=body, headers=headers)
    try:
        yield held.response
    except BaseException:
        held.sock.close()
        raise
    held.release()


def on_every_worker(
    server: Server, method: str, path: str, *, body: bytes = b"", headers=None
) -> list[HeldResponse]:
    """One request to each worker: all held at once (so each on its own worker), then
    released one after the other. Returns the responses in that order."""
    held = []
    try:
        for _ in range(server.workers):
            held.append(Held(server, method, path, body=body, headers=headers))
    except BaseException:
        for request in held:
            request.sock.close()
        raise
    return [request.release() for request in held]


@dataclass
class RedisServer:
    """A private redis-server (no persistence) on its own port, to kill and start again."""

    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        """Start it (again, on the same port, empty) and wait until it answers PING."""
        assert self.process is None or self.process.poll() is not None
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                    *("--dir", str(self.log_path.parent)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        client = self.client()
        try:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server exited:\n{self.log_path.read_text()}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"redis-server did not answer:\n{self.log_path.read_text()}")
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: gone at once, as in a crash (its counters with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: still accepting connections (the kernel does), never answering."""
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def keys(self, pattern: str = "*") -> list[str]:
        client = self.client()
        try:
            return [key.decode() for key in client.scan_iter(match=pattern)]
        finally:
            client.close()


@contextmanager
def redis_server(tmp_path: Path):
    """A private redis-server on a free port, killed on exit; never the machine's Redis."""
    port = free_port()
    server = RedisServer(port=port, log_path=tmp_path / f"redis-{port}.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()
