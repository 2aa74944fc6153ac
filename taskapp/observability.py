"""Request ids, the one-line JSON access log, JSON logging for the app and gunicorn, metrics.

Logging is configured once per process: gunicorn applies ``logging_config()`` (from
``gunicorn.conf.py``) before it loads the app; ``flask`` commands get the same JSON handler
from ``configure_logging()``; a host that already set up logging (pytest) is left alone.
"""

import atexit
import json
import logging
import logging.config
import os
import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request
from flask_jwt_extended import get_jwt
from flask_smorest.spec.plugins import FlaskPlugin

from config import config_from_env

REQUEST_ID_HEADER = "X-Request-ID"
# Short and printable (visible ASCII): anything else is replaced, never logged as sent.
_SANE_REQUEST_ID = re.compile(r"[!-~]{1,128}")

access_log = logging.getLogger("taskapp.access")

# A second line of defence: the code never logs these, and the formatter scrubs them anyway.
_REDACTIONS = (
    (re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*"), "[redacted token]"),
    (re.compile(r"(?i)\b(bearer\s+)\S+"), r"\1[redacted]"),
    (re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"), "[redacted hash]"),
)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """``text`` with anything shaped like a JWT, a bearer credential or a bcrypt hash removed."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config() -> dict:
    """The ``logging.config.dictConfig`` schema: every record as one JSON line on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": ["json"]},
        "loggers": {
            # gunicorn's own messages go to the root's JSON handler instead of its text one.
            # gunicorn.access is left to gunicorn: off unless GUNICORN_ACCESSLOG asks for it,
            # since the app writes the JSON access line itself.
            "gunicorn.error": {"handlers": [], "propagate": True},
        },
    }


def configure_logging() -> None:
    """JSON logging on stderr, unless the process already configured logging (gunicorn, pytest)."""
    if not logging.getLogger().handlers:
        logging.config.dictConfig(logging_config())


def _request_id() -> str:
    """The client's X-Request-ID when sane, else a new one; fixed for the request."""
    if "request_id" not in g:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = sent if _SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
    return g.request_id


# Set on ``g`` by whoever finds that the verified token's session is dead
# (taskapp.auth.session_check): the request is then nobody's.
SESSION_REFUSED = "taskapp_session_refused"


def _user_id() -> int | None:
    """The id of the user whose access token this request verified (and whose session was not
    refused), if any."""
    if g.get(SESSION_REFUSED):
        return None
    try:
        return int(get_jwt()["sub"])
    except (RuntimeError, KeyError, TypeError, ValueError):
        return None  # no verified token in this request


def register_request_logging(app: Flask) -> None:
    """Request ids on every response and one JSON access line per request.

    Registered before the extensions, so the start time is taken first and the line is
    written last, with the final status.
    """

    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        _request_id()

    @app.after_request
    def finish_request(response: Response) -> Response:
        request_id = _request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        duration = (time.perf_counter() - started) * 1000 if started is not None else None
        access_log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                # The path only: a query string could carry something secret.
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(duration, 2) if duration is not None else None,
                "user_id": _user_id(),
                "request_id": request_id,
            },
        )
        return response


def route(req) -> str:
    """The route that matched, as the OpenAPI document names it (``/tasks/{task_id}``, never
    the converter's ``<id:task_id>``): one series per route, not per id."""
    if req.url_rule is None:
        return "unmatched"
    return FlaskPlugin.flaskpath2openapi(req.url_rule.rule)


def register_metrics(app: Flask) -> None:
    """``/metrics`` when METRICS_ENABLED: request counts and latencies by route and status.

    Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) makes every worker
    write its samples there and /metrics add up all workers; otherwise the process counts
    alone, in a registry of this app.
    """
    if not app.config["METRICS_ENABLED"]:
        return
    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        # A `flask` command may run before gunicorn's master has made it.
        os.makedirs(multiprocess_dir, exist_ok=True)
        GunicornInternalPrometheusMetrics(app, group_by=route)
    else:
        from prometheus_client import CollectorRegistry
        from prometheus_flask_exporter import PrometheusMetrics

        from taskapp.audit import SECURITY_EVENTS

        registry = CollectorRegistry()
        registry.register(SECURITY_EVENTS)
        PrometheusMetrics(app, group_by=route, registry=registry)


_metrics_dir_prepared = False


def prepare_multiprocess_metrics() -> None:
    """In the gunicorn master: give the workers an empty PROMETHEUS_MULTIPROC_DIR.

    Must run before prometheus_client is imported (it picks its storage at import). A
    directory named by the environment is emptied of a previous run's samples; without one,
    a temporary directory is made and removed when the master exits. Runs once per master
    (gunicorn re-reads its config file on HUP, while the workers' files are live).
    """
    global _metrics_dir_prepared
    if _metrics_dir_prepared or not config_from_env().METRICS_ENABLED:
        return
    _metrics_dir_prepared = True
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
        return
    path = tempfile.mkdtemp(prefix="taskapp-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(_remove_metrics_dir, path, os.getpid())


def _remove_metrics_dir(path: str, master: int) -> None:
    # Forked workers inherit atexit handlers: only the master removes the directory.
    if os.getpid() == master:
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """gunicorn ``child_exit``: drop the live-gauge samples of a dead worker."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
