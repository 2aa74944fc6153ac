"""HTTP edges met before the app: methods it never serves, bodies of unannounced length."""

import io
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
    """WSGI middleware: a method outside HTTP's standard ones that no route of the app serves
    is a 501 in the error envelope.

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
        method, path, status = (
            method[:LOGGED_METHOD_CHARS],
            environ.get("PATH_INFO", ""),
            HTTPStatus.NOT_IMPLEMENTED.value,
        )
        # The access line the app would have written (taskapp.observability), minus timing.
        access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={"method": method, "path": path, "status": status, "request_id": request_id},
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


class BoundedChunkedBodies:
    """WSGI middleware: a body sent without Content-Length (chunked) is read here, up to one
    byte past ``max_length``, and handed on with the Content-Length it turned out to have.

    Werkzeug reads such a body only up to MAX_CONTENT_LENGTH and stops there without a word:
    a larger body was silently cut to the limit (then parsed, or refused as malformed JSON).
    Announced this way, a body over the limit is a 413 from the app's own check, as one with
    a Content-Length over it is.
    """

    def __init__(self, app, max_length: int):
        self.app = app
        self.max_length = max_length

    def __call__(self, environ, start_response):
        # Only servers that end the stream themselves (gunicorn: wsgi.input_terminated) pass
        # a chunked body on; from others Werkzeug reads none at all, as before.
        chunked = "HTTP_TRANSFER_ENCODING" in environ and not environ.get("CONTENT_LENGTH")
        if not (chunked and environ.get("wsgi.input_terminated")):
            return self.app(environ, start_response)
        body = _read_up_to(environ["wsgi.input"], self.max_length + 1)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # Already de-chunked by the server; Werkzeug ignores Content-Length beside it.
        del environ["HTTP_TRANSFER_ENCODING"]
        return self.app(environ, start_response)


def _read_up_to(stream, limit: int) -> bytes:
    """At most ``limit`` bytes of ``stream``, fewer only where it ends."""
    parts, remaining = [], limit
    while remaining > 0:
        part = stream.read(min(remaining, 64 * 1024))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


# RFC 9110's methods that no route serves: a client may fairly try them, so they reach the app
# and get the 405 with `Allow` that HTTP asks for a method the server knows. They are a fixed
# few, so they add a bounded number of metric series; only methods outside HTTP's own get 501.
STANDARD_METHODS = frozenset({"CONNECT", "TRACE"})


def served_methods(app: Flask) -> set[str]:
    """Every method some route of ``app`` answers, and HTTP's other standard methods."""
    served = {method for rule in app.url_map.iter_rules() for method in rule.methods or ()}
    return served | STANDARD_METHODS


def register_edges(app: Flask) -> None:
    """Put the middlewares in front of the app, once every route is registered; the method
    check outermost, so a made-up method costs no body read."""
    max_length = app.config.get("MAX_CONTENT_LENGTH")
    if max_length is not None:
        app.wsgi_app = BoundedChunkedBodies(app.wsgi_app, max_length)
    app.wsgi_app = KnownMethodsOnly(app.wsgi_app, served_methods(app))
