"""The timeouts are ordered (lock, statement < pool < gunicorn's worker timeout), or nothing
starts: a stuck query must end as a 503, never as a killed worker."""

import os
import subprocess
import sys

import pytest

from config import Config, database_timeouts
from taskapp.database import transaction_settings
from tests.support import PROJECT

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
    # No startup options (PgBouncer refuses them): the timeouts are set per transaction.
    assert "options" not in options["connect_args"]
    # A server that vanishes is noticed by TCP within seconds, inside the worker timeout.
    assert options["connect_args"]["keepalives"] == 1
    assert options["connect_args"]["keepalives_idle"] == timeouts.keepalives_idle
    assert options["connect_args"]["tcp_user_timeout"] == timeouts.tcp_user_timeout_ms
    assert timeouts.dead_server <= 15


@pytest.mark.parametrize(
    "values",
    [
        {"DB_STATEMENT_TIMEOUT_MS": "6000"},  # not below the 6 s pool timeout
        {"DB_LOCK_TIMEOUT_MS": "8000"},
        {"DB_POOL_TIMEOUT": "2"},  # below the 5 s statement timeout
        {"DB_STATEMENT_TIMEOUT_MS": "0"},  # 0 would mean no statement timeout at all
        {"DB_CONNECT_TIMEOUT": "0"},  # and no connect timeout
        {"DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "0"},  # and no idle timeout
        {"DB_COMMAND_IDLE_IN_TRANSACTION_TIMEOUT_MS": "0"},
        {"DB_KEEPALIVES_IDLE": "0"},  # the kernel's default: two hours before a probe
        {"DB_TCP_USER_TIMEOUT_MS": "0"},
    ],
)
def test_out_of_order_timeouts_stop_the_start(db_env, values):
    for name, value in values.items():
        db_env.setenv(name, value)

    with pytest.raises(RuntimeError, match="DB_"):
        Config()


def test_lock_timeout_may_be_left_to_the_statement_timeout(db_env):
    db_env.setenv("DB_LOCK_TIMEOUT_MS", "0")

    assert "SET LOCAL lock_timeout = 0;" in transaction_settings(Config().DATABASE_TIMEOUTS)


def test_keepalives_are_configurable_and_bound_the_wait(db_env):
    db_env.setenv("DB_KEEPALIVES_IDLE", "1")
    db_env.setenv("DB_KEEPALIVES_INTERVAL", "1")
    db_env.setenv("DB_KEEPALIVES_COUNT", "2")
    db_env.setenv("DB_TCP_USER_TIMEOUT_MS", "3000")

    timeouts = database_timeouts()
    connect_args = Config().SQLALCHEMY_ENGINE_OPTIONS["connect_args"]
    assert (connect_args["keepalives_idle"], connect_args["keepalives_interval"]) == (1, 1)
    assert (connect_args["keepalives_count"], connect_args["tcp_user_timeout"]) == (2, 3000)
    assert timeouts.dead_server == 3
    # Six seconds of pool wait, three of connect, fifteen of the bulk statement timeout
    # (above the three above, and the five of the statement timeout).
    assert timeouts.longest_wait == 24


def test_the_bulk_statement_timeout_is_configurable_and_bounds_the_wait(db_env):
    db_env.setenv("DB_BULK_STATEMENT_TIMEOUT_MS", "5000")  # as the statement timeout: allowed

    assert database_timeouts().longest_wait == 6 + 3 + 11  # then the keepalive bound is longer

    db_env.setenv("DB_BULK_STATEMENT_TIMEOUT_MS", "4999")  # a bulk write shorter than any other
    with pytest.raises(RuntimeError, match="DB_BULK_STATEMENT_TIMEOUT_MS"):
        Config()


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
        {"DB_BULK_STATEMENT_TIMEOUT_MS": "25000"},  # 6 + 3 + 25 s: over the 30 s default
    ],
)
def test_gunicorn_refuses_a_worker_timeout_below_the_database_timeouts(env):
    result = check_gunicorn_config(**env)

    assert result.returncode != 0
    assert "GUNICORN_TIMEOUT" in result.stdout + result.stderr
