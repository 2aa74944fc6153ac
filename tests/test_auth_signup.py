"""POST /signup: the created user, email normalisation, password bounds, bad input, limits."""

import threading
from datetime import datetime

import bcrypt
import pytest
from sqlalchemy import select

from conftest import PASSWORD, assert_error, row_count
from taskapp.auth.models import User
from taskapp.extensions import db

USER_KEYS = {"id", "email", "email_verified", "created_at"}


def signup(client, email="someone@example.com", password=PASSWORD, **kwargs):
    return client.post("/signup", json={"email": email, "password": password}, **kwargs)


def stored_user(email: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def test_signup_returns_the_user_and_nothing_else(client):
    response = signup(client, "new@example.com")

    assert response.status_code == 201
    body = response.json
    assert set(body) == USER_KEYS
    assert body["email"] == "new@example.com"
    assert isinstance(body["id"], int)
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.utcoffset() is not None and created_at.utcoffset().total_seconds() == 0
    text = response.get_data(as_text=True)
    assert PASSWORD not in text
    assert "$2b$" not in text
    assert stored_user("new@example.com").id == body["id"]


def test_database_stores_a_bcrypt_hash_never_the_password(client):
    signup(client, "hashed@example.com")

    user = stored_user("hashed@example.com")
    assert user.password_hash.startswith("$2b$")
    assert user.password_hash != PASSWORD
    assert PASSWORD not in user.password_hash
    assert bcrypt.checkpw(PASSWORD.encode(), user.password_hash.encode())


def test_email_is_trimmed_and_lower_cased(client):
    response = signup(client, "  Mixed.Case@Example.COM \t")

    assert response.status_code == 201
    assert response.json["email"] == "mixed.case@example.com"
    assert stored_user("mixed.case@example.com") is not None


@pytest.mark.parametrize(
    "again",
    ["taken@example.com", "TAKEN@example.com", "Taken@Example.Com", "  taken@example.com  "],
)
def test_duplicate_email_is_a_conflict(client, again):
    assert signup(client, "taken@example.com").status_code == 201

    body = assert_error(signup(client, again, "another password"), 409)

    assert "errors" not in body
    assert row_count(User) == 1
    # The first account is untouched: its password still verifies.
    assert bcrypt.checkpw(
        PASSWORD.encode(), stored_user("taken@example.com").password_hash.encode()
    )


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("a" * 8, id="8-bytes"),
        pytest.param("a" * 72, id="72-bytes"),
        pytest.param("é" * 36, id="36-two-byte-chars"),
        pytest.param("€" * 24, id="24-three-byte-chars"),
        pytest.param("😀" * 18, id="18-four-byte-chars"),
    ],
)
def test_password_of_8_to_72_bytes_is_accepted_whole(client, password):
    assert signup(client, "bounds@example.com", password).status_code == 201

    hashed = stored_user("bounds@example.com").password_hash.encode()
    assert bcrypt.checkpw(password.encode(), hashed)
    # Nothing was truncated: the password without its last character does not verify.
    assert not bcrypt.checkpw(password[:-1].encode(), hashed)
    login = client.post("/login", json={"email": "bounds@example.com", "password": password})
    assert login.status_code == 200


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 7, id="7-bytes"),
        pytest.param("a" * 73, id="73-bytes"),
        pytest.param("é" * 37, id="37-two-byte-chars"),
        pytest.param("a" * 71 + "é", id="72-chars-73-bytes"),
        pytest.param("😀" * 19, id="19-four-byte-chars"),
        pytest.param("a" * 1000, id="1000-bytes"),
    ],
)
def test_password_outside_8_to_72_bytes_is_rejected(client, password):
    response = signup(client, "bounds@example.com", password)

    body = assert_error(response, 422, field="password")
    assert "72" in str(body["errors"])
    assert row_count(User) == 0


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "",
        "   ",
        "a@",
        "@example.com",
        "two@@example.com",
        "with space@example.com",
        "a" * 250 + "@example.com",
    ],
)
def test_invalid_email_is_rejected(client, email):
    assert_error(signup(client, email), 422, field="email")
    assert row_count(User) == 0


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({}, ["email", "password"]),
        ({"email": "a@example.com"}, ["password"]),
        ({"password": PASSWORD}, ["email"]),
    ],
)
def test_missing_fields_are_rejected(client, body, missing):
    response = client.post("/signup", json=body)

    errors = assert_error(response, 422)["errors"]["json"]
    assert sorted(errors) == missing
    assert row_count(User) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", 1),
        ("role", "admin"),
        ("is_active", True),
        ("created_at", "2020-01-01T00:00:00+00:00"),
        ("password_hash", "$2b$04$" + "a" * 53),
        ("Email", "other@example.com"),
    ],
)
def test_unknown_and_read_only_fields_are_rejected(client, field, value):
    body = {"email": "extra@example.com", "password": PASSWORD, field: value}

    assert_error(client.post("/signup", json=body), 422, field=field)
    assert row_count(User) == 0


