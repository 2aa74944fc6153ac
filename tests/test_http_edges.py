"""HTTP edges: made-up methods (405/404 before the app), 405's Allow, `//` paths, trusted hosts,
chunked bodies over the limit."""

import io
import json
import logging
import re
import socket

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

import config
from conftest import assert_error, requires_redis
from tests.support.metrics import samples
from tests.support.servers import gunicorn

MADE_UP_METHODS = ["FOO", "TRACE", "CONNECT", "QUERY", "PROPFIND", "M-SEARCH", "X" * 200]
MAX_BODY = 1024 * 1024
SLASHED_PATHS = ["//tasks", "/tasks//1", "/admin//users", "///healthz", "/docs//static/x.js"]


@pytest.mark.parametrize("method", MADE_UP_METHODS)
@pytest.mark.parametrize(
    "path, allow",
    [
        ("/tasks", "GET, HEAD, OPTIONS, POST"),
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/no/such", None),
    ],
)
def test_a_method_the_api_never_serves_is_a_405_with_allow_in_the_envelope(
    client, method, path, allow
):
    response = client.open(path, method=method)
    assert_error(response, 405 if allow else 404)
    assert response.headers.get("Allow") == allow
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_made_up_method_is_logged_as_one_access_line(client, caplog):
    caplog.set_level(logging.INFO, logger="taskapp.access")
    response = client.open("/tasks", method="X" * 500)
    (record,) = [r for r in caplog.records if r.name == "taskapp.access"]
    assert (record.method, record.path, record.status) == ("X" * 32, "/tasks", 405)
    assert record.request_id == response.headers["X-Request-ID"]


def test_lower_case_methods_stay_served(client):
    # Werkzeug has always upper-cased the method: "get" is GET.
    assert client.open("/healthz", method="get").status_code == 200


def test_every_405_names_the_allowed_methods(client, app):
    # Every route, including flask-smorest's own (/openapi.json, /docs) and the assets.
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[a-z_]+:", "<", rule.rule)
        path = path.replace("<filename>", "x.js").replace("<task_id>", "1")
        path = path.replace("<user_id>", "1").replace("<session_id>", "1")
        path = path.replace("<list_id>", "1").replace("<name>", "x")
        assert "<" not in path, rule.rule  # a route this test cannot fill in yet
        method = next(m for m in ("PUT", "POST", "DELETE") if m not in rule.methods)
        response = client.open(path, method=method)
        assert_error(response, 405)
        allowed = {name.strip() for name in response.headers["Allow"].split(",")}
        assert allowed == set(rule.methods), rule.rule


def test_made_up_methods_create_no_metric_series(build_app):
    client = build_app(METRICS_ENABLED=True).test_client()
    client.get("/healthz")
    before = set(samples(client.get("/metrics").get_data(as_text=True)))
    for number in range(30):
        for path in ("/healthz", "/tasks", f"/nowhere/{number}"):
            assert client.open(path, method=f"BREW{number}").status_code in (404, 405)
    after = set(samples(client.get("/metrics").get_data(as_text=True)))
    assert after == before
    # The check itself sees a new series when one is made.
    client.put("/healthz")
    assert set(samples(client.get("/metrics").get_data(as_text=True))) > before


@pytest.mark.parametrize("path", SLASHED_PATHS)
def test_a_doubled_slash_never_redirects_to_the_clients_host(client, path):
    # As gunicorn passes it: the test client would read "//tasks" as a URL with a host.
    response = client.get(
        "/", headers={"Host": "evil.example"}, environ_overrides={"PATH_INFO": path}
    )
    # Leading slashes Werkzeug drops in routing; doubled ones inside a path match no route.
    expected = {200, 401} if path.startswith("//") else {404}
    assert response.status_code in expected
    assert "Location" not in response.headers


def test_hosts_outside_trusted_hosts_are_400(build_app):
    client = build_app(TRUSTED_HOSTS=["api.example.com", ".internal.example"]).test_client()
    for host in ("api.example.com", "api.example.com:8443", "pod-1.internal.example"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "api.example.com.evil.example", "127.0.0.1"):
        assert_error(client.get("/healthz", headers={"Host": host}), 400)


def test_trusted_hosts_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRUSTED_HOSTS", " api.example.com, .internal.example ,, ")
    assert config.Config().TRUSTED_HOSTS == ["api.example.com", ".internal.example"]
    monkeypatch.setenv("TRUSTED_HOSTS", "")
    assert config.Config().TRUSTED_HOSTS is None


def chunked_body(size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes: a signup with a long (invalid) email."""
    start, end = b'{"email": "', b'", "password": "x"}'
    return start + b"a" * (size - len(start) - len(end)) + end


def post_chunked(app, body: bytes):
    """POST /signup with ``body`` as gunicorn hands a chunked one on: no Content-Length, the
    stream ended by the server (the test client would add a Content-Length)."""
    environ = EnvironBuilder(
        path="/signup",
        method="POST",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    return app.response_class(b"".join(app_iter), status, headers)


@pytest.mark.parametrize("size", [MAX_BODY + 1, 4 * MAX_BODY])
def test_a_chunked_body_over_the_limit_is_413_not_cut_to_it(app, size):
    assert_error(post_chunked(app, chunked_body(size)), 413)


@pytest.mark.parametrize("size", [MAX_BODY, 1000])
def test_a_chunked_body_within_the_limit_is_read_whole(app, size):
    assert_error(post_chunked(app, chunked_body(size)), 422, field="email")


def send_chunked(port: int, path: str, body: bytes) -> tuple[int, dict]:
    """POST ``body`` in 64 KiB chunks over a raw socket; returns the status and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        try:
            for start in range(0, len(body), 64 * 1024):
                part = body[start : start + 64 * 1024]
                sock.sendall(b"%x\r\n%b\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before reading it all
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


@requires_redis
@pytest.mark.gunicorn
@pytest.mark.committing
def test_gunicorn_answers_a_chunked_body_over_the_limit_with_413(app, tmp_path):
    with gunicorn(tmp_path, workers=1, env={"RATELIMIT_ENABLED": "false"}) as server:
        for size in (MAX_BODY + 1, 3 * MAX_BODY):
            status, body = send_chunked(server.port, "/signup", chunked_body(size))
            assert (status, body["code"]) == (413, 413)
        status, body = send_chunked(server.port, "/signup", chunked_body(MAX_BODY))
        assert status == 422 and "email" in body["errors"]["json"]
