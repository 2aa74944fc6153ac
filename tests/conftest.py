"""Fixtures: one schema per run (built by the migrations), a clean database per test.

The suite runs on TEST_DATABASE_URL, or else on an embedded PostgreSQL of its own
(taskapp/embedded.py, data in instance/postgres-test) started for the run."""

import contextvars
import io
import itertools
import json
import logging
import os

import flask_migrate
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from config import EMBEDDED_TEST_DATA, TestingConfig
from taskapp import create_app, embedded
from taskapp.extensions import db, limiter
from taskapp.observability import JsonFormatter
from tests.support import PASSWORD, PROJECT, TEST_JWT_SECRET  # noqa: F401 (tests import them here)
from tests.support.databases import (  # noqa: F401 (tests import own_connection here)
    horizon_held,
    own_connection,
    scratch_database,
)
from tests.support.workers import own_database_url, own_redis_url

_emails = itertools.count()
_EMBEDDED = pytest.StashKey()


def pytest_configure(config) -> None:
    """Without TEST_DATABASE_URL, start the embedded server and name its database there, for
    the app and for every process the tests start (gunicorn, the CLI). Under xdist, only the
    controller starts it (its workers inherit the URL), and each worker takes a database and
    a Redis database of its own (tests/support/workers.py)."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is not None:
        os.environ["TEST_DATABASE_URL"] = own_database_url(os.environ["TEST_DATABASE_URL"], worker)
        if os.environ.get("TEST_REDIS_URL"):
            os.environ["TEST_REDIS_URL"] = own_redis_url(os.environ["TEST_REDIS_URL"], worker)
        return
    if os.environ.get("TEST_DATABASE_URL"):
        return
    server, url = embedded.start(EMBEDDED_TEST_DATA, "taskapp_test")
    config.stash[_EMBEDDED] = server
    os.environ["TEST_DATABASE_URL"] = url


def pytest_unconfigure(config) -> None:
    server = config.stash.get(_EMBEDDED, None)
    if server is not None:
        del os.environ["TEST_DATABASE_URL"]
        embedded.stop(server)


requires_redis = pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs Redis (set TEST_REDIS_URL)"
)


@pytest.fixture
def scratch_database_url():
    """The URL of a new, empty database on the test server; dropped after the test."""
    with scratch_database(os.environ["TEST_DATABASE_URL"]) as url:
        yield url


class RequestClient(FlaskClient):
    """Flask's test client, each request run in a fresh ``contextvars`` context.

    So a request never joins a context the test holds: it pushes its own app context (its
    own ``g`` and ``db.session``) and runs its teardown, as under gunicorn.
    """

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def build_test_app(config: TestingConfig):
    """``create_app(config)`` whose test clients are RequestClients."""
    app = create_app(config)
    app.test_client_class = RequestClient
    return app


def make_config(**overrides) -> TestingConfig:
    """A TestingConfig with a fixed signing key and the given overrides."""
    config = TestingConfig()
    config.JWT_SECRET_KEY = TEST_JWT_SECRET
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def reset_schema() -> None:
    """Drop everything and rebuild the schema with the migrations."""
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    flask_migrate.upgrade()


def truncate_all() -> None:
    """Empty every table (for tests whose data other connections had to see)."""
    db.session.remove()
    tables = [table.name for table in db.metadata.sorted_tables]
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


def stored_row(model, key) -> dict | None:
    """Every column of a stored row as the database has it now (not as the session
    remembers it); None once it is gone."""
    db.session.expire_all()
    instance = db.session.get(model, key)
    if instance is None:
        return None
    return {column.key: getattr(instance, column.key) for column in model.__table__.columns}


def row_count(model) -> int:
    """How many rows the model's table holds now."""
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture(scope="session")
def _app():
    app = build_test_app(make_config())
    with app.app_context():
        reset_schema()
    return app


@pytest.fixture
def app(_app, request):
    """The app on a clean database, with fresh rate-limit counters.

    The fixture's own context is pushed only around setup and teardown (flaskr's fixture);
    the test body runs in ``test_context``.
    """
    isolated = not request.node.get_closest_marker("committing")
    with _app.app_context():
        limiter.reset()
        if isolated:
            # Everything the test commits lands in a savepoint of one outer transaction:
            # every session of the app, each request's included, is bound to this connection.
            engine = db.engines[None]
            connection = engine.connect()
            transaction = connection.begin()
            # This transaction spans the whole test, idle whenever the test (not a request)
            # works between statements: the app's idle-in-transaction timeout is not for it.
            connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            db.engines[None] = connection
            db.session.session_factory.kw["join_transaction_mode"] = "create_savepoint"
    try:
        yield _app
    finally:
        with _app.app_context():
            if isolated:
                db.session.remove()
                db.session.session_factory.kw.pop("join_transaction_mode", None)
                db.engines[None] = engine
                transaction.rollback()
                connection.close()
            else:
                truncate_all()


