"""The timeouts are ordered (lock, statement < pool < gunicorn's worker timeout), or nothing
starts: a stuck query must end as a 503, never as a killed worker."""

import os
import subprocess
import sys

import pytest

from config import Config, database_timeouts
from servers import PROJECT

POSTGRES_URL = "postgresql://taskapp@db.invalid/taskapp"


@pytest.fixture
def db_env(monkeypatch):
    """A PostgreSQL URL and no DB_* setting but the test's own (set with ``setenv``)."""
    for name in list(os.environ):
        if name.startswith(("DB_", "GUNICORN_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    return monkeypatch


def test_defaults_are_in_order_and_reach_the_engine(db_env):
    timeouts = database_timeouts()
    assert max(timeouts.lock_ms, timeouts.statement_ms) < timeouts.pool * 1000
    assert timeouts.longest_wait < 30  # gunicorn.conf.py's default worker timeout

    options = Config().SQLALCHEMY_ENGINE_OPTIONS
    assert options["pool_pre_ping"] is False  # taskapp.database checks at checkout instead
    assert options["pool_timeout"] == timeouts.pool
    assert options["connect_args"]["connect_timeout"] == timeouts.connect
    assert options["connect_args"]["options"] == (
        f"-c statement_timeout={timeouts.statement_ms} -c lock_timeout={timeouts.lock_ms}"
    )


@pytest.mark.parametrize(
    "values",
    [
        {"DB_STATEMENT_TIMEOUT_MS": "6000"},  # not below the 6 s pool timeout
        {"DB_LOCK_TIMEOUT_MS": "8000"},
        {"DB_POOL_TIMEOUT": "2"},  # below the 5 s statement timeout
        {"DB_STATEMENT_TIMEOUT_MS": "0"},  # 0 would mean no statement timeout at all
        {"DB_CONNECT_TIMEOUT": "0"},  # and no connect timeout
    ],
)
def test_out_of_order_timeouts_stop_the_start(db_env, values):
    for name, value in values.items():
        db_env.setenv(name, value)

    with pytest.raises(RuntimeError, match="DB_"):
        Config()


def test_lock_timeout_may_be_left_to_the_statement_timeout(db_env):
    db_env.setenv("DB_LOCK_TIMEOUT_MS", "0")

    assert "-c lock_timeout=0" in Config().SQLALCHEMY_ENGINE_OPTIONS["connect_args"]["options"]


def check_gunicorn_config(**env) -> subprocess.CompletedProcess:
    """``gunicorn --check-config``: loads gunicorn.conf.py and the app, serves nothing."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "GUNICORN_"))}
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
        cwd=PROJECT,
        env={**clean, "TASKAPP_ENV": "testing", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gunicorn_starts_with_the_defaults():
    result = check_gunicorn_config()

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"GUNICORN_TIMEOUT": "10"},  # below 6 s pool + 3 s connect + 5 s statement
        {"DB_POOL_TIMEOUT": "20", "GUNICORN_TIMEOUT": "25"},
    ],
)
def test_gunicorn_refuses_a_worker_timeout_below_the_database_timeouts(env):
    result = check_gunicorn_config(**env)

    assert result.returncode != 0
    assert "GUNICORN_TIMEOUT" in result.stdout + result.stderr
