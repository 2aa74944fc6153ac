"""Rate-limit keys and rules in one process: the per-email login limit, bodies it cannot key
on, the documented headers, configuration, and RATELIMIT_ENABLED=false."""

import json
import os
import subprocess
import sys

import pytest
import redis

import config
from conftest import PASSWORD, PROJECT, assert_error, requires_redis, row_count
from taskapp.auth.models import Session

EMAIL_LIMIT = 10  # RATELIMIT_LOGIN_EMAIL's default: 10 per hour
ADDRESS_LIMIT = 5  # RATELIMIT_LOGIN's default: 5 per minute


def login_from(client, address: str, email: str, password: str = "not the password"):
    return client.post(
        "/login",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def addresses(count: int) -> list[str]:
    return [f"198.51.100.{number}" for number in range(1, count + 1)]


# --- per email ---------------------------------------------------------------------------


def test_login_limit_per_email_holds_whatever_the_address(client, make_user):
    email, _ = make_user()
    for address in addresses(EMAIL_LIMIT):
        assert_error(login_from(client, address, email), 401)

    # A fresh address, and the right password: the account is still refused for the hour.
    response = login_from(client, "203.0.113.50", email, PASSWORD)

    body = assert_error(response, 429)
    assert "errors" not in body
    assert response.headers["X-RateLimit-Limit"] == str(EMAIL_LIMIT)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert 60 < int(response.headers["Retry-After"]) <= 3600
    assert row_count(Session) == 0
    # Other accounts are not affected, from the same address.
    other, _ = make_user()
    assert login_from(client, "203.0.113.50", other, PASSWORD).status_code == 200


def test_login_limit_per_email_counts_the_normalised_email(client, make_user):
    email, _ = make_user("casey@example.com")
    spellings = [
        "casey@example.com",
        "Casey@Example.com",
        "  CASEY@EXAMPLE.COM\t",
        "casey@EXAMPLE.com ",
    ]
    for number, address in enumerate(addresses(EMAIL_LIMIT)):
        assert_error(login_from(client, address, spellings[number % len(spellings)]), 401)

    assert_error(login_from(client, "203.0.113.50", email, PASSWORD), 429)


def test_the_address_limit_still_reports_first_on_a_successful_login(client, make_user):
    email, _ = make_user()

    response = login_from(client, "198.51.100.1", email, PASSWORD)

    assert response.status_code == 200
    # The shortest window is the one reported while nothing is exceeded.
    assert response.headers["X-RateLimit-Limit"] == str(ADDRESS_LIMIT)
    assert response.headers["X-RateLimit-Remaining"] == str(ADDRESS_LIMIT - 1)


@requires_redis
def test_no_email_address_lands_in_redis_in_the_clear(client, make_user):
    email, _ = make_user("dana.secret-name@example.com")
    for address in addresses(3):
        assert_error(login_from(client, address, email.upper()), 401)

    store = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    try:
        keys = [key.decode() for key in store.scan_iter(match="*taskapp*")]
    finally:
        store.close()
    login_keys = [key for key in keys if "auth.Login" in key]
    assert login_keys, keys
    for key in keys:
        assert "secret-name" not in key.lower() and "example.com" not in key.lower(), key
    # The per-email count is the account's, shared with the routes that check its password.
    email_keys = [key for key in keys if "/email:" in key]
    assert len(email_keys) == 1, keys
    assert "/password:account/" in email_keys[0]
    digest = email_keys[0].split("/email:")[1].split("/")[0]
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


# --- bodies the email limit cannot key on ------------------------------------------------

ODD_BODIES = {
    "empty object": ({"json": {}}, 422),
    "email not a string": ({"json": {"email": 5, "password": "x"}}, 422),
    "email null": ({"json": {"email": None, "password": "x"}}, 422),
    "email a list": ({"json": {"email": ["a@example.com"], "password": "x"}}, 422),
    "blank email": ({"json": {"email": "  ", "password": "x"}}, 401),
    "lone surrogate": ({"json": {"email": "lone\udfff@example.com", "password": "x"}}, 422),
    "array body": ({"json": ["a@example.com"]}, 422),
    "string body": ({"json": "a@example.com"}, 422),
    "malformed JSON": ({"data": b'{"email": ', "content_type": "application/json"}, 400),
    "invalid UTF-8": ({"data": b'{"email": "\xff@x"}', "content_type": "application/json"}, 400),
    "nested too deep": ({"data": b"[" * 100_000, "content_type": "application/json"}, 400),
    "form body": ({"data": {"email": "a@example.com"}}, 415),
    "too large": (
        {"data": b'{"email": "' + b"a" * (1024 * 1024) + b'"}', "content_type": "application/json"},
        413,
    ),
}


@pytest.mark.parametrize("case", ODD_BODIES, ids=list(ODD_BODIES))
def test_a_body_without_a_usable_email_is_still_counted_per_address(client, make_user, case):
    kwargs, status = ODD_BODIES[case]
    email, _ = make_user()

    remaining = []
    for _ in range(ADDRESS_LIMIT):
        response = client.post("/login", **kwargs)
        assert_error(response, status)
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))

    assert remaining == list(range(ADDRESS_LIMIT - 1, -1, -1))
    # Counting went on in the same storage: no error was taken for an outage (which would
    # have switched to a fresh in-memory fallback and let this one through).
    assert_error(client.post("/login", json={"email": email, "password": PASSWORD}), 429)


