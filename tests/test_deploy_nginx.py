"""deploy/nginx.conf in front of two gunicorn instances (TRUSTED_PROXIES=1): a client cannot
choose its rate-limit key, nginx's own errors are in the envelope, and an instance that is
down is passed over without a failed request."""

import os
import re
import shutil
import signal
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
            stack.enter_context(gunicorn(tmp_path, workers=1, env={"TRUSTED_PROXIES": "1"}))
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

    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == 413


def test_an_instance_down_is_passed_over_without_a_failed_request(proxied):
    url, servers = proxied
    # SIGKILL, the master and its worker: nothing listens on that port any more.
    workers = re.findall(r"Booting worker with pid: (\d+)", servers[0].log())
    for pid in (servers[0].process.pid, *map(int, workers)):
        os.kill(pid, signal.SIGKILL)
    servers[0].process.wait(timeout=10)

    statuses = [requests.get(f"{url}/healthz", timeout=15).status_code for _ in range(10)]
    # A POST too: refused at connect, it was never sent, so nginx passes it on.
    signup = requests.post(
        f"{url}/signup", json={"email": "passed@example.com", "password": PASSWORD}, timeout=15
    )

    assert statuses == [200] * 10
    assert signup.status_code == 201, signup.text
