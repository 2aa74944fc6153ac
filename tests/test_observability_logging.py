"""X-Request-ID on every response, one JSON access line per request, no secret in any log."""

import json
import logging
import re

import pytest

from conftest import PASSWORD, assert_error
from taskapp.admin import service as admin_service
from taskapp.observability import JsonFormatter, redact

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ACCESS_FIELDS = {"request_id", "method", "path", "status", "duration_ms", "user_id"}


def access_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "taskapp.access"]


# --- request ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 128, "req:1/2+3=4@edge_5.~!"],
)
def test_a_sane_request_id_is_echoed_and_logged(client, json_log, sent):
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    assert response.headers["X-Request-ID"] == sent
    [line] = access_lines(json_log())
    assert line["request_id"] == sent


@pytest.mark.parametrize(
    "sent", [None, "", "x" * 129, "has space", "tab\there", "caf\u00e9", "bell\x07", "del\x7f"]
)
def test_a_missing_or_insane_request_id_is_replaced(client, json_log, sent):
    headers = {} if sent is None else {"X-Request-ID": sent}
    first = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    second = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second)
    assert first != second
    logged = [line["request_id"] for line in access_lines(json_log())]
    assert logged == [first, second]
    if sent:
        assert all(sent not in json.dumps(line) for line in json_log())


def test_error_responses_carry_the_request_id(client, auth, json_log):
    headers = auth()
    cases = [
        (client.get("/no/such/route", headers={"X-Request-ID": "r404"}), 404),
        (client.put("/healthz", headers={"X-Request-ID": "r405"}), 405),
        (client.get("/tasks", headers={"X-Request-ID": "r401"}), 401),
        (client.get("/tasks?page=0", headers={**headers, "X-Request-ID": "r422"}), 422),
        (
            client.post(
                "/tasks",
                data=b"{",
                content_type="application/json",
                headers={**headers, "X-Request-ID": "r400"},
            ),
            400,
        ),
        (
            client.post(
                "/tasks",
                data=b"x" * (1024 * 1024 + 1),
                content_type="application/json",
                headers={**headers, "X-Request-ID": "r413"},
            ),
            413,
        ),
    ]
    for response, status in cases:
        assert_error(response, status)
        assert response.headers["X-Request-ID"] == f"r{status}"
    logged = {line["request_id"]: line["status"] for line in access_lines(json_log())}
    for _, status in cases:
        assert logged[f"r{status}"] == status


def test_a_rate_limited_response_carries_the_request_id(client, json_log):
    for number in range(4):
        response = client.post(
            "/signup",
            json={"email": f"limited{number}@example.com", "password": PASSWORD},
            headers={"X-Request-ID": f"signup-{number}"},
        )
    assert_error(response, 429)
    assert response.headers["X-Request-ID"] == "signup-3"
    assert access_lines(json_log())[-1]["status"] == 429


def test_an_unhandled_error_is_logged_with_its_request_id_and_no_secret(build_app, json_log):
    app = build_app(PROPAGATE_EXCEPTIONS=False)
    fake_token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"

    @app.get("/boom")
    def boom():
        raise ValueError(f"failed with Authorization: Bearer {fake_token}")

    response = app.test_client().get("/boom", headers={"X-Request-ID": "boom-1"})
    assert_error(response, 500)
    assert response.headers["X-Request-ID"] == "boom-1"
    lines = json_log()
    [error] = [line for line in lines if line["level"] == "ERROR"]
    assert error["request_id"] == "boom-1"
    assert "ValueError" in error["exception"]
    assert fake_token not in json.dumps(lines) and "[redacted" in error["exception"]
    last = access_lines(lines)[-1]
    assert (last["status"], last["path"], last["request_id"]) == (500, "/boom", "boom-1")


# --- the access line ----------------------------------------------------------------------


def test_one_json_access_line_per_request_with_every_field(client, auth, json_log):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    response = client.get(
        "/tasks?search=private-words&page=1", headers={**headers, "X-Request-ID": "list-1"}
    )
    assert response.status_code == 200

    [line] = [line for line in access_lines(json_log()) if line["request_id"] == "list-1"]
    assert ACCESS_FIELDS | {"time", "level", "logger", "message"} <= set(line)
    assert line["method"] == "GET"
    assert line["path"] == "/tasks"  # never the query string
    assert line["status"] == 200
    assert line["user_id"] == user_id
    assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 10_000
    assert line["time"].endswith("+00:00")
    assert "private-words" not in json.dumps(line)