@pytest.mark.parametrize("field", ["email", "password"])
@pytest.mark.parametrize("value", [None, 12345678, 1.5, True, ["a@example.com"], {"a": "b"}])
def test_non_string_values_are_rejected(client, field, value):
    body = {"email": "typed@example.com", "password": PASSWORD, field: value}

    assert_error(client.post("/signup", json=body), 422, field=field)
    assert row_count(User) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "abcdefgh\ud800"),
        ("password", "abcdefgh\x00"),
        ("password", "\x00" * 8),
        ("email", "a\udfff@example.com"),
        ("email", "a\x00@example.com"),
    ],
)
def test_text_bcrypt_or_the_database_cannot_take_is_rejected(client, field, value):
    # JSON can spell a lone surrogate ("\ud800"), which no UTF-8 encoder (bcrypt, the
    # database) accepts, and NUL, which PostgreSQL text refuses and which makes bcrypt keys
    # collide (eight NULs hash like the empty password).
    body = {"email": "odd@example.com", "password": PASSWORD, field: value}

    assert_error(client.post("/signup", json=body), 422, field=field)
    assert row_count(User) == 0


@pytest.mark.parametrize("data", ["[]", '"a string"', "42", "null"])
def test_body_that_is_not_an_object_is_rejected(client, data):
    response = client.post("/signup", data=data, content_type="application/json")

    assert_error(response, 422)
    assert row_count(User) == 0


def test_malformed_json_is_a_400(client):
    response = client.post(
        "/signup", data='{"email": "a@example.com",', content_type="application/json"
    )

    assert_error(response, 400)
    assert row_count(User) == 0


def test_successful_signup_carries_rate_limit_headers(client):
    remaining = []
    for number in range(3):
        response = signup(client, f"limit{number}@example.com")
        assert response.status_code == 201
        assert response.headers["X-RateLimit-Limit"] == "3"
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]


def test_fourth_signup_in_a_minute_is_rate_limited(client):
    for number in range(3):
        assert signup(client, f"limit{number}@example.com").status_code == 201

    response = signup(client, "limit3@example.com")

    body = assert_error(response, 429)
    assert "errors" not in body
    assert int(response.headers["Retry-After"]) > 0
    assert stored_user("limit3@example.com") is None
    # X-Forwarded-For is not believed (TRUSTED_PROXIES=0), so it cannot dodge the limit...
    spoofed = signup(client, "limit3@example.com", headers={"X-Forwarded-For": "203.0.113.9"})
    assert_error(spoofed, 429)
    # ...but another client address has its own budget.
    other = signup(client, "limit3@example.com", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert other.status_code == 201


@pytest.mark.committing
def test_concurrent_signups_of_one_email_create_one_user(app, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_SIGNUP", "1000 per minute")
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    statuses, failures = [], []

    def sign_up(number: int) -> None:
        try:
            with app.app_context():
                client = app.test_client()
                email = "Race@Example.com" if number % 2 else " race@example.com "
                barrier.wait(timeout=10)
                response = signup(client, email, f"password {number}")
                statuses.append(response.status_code)
                if response.status_code == 409:
                    assert_error(response, 409)
        except Exception as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=sign_up, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not failures
    assert sorted(statuses) == [201] + [409] * (threads_count - 1)
    assert row_count(User) == 1
    assert stored_user("race@example.com") is not None
