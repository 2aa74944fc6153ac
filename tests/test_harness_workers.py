"""Each pytest-xdist worker of ``make test`` runs on a PostgreSQL database and a Redis database
of its own (tests/support/workers.py), so no worker resets, truncates or flushes another's."""

import os
from contextlib import closing

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from taskapp.extensions import db
from tests.support.databases import connect
from tests.support.workers import own_database_url, own_redis_url


@pytest.mark.parametrize(
    ("url", "worker", "expected"),
    [
        ("redis://127.0.0.1:6379/15", "gw0", "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/15", "gw1", "redis://127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/3", "gw2", "redis://127.0.0.1:6379/5"),
        ("redis://:secret@cache:6380", "gw1", "redis://:secret@cache:6380/1"),
        (
            "rediss://cache:6380/0?ssl_cert_reqs=none",
            "gw3",
            "rediss://cache:6380/3?ssl_cert_reqs=none",
        ),
    ],
)
def test_each_worker_has_a_redis_database_of_its_own(url, worker, expected):
    assert own_redis_url(url, worker) == expected


def test_more_workers_than_redis_databases_are_refused():
    with pytest.raises(RuntimeError, match="at most 16 workers"):
        own_redis_url("redis://127.0.0.1:6379/0", "gw16")


def test_each_worker_has_a_database_of_its_own_made_once():
    base = os.environ["TEST_DATABASE_URL"]
    url = own_database_url(base, "gw9")
    try:
        assert make_url(url).database == f"{make_url(base).database}_gw9"
        assert make_url(url).set(database="x") == make_url(base).set(database="x")  # one server
        assert own_database_url(base, "gw9") == url  # there already: kept as it is
        with closing(connect(url)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == (f"{make_url(base).database}_gw9",)
    finally:
        name = make_url(url).database
        with closing(connect(base)) as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="runs under xdist only")
def test_this_worker_runs_on_a_database_of_its_own(app):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    database = db.session.execute(text("SELECT current_database()")).scalar_one()
    assert database.endswith(f"_{worker}")
