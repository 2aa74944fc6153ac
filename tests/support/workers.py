"""What each pytest-xdist worker has of its own, so that workers never meet: a PostgreSQL
database and a Redis database.

``make test`` runs the suite on several workers (``pytest -n``), each a process whose tests
reset the schema, truncate tables, and clear rate-limit counters (``limiter.reset()``, every
key of its Redis database): on one database they would undo each other's work. Worker
``gwN`` runs on the database named by TEST_DATABASE_URL with ``_gwN`` appended (made on the
same server if missing) and on Redis database N above TEST_REDIS_URL's (modulo 16, Redis's
default count). Without xdist, the suite runs on the URLs as they are.
"""

from contextlib import closing
from urllib.parse import urlsplit, urlunsplit

from psycopg2 import sql
from sqlalchemy.engine import make_url

from tests.support.databases import connect

REDIS_DATABASES = 16


def worker_index(worker: str) -> int:
    """N of xdist's worker id ``gwN``."""
    return int(worker.removeprefix("gw"))


def own_database_url(url: str, worker: str) -> str:
    """The URL of the worker's database on ``url``'s server, made (empty) if missing."""
    base = make_url(url)
    name = f"{base.database}_{worker}"
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return base.set(database=name).render_as_string(hide_password=False)


def own_redis_url(url: str, worker: str) -> str:
    """The URL of the worker's Redis database: N above ``url``'s, for worker ``gwN``."""
    parts = urlsplit(url)
    first = int(parts.path.strip("/") or 0)
    index = worker_index(worker)
    if index >= REDIS_DATABASES:
        raise RuntimeError(f"at most {REDIS_DATABASES} workers: each needs a Redis database")
    database = (first + index) % REDIS_DATABASES
    return urlunsplit(parts._replace(path=f"/{database}"))
