"""How the app uses its database connections: autocommit reads, a liveness check at
checkout that costs no round trip, timeouts set per transaction, a server that turned
read-only (a demoted primary) treated as a lost one, and the session's end.

The first two exist for the same reason: on a request that reads a page, each round trip to
PostgreSQL cost about as much as the query itself (BENCHMARKS.md). A read-only request
needs no transaction (under READ COMMITTED every statement takes its own snapshot anyway),
so it runs in autocommit and saves the BEGIN and the ROLLBACK; and a pooled connection is
checked for a server-side close by polling its socket instead of by ``SELECT 1``.
"""

import hashlib
import logging
import select

from flask import Flask, current_app, has_request_context, request
from psycopg2.errors import ReadOnlySqlTransaction
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError

from config import DatabaseTimeouts
from taskapp.extensions import db

log = logging.getLogger(__name__)

# Requests that must not change anything (RFC 9110 safe methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Wire ``db`` (already initialised on ``app``) into the app's requests and connections."""
    _register_read_only_requests(app)
    _register_session_teardown(app)
    with app.app_context():
        engine = db.engine
    event.listen(engine, "checkout", drop_connection_if_closed)
    event.listen(engine, "checkin", leave_autocommit)
    timeouts = app.config["DATABASE_TIMEOUTS"]
    prepend = with_transaction_settings(
        transaction_settings(timeouts),
        outside_requests=transaction_settings(
            timeouts, idle_in_transaction_ms=timeouts.command_idle_in_transaction_ms
        ),
    )
    event.listen(engine, "before_cursor_execute", prepend, retval=True)
    event.listen(engine, "handle_error", retire_read_only_server)


def _register_read_only_requests(app: Flask) -> None:
    """Run the statements of safe-method requests in autocommit: no BEGIN, no ROLLBACK.

    Such requests must not write (HTTP says so, and none here does): in autocommit each
    statement would commit on its own, not all of them at the end.
    """

    # db.session outlives any one app (tests build many): listen once.
    if not event.contains(db.session, "after_begin", start_in_autocommit):
        event.listen(db.session, "after_begin", start_in_autocommit)


def start_in_autocommit(session, _transaction, connection) -> None:
    """Session ``after_begin`` listener: the driver of a safe-method request's session goes
    to autocommit. (Decided here, when a request first uses the database, rather than in a
    hook of every request: a request that never does, /healthz, makes no session at all.)

    psycopg2 sends its BEGIN with the first statement, so none has been sent yet; in
    autocommit it sends none, and the ROLLBACK at the end is a no-op. (SQLAlchemy's own
    ``isolation_level="AUTOCOMMIT"`` would do the same, but psycopg2 then sends a ``SET
    default_transaction_isolation`` round trip to undo it at check-in.)
    """
    if not (has_request_context() and request.method in SAFE_METHODS):
        return
    if not isinstance(session.get_bind(), Engine):
        return  # bound to a Connection (a test's outer transaction): used as it is
    driver = connection.connection.driver_connection
    if driver.info.transaction_status == TRANSACTION_STATUS_IDLE:
        driver.autocommit = True


def leave_autocommit(dbapi_connection, _record) -> None:
    """Pool ``checkin`` listener: the next user of the connection gets transactions again."""
    if dbapi_connection is None or dbapi_connection.closed:
        return  # invalidated or dead: it is never handed out again
    if dbapi_connection.autocommit:
        dbapi_connection.autocommit = False  # no round trip: psycopg2 only notes it


def drop_connection_if_closed(dbapi_connection, _record, _proxy) -> None:
    """Pool ``checkout`` listener: replace a connection the server closed while it idled.

    An idle PostgreSQL connection has nothing to read unless the server ended it (restart,
    ``pg_terminate_backend``, idle timeout): it then sends its FATAL message and closes.
    So a readable socket at checkout means a dead connection, and the pool opens a new one
    before the request sees it. (Unlike ``pool_pre_ping``, this costs no round trip.)
    """
    if dbapi_connection.closed:
        raise DisconnectionError("connection closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")


# Execution option: False on a connection sends its statements bare, without the settings of
# with_transaction_settings. For statements that cannot run in a transaction block (a
# migration's CREATE INDEX CONCURRENTLY), which a message of several statements is.
TRANSACTION_SETTINGS_OPTION = "taskapp_transaction_settings"


# Execution option: fixed SQL text (no parameters) sent in front of the statement, in the same
# message, so a step that must run before it (a lock) costs no round trip of its own. Each
# statement of a message takes its own snapshot (READ COMMITTED), so the statement sees every
# write committed before the step finished (before a lock was granted).
LEAD_OPTION = "taskapp_lead"


