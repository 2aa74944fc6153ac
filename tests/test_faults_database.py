"""Database faults, against a PostgreSQL cluster of the test's own: stopped under traffic,
a table locked, pooled connections exhausted, backends killed, engine inherited over fork.

Every answer is either the usual one or a fast JSON 503 with Retry-After; once the fault is
gone, every worker answers 200 again without a restart; no worker is killed, and the server
log holds no traceback, only the logged outage.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from conftest import PASSWORD, requires_redis
from tests.support import PROJECT, wait_for
from tests.support.databases import Cluster, pg_cluster, requires_pg_server
from tests.support.servers import Held, Server, call, gunicorn, on_every_worker

pytestmark = [requires_pg_server, requires_redis, pytest.mark.gunicorn, pytest.mark.slow]

FAST = 10  # seconds: the bound for a 503 ("well under 10 s")
OUTAGE_LOGGED = "database unavailable"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with pg_cluster() as running:
        yield running


@pytest.fixture
def database(cluster: Cluster, monkeypatch) -> Cluster:
    """The cluster, up and empty, as the database of the servers this test starts."""
    if not cluster.running():
        cluster.start()  # a failed test may have left it stopped
    cluster.truncate()
    monkeypatch.setenv("TEST_DATABASE_URL", cluster.url)
    return cluster


@pytest.fixture
def server(database: Cluster, tmp_path: Path) -> Iterator[Server]:
    with gunicorn(tmp_path, steerable=True, workers=2) as served:
        yield served


def sign_in(server: Server) -> dict:
    """Sign a user up and log in; their Authorization header."""
    email = f"faults-{time.monotonic_ns()}@example.com"
    body = {"email": email, "password": PASSWORD}
    assert call(server, "POST", "/signup", json=body).status_code == 201
    login = call(server, "POST", "/login", json=body)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def create_task(server: Server, headers: dict) -> str:
    """A new task's URL."""
    created = call(server, "POST", "/tasks", json={"title": "survives"}, headers=headers)
    assert created.status_code == 201, created.text
    return created.headers["Location"]


def assert_unavailable(status: int, headers, body: dict, seconds: float) -> None:
    """A 503 in the envelope, with Retry-After, answered fast."""
    assert status == 503, (status, body)
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Retry-After"].isdigit() and int(headers["Retry-After"]) > 0
    assert body["code"] == 503 and body["status"] == "Service Unavailable"
    assert isinstance(body["message"], str) and body["message"]
    assert seconds < FAST, f"the 503 took {seconds:.1f} s"


def assert_no_worker_restarted(server: Server) -> None:
    log = server.log()
    assert log.count("Booting worker") == server.workers, log
    assert "WORKER TIMEOUT" not in log and "SIGKILL" not in log, log
    assert server.process.poll() is None


def assert_log_clean(server: Server, *, outage: bool) -> None:
    """No traceback at all; the outage logged (as one line per 503) only if there was one."""
    log = server.log()
    assert "Traceback" not in log, log
    assert (OUTAGE_LOGGED in log) is outage, log


def timed(method: str, server: Server, path: str, **kwargs) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call(server, method, path, **kwargs)
    return response, time.monotonic() - started


def at_once_on_every_worker(server: Server, method: str, path: str, headers: dict) -> list:
    """One request held on each worker, then all released together: (response, seconds)."""
    held = [Held(server, method, path, headers=headers) for _ in range(server.workers)]
    results = [None] * len(held)

    def release(index: int) -> None:
        started = time.monotonic()
        response = held[index].release()
        results[index] = (response, time.monotonic() - started)

    threads = [threading.Thread(target=release, args=(i,)) for i in range(len(held))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(result is not None for result in results)
    return results


class Traffic:
    """GET requests from a few threads, back to back, until the block ends; every outcome kept."""

    def __init__(self, server: Server, path: str, headers: dict, *, threads: int = 4):
        self.server, self.path, self.headers = server, path, headers
        self.outcomes: list[tuple[int, float, dict, dict] | Exception] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response, seconds = timed("GET", self.server, self.path, headers=self.headers)
            except requests.RequestException as error:
                outcome = error
            else:
                try:
                    outcome = (response.status_code, seconds, response.headers, response.json())
                except ValueError:
                    outcome = ValueError(f"not JSON: {response.status_code} {response.text!r}")
            with self._lock:
                self.outcomes.append(outcome)

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if not isinstance(o, Exception) and o[0] == status)

    def wait_for_more(self, status: int, more: int = 8) -> None:
        """Until ``more`` further answers with ``status`` have come in."""
        target = self.count(status) + more
        wait_for(lambda: self.count(status) >= target, message=f"{more} more {status}s")

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


@contextmanager
def locked(cluster: Cluster, table: str) -> Iterator[None]:
    """Another session holds ACCESS EXCLUSIVE on ``table`` (no reads, no writes) until exit."""
    connection = cluster.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
            cursor.execute("ROLLBACK")
    finally:
        connection.close()