def test_every_request_is_logged_once(client, auth, json_log):
    headers = auth()
    sent = [("GET", "/healthz"), ("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/nope")]
    for number, (method, path) in enumerate(sent):
        client.open(
            path,
            method=method,
            json={"title": "t"} if method == "POST" else None,
            headers={**headers, "X-Request-ID": f"once-{number}"},
        )
    ours = [line for line in access_lines(json_log()) if line["request_id"].startswith("once-")]
    assert [(line["method"], line["path"]) for line in ours] == sent
    assert [line["status"] for line in ours] == [200, 200, 201, 404]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic abc"}]
)
def test_no_user_id_without_a_verified_token(client, json_log, headers):
    client.get("/tasks", headers=headers)
    client.get("/healthz", headers=headers)
    assert [line["user_id"] for line in access_lines(json_log())] == [None, None]


def test_a_revoked_sessions_request_has_no_user_id(client, make_user, login, json_log):
    email, password = make_user()
    tokens = login(email, password)
    client.post("/logout", json={"refresh_token": tokens["refresh_token"]})
    assert_error(
        client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}), 401
    )
    assert access_lines(json_log())[-1]["user_id"] is None


def test_records_logged_during_a_request_carry_its_id(client, auth, json_log):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    admin_service.make_admin(email=client.get("/me", headers=headers).json["email"])
    second = auth()
    second_id = client.get("/me", headers=second).json["id"]
    client.patch(
        f"/admin/users/{second_id}",
        json={"role": "admin"},
        headers={**headers, "X-Request-ID": "audit-1"},
    )
    [audit] = [line for line in json_log() if line["message"] == "admin changed a user"]
    assert audit["request_id"] == "audit-1"
    assert audit["actor_id"] == user_id and audit["target_id"] == second_id
    assert audit["changes"] == {"role": "admin"}


# --- nothing secret -----------------------------------------------------------------------


@pytest.mark.committing  # connections opened during the test, so they log their statements
def test_no_password_token_or_authorization_header_in_any_log_record(client, caplog, json_log):
    """At DEBUG, for every logger (SQLAlchemy's statements and parameters included): a whole
    session's life."""
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    email, password = "secretive@example.com", "a very secret passphrase"
    new_password = "another secret passphrase"
    assert client.post("/signup", json={"email": email, "password": password}).status_code == 201
    assert_error(client.post("/login", json={"email": email, "password": password + "!"}), 401)
    tokens = client.post("/login", json={"email": email, "password": password}).json
    access = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/me", headers=access).status_code == 200
    assert client.post("/tasks", json={"title": "t"}, headers=access).status_code == 201
    renewed = client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}).json
    # Reuse of a spent token (revokes the family), and a token in the query string.
    assert_error(client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    client.get(f"/tasks?access_token={renewed['access_token']}")
    later = client.post("/login", json={"email": email, "password": password}).json
    later_access = {"Authorization": f"Bearer {later['access_token']}"}
    changed = client.post(
        "/me/password",
        json={"current_password": password, "new_password": new_password},
        headers=later_access,
    )
    assert changed.status_code == 204
    client.post("/logout", headers={"Authorization": f"Bearer {later['refresh_token']}"})

    secrets = [password, new_password]
    for pair in (tokens, renewed, later):
        secrets += [pair["access_token"], pair["refresh_token"]]
    secrets += [token.split(".")[2] for token in secrets[2:]]  # even a signature alone
    loggers = {record.name for record in caplog.records}
    assert {"taskapp.access", "sqlalchemy.engine.Engine"} <= loggers, loggers
    assert access_lines(json_log()), "no access lines: the check would be vacuous"
    for record in caplog.records:
        raw = " ".join(
            [record.getMessage(), repr(record.args), repr(vars(record)), record.exc_text or ""]
        )
        assert "Bearer " not in raw, record
        for secret in secrets:
            assert secret not in raw, (record.name, record.getMessage())
    written = "\n".join(json.dumps(line) for line in json_log())
    assert not any(secret in written for secret in secrets)


@pytest.mark.parametrize(
    "text, kept",
    [
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-_123 here", "token [redacted token] here"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        ("hash $2b$12$" + "a" * 53 + " end", "hash [redacted hash] end"),
        ("GET /tasks 200", "GET /tasks 200"),
    ],
)
def test_the_formatter_redacts_credentials_it_is_given_anyway(text, kept):
    assert redact(text) == kept
    record = logging.makeLogRecord({"msg": "%s", "args": (text,), "levelname": "INFO"})
    assert json.loads(JsonFormatter().format(record))["message"] == kept


def test_each_request_has_its_own_context_even_while_the_test_holds_one(build_app):
    # As under gunicorn: a request never joins a context pushed before it, so its request id
    # (kept in g), its session and its teardown are its own.
    app = build_app()
    ended = []
    app.teardown_appcontext(lambda _error: ended.append(True))
    client = app.test_client()
    with app.app_context():
        first = client.get("/healthz").headers["X-Request-ID"]
        second = client.get("/healthz").headers["X-Request-ID"]
        assert len(ended) == 2  # each request's teardown ran, the test's context still open

    assert first != second
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second)
