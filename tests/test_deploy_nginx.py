"""deploy/nginx.conf in front of two gunicorn instances (TRUSTED_PROXIES=1, METRICS_ENABLED):
a client cannot choose its rate-limit key, /metrics is not served to the public, nginx's own
errors are in the envelope without its version, and an instance that is down is passed over
without a failed request."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from conftest import PASSWORD, requires_redis
from tests.support.servers import assert_rate_limited, free_port, gunicorn, render_deploy_file

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LOGIN_LIMIT = 5
MAX_BODY = 1024 * 1024  # the app's default MAX_CONTENT_LENGTH

requires_nginx = pytest.mark.skipif(
    not os.path.exists(NGINX), reason="needs nginx (Debian package)"
)
pytestmark = [requires_redis, requires_nginx, pytest.mark.gunicorn]
pytestmark.append(pytest.mark.committing)


@pytest.fixture
def proxied(app, tmp_path) -> Iterator[tuple[str, list]]:
    """nginx's URL, and the two gunicorn servers behind it."""
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                gunicorn(
                    tmp_path, workers=1, env={"TRUSTED_PROXIES": "1", "METRICS_ENABLED": "true"}
                )
            )
            for _ in range(2)
        ]
        prefix = Path(tempfile.mkdtemp(prefix="taskapp-nginx-"))
        stack.callback(shutil.rmtree, prefix, ignore_errors=True)
        (prefix / "logs").mkdir()
        (prefix / "tmp").mkdir()
        port = free_port()
        upstreams = " ".join(
            f"server 127.0.0.1:{server.port} max_fails=1 fail_timeout=2s;" for server in servers
        )
        (prefix / "nginx.conf").write_text(
            render_deploy_file(
                "nginx.conf",
                listen=f"127.0.0.1:{port}",
                upstream_servers=upstreams,
                max_body=str(MAX_BODY),
            )
        )
        command = [NGINX, "-p", str(prefix), "-c", "nginx.conf", "-e", "logs/error.log"]
        process = subprocess.Popen(command, start_new_session=True)
        stack.callback(stop_nginx, process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield url, servers


def stop_nginx(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGQUIT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kill(server) -> None:
    """SIGKILL the master and its worker: nothing listens on that port any more."""
    workers = re.findall(r"Booting worker with pid: (\d+)", server.log())
    for pid in (server.process.pid, *map(int, workers)):
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def raw_request(url: str, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are (requests would refuse to send them); status, headers, body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, body


def assert_proxy_envelope(status: int, headers, body: bytes, expected: int) -> None:
    """nginx's own answer: the JSON envelope with the status, and no nginx version anywhere."""
    assert status == expected, body
    assert headers["content-type"].startswith("application/json"), headers
    envelope = json.loads(body)
    assert envelope["code"] == expected
    assert isinstance(envelope["status"], str) and isinstance(envelope["message"], str)
    assert headers["server"] == "nginx", headers["server"]
    assert not re.search(rb"nginx/?[0-9]|<html", body, re.IGNORECASE), body


def test_a_client_cannot_choose_its_rate_limit_key(proxied):
    url, _servers = proxied
    attempt = {"email": "nobody@example.com", "password": "not the password"}
    answers = [
        requests.post(
            f"{url}/login", json=attempt, headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=15
        )
        for n in range(LOGIN_LIMIT + 1)
    ]

    assert [answer.status_code for answer in answers[:LOGIN_LIMIT]] == [401] * LOGIN_LIMIT
    assert_rate_limited(answers[LOGIN_LIMIT])


def test_a_body_over_the_limit_is_refused_by_nginx_in_the_envelope(proxied):
    url, _servers = proxied
    response = requests.post(
        f"{url}/signup",
        data=b"x" * (MAX_BODY + 1),
        headers={"Content-Type": "application/json"},
        timeout=15,
    )

    assert_proxy_envelope(response.status_code, response.headers, response.content, 413)


def test_an_instance_down_is_passed_over_without_a_failed_request(proxied):
    url, servers = proxied
    kill(servers[0])

    statuses = [requests.get(f"{url}/healthz", timeout=15).status_code for _ in range(10)]
    # A POST too: refused at connect, it was never sent, so nginx passes it on.
    signup = requests.post(
        f"{url}/signup", json={"email": "passed@example.com", "password": PASSWORD}, timeout=15
    )

    assert statuses == [200] * 10
    assert signup.status_code == 201, signup.text


def test_metrics_are_not_served_through_the_proxy(proxied):
    url, servers = proxied
    # Each instance serves them (to the Prometheus that scrapes it directly)...
    assert requests.get(f"{servers[0].url}/metrics", timeout=15).status_code == 200

    # ... and nginx refuses them, however the path is spelled.
    for path in ("/metrics", "/metrics/", "/%6Detrics", "//metrics", "/metrics?name=x"):
        response = requests.get(f"{url}{path}", timeout=15)
        assert_proxy_envelope(response.status_code, response.headers, response.content, 404)


def test_the_proxy_errors_are_json_without_its_version(proxied):
    url, _servers = proxied
    # The app's answers pass through as they are, with nginx's Server header and no version.
    app_404 = requests.get(f"{url}/no-such-route", timeout=15)
    assert app_404.status_code == 404 and app_404.json()["code"] == 404
    assert app_404.headers["Server"] == "nginx"
    # What nginx refuses itself: a request line it cannot parse, headers over its buffers, a
    # URI over them, its own internal error page asked for directly.
    answers = {
        400: raw_request(url, b"NOT HTTP AT ALL\r\n\r\n"),
        414: raw_request(url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        404: raw_request(
            url, b"GET /_taskapp_proxy_error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
    }
    header_too_large = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"

    for expected, answer in answers.items():
        assert_proxy_envelope(*answer, expected)
    assert_proxy_envelope(*raw_request(url, header_too_large), 400)


def test_a_502_with_every_instance_down_is_json(proxied):
    url, servers = proxied
    for server in servers:
        kill(server)

    responses = [
        requests.get(f"{url}/healthz", timeout=15),
        requests.post(f"{url}/login", json={"email": "a@example.com", "password": "x"}, timeout=15),
    ]

    for response in responses:
        assert_proxy_envelope(response.status_code, response.headers, response.content, 502)
        assert "Idempotency-Key" in response.json()["message"]
