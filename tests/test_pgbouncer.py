"""The app through PgBouncer in transaction pooling mode (deploy/pgbouncer.ini, Debian's
pgbouncer): the HTTP flows work with many app connections sharing two server connections,
the statement and lock timeouts hold, and no session state is left on a server connection."""

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from conftest import PASSWORD, own_connection, requires_redis
from tests.support.servers import Server, call, free_port, gunicorn, render_deploy_file

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SERVER_CONNECTIONS = 2  # default_pool_size: far fewer than the app's connections

requires_pgbouncer = pytest.mark.skipif(
    not os.path.exists(PGBOUNCER), reason="needs pgbouncer (Debian package)"
)
pytestmark = [requires_redis, requires_pgbouncer, pytest.mark.gunicorn]
pytestmark += [pytest.mark.slow, pytest.mark.committing]


@dataclass
class Bouncer:
    port: int
    database: str
    user: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def connect(self, database: str | None = None):
        connection = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=database or self.database,
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection

    def show(self, what: str) -> list[dict]:
        """A SHOW of the admin console (POOLS, STATS, ...), as dicts."""
        connection = self.connect("pgbouncer")
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SHOW {what}")
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()


@pytest.fixture
def bouncer(app) -> Iterator[Bouncer]:
    """A private pgbouncer, transaction mode, in front of the test database."""
    target = make_url(os.environ["TEST_DATABASE_URL"])
    directory = Path(tempfile.mkdtemp(prefix="taskapp-pgbouncer-"))
    directory.chmod(0o755)  # readable by the user it drops to
    user = target.username or "postgres"
    # The embedded server listens on a socket in its data directory only, which only the
    # server's own user may enter: PgBouncer then runs as that user.
    server_host = target.host or target.query.get("host") or "127.0.0.1"
    run_as = "postgres"
    if server_host.startswith("/"):
        run_as = pwd.getpwuid(os.stat(server_host).st_uid).pw_name
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    port = free_port()
    config = render_deploy_file(
        "pgbouncer.ini",
        dbname=target.database,
        server_host=server_host,
        server_port=str(target.port or 5432),
        listen_addr="127.0.0.1",
        listen_port=str(port),
        auth_type="trust",
        auth_file=str(directory / "userlist.txt"),
        admin_user=user,
        pool_size=str(SERVER_CONNECTIONS),
    )
    (directory / "pgbouncer.ini").write_text(config)
    log_path = directory / "pgbouncer.log"
    # PgBouncer refuses to run as root: it is told to drop to another user.
    as_user = ["-u", run_as] if os.geteuid() == 0 else []
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [PGBOUNCER, *as_user, str(directory / "pgbouncer.ini")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Bouncer(port=port, database=target.database, user=user, log_path=log_path)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                running.connect().close()
                break
            except psycopg2.OperationalError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(bouncer: Bouncer, tmp_path) -> Iterator[Server]:
    """gunicorn as deployed (threaded workers), its DATABASE_URL the bouncer's."""
    env = {
        "DATABASE_URL": bouncer.url,
        "RATELIMIT_SIGNUP": "1000 per minute",
        "RATELIMIT_LOGIN": "1000 per minute",
    }
    with gunicorn(tmp_path, env=env) as served:
        yield served


def user_flow(server: Server, n: int) -> None:
    """Sign up, log in, create, list, read, change with If-Match, delete, refresh, log out."""
    body = {"email": f"bouncer-{n}-{time.monotonic_ns()}@example.com", "password": PASSWORD}
    assert call(server, "POST", "/signup", json=body).status_code == 201
    tokens = call(server, "POST", "/login", json=body).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = [
        call(server, "POST", "/tasks", json={"title": f"task {i}"}, headers=headers)
        for i in range(3)
    ]
    assert [response.status_code for response in created] == [201] * 3
    listed = call(server, "GET", "/tasks", headers=headers)
    assert listed.status_code == 200 and listed.json()["meta"]["total"] == 3
    location = created[0].headers["Location"]
    got = call(server, "GET", location, headers=headers)
    assert got.status_code == 200
    patched = call(
        server,
        "PATCH",
        location,
        json={"completed": True},
        headers={**headers, "If-Match": got.headers["ETag"]},
    )
    assert patched.status_code == 200 and patched.json()["completed"] is True
    assert call(server, "DELETE", location, headers=headers).status_code == 204
    refreshed = call(server, "POST", "/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    logout = call(
        server, "POST", "/logout", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert logout.status_code == 204


def test_http_flows_share_few_server_connections_and_leave_no_session_state(server, bouncer):
    errors = []

    def run(n: int) -> None:
        try:
            user_flow(server, n)
        except BaseException as error:  # noqa: BLE001 - reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    [pool] = [p for p in bouncer.show("POOLS") if p["database"] == bouncer.database]
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] <= SERVER_CONNECTIONS
    [stats] = [s for s in bouncer.show("STATS") if s["database"] == bouncer.database]
    assert stats["total_xact_count"] > 100  # the flows really went through it
    assert "unsupported startup parameter" not in bouncer.log_path.read_text()
    # Whatever server connection a client gets next carries none of the app's settings.
    for _ in range(SERVER_CONNECTIONS * 2):
        connection = bouncer.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone()[0] == "0"
                cursor.execute("SHOW lock_timeout")
                assert cursor.fetchone()[0] == "0"
        finally:
            connection.close()


def test_the_lock_timeout_holds_through_the_bouncer(server, bouncer):
    body = {"email": f"locked-{time.monotonic_ns()}@example.com", "password": PASSWORD}
    assert call(server, "POST", "/signup", json=body).status_code == 201
    token = call(server, "POST", "/login", json=body).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = call(server, "POST", "/tasks", json={"title": "locked"}, headers=headers)
    assert created.status_code == 201

    locker = own_connection()  # straight to PostgreSQL, not through the bouncer
    try:
        with locker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            changed = call(
                server,
                "PATCH",
                created.headers["Location"],
                json={"completed": True},
                headers=headers,
            )
            waited = time.monotonic() - started
            cursor.execute("ROLLBACK")
    finally:
        locker.close()

    # DB_LOCK_TIMEOUT_MS (3 s) ended the wait: a 503, long before any other bound.
    assert changed.status_code == 503, changed.text
    assert 2.5 < waited < 8, waited
