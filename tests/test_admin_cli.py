"""``flask users create-admin EMAIL``: prompted or TASKAPP_ADMIN_PASSWORD; create or promote."""

import json
import os
import secrets
import time
from dataclasses import replace

import click
import pytest
from sqlalchemy import func, select

import config
from conftest import PASSWORD, assert_error
from taskapp.auth.models import User
from taskapp.extensions import db
from tests.support import flask

NEW_PASSWORD = "a strong admin password"


def create_admin(runner, email: str, *, input: str | None = None):
    return runner.invoke(args=["users", "create-admin", email], input=input)


def users_named(email: str) -> list[User]:
    db.session.expire_all()
    return list(db.session.scalars(select(User).where(User.email == email)))


def can_administer(client, email: str, password: str) -> bool:
    response = client.post("/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.json
    headers = {"Authorization": f"Bearer {response.json['access_token']}"}
    return client.get("/admin/users", headers=headers).status_code == 200


@pytest.fixture(autouse=True)
def no_admin_password(app, monkeypatch):
    """Prompt unless a test sets the password (the session app may have read the env)."""
    monkeypatch.setitem(app.config, "ADMIN_PASSWORD", None)


def test_creates_an_admin_with_a_prompted_password(runner, client):
    result = create_admin(runner, "root@example.com", input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "created admin root@example.com" in result.output
    assert NEW_PASSWORD not in result.output  # hidden input is not echoed
    [user] = users_named("root@example.com")
    assert (user.role, user.is_active) == ("admin", True)
    assert user.password_hash != NEW_PASSWORD
    assert can_administer(client, "root@example.com", NEW_PASSWORD)


def test_email_is_normalised_like_signup(runner, client):
    result = create_admin(runner, "  Root@Example.COM ", input=f"{NEW_PASSWORD}\n" * 2)
    assert result.exit_code == 0, result.output
    assert len(users_named("root@example.com")) == 1
    signup = client.post("/signup", json={"email": "root@example.com", "password": PASSWORD})
    assert_error(signup, 409)


def test_reads_the_password_from_the_environment_without_prompting(app, runner, client):
    app.config["ADMIN_PASSWORD"] = NEW_PASSWORD
    result = create_admin(runner, "ops@example.com", input="")
    assert result.exit_code == 0, result.output
    assert "Password" not in result.output
    assert can_administer(client, "ops@example.com", NEW_PASSWORD)


def test_config_takes_the_password_from_taskapp_admin_password(monkeypatch):
    monkeypatch.setenv("TASKAPP_ADMIN_PASSWORD", NEW_PASSWORD)
    assert config.TestingConfig().ADMIN_PASSWORD == NEW_PASSWORD
    monkeypatch.delenv("TASKAPP_ADMIN_PASSWORD")
    assert config.TestingConfig().ADMIN_PASSWORD is None


@pytest.mark.parametrize("bad", ["short", "x" * 73, "é" * 37])
def test_a_bad_environment_password_creates_nothing(app, runner, bad):
    app.config["ADMIN_PASSWORD"] = bad
    result = create_admin(runner, "ops@example.com")
    assert result.exit_code == 1
    assert "TASKAPP_ADMIN_PASSWORD" in result.output and "8 to 72 bytes" in result.output
    assert users_named("ops@example.com") == []


def test_a_bad_prompted_password_is_asked_again(runner, client):
    answers = ["short", "short", "x" * 73, "x" * 73, NEW_PASSWORD, NEW_PASSWORD]
    result = create_admin(runner, "root@example.com", input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("8 to 72 bytes") == 2
    assert can_administer(client, "root@example.com", NEW_PASSWORD)


def test_a_mismatched_confirmation_is_asked_again(runner, client):
    answers = [NEW_PASSWORD, "something else", NEW_PASSWORD, NEW_PASSWORD]
    result = create_admin(runner, "root@example.com", input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert can_administer(client, "root@example.com", NEW_PASSWORD)


def test_gives_up_after_three_bad_passwords(runner):
    result = create_admin(runner, "root@example.com", input="short\nshort\n" * 3)
    assert result.exit_code == 1
    assert "no valid password" in result.output
    assert users_named("root@example.com") == []


def test_end_of_input_aborts_without_creating(runner):
    result = create_admin(runner, "root@example.com", input="")
    assert result.exit_code != 0
    assert users_named("root@example.com") == []


@pytest.mark.parametrize("email", ["not-an-email", "", "a" * 250 + "@example.com"])
def test_an_invalid_email_is_a_usage_error(runner, email):
    result = create_admin(runner, email, input=f"{NEW_PASSWORD}\n" * 2)
    assert result.exit_code == 2
    assert "email" in result.output.lower()
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_promotes_an_existing_user_who_keeps_their_password(runner, client, make_user):
    email, password = make_user("member@example.com")
    result = create_admin(runner, email, input="")  # no prompt: the password is kept
    assert result.exit_code == 0, result.output
    assert "promoted admin member@example.com" in result.output
    [user] = users_named(email)
    assert user.role == "admin"
    assert can_administer(client, email, password)


def test_promoting_reactivates_a_deactivated_user(runner, client, make_user):
    email, password = make_user()
    [user] = users_named(email)
    user.is_active = False
    db.session.commit()
    assert_error(client.post("/login", json={"email": email, "password": password}), 401)
    result = create_admin(runner, email)
    assert result.exit_code == 0, result.output
    assert can_administer(client, email, password)


def test_running_it_twice_is_harmless(runner):
    assert create_admin(runner, "root@example.com", input=f"{NEW_PASSWORD}\n" * 2).exit_code == 0
    again = create_admin(runner, "root@example.com")
    assert again.exit_code == 0 and "promoted" in again.output
    assert len(users_named("root@example.com")) == 1


def test_as_an_operator_runs_it(scratch_database_url):
    """``flask --app wsgi users create-admin`` in a shell, password from the environment."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEST_", "RATELIMIT_", "TASKAPP_")) and name != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=scratch_database_url,
        TASKAPP_ENV="production",
        JWT_SECRET_KEY=secrets.token_urlsafe(40),
        BCRYPT_ROUNDS="4",
        TASKAPP_ADMIN_PASSWORD=NEW_PASSWORD,
    )

    upgrade = flask("db", "upgrade", env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    created = flask("users", "create-admin", "root@example.com", env=env)
    assert created.returncode == 0, created.stderr
    assert "created admin root@example.com" in created.stdout
    # Logging is JSON there too, one object per line (the migrations' messages included).
    lines = [line for line in (upgrade.stderr + created.stderr).splitlines() if line.strip()]
    assert lines and all(json.loads(line)["message"] for line in lines)
    assert NEW_PASSWORD not in upgrade.stderr + created.stderr + created.stdout


@pytest.mark.committing
def test_the_password_prompt_waits_with_no_transaction_open(app, build_app, monkeypatch):
    """An operator may take their time at the prompt: no transaction waits on them (the
    database's idle-in-transaction timeout would end it, and the command with it)."""
    timeouts = replace(
        app.config["DATABASE_TIMEOUTS"],
        idle_in_transaction_ms=50,
        command_idle_in_transaction_ms=50,
    )
    slow = build_app(DATABASE_TIMEOUTS=timeouts, ADMIN_PASSWORD=None)
    prompt = click.prompt

    def thoughtful_prompt(*args, **kwargs):
        time.sleep(0.3)
        return prompt(*args, **kwargs)

    monkeypatch.setattr(click, "prompt", thoughtful_prompt)
    with slow.app_context():  # else the command would run in the test's app (its context)
        result = create_admin(
            slow.test_cli_runner(), "slow@example.com", input=f"{NEW_PASSWORD}\n" * 2
        )
    assert result.exit_code == 0, result.output
    assert [user.role for user in users_named("slow@example.com")] == ["admin"]