def transaction_settings(
    timeouts: DatabaseTimeouts, *, idle_in_transaction_ms: int | None = None
) -> str:
    """The ``SET LOCAL`` statements that give one transaction the app's timeouts: no statement
    runs, no lock is waited for, and no transaction stays idle (the app busy between its
    statements) longer than they allow: a request's idle time, unless another is given."""
    if idle_in_transaction_ms is None:
        idle_in_transaction_ms = timeouts.idle_in_transaction_ms
    return (
        f"SET LOCAL statement_timeout = {int(timeouts.statement_ms)}; "
        f"SET LOCAL lock_timeout = {int(timeouts.lock_ms)}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_in_transaction_ms)}; "
    )


def allow_long_statements() -> None:
    """Give the current transaction the bulk statement timeout (DB_BULK_STATEMENT_TIMEOUT_MS)
    instead of the statement timeout, for one of the few writes whose cost follows the user's
    data and that must stay one transaction (deleting a list or an account, renaming or
    deleting a label: docs/performance.md). ``SET LOCAL``: it ends with the transaction."""
    timeouts = current_app.config["DATABASE_TIMEOUTS"]
    db.session.execute(text(f"SET LOCAL statement_timeout = {int(timeouts.bulk_statement_ms)}"))


def advisory_key(*parts: object) -> int:
    """The advisory lock key named by ``parts``: 64 bits of their digest, as a signed bigint."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_until_commit(*parts: object) -> None:
    """Wait for, then hold until the transaction ends, the advisory lock named by ``parts``."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(*parts)})


def with_transaction_settings(settings: str, *, outside_requests: str | None = None):
    """A ``before_cursor_execute`` listener (retval) that sends ``settings`` ahead of the first
    statement of every transaction, in the same message: no round trip of its own; outside a
    request (flask commands, the test process's own work), ``outside_requests`` if given; and a
    statement's LEAD_OPTION, if any, ahead of it (after the settings).

    A request's transaction must never wait long on its app: clients queue behind its locks.
    A command's may legitimately do bounded Python work between statements (the seed), so it
    gets an idle timeout of its own (DB_COMMAND_IDLE_IN_TRANSACTION_TIMEOUT_MS).

    Timeouts are transaction state, never session state: behind PgBouncer in transaction
    mode, a session ``SET`` (or the libpq ``options`` PgBouncer refuses) would stay on a
    server connection that other clients then get, or be missing from the next one this
    client gets. With no transaction open yet (psycopg2 sends BEGIN with the first
    statement; in autocommit every statement is its own transaction), the settings go first;
    several statements in one message are one transaction, so ``SET LOCAL`` holds for the
    statement after it and ends with it.
    """

    def prepend(conn, cursor, statement, parameters, context, _executemany):
        lead = context.execution_options.get(LEAD_OPTION) if context is not None else None
        if lead:
            statement = f"{lead}; {statement}"
        if cursor.connection.info.transaction_status == TRANSACTION_STATUS_IDLE and (
            conn.get_execution_options().get(TRANSACTION_SETTINGS_OPTION, True)
        ):
            chosen = settings
            if outside_requests is not None and not has_request_context():
                chosen = outside_requests
            statement = chosen + statement
        return statement, parameters

    return prepend


def retire_read_only_server(context) -> Exception | None:
    """``handle_error`` listener: a write refused as read-only means this connection reached a
    server that is not the primary (any more): a demoted or fenced old primary after a
    failover. Every pooled connection opened until now is invalidated, so the next ones are
    opened afresh and ``target_session_attrs=read-write`` finds the new primary, and the
    request ends as an outage (OperationalError: a 503 with Retry-After), not a 500.
    """
    if not isinstance(context.original_exception, ReadOnlySqlTransaction):
        return None
    context.is_disconnect = True
    context.invalidate_pool_on_disconnect = True
    return OperationalError(
        context.statement,
        context.parameters,
        context.original_exception,
        connection_invalidated=True,
    )


def _register_session_teardown(app: Flask) -> None:
    """End each app context's session, surviving a connection that died after the response.

    Registered after Flask-SQLAlchemy's own teardown, so it runs before it (Flask runs them
    in reverse), leaving that one an empty session.
    """

    @app.teardown_appcontext
    def discard_session(_error: BaseException | None) -> None:
        try:
            db.session.remove()
        except SQLAlchemyError as error:
            # The connection died after the response was made (PostgreSQL stopped, or killed
            # the backend): the final rollback fails. The response stands; SQLAlchemy has
            # invalidated the connection; the session is dropped all the same. Raised from a
            # teardown, this would replace the response with gunicorn's HTML 500 page.
            log.warning("database connection lost after the response: %s", type(error).__name__)
            db.session.registry.clear()
