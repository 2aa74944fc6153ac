"""Databases for the tests: connections of their own, scratch databases on the test server,
a transaction that holds the server's horizon, and a throwaway cluster for fault tests.

The cluster is one the test can stop, start and lock.

initdb and pg_ctl come from /usr/lib/postgresql/*/bin; as root they run as the ``postgres`` OS
user (PostgreSQL refuses to run as root), through runuser. The data directory is a temporary
directory owned by that user, the server listens on 127.0.0.1 on a free port, and the schema is
built with ``flask --app wsgi db upgrade``, as an operator would.
"""

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from taskapp.extensions import db
from tests.support import flask
from tests.support.servers import free_port

DATABASE = "taskapp"


def _server_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _can_switch_to_postgres() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return shutil.which("runuser") is not None


SERVER_BIN = _server_bin()
AS_ROOT = os.geteuid() == 0

requires_pg_server = pytest.mark.skipif(
    SERVER_BIN is None or (AS_ROOT and not _can_switch_to_postgres()),
    reason="needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb) and, "
    "as root, runuser and a postgres OS user",
)


@dataclass
class Cluster:
    """A PostgreSQL server of our own: ``stop()`` and ``start()`` it, ``sql()`` against it."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def pg_ctl(self, *args: str) -> None:
        command = [str(SERVER_BIN / "pg_ctl"), "-D", str(self.data), *args]
        _as_postgres(command, timeout=60)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.directory}"
            # A test cluster: durability is not the point, speed is.
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        self.pg_ctl("start", "-w", "-t", "30", "-l", str(self.log_path), "-o", options)

    def running(self) -> bool:
        command = [str(SERVER_BIN / "pg_ctl"), "status", "-D", str(self.data)]
        return _as_postgres(command, timeout=30, check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once, as a restart would."""
        self.pg_ctl("stop", "-w", "-t", "30", "-m", mode)

    def connect(self, database: str = DATABASE):
        """A new autocommit connection of the test's own (not the app's)."""
        connection = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            application_name="taskapp-tests",
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection

    def sql(self, query: str, *params) -> list[tuple]:
        """Run one statement on a new connection; the rows it returns, if any."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def app_backends(self) -> list[int]:
        """Process ids of the app's connections (application_name "taskapp")."""
        rows = self.sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'taskapp' AND datname = %s",
            DATABASE,
        )
        return [pid for (pid,) in rows]

    def log(self) -> str:
        """The server's own log (errors, cancelled statements, terminated backends)."""
        return self.log_path.read_text(errors="replace")

    def truncate(self) -> None:
        """Empty the app's tables (a clean slate for the next test)."""
        tables = ", ".join(table.name for table in db.metadata.sorted_tables)
        self.sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def _as_postgres(
    command: list[str], *, timeout: float, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``command``, as the postgres OS user when we are root (PostgreSQL refuses root)."""
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command] if AS_ROOT else command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _upgrade_schema(url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TASKAPP_ENV": "development",
        "JWT_SECRET_KEY": secrets.token_urlsafe(40),
    }
    result = flask("db", "upgrade", env=env)
    if result.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def pg_cluster() -> Iterator[Cluster]:
    """initdb, start, create and migrate the ``taskapp`` database; stop and remove at exit."""
    directory = Path(tempfile.mkdtemp(prefix="taskapp-pg-"))
    if AS_ROOT:
        shutil.chown(directory, "postgres", "postgres")
    cluster = Cluster(directory=directory, port=free_port())
    try:
        _as_postgres(
            [
                str(SERVER_BIN / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
        cluster.start()
        admin = cluster.connect("postgres")
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            admin.close()
        _upgrade_schema(cluster.url)
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # never started, or already stopped
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def horizon_held(url: str) -> Iterator[int]:
    """A transaction left open, with a transaction id of its own, on a connection to ``url``
    (a SQLAlchemy or libpq URL of any database of the server) until the block exits; yields
    that id.

    Transaction ids and snapshots are the server's: while it is open, every snapshot's xmin,
    in every database, stays at or below it, as when another database on the server runs a
    long transaction.
    """
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg2.connect(dsn, application_name="taskapp-tests")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            (xid,) = cursor.fetchone()
        yield xid
    finally:
        connection.rollback()
        connection.close()


def connect(url):
    """An autocommit psycopg2 connection to the database of the SQLAlchemy or libpq ``url``
    (its query may name the socket directory of the embedded server: ``host=...``)."""
    url = make_url(url)
    connection = psycopg2.connect(
        **url.translate_connect_args(username="user", database="dbname"), **url.query
    )
    connection.autocommit = True
    return connection


def own_connection():
    """A psycopg2 connection of the test's own to the test database, outside the app's pool
    (autocommit)."""
    return connect(db.engine.engine.url)  # db.engine is a Connection in an isolated test


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of ``url``, for a deployment made afresh (migrations
    and all) by processes of its own; yields its URL, and drops it (connections and all)."""
    name = f"taskapp_scratch_{secrets.token_hex(4)}"
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with closing(connect(url)) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")
