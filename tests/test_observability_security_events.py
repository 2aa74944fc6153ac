"""Security events in the JSON logs (refresh-token reuse at WARNING, the others at INFO, with
ids and never a credential) and counted in taskapp_security_events_total."""

import json
import re

import pytest
from sqlalchemy import select

from conftest import PASSWORD, requires_redis
from taskapp.admin import service as admin_service
from taskapp.auth.models import User
from taskapp.extensions import db
from tests.support.servers import call, gunicorn, on_every_worker

NEW_PASSWORD = "a brand new secret"
WRONG = "guessed-0f3a9c"


@pytest.fixture(autouse=True)
def generous_limits(app, monkeypatch):
    for name in ("RATELIMIT_SIGNUP", "RATELIMIT_LOGIN"):
        monkeypatch.setitem(app.config, name, "1000 per minute")


def events(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "taskapp.security"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def user_id(email: str) -> int:
    return db.session.scalar(select(User.id).where(User.email == email))


def assert_no_secret(lines: list[dict], *secrets: str) -> None:
    text = json.dumps(lines)
    for secret in secrets:
        assert secret not in text


def event_count(metrics_client, event: str) -> float:
    text = metrics_client.get("/metrics").get_data(as_text=True)
    match = re.search(rf'^taskapp_security_events_total{{event="{event}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_refresh_token_reuse_is_a_warning_with_ids_and_a_count(
    client, make_user, login, json_log, build_app
):
    metrics = build_app(METRICS_ENABLED=True).test_client()
    before = event_count(metrics, "refresh_token_reuse")
    email, _ = make_user()
    tokens = login(email)
    assert (
        client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    )

    reused = client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert reused.status_code == 401
    [event] = [line for line in events(json_log()) if line["event"] == "refresh_token_reuse"]
    assert event["level"] == "WARNING"
    assert event["user_id"] == user_id(email)
    live = client.get("/sessions", headers=bearer(login(email)["access_token"])).json
    assert isinstance(event["session_id"], int)
    assert event["session_id"] not in [session["id"] for session in live]  # revoked
    assert "request_id" in event
    assert event_count(metrics, "refresh_token_reuse") == before + 1
    assert_no_secret(json_log(), tokens["refresh_token"], tokens["access_token"], PASSWORD, email)


def test_account_events_are_info_with_ids_and_no_credentials(client, make_user, login, json_log):
    email, _ = make_user()
    uid = user_id(email)
    first, second = login(email), login(email)
    sessions = client.get("/sessions", headers=bearer(first["access_token"])).json
    other_session = next(session["id"] for session in sessions if not session["current"])

    client.post("/login", json={"email": email, "password": WRONG})
    client.delete(f"/sessions/{other_session}", headers=bearer(first["access_token"]))
    client.post("/logout-all", headers=bearer(first["access_token"]))
    third = login(email)
    client.post(
        "/me/password",
        json={"current_password": WRONG, "new_password": NEW_PASSWORD},
        headers=bearer(third["access_token"]),
    )
    client.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(third["access_token"]),
    )
    fourth = login(email, NEW_PASSWORD)
    client.delete("/me", json={"password": NEW_PASSWORD}, headers=bearer(fourth["access_token"]))

    logged = events(json_log())
    assert [(line["event"], line["level"]) for line in logged] == [
        ("login_failed", "INFO"),
        ("session_revoked", "INFO"),
        ("logout_all", "INFO"),
        ("password_check_failed", "INFO"),
        ("password_changed", "INFO"),
        ("account_deleted", "INFO"),
    ]
    assert all(line["user_id"] == uid for line in logged)
    assert logged[1]["session_id"] == other_session
    tokens = [
        pair[kind]
        for pair in (first, second, third, fourth)
        for kind in ("access_token", "refresh_token")
    ]
    assert_no_secret(json_log(), PASSWORD, NEW_PASSWORD, WRONG, email, *tokens)


def test_deactivation_is_logged_with_the_admin(client, make_user, login, json_log):
    admin_email, _ = make_user()
    admin_service.make_admin(email=admin_email)
    admin = login(admin_email)
    email, _ = make_user()
    uid = user_id(email)

    response = client.patch(
        f"/admin/users/{uid}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )

    assert response.status_code == 200
    [event] = [line for line in events(json_log()) if line["event"] == "user_deactivated"]
    assert event["level"] == "INFO"
    assert (event["user_id"], event["actor_id"]) == (uid, user_id(admin_email))


def test_repeated_failed_logins_are_logged_when_limited(client, make_user, json_log):
    email, _ = make_user()
    uid = user_id(email)
    for number in range(11):  # RATELIMIT_LOGIN_EMAIL: 10 per hour
        client.post(
            "/login",
            json={"email": email, "password": WRONG},
            environ_base={"REMOTE_ADDR": f"198.51.100.{number + 1}"},
        )

    logged = events(json_log())
    assert [line["event"] for line in logged] == ["login_failed"] * 10 + [
        "password_attempts_limited"
    ]
    assert all(line["user_id"] == uid for line in logged[:10])
    assert logged[-1]["endpoint"] == "auth.Login"
    assert_no_secret(json_log(), email, WRONG)


# --- under gunicorn: multiprocess metrics, JSON logs, a proxy passing garbage ---------------


@requires_redis
@pytest.mark.gunicorn
@pytest.mark.committing
def test_under_gunicorn_reuse_is_counted_by_every_worker_and_logged(app, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "TRUSTED_PROXIES": "1",
        "GUNICORN_ACCESSLOG": "",
    }
    # The proxy passes on something that is no address: nothing may fail for it.
    garbage = {"X-Forwarded-For": "203.0.113.1, " + "not-an-address" * 50}
    credentials = {"email": "reused@example.com", "password": PASSWORD}
    with gunicorn(tmp_path, steerable=True, env=env) as server:
        assert call(server, "POST", "/signup", json=credentials, headers=garbage).status_code == 201
        tokens = call(server, "POST", "/login", json=credentials, headers=garbage).json()
        spend = {"refresh_token": tokens["refresh_token"]}
        assert call(server, "POST", "/refresh", json=spend, headers=garbage).status_code == 200
        assert call(server, "POST", "/refresh", json=spend, headers=garbage).status_code == 401

        for scrape in on_every_worker(server, "GET", "/metrics"):
            text = scrape.body.decode()
            assert 'taskapp_security_events_total{event="refresh_token_reuse"} 1.0' in text
        log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    [event] = [line for line in lines if line.get("event") == "refresh_token_reuse"]
    assert event["level"] == "WARNING" and isinstance(event["user_id"], int)
    assert "Traceback" not in log
    assert tokens["refresh_token"] not in log
