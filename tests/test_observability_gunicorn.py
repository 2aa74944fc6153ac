"""Real gunicorn, two workers: /metrics adds up every worker, and every log line is JSON."""

import json
import re
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import requires_redis
from tests.support.servers import call, gunicorn, on_every_worker

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

PASSWORD = "a secret only the test knows"


def request_count(scrape: str, method: str, route: str, status: str) -> float:
    """flask_http_request_duration_seconds_count for one route and status."""
    wanted = {"method": method, "route": route, "status": status}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            if sample.name == "flask_http_request_duration_seconds_count" and (
                sample.labels == wanted
            ):
                return sample.value
    return 0


@pytest.fixture
def server(app, tmp_path):
    """gunicorn -w 2 with metrics on, gunicorn's own access log off (as by default)."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # A previous run's samples: the master must start from zero, not from these.
    (metrics_dir / "counter_12345.db").write_bytes(b"stale")
    env = {
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GUNICORN_ACCESSLOG": "",
    }
    with gunicorn(tmp_path, steerable=True, env=env) as served:
        yield served


def test_metrics_count_the_requests_of_every_worker(server):
    # Held at once, these land on different workers; three more go anywhere.
    statuses = [held.status for held in on_every_worker(server, "GET", "/readyz")]
    statuses += [call(server, "GET", "/readyz").status_code for _ in range(3)]
    assert statuses == [200] * 5
    call(server, "GET", "/tasks/7")  # 401: a route with an id, one series

    # Whichever worker answers the scrape reports the same totals.
    for scrape in on_every_worker(server, "GET", "/metrics"):
        assert scrape.status == 200
        text = scrape.body.decode()
        assert request_count(text, "GET", "/readyz", "200") == 5
        assert request_count(text, "GET", "/tasks/{task_id}", "401") == 1


def test_every_log_line_is_json_with_the_access_lines_and_no_secret(server):
    email = "logged@example.com"
    signup = call(server, "POST", "/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = call(
        server,
        "POST",
        "/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Request-ID": "login-42"},
    )
    assert login.status_code == 200 and login.headers["X-Request-ID"] == "login-42"
    tokens = login.json()
    me = call(server, "GET", "/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    call(server, "POST", "/logout", json={"refresh_token": tokens["refresh_token"]})

    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert any("Booting worker" in line["message"] for line in lines)  # gunicorn's own
    access = [line for line in lines if line["logger"] == "taskapp.access"]
    by_id = {line["request_id"]: line for line in access}
    assert by_id["login-42"]["path"] == "/login" and by_id["login-42"]["status"] == 200
    assert by_id[me.headers["X-Request-ID"]]["user_id"] == me.json()["id"]
    assert all(isinstance(line["duration_ms"], float) for line in access)
    text = server.log()
    for secret in (PASSWORD, tokens["access_token"], tokens["refresh_token"], "Bearer "):
        assert secret not in text


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        # A request line over gunicorn's limit (4094 bytes): a query far past maxLength.
        (b"GET /tasks?search=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n", 400),
    ],
    ids=["URI too long", "malformed header"],
)
def test_gunicorn_answers_what_it_refuses_in_the_envelope(server, request_head, status):
    # Refused before the app sees it, yet in the JSON error shape, not gunicorn's HTML page.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_head)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    headers = {name.lower(): value for name, _, value in (x.partition(": ") for x in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    error = json.loads(body)
    assert error["code"] == status and error["status"] and error["message"]
