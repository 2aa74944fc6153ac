"""Every error path answers the JSON envelope; probes, the OpenAPI document, /docs and config."""

import json
import logging
import os
import re
import subprocess
import sys

import pytest
from flask_jwt_extended import create_access_token

import config
from config import ProductionConfig, normalise_database_url
from conftest import PROJECT, assert_error
from taskapp import create_app
from taskapp.extensions import db

MAX_BODY = 1024 * 1024
# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/none"
LONG_ENOUGH_KEY = "k" * 40


@pytest.fixture
def broken_app(build_app):
    """An app whose database cannot be reached."""
    return build_app(
        SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE,
        SQLALCHEMY_ENGINE_OPTIONS=config.Config._engine_options(),
    )


def assert_retry_after(response) -> None:
    value = response.headers.get("Retry-After")
    assert value is not None and value.isdigit() and int(value) > 0, response.headers


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/tasks/abc", "/tasks/1/extra", "/docs/static/nope.js"])
def test_unknown_path_is_404_envelope(client, path):
    assert_error(client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/signup", {"POST"}),
        ("GET", "/login", {"POST"}),
        ("PUT", "/tasks", {"GET", "POST"}),
        ("POST", "/tasks/1", {"GET", "PUT", "PATCH", "DELETE"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow_header(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405)
    advertised = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed <= advertised
    assert method not in advertised


# --- request bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/signup", "/login", "/tasks"])
def test_body_over_one_mebibyte_is_413(client, auth, path):
    body = b'{"title": "' + b"x" * MAX_BODY + b'"}'
    response = client.post(path, data=body, content_type="application/json", headers=auth())
    assert_error(response, 413)


def test_body_of_exactly_the_limit_is_read(client):
    # Padded with JSON whitespace to exactly 1 MiB: it is parsed and validated, not refused.
    start = b'{"email": "not-an-email", "password": "x"'
    body = start + b" " * (MAX_BODY - len(start) - 1) + b"}"
    assert len(body) == MAX_BODY
    response = client.post("/signup", data=body, content_type="application/json")
    assert_error(response, 422, field="email")


MALFORMED_BODIES = {
    "truncated": b'{"title": "a',
    "trailing comma": b'{"title": "a",}',
    "not json": b"title=a",
    "single quotes": b"{'title': 'a'}",
    "invalid utf-8": b'{"title": "\xff\xfe"}',
    "nested too deep": b"[" * 5000 + b"]" * 5000,
    "object nested too deep": b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    # Past 4,300 digits int() raises a plain ValueError, not a JSONDecodeError.
    "integer of 4,301 digits": b'{"title": ' + b"9" * 4301 + b"}",
    "NaN": b'{"title": NaN}',
    "Infinity": b'{"title": [-Infinity, Infinity]}',
    "UTF-16": '{"title": "a"}'.encode("utf-16"),
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/login"), ("POST", "/refresh"), ("POST", "/tasks"), ("POST", "/me/password")],
)
def test_malformed_json_is_400(client, auth, method, path, body):
    response = client.open(
        path, method=method, data=body, content_type="application/json", headers=auth()
    )
    assert_error(response, 400)


def test_every_json_route_answers_an_undecodable_body_with_400(client, spec, admin_headers):
    # Every operation with a body, the unauthenticated ones included: parsed as JSON before
    # anything else could answer (an admin may call them all; ids need not exist).
    body = b'{"email": ' + b"1" * 5000 + b"}"
    for path, method, operation in operations(spec):
        if "requestBody" not in operation:
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        response = client.open(
            url, method=method, data=body, content_type="application/json", headers=admin_headers
        )
        assert_error(response, 400)
        assert response.json["errors"] == {"json": ["Invalid JSON body."]}, (method, path)


@pytest.mark.parametrize("location", ["json", "query"])
def test_a_422_never_echoes_the_request_back(client, auth, location):
    # 200 unknown fields with 2,000-character names: the errors name at most 20 of
    # them, each cut to 100 characters, and say so.
    unknown = {f"{number:04d}" + "n" * 2000: 1 for number in range(200)}
    if location == "json":
        response = client.post("/tasks", json={"title": "a", **unknown}, headers=auth())
    else:
        response = client.get("/tasks", query_string=unknown, headers=auth())
    body = assert_error(response, 422)
    errors = body["errors"][location]
    assert len(errors) == 20
    assert {len(name) for name in errors} == {100}
    assert all(messages == ["Unknown field."] for messages in errors.values())
    assert "at most 20 errors" in body["message"]
    assert len(response.get_data()) < 5000


def test_a_422_with_few_errors_lists_them_all(client, auth):
    response = client.post("/tasks", json={"title": "", "completed": "no"}, headers=auth())
    body = assert_error(response, 422)
    assert set(body["errors"]["json"]) == {"title", "completed"}
    assert "at most" not in body["message"]


def test_malformed_json_on_an_existing_task_is_400(client, auth, make_task):
    headers = auth()
    task = make_task(headers)
    for method in ("PATCH", "PUT"):
        response = client.open(
            f"/tasks/{task['id']}",
            method=method,
            data=b"{oops",
            content_type="application/json",
            headers=headers,
        )
        assert_error(response, 400)


NOT_JSON = {
    "form": {"data": {"title": "a"}},
    "text": {"data": '{"title": "a"}', "content_type": "text/plain"},
    "no content type": {"data": b'{"title": "a"}'},
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
@pytest.mark.parametrize("path", ["/signup", "/tasks", "/refresh", "/logout"])
def test_a_body_that_is_not_json_is_415(client, auth, path, body):
    # Not taken for an empty object (webargs' reading), even where the body is optional.
    response = client.post(path, headers=auth(), **body)
    assert_error(response, 415)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/tasks"), ("PATCH", "/tasks/{id}"), ("PUT", "/tasks/{id}")]
)
def test_a_required_body_that_is_missing_is_415(client, auth, make_task, method, path):
    headers = auth()
    task = make_task(headers)
    response = client.open(path.format(id=task["id"]), method=method, headers=headers)
    assert_error(response, 415)
    assert client.get(f"/tasks/{task['id']}", headers=headers).json == task


def test_the_optional_bodies_of_refresh_and_logout_may_be_left_out(client, make_user, login):
    tokens = login(make_user()[0])
    bearer = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    response = client.post("/refresh", headers=bearer)
    assert response.status_code == 200, response.json
    bearer = {"Authorization": f"Bearer {response.json['refresh_token']}"}
    assert client.post("/logout", headers=bearer).status_code == 204


# --- server-side failures -----------------------------------------------------------------


def test_unhandled_exception_is_500_without_traceback(build_app, caplog):
    app = build_app(PROPAGATE_EXCEPTIONS=False)

    @app.get("/explode")
    def explode():
        raise ValueError("secret-detail-in-the-exception")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/explode")

    body = assert_error(response, 500)
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "secret-detail", "ValueError", ".py", "<html"):
        assert leak not in text
    assert set(body) == {"code", "status", "message"}
    # The traceback is logged for the operators instead.
    logged = [record for record in caplog.records if record.exc_info]
    assert any("secret-detail" in str(record.exc_info[1]) for record in logged)


def test_unreachable_database_is_503_on_login(broken_app):
    response = broken_app.test_client().post(
        "/login", json={"email": "someone@example.com", "password": "long enough password"}
    )
    assert_error(response, 503)
    assert_retry_after(response)
    text = response.get_data(as_text=True)
    assert "127.0.0.1" not in text and "psycopg2" not in text


def test_unreachable_database_is_503_on_signup(broken_app):
    response = broken_app.test_client().post(
        "/signup", json={"email": "someone@example.com", "password": "long enough password"}
    )
    assert_error(response, 503)
    assert_retry_after(response)


def test_unreachable_database_is_503_for_an_authenticated_route(broken_app):
    # A well-signed token: the session lookup is what needs the database.
    with broken_app.app_context():
        token = create_access_token("1", additional_claims={"sid": 1})
    response = broken_app.test_client().get("/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 503)
    assert_retry_after(response)


# --- probes -------------------------------------------------------------------------------


def test_healthz_is_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_healthz_does_not_need_the_database(broken_app):
    response = broken_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_200_with_checks(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"
    expected_redis = "ok" if os.environ.get("TEST_REDIS_URL") else "not configured"
    assert response.json["checks"] == {"database": "ok", "redis": expected_redis}


def test_readyz_is_503_when_the_database_is_unreachable(broken_app):
    response = broken_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.is_json
    assert response.json["status"] == "unready"
    assert response.json["checks"]["database"] == "down"


def test_readyz_reports_a_dead_redis_as_degraded_not_unready():
    # In a child process: pointing the (global) limiter at a dead Redis here would leak.
    script = (
        "import json\n"
        "from config import DevelopmentConfig\n"
        "from taskapp import create_app\n"
        "response = create_app(DevelopmentConfig()).test_client().get('/readyz')\n"
        "print(json.dumps({'status': response.status_code, 'body': response.json}))\n"
    )
    env = {
        **os.environ,
        "TASKAPP_ENV": "development",
        "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "JWT_SECRET_KEY": LONG_ENOUGH_KEY,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 200
    assert outcome["body"]["status"] == "ready"
    assert outcome["body"]["checks"] == {"database": "ok", "redis": "degraded"}


# --- the OpenAPI document -----------------------------------------------------------------


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.is_json
    return response.json


def operations(spec, prefix=""):
    for path, item in spec["paths"].items():
        if not path.startswith(prefix):
            continue
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                yield path, method, operation


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        reference = node["$ref"]
        assert reference.startswith("#/"), reference
        node = spec
        for part in reference[2:].split("/"):
            node = node[part]
    return node


def test_openapi_document_is_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["paths"]
    for path in ("/signup", "/login", "/refresh", "/logout", "/tasks", "/healthz", "/readyz"):
        assert path in spec["paths"]


def test_openapi_references_all_resolve(spec):
    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                assert resolve(spec, node) is not None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


def test_openapi_has_the_bearer_security_scheme(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"].lower() == "bearer"


def test_every_task_operation_requires_the_bearer_token_and_documents_401(spec):
    found = list(operations(spec, "/tasks"))
    methods = {(path, method) for path, method, _ in found}
    assert {("/tasks", "get"), ("/tasks", "post")} <= methods
    assert {("/tasks/{task_id}", m) for m in ("get", "put", "patch", "delete")} <= methods
    for path, method, operation in found:
        assert operation.get("security") == [{"bearerAuth": []}], (path, method)
        assert "401" in operation["responses"], (path, method)


@pytest.mark.parametrize("path", ["/signup", "/login", "/refresh"])
def test_rate_limited_routes_document_429(spec, path):
    assert "429" in spec["paths"][path]["post"]["responses"]


def test_documented_errors_use_the_envelope_schema(spec):
    for path, method, operation in operations(spec):
        if path == "/readyz":
            continue  # its 503 is the probe's report of each dependency, by contract
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            schema = resolve(spec, resolve(spec, response)["content"]["application/json"]["schema"])
            assert {"code", "status", "message"} <= set(schema["properties"]), (path, method)


def test_operations_with_a_body_document_400_413_415_and_422(spec):
    for path, method, operation in operations(spec):
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= set(operation["responses"]), (path, method)


def test_only_refresh_and_logout_take_their_body_as_optional(spec):
    optional = {
        (path, method)
        for path, method, operation in operations(spec)
        if "requestBody" in operation and not operation["requestBody"].get("required")
    }
    assert optional == {("/refresh", "post"), ("/logout", "post")}


# --- Swagger UI ---------------------------------------------------------------------------


def test_docs_page_uses_only_local_assets(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(asset.endswith(".js") for asset in assets)
    assert any(asset.endswith(".css") for asset in assets)
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset


def test_docs_assets_are_served(client):
    with client.get("/docs") as page:
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
    scripts = [asset for asset in assets if asset.endswith(".js")]
    assert len(scripts) >= 2  # the bundle and the standalone preset
    for asset in assets:
        with client.get(asset) as response:
            assert response.status_code == 200, asset
            assert len(response.get_data()) > 1000, asset
            if asset.endswith(".js"):
                assert "javascript" in response.mimetype, asset
            else:
                assert response.mimetype == "text/css", asset


# --- configuration ------------------------------------------------------------------------


@pytest.fixture
def production_env(monkeypatch):
    """TASKAPP_ENV=production over the test database and Redis the other apps use."""
    monkeypatch.setenv("TASKAPP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", os.environ["TEST_DATABASE_URL"])
    if os.environ.get("TEST_REDIS_URL"):
        monkeypatch.setenv("REDIS_URL", os.environ["TEST_REDIS_URL"])
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    monkeypatch.delenv("RATELIMIT_ENABLED", raising=False)
    return monkeypatch


def test_production_refuses_to_start_without_a_jwt_key(production_env):
    with pytest.raises(RuntimeError, match="JWT_SECRET_KEY"):
        create_app()
    with pytest.raises(RuntimeError, match="JWT_SECRET_KEY"):
        create_app(ProductionConfig())


@pytest.mark.parametrize("key", ["", "   "], ids=["empty", "blank"])
def test_production_refuses_an_empty_jwt_key(production_env, key):
    production_env.setenv("JWT_SECRET_KEY", key)
    with pytest.raises(RuntimeError, match="JWT_SECRET_KEY"):
        create_app()


@pytest.mark.parametrize("key", ["x" * 31, "é" * 15], ids=["31 ascii", "30 utf-8 bytes"])
def test_production_refuses_a_key_shorter_than_32_bytes(production_env, key):
    production_env.setenv("JWT_SECRET_KEY", key)
    with pytest.raises(RuntimeError, match="32"):
        create_app()


@pytest.mark.parametrize("key", ["x" * 32, "é" * 16], ids=["32 ascii", "32 utf-8 bytes"])
def test_production_starts_with_a_32_byte_key(production_env, key):
    production_env.setenv("JWT_SECRET_KEY", key)
    app = create_app()
    try:
        assert app.config["JWT_SECRET_KEY"] == key
        assert app.config["TESTING"] is False
    finally:
        with app.app_context():
            db.engine.dispose()


def test_unknown_environment_name_refuses_to_start(monkeypatch):
    monkeypatch.setenv("TASKAPP_ENV", "staging")
    with pytest.raises(RuntimeError, match="TASKAPP_ENV"):
        create_app()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+psycopg2://u:p@db:5432/app"),
        ("postgresql://u:p@db:5432/app", "postgresql+psycopg2://u:p@db:5432/app"),
        ("postgresql://postgres@127.0.0.1/test", "postgresql+psycopg2://postgres@127.0.0.1/test"),
        ("postgresql+psycopg2://u@db/app", "postgresql+psycopg2://u@db/app"),
        # libpq's multi-host form (pg_autoctl show uri), in SQLAlchemy's spelling
        (
            "postgres://u:p@n1:5611,n2:5612/app?target_session_attrs=read-write&sslmode=require",
            "postgresql+psycopg2://u:p@/app"
            "?host=n1:5611&host=n2:5612&target_session_attrs=read-write&sslmode=require",
        ),
        ("postgresql://u@n1,n2/app", "postgresql+psycopg2://u@/app?host=n1&host=n2"),
    ],
)
def test_normalise_database_url(url, expected):
    assert normalise_database_url(url) == expected


def test_config_normalises_database_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/app")
    assert ProductionConfig().SQLALCHEMY_DATABASE_URI == "postgresql+psycopg2://u:p@db:5432/app"
