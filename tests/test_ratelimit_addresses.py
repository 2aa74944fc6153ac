"""Per-address limits count an address in its canonical form and an IPv6 client by its /64; an
X-Forwarded-For that is no address (garbage, too long) is never a 500, whoever reads it."""

import pytest
from sqlalchemy import select
from werkzeug.middleware.proxy_fix import ProxyFix

from conftest import PASSWORD, assert_error
from taskapp.auth.models import Session
from taskapp.clientaddr import address_network, canonical_address
from taskapp.extensions import db

LOGIN_LIMIT = 5  # RATELIMIT_LOGIN's default
ATTEMPT = {"email": "nobody@example.com", "password": "not the password"}


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("::FFFF:C633:6407", "198.51.100.7"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:0db8::0001", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("", None),
        (None, None),
        ("unknown", None),
        ("198.51.100.256", None),
        ("198.051.100.7", None),  # leading zeros: octal to some parsers, refused
        ("198.51.100.7, 203.0.113.1", None),
        ("2001:db8::1::2", None),
        ("x" * 10_000, None),
        ("2001:db8::1%" + "z" * 200, None),
    ],
)
def test_addresses_have_one_canonical_form(sent, canonical):
    assert canonical_address(sent) == canonical


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "2001:db8:1:2::/64"),
        (None, "unknown"),
    ],
)
def test_limits_count_ipv6_clients_by_their_64(address, network):
    assert address_network(address) == network


def attempt_from(client, address: str):
    return client.post("/login", json=ATTEMPT, environ_base={"REMOTE_ADDR": address})


def test_a_client_cannot_dodge_the_limit_across_its_ipv6_network(client):
    statuses = [
        attempt_from(client, f"2001:db8:0:7:{number}::1").status_code
        for number in range(1, LOGIN_LIMIT + 1)
    ]
    assert statuses == [401] * LOGIN_LIMIT

    assert_error(attempt_from(client, "2001:db8:0:7:ffff:ffff:ffff:ffff"), 429)
    # The next /64 is another client.
    assert attempt_from(client, "2001:db8:0:8::1").status_code == 401


def test_spellings_of_one_address_share_one_count(client):
    spellings = [
        "198.51.100.7",
        "::ffff:198.51.100.7",
        "::FFFF:198.51.100.7",
        "0:0:0:0:0:ffff:c633:6407",
        "198.51.100.7",
    ]
    assert [attempt_from(client, spelling).status_code for spelling in spellings] == [401] * 5
    assert_error(attempt_from(client, "::ffff:c633:6407"), 429)


GARBAGE = {
    "words": "not an address",
    "too long": "1" * 8000,
    "out of range": "300.1.2.3",
    "bad IPv6": "2001:db8:::1",
    "zone too long": "fe80::1%" + "a" * 500,
    "control characters": "198.51.100.7\x01\x7f",
    "latin-1": "caf\xe9",
}


@pytest.fixture
def behind_a_proxy(app, monkeypatch):
    """The app as TRUSTED_PROXIES=1 builds it: X-Forwarded-For's last entry is believed."""
    monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_for=1))
    monkeypatch.setitem(app.config, "RATELIMIT_LOGIN", "1000 per minute")
    return app


def forwarded_for(value: str) -> dict:
    return {"X-Forwarded-For": f"203.0.113.1, {value}"}


@pytest.mark.parametrize("value", GARBAGE.values(), ids=list(GARBAGE))
def test_a_trusted_forwarded_for_that_is_no_address_never_gives_a_500(
    behind_a_proxy, client, value
):
    forwarded = forwarded_for(value)
    credentials = {"email": "proxied@example.com", "password": PASSWORD}

    signup = client.post("/signup", json=credentials, headers=forwarded)
    login = client.post("/login", json=credentials, headers=forwarded)
    failed = client.post("/login", json=ATTEMPT, headers=forwarded)
    assert [signup.status_code, login.status_code, failed.status_code] == [201, 200, 401], [
        response.get_data(as_text=True)[:300] for response in (signup, login, failed)
    ]
    tokens = login.json
    headers = {**forwarded, "Authorization": f"Bearer {tokens['access_token']}"}
    wrong = {"current_password": "wrong password", "new_password": "a new password"}
    responses = [
        client.get("/me", headers=headers),
        client.post("/tasks", json={"title": "t"}, headers=headers),
        client.post("/me/password", json=wrong, headers=headers),
        client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}, headers=forwarded),
        client.get("/healthz", headers=forwarded),
    ]
    assert [response.status_code for response in responses] == [200, 201, 403, 200, 200]
    # The session keeps no address rather than the garbage.
    assert db.session.scalars(select(Session.ip_address)).all() == [None]


@pytest.mark.parametrize("value", GARBAGE.values(), ids=list(GARBAGE))
def test_nor_with_metrics_and_logs(build_app, value):
    client = build_app(TRUSTED_PROXIES=1, METRICS_ENABLED=True).test_client()
    forwarded = forwarded_for(value)

    statuses = [
        client.get("/healthz", headers=forwarded).status_code,
        client.get("/no/such/route", headers=forwarded).status_code,
        client.post("/login", json={}, headers=forwarded).status_code,
        client.get("/metrics", headers=forwarded).status_code,
    ]
    assert statuses == [200, 404, 422, 200]


def test_a_forwarded_address_is_stored_canonically(behind_a_proxy, client, make_user):
    email, _ = make_user()
    forwarded = {"X-Forwarded-For": "::FFFF:198.51.100.9"}

    response = client.post("/login", json={"email": email, "password": PASSWORD}, headers=forwarded)

    assert response.status_code == 200
    assert db.session.scalars(select(Session.ip_address)).all() == ["198.51.100.9"]
