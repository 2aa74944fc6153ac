"""Connection handling: reads in autocommit, writes in transactions, dead connections replaced."""

import time
from contextlib import closing

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from config import DatabaseTimeouts
from conftest import own_connection
from taskapp.auth.models import User
from taskapp.extensions import db

pytestmark = [pytest.mark.committing]


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


def test_timeouts_hold_in_autocommit_and_in_transactions_and_leave_no_session_state(build_app):
    timeouts = DatabaseTimeouts(connect=3, statement_ms=300, lock_ms=200, pool=6)
    app = build_app(DATABASE_TIMEOUTS=timeouts)
    with app.app_context():
        # Autocommit (as reads run): each statement is its own transaction.
        with db.engine.connect() as connection:
            connection.connection.driver_connection.autocommit = True
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(3)"))
            assert time.monotonic() - started < 2
        # A transaction (as writes run): the settings came with its first statement.
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
            assert connection.execute(text("SHOW lock_timeout")).scalar_one() == "200ms"
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(3)"))
            assert time.monotonic() - started < 2
            connection.rollback()
            # Nothing outlives the transaction: what PgBouncer hands the next client is clean.
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"
            cursor.close()
            connection.connection.driver_connection.rollback()


def test_a_transaction_left_idle_is_ended_by_the_server(build_app):
    """DB_COMMAND_IDLE_IN_TRANSACTION_TIMEOUT_MS, outside a request (a command): a transaction
    never waits on the app for longer (its locks go with it), set per transaction like the
    other timeouts (PgBouncer-safe). (A request's own: the next test.)"""
    timeouts = DatabaseTimeouts(
        connect=3,
        statement_ms=300,
        lock_ms=200,
        pool=6,
        idle_in_transaction_ms=200,
        command_idle_in_transaction_ms=300,
    )
    app = build_app(DATABASE_TIMEOUTS=timeouts)
    with app.app_context(), db.engine.connect() as connection:
        setting = "SHOW idle_in_transaction_session_timeout"
        assert connection.execute(text(setting)).scalar_one() == "300ms"
        time.sleep(1)
        with pytest.raises(OperationalError):
            connection.execute(text("SELECT 1"))


def test_a_request_runs_with_the_idle_in_transaction_timeout(build_app):
    app = build_app()
    seen = []

    def show(_conn, cursor, *_args):
        if not seen:  # the request's connection, inside its transaction
            probe = cursor.connection.cursor()
            probe.execute("SHOW idle_in_transaction_session_timeout")
            seen.append(probe.fetchone()[0])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", show)
    try:
        # A write request (so a transaction), answered from the database: no such user.
        body = {"email": "nobody@example.com", "password": "not this one"}
        assert app.test_client().post("/login", json=body).status_code == 401
    finally:
        event.remove(engine, "after_cursor_execute", show)
    expected = app.config["DATABASE_TIMEOUTS"].idle_in_transaction_ms
    assert seen == [f"{expected // 1000}s" if expected % 1000 == 0 else f"{expected}ms"]


def test_a_write_on_a_server_turned_read_only_is_a_503_and_the_pool_reconnects(client, auth):
    headers = auth()
    assert client.get("/tasks", headers=headers).status_code == 200
    db.session.remove()
    # Every pooled connection now behaves as one to a demoted primary (a hot standby refuses
    # writes with the same error); connections opened afresh are read-write.
    pooled = [db.engine.raw_connection() for _ in range(max(db.engine.pool.checkedin(), 1))]
    try:
        for connection in pooled:
            cursor = connection.cursor()
            cursor.execute("SET SESSION default_transaction_read_only = on")
            cursor.close()
            connection.commit()
            connection.close()  # back to the pool

        refused = client.post("/tasks", json={"title": "on the old primary"}, headers=headers)
        assert refused.status_code == 503, refused.json
        assert refused.headers["Retry-After"].isdigit()
        assert refused.json["code"] == 503
        # Not one of the old connections is reused for the retry: it lands on a writable one.
        retried = client.post("/tasks", json={"title": "on the new primary"}, headers=headers)
        assert retried.status_code == 201, retried.json
        titles = [task["title"] for task in client.get("/tasks", headers=headers).json["data"]]
        assert titles == ["on the new primary"]
    finally:
        db.engine.dispose()  # never leave a read-only connection to the next test


@pytest.fixture
def idle_transactions_at_teardown(app):
    """Torn down before ``test_context`` (set up after it), as gunicorn's fixture is: lists the
    test database's sessions then idle in a transaction."""
    found = []
    yield found
    with closing(own_connection()) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        )
        found.extend(row[0] for row in cursor.fetchall())
    assert found == [], "a session of the test process waits in a transaction"


@pytest.mark.committing
def test_the_harness_leaves_no_transaction_open_while_fixtures_tear_down(
    idle_transactions_at_teardown,
):
    """A fixture's teardown may wait longer than the idle-in-transaction timeout (gunicorn
    stopping its workers): the test's own session has ended its transaction by then."""
    assert db.session.scalar(select(func.count()).select_from(User)) == 0
