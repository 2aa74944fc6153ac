"""gunicorn settings, each overridable by the environment; defaults suit a 2-core machine."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Above the database statement and pool timeouts, so a slow query ends as a 503, not a kill.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn 27's runtime control socket defaults to one path per user, which several instances
# on one host would fight over; management is done with signals instead.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
