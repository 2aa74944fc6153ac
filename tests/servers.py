"""Real servers for tests: gunicorn serving wsgi:app, and helpers to steer and call it.

Which worker answers can be steered, not left to luck: a request whose head is held back
keeps the worker that accepted it busy (sync workers serve one connection at a time), so
everything sent meanwhile is served by another worker. The access log (with each worker's
pid) confirms it.
"""

import http.client
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

PROJECT = Path(__file__).resolve().parents[1]
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


@contextmanager
def gunicorn(tmp_path: Path, *, workers: int = 2, env: dict | None = None, args=()):
    """Run ``gunicorn -w N wsgi:app`` on a free port until the block exits (then SIGTERM)."""
    clear_limiter_keys()
    port = free_port()
    log_path = tmp_path / f"gunicorn-{port}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(PROJECT / "gunicorn.conf.py"),
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--access-logformat",
        "%(p)s %(m)s %(U)s %(s)s",
        *args,
        "wsgi:app",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env={**server_env(), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Server(port=port, log_path=log_path, process=process, workers=workers)
    try:
        wait_until_serving(served)
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
