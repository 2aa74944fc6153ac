"""CORS: only the origins in CORS_ORIGINS (none by default) may call from a browser."""

import pytest

import config
from conftest import assert_error

ALLOWED = "https://app.example.com"
ALSO_ALLOWED = "http://localhost:5173"
DENIED = "https://evil.example.net"
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods")


@pytest.fixture
def cors_client(build_app):
    return build_app(CORS_ORIGINS=[ALLOWED, ALSO_ALLOWED]).test_client()


def preflight(client, path: str, origin: str, method: str = "POST", headers: str = ""):
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=request_headers)


@pytest.mark.parametrize("origin", [ALLOWED, ALSO_ALLOWED])
def test_an_allowed_origin_may_read_responses(cors_client, origin):
    response = cors_client.get("/healthz", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in response.headers.get("Vary", "")
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "ETag", "Idempotent-Replayed", "Location", "Retry-After"} <= exposed
    # Bearer tokens, not cookies: credentials mode is never allowed.
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    "origin", [DENIED, "https://app.example.com.evil.net", "http://app.example.com", "null"]
)
def test_any_other_origin_gets_no_cors_headers(cors_client, origin):
    response = cors_client.get("/healthz", headers={"Origin": origin})
    assert response.status_code == 200  # the browser, not the server, withholds the body
    assert not any(name in response.headers for name in CORS_HEADERS)


def test_error_responses_carry_cors_headers_so_the_app_can_read_them(cors_client):
    response = cors_client.get("/tasks", headers={"Origin": ALLOWED})
    assert_error(response, 401)
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_preflight_from_an_allowed_origin(cors_client):
    response = preflight(
        cors_client,
        "/tasks",
        ALLOWED,
        "POST",
        "Authorization, Content-Type, If-Match, Idempotency-Key",
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type", "idempotency-key", "if-match"} <= allowed
    assert response.headers["Access-Control-Max-Age"] == "600"


def test_preflight_for_a_header_that_is_not_allowed(cors_client):
    response = preflight(cors_client, "/tasks", ALLOWED, "GET", "X-Custom-Secret")
    assert "Access-Control-Allow-Headers" not in response.headers


def test_preflight_from_another_origin_is_not_allowed(cors_client):
    response = preflight(cors_client, "/tasks", DENIED, "POST", "Authorization")
    assert not any(name in response.headers for name in CORS_HEADERS)


def test_preflight_needs_no_token_and_spends_no_rate_limit(cors_client):
    for _ in range(10):
        assert preflight(cors_client, "/login", ALLOWED, "POST", "Content-Type").status_code == 200
        assert preflight(cors_client, "/tasks", ALLOWED, "GET", "Authorization").status_code == 200
    # The 5-per-minute login limit is untouched by the preflights: this is a 422, not a 429.
    login = cors_client.post("/login", json={}, headers={"Origin": ALLOWED})
    assert_error(login, 422)
    assert login.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_no_origin_is_allowed_by_default(client):
    response = client.get("/healthz", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers
    response = preflight(client, "/tasks", ALLOWED, "POST", "Authorization")
    assert not any(name in response.headers for name in CORS_HEADERS)


def test_cors_origins_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", f" {ALLOWED} ,{ALSO_ALLOWED},, ")
    assert config.Config().CORS_ORIGINS == [ALLOWED, ALSO_ALLOWED]
    monkeypatch.delenv("CORS_ORIGINS")
    assert config.Config().CORS_ORIGINS == []


@pytest.mark.parametrize(
    "value", ["app.example.com", "https://app.example.com/", "https://a.com/path", "ftp://a.com"]
)
def test_a_value_that_is_not_an_origin_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("CORS_ORIGINS", f"{ALLOWED},{value}")
    with pytest.raises(RuntimeError, match="CORS_ORIGINS"):
        config.Config()


@pytest.mark.parametrize("origins", [[ALLOWED], [ALLOWED, ALSO_ALLOWED], ["*"]])
def test_every_response_says_it_varies_by_origin(build_app, origins):
    # With one origin configured flask-cors leaves Vary out: a shared cache would then serve
    # an allowed origin's copy (with Access-Control-Allow-Origin) to every other origin.
    client = build_app(CORS_ORIGINS=origins).test_client()
    for origin in (ALLOWED, DENIED, None):
        for method, path in (("GET", "/healthz"), ("GET", "/tasks"), ("OPTIONS", "/tasks")):
            response = client.open(
                path, method=method, headers={"Origin": origin} if origin else {}
            )
            assert "Origin" in response.vary, (origin, method, path)
