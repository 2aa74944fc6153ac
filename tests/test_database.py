"""Connection handling: reads in autocommit, writes in transactions, dead connections replaced."""

import time

import pytest
from sqlalchemy import event, text

from conftest import own_connection, requires_postgres
from taskapp.extensions import db

pytestmark = [requires_postgres, pytest.mark.committing]


@pytest.fixture
def statements(app):
    """(SQL, driver in autocommit?) of every statement the app runs during the test."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, conn.connection.driver_connection.autocommit))

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def test_reads_run_in_autocommit_and_writes_in_a_transaction(client, auth, statements):
    headers = auth()
    statements.clear()
    assert client.post("/tasks", json={"title": "written"}, headers=headers).status_code == 201
    writes = list(statements)
    statements.clear()
    assert client.get("/tasks", headers=headers).status_code == 200
    reads = list(statements)

    assert any("INSERT INTO tasks" in sql for sql, _ in writes)
    assert writes and not any(autocommit for _, autocommit in writes)
    assert any("FROM tasks" in sql for sql, _ in reads)
    assert reads and all(autocommit for _, autocommit in reads)


def test_a_connection_leaves_autocommit_when_returned_to_the_pool(client, auth):
    headers = auth()
    assert client.get("/tasks", headers=headers).status_code == 200
    db.session.remove()
    with db.engine.connect() as connection:
        assert connection.connection.driver_connection.autocommit is False
        # A write outside a request is a transaction again: nothing lands before the commit.
        connection.execute(text("CREATE TEMPORARY TABLE probe (n int)"))
        assert connection.in_transaction()
        connection.rollback()


def test_connections_closed_by_the_server_are_replaced_at_checkout(client, auth):
    headers = auth()
    assert client.get("/tasks", headers=headers).status_code == 200
    db.session.remove()
    pooled = db.engine.pool.checkedin()
    assert pooled >= 1
    # From outside the pool: every pooled connection of this database is ended while it idles.
    killer = own_connection()
    try:
        with killer.cursor() as cursor:
            cursor.execute(
                "SELECT array_agg(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (killed,) = cursor.fetchone()
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s) AS pid", (killed,))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (killed,)
                )
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.01)
    finally:
        killer.close()
    # Not a 503: the pool found each dead connection before a request used it.
    for _ in range(pooled + 1):
        assert client.get("/tasks", headers=headers).status_code == 200
        db.session.remove()
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() not in killed
