"""gunicorn settings, each overridable by the environment; defaults suit a 2-core machine."""

import json
import os
import uuid
from http import HTTPStatus

from gunicorn import util

from config import database_timeouts
from taskapp.observability import logging_config, prepare_multiprocess_metrics, worker_exited

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Threads, so that a client trickling its request holds one thread, not a whole worker (a sync
# worker serves one connection at a time: two slow clients would stop two workers). gthread
# waits for a connection's first bytes on its poller, without a thread; gunicorn 27 has no
# timeout for the rest of a request's head, so the threads are the margin here, and a
# buffering proxy (deploy/nginx.conf: client_header_timeout) is the cure in production.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Above the longest the database settings let a request wait (pool + connect + the longest of
# the statement timeouts and the dead-server bound of the keepalives; config.DatabaseTimeouts),
# so a stuck query ends as a 503, not as a killed worker and a 502.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
_database_wait = database_timeouts().longest_wait
if timeout <= _database_wait:
    raise RuntimeError(
        f"GUNICORN_TIMEOUT ({timeout} s) must exceed DB_POOL_TIMEOUT + DB_CONNECT_TIMEOUT "
        "+ max(DB_STATEMENT_TIMEOUT_MS, DB_BULK_STATEMENT_TIMEOUT_MS, the DB_KEEPALIVES_* / "
        "DB_TCP_USER_TIMEOUT_MS bound) "
        f"({_database_wait:g} s)"
    )
# SIGTERM: workers stop accepting, finish the requests in hand (a request is bounded by the
# database timeouts above), and are killed only after this many seconds.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Off by default: the app writes one JSON access line per request (GUNICORN_ACCESSLOG=- adds
# gunicorn's own, in its text format, for debugging).
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn 27's runtime control socket defaults to one path per user, which several instances
# on one host would fight over; management is done with signals instead.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""

# One JSON log format for gunicorn and the app; with METRICS_ENABLED, a fresh
# PROMETHEUS_MULTIPROC_DIR so /metrics adds up every worker.
logconfig_dict = logging_config()  # gunicorn applies it in the master
prepare_multiprocess_metrics()


def write_json_error(sock, status_int: int, reason: str, _message: str) -> None:
    """gunicorn's own answers, given before the app sees the request (a request line or headers
    over its limits, a malformed request), in the API's JSON error shape, not an HTML page."""
    status = HTTPStatus(status_int)
    body = json.dumps({"code": status.value, "status": status.phrase, "message": reason}).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {uuid.uuid4().hex}\r\n"
        "X-Content-Type-Options: nosniff\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


# Workers call it as util.write_error, so every worker class answers this way.
util.write_error = write_json_error


def child_exit(server, worker):
    worker_exited(worker.pid)


def post_fork(server, worker):
    """With --preload, the app and its engine were built in the master: give each worker a
    connection pool of its own, never a socket shared with the master or a sibling."""
    app = server.app.callable  # None unless preloaded: each worker then builds its own app
    if app is None:
        return
    from taskapp.extensions import db

    with app.app_context():
        for engine in db.engines.values():
            # close=False: the inherited sockets are the master's; only forget them here.
            engine.dispose(close=False)
