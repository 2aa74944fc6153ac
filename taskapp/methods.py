"""Requests with an HTTP method the API never serves, answered before the app sees them."""

import json
import logging
import uuid
from http import HTTPStatus

from flask import Flask

from taskapp.browser import API_CSP

access_log = logging.getLogger("taskapp.access")
# Enough of a made-up method for the log line; gunicorn bounds the request line anyway.
LOGGED_METHOD_CHARS = 32


class KnownMethodsOnly:
    """WSGI middleware: a method no route of the app serves is a 501 in the error envelope.

    Answered here, it never reaches the routing, the rate limiter or the metrics: each made-up
    method would otherwise be a new label value of every request metric, without bound.
    Methods the API does serve, but not on the requested path, still reach the app (405, with
    ``Allow``).
    """

    def __init__(self, app, methods: set[str]):
        self.app = app
        self.methods = frozenset(methods)
        status = HTTPStatus.NOT_IMPLEMENTED
        self.body = json.dumps(
            {
                "code": status.value,
                "status": status.phrase,
                "message": "This API does not implement that method; it serves "
                + ", ".join(sorted(self.methods)),
            }
        ).encode()

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "")
        # Werkzeug upper-cases the method, so "get" is served as GET: it stays served.
        if method.upper() in self.methods:
            return self.app(environ, start_response)
        request_id = uuid.uuid4().hex
        access_log.info(
            "%s %s %s",
            method[:LOGGED_METHOD_CHARS],
            environ.get("PATH_INFO", ""),
            HTTPStatus.NOT_IMPLEMENTED.value,
            extra={"status": HTTPStatus.NOT_IMPLEMENTED.value, "request_id": request_id},
        )
        start_response(
            "501 Not Implemented",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(self.body))),
                ("X-Request-ID", request_id),
                ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", API_CSP),
            ],
        )
        return [self.body]


def served_methods(app: Flask) -> set[str]:
    """Every method some route of ``app`` answers."""
    return {method for rule in app.url_map.iter_rules() for method in rule.methods or ()}


def register_known_methods(app: Flask) -> None:
    """Put KnownMethodsOnly in front of the app, once every route is registered."""
    app.wsgi_app = KnownMethodsOnly(app.wsgi_app, served_methods(app))