def test_stopped_database_gives_fast_503s_and_every_worker_recovers(server, database):
    headers = sign_in(server)
    task = create_task(server, headers)

    # Under traffic, PostgreSQL stops (ending every session, in-flight requests' included)
    # and starts again, a few times over.
    with Traffic(server, task, headers) as traffic:
        for _outage in range(3):
            traffic.wait_for_more(200)
            database.stop()
            traffic.wait_for_more(503)
            database.start()
        traffic.wait_for_more(200)
    statuses = [o if isinstance(o, Exception) else o[0] for o in traffic.outcomes]
    # No 500, no 502, no dropped connection.
    assert set(statuses) == {200, 503}, (statuses, server.log())
    for status, seconds, response_headers, body in traffic.outcomes:
        if status == 503:
            assert_unavailable(status, response_headers, body, seconds)
        assert seconds < FAST

    # While it is down, every worker answers 503 fast, for reads and writes alike.
    database.stop()
    for response, seconds in at_once_on_every_worker(server, "GET", task, headers):
        assert_unavailable(response.status, response.headers, response.json(), seconds)
    for method, body in (("GET", None), ("POST", {"title": "lost?"})):
        response, seconds = timed(method, server, "/tasks", json=body, headers=headers)
        assert_unavailable(response.status_code, response.headers, response.json(), seconds)

    # Back up: every worker serves again at once, with no restart.
    database.start()
    for response in on_every_worker(server, "GET", task, headers=headers):
        assert response.status == 200, response.body
    titles = [t["title"] for t in call(server, "GET", "/tasks", headers=headers).json()["data"]]
    assert titles == ["survives"]  # the create during the outage was refused, not half-done
    assert_no_worker_restarted(server)
    assert_log_clean(server, outage=True)


@pytest.mark.parametrize(
    ("env", "cancelled_by"),
    [
        ({}, "canceling statement due to lock timeout"),
        # Without lock_timeout, statement_timeout still ends the wait (2 s: a quicker test).
        (
            {"DB_LOCK_TIMEOUT_MS": "0", "DB_STATEMENT_TIMEOUT_MS": "2000"},
            "canceling statement due to statement timeout",
        ),
    ],
    ids=["lock_timeout", "statement_timeout"],
)
def test_locked_table_gives_503_within_the_timeout_and_kills_no_worker(
    database, tmp_path, env, cancelled_by
):
    with gunicorn(tmp_path, steerable=True, workers=2, env=env) as server:
        headers = sign_in(server)
        task = create_task(server, headers)

        logged_before = len(database.log())
        with locked(database, "tasks"):
            for response, seconds in at_once_on_every_worker(server, "GET", task, headers):
                assert_unavailable(response.status, response.headers, response.json(), seconds)
            body = {"title": "t"}
            response, seconds = timed("POST", server, "/tasks", json=body, headers=headers)
            assert_unavailable(response.status_code, response.headers, response.json(), seconds)
        assert cancelled_by in database.log()[logged_before:]

        for response in on_every_worker(server, "GET", task, headers=headers):
            assert response.status == 200, response.body
        assert_no_worker_restarted(server)
        assert_log_clean(server, outage=True)


def test_killed_backends_are_survived_transparently(server, database):
    headers = sign_in(server)
    task = create_task(server, headers)

    for _round in range(3):
        # Each worker has a pooled connection; PostgreSQL kills them all while they idle.
        for response in on_every_worker(server, "GET", task, headers=headers):
            assert response.status == 200, response.body
        killed = set(database.app_backends())
        assert len(killed) >= server.workers
        database.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)",
            list(killed),
        )
        wait_for(
            lambda killed=killed: not killed & set(database.app_backends()),
            message="the killed backends to exit",
        )

        # The checkout check finds each dead connection and replaces it: no 503.
        for response in on_every_worker(server, "GET", task, headers=headers):
            assert response.status == 200, response.body
        created = call(server, "POST", "/tasks", json={"title": "after"}, headers=headers)
        assert created.status_code == 201, created.text
        assert not killed & set(database.app_backends())

    assert_no_worker_restarted(server)
    assert_log_clean(server, outage=False)


def test_no_pooled_connection_in_time_gives_503(database, tmp_path):
    # One worker, six threads, one connection: requests queue for it behind the ones stuck on
    # a locked table, and those queued longer than the pool timeout get their 503.
    env = {
        "GUNICORN_THREADS": "6",
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "2",
        "DB_LOCK_TIMEOUT_MS": "1000",
        "DB_STATEMENT_TIMEOUT_MS": "1500",
    }
    with gunicorn(tmp_path, workers=1, env=env) as server:
        headers = sign_in(server)
        task = create_task(server, headers)

        results = []

        def read() -> None:
            results.append(timed("GET", server, task, headers=headers))

        with locked(database, "tasks"):
            threads = [threading.Thread(target=read) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert len(results) == 6
        for response, seconds in results:
            assert_unavailable(response.status_code, response.headers, response.json(), seconds)
        log = server.log()
        assert f"{OUTAGE_LOGGED}: TimeoutError" in log  # the pool's
        assert f"{OUTAGE_LOGGED}: OperationalError" in log  # the lock's

        assert call(server, "GET", task, headers=headers).status_code == 200
        assert_no_worker_restarted(server)
        assert_log_clean(server, outage=True)


PRELOAD_CONF = f"""
exec(open({str(PROJECT / "gunicorn.conf.py")!r}).read())


def when_ready(server):
    # The master uses the database before forking, leaving a live connection in the pool
    # that every worker inherits (as any start-up check of a preloaded app would).
    from sqlalchemy import text

    from taskapp.extensions import db

    with server.app.callable.app_context():
        db.session.execute(text("SELECT 1"))
        db.session.remove()
"""


def test_preloaded_workers_each_open_their_own_connections(database, tmp_path):
    conf = tmp_path / "preload.conf.py"
    conf.write_text(PRELOAD_CONF)
    with gunicorn(
        tmp_path, steerable=True, workers=2, args=("--preload", "-c", str(conf))
    ) as server:
        masters = set(database.app_backends())
        assert len(masters) == 1  # the master's, from before the fork
        headers = sign_in(server)
        task = create_task(server, headers)

        for response in on_every_worker(server, "GET", task, headers=headers):
            assert response.status == 200, response.body

        # Had the workers kept the inherited pool, they would share the master's socket (and
        # its backend); disposed after fork, each opened its own.
        assert len(set(database.app_backends()) - masters) >= server.workers
        assert_no_worker_restarted(server)
        assert_log_clean(server, outage=False)