# --- the OpenAPI document ----------------------------------------------------------------

LIMITED = {"/signup": "201", "/login": "200", "/refresh": "200"}
HEADERS = {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json


@pytest.mark.parametrize("path", LIMITED)
def test_limited_routes_document_429_with_its_headers_and_the_envelope(spec, path):
    response = spec["paths"][path]["post"]["responses"]["429"]
    assert set(response["headers"]) == HEADERS
    assert response["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    schema = response["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("path", LIMITED)
def test_limited_routes_document_the_headers_of_their_success_response(spec, path):
    responses = spec["paths"][path]["post"]["responses"]
    # (Token responses document their Cache-Control and Pragma too.)
    assert HEADERS <= set(responses[LIMITED[path]]["headers"])
    # ...and only there: the status is not documented twice under another key.
    assert [status for status in responses if status.startswith("2")] == [LIMITED[path]]


@pytest.mark.parametrize(
    ("path", "method"),
    [("/logout", "post"), ("/tasks", "get"), ("/me", "get"), ("/sessions", "get")],
)
def test_unlimited_routes_document_no_rate_limit(spec, path, method):
    assert "429" not in spec["paths"][path][method]["responses"]


# --- configuration -----------------------------------------------------------------------


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RATELIMIT_LOGIN_EMAIL", "20 per day")
    monkeypatch.setenv("RATELIMIT_LOGIN", " 7 per minute ")

    settings = config.TestingConfig()

    assert settings.RATELIMIT_LOGIN_EMAIL == "20 per day"
    assert settings.RATELIMIT_LOGIN == "7 per minute"


@pytest.mark.parametrize(
    "name", ["RATELIMIT_SIGNUP", "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_EMAIL", "RATELIMIT_REFRESH"]
)
def test_an_unparsable_limit_stops_the_start_up(monkeypatch, name):
    monkeypatch.setenv(name, "5 per minuet")

    with pytest.raises(RuntimeError, match=name):
        config.TestingConfig()


DISABLED_SCRIPT = """
import json
import flask_migrate
from config import DevelopmentConfig
from taskapp import create_app

app = create_app(DevelopmentConfig())
with app.app_context():
    flask_migrate.upgrade()
client = app.test_client()
attempt = {"email": "nobody@example.com", "password": "not the password"}
logins = [client.post("/login", json=attempt) for _ in range(12)]
ready = client.get("/readyz")
print(json.dumps({
    "statuses": [response.status_code for response in logins],
    "headers": sorted({name for r in logins for name in r.headers.keys() if "RateLimit" in name}),
    "readyz": ready.json,
}))
"""


def test_ratelimit_enabled_false_turns_limiting_off(scratch_database_url):
    # In a child process: the limiter is one object per process, so disabling it here would
    # disable it for every other test.
    env = {
        **os.environ,
        "TASKAPP_ENV": "development",
        "DATABASE_URL": scratch_database_url,
        "REDIS_URL": "redis://127.0.0.1:1/0",  # configured but unused: not "degraded"
        "JWT_SECRET_KEY": "a-signing-key-long-enough-for-the-check-0123",
        "RATELIMIT_ENABLED": "false",
        "BCRYPT_ROUNDS": "4",
    }
    result = subprocess.run(
        [sys.executable, "-c", DISABLED_SCRIPT],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["statuses"] == [401] * 12
    assert outcome["headers"] == []
    assert outcome["readyz"]["status"] == "ready"
    assert outcome["readyz"]["checks"]["redis"] == "disabled"
