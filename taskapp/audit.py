"""Security events: one JSON log line each (logger ``taskapp.security``) and a Prometheus count.

Events carry ids (user, session, actor), never an email, password, token or hash. The counter
``taskapp_security_events_total{event}`` has one series per event name below, so its size is
fixed; /metrics shows it when METRICS_ENABLED (``observability.register_metrics``).
"""

import logging

from prometheus_client import Counter

log = logging.getLogger("taskapp.security")

# Event names, with the level each is logged at.
EVENTS = {
    # A spent refresh token presented again: the theft signal of RFC 9700; its session is revoked.
    "refresh_token_reuse": logging.WARNING,
    "login_failed": logging.INFO,
    "password_check_failed": logging.INFO,
    "password_attempts_limited": logging.INFO,
    "password_changed": logging.INFO,
    "password_rehashed": logging.INFO,
    "logout_all": logging.INFO,
    "session_revoked": logging.INFO,
    # A login past SESSIONS_PER_USER: the oldest sessions are revoked.
    "sessions_evicted": logging.INFO,
    "account_deleted": logging.INFO,
    "user_deactivated": logging.INFO,
    "email_change_requested": logging.INFO,
    "email_changed": logging.INFO,
}

# Registered in no registry here: the app's own registry (one process) or the multiprocess
# collector (gunicorn, which reads every Counter's samples from PROMETHEUS_MULTIPROC_DIR).
SECURITY_EVENTS = Counter(
    "taskapp_security_events", "Security events, by kind", ["event"], registry=None
)


def record(event: str, message: str, **fields) -> None:
    """Log ``event`` at its level with ``fields`` (ids only) and count it."""
    SECURITY_EVENTS.labels(event=event).inc()
    log.log(EVENTS[event], message, extra={"event": event, **fields})