@pytest.fixture(autouse=True)
def test_context(request):
    """For a test using ``app``: a context of the test's own, for reading the database.

    Requests never share it (see RequestClient): each has its own context and session.
    """
    if "app" not in request.fixturenames:
        yield
        return
    with request.getfixturevalue("app").app_context():
        yield
        db.session.remove()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """End the test's own session as soon as the test body does, before any fixture's
    teardown: one that waits (gunicorn stopping its workers) would otherwise leave the
    session's transaction idle for longer than the idle-in-transaction timeout, and its
    rollback in ``test_context`` would meet a connection the server has closed."""
    result = yield  # a failed body skips this: test_context ends the session as before
    if "app" in item.fixturenames:
        db.session.remove()  # in test_context's app context, still pushed
    return result


@pytest.fixture
def build_app():
    """Build throwaway apps (never the session app) with config overrides; disposed after."""
    built = []

    def build(**overrides):
        app = build_test_app(make_config(**overrides))
        built.append(app)
        with app.app_context():
            # The limiter's storage is shared with the other apps: start from zero.
            limiter.reset()
        return app

    yield build
    for app in built:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def json_log(caplog):
    """Every record of every logger, at DEBUG, as the JSON lines the app would write."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def bearer(token: str) -> dict:
    """The Authorization header of an access token."""
    return {"Authorization": f"Bearer {token}"}


def unique_email() -> str:
    return f"user{next(_emails)}@example.com"


@pytest.fixture
def make_user(client):
    """Sign a user up through the API; returns (email, password)."""

    def make(email: str | None = None, password: str = PASSWORD):
        email = email or unique_email()
        response = client.post("/signup", json={"email": email, "password": password})
        assert response.status_code == 201, response.json
        return email, password

    return make


@pytest.fixture
def login(client):
    """Log in through the API; returns the token pair."""

    def do_login(email: str, password: str = PASSWORD) -> dict:
        response = client.post("/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.json
        return response.json

    return do_login


@pytest.fixture
def auth(make_user, login):
    """Sign up and log in a fresh user; returns its Authorization headers."""

    def make_headers(email: str | None = None) -> dict:
        email, password = make_user(email)
        tokens = login(email, password)
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    return make_headers


@pytest.fixture
def admin_headers(make_user, login) -> dict:
    """Authorization headers of a fresh active admin."""
    from taskapp.admin.service import make_admin

    email, password = make_user()
    make_admin(email=email)
    return {"Authorization": f"Bearer {login(email, password)['access_token']}"}


@pytest.fixture
def make_task(client):
    """Create a task through the API for the given headers; returns its JSON."""

    def make(headers: dict, **fields):
        fields.setdefault("title", "a task")
        response = client.post("/tasks", json=fields, headers=headers)
        assert response.status_code == 201, response.json
        return response.json

    return make


def assert_error(response, status: int, *, field: str | None = None) -> dict:
    """The response is the JSON error envelope with ``status`` (and an error on ``field``)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.json
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        locations = body["errors"]
        assert any(field in errors for errors in locations.values()), body
    return body


@pytest.fixture
def smtp(app):
    """A real SMTP server (aiosmtpd, free port) the app delivers to; stopped after the test."""
    from tests.support.smtp import SmtpSink

    sink = SmtpSink().start()
    saved = {key: app.config[key] for key in ("MAIL_SERVER", "MAIL_PORT")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=sink.port)
    yield sink
    sink.stop()
    app.config.update(saved)


@pytest.fixture(params=["as-is", "horizon-held"])
def other_transaction(request, app):
    """Runs the test twice: with the server as it is, and beside a transaction held open from
    before the test's writes to its end, as another database's long one on the same server
    may be (the sync feed may then send a change again; its contract must hold either way)."""
    if request.param == "as-is":
        yield None
        return
    with horizon_held(app.config["SQLALCHEMY_DATABASE_URI"]) as xid:
        yield xid
