"""HTTP edges met before the app: methods it never serves, bodies of unannounced length."""

import io
import json
import logging
import uuid
from http import HTTPStatus

from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map

from taskapp.browser import API_CSP

access_log = logging.getLogger("taskapp.access")
# Enough of a made-up method for the log line; gunicorn bounds the request line anyway.
LOGGED_METHOD_CHARS = 32


class KnownMethodsOnly:
    """WSGI middleware: a method no route of the app serves is answered here, in the error
    envelope: a 405 with the path's ``Allow`` (a 404 for a path no route matches).

    Answered here, it never reaches the rate limiter or the metrics: each made-up method would
    otherwise be a new label value of every request metric, without bound. Methods the API does
    serve, but not on the requested path, reach the app (its own 405, with ``Allow``).
    """

    def __init__(self, app, url_map: Map, methods: set[str]):
        self.app = app
        self.url_map = url_map
        self.methods = frozenset(methods)

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "")
        # Werkzeug upper-cases the method, so "get" is served as GET: it stays served.
        if method.upper() in self.methods:
            return self.app(environ, start_response)
        allowed = sorted(self.url_map.bind_to_environ(environ).allowed_methods())
        # Werkzeug's own descriptions: what the app's 405 and 404 say.
        error = MethodNotAllowed() if allowed else NotFound()
        status = HTTPStatus(error.code)
        body = json.dumps(
            {"code": status.value, "status": status.phrase, "message": error.description}
        ).encode()
        request_id = uuid.uuid4().hex
        method, path = method[:LOGGED_METHOD_CHARS], environ.get("PATH_INFO", "")
        # The access line the app would have written (taskapp.observability), minus timing.
        access_log.info(
            "%s %s %s",
            method,
            path,
            status.value,
            extra={
                "method": method,
                "path": path,
                "status": status.value,
                "request_id": request_id,
            },
        )
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-ID", request_id),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", API_CSP),
        ]
        if allowed:
            headers.append(("Allow", ", ".join(allowed)))
        start_response(f"{status.value} {status.phrase}", headers)
        return [body]


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


def served_methods(app: Flask) -> set[str]:
    """Every method some route of ``app`` answers."""
    return {method for rule in app.url_map.iter_rules() for method in rule.methods or ()}


def register_edges(app: Flask) -> None:
    """Put the middlewares in front of the app, once every route is registered; the method
    check outermost, so a made-up method costs no body read."""
    max_length = app.config.get("MAX_CONTENT_LENGTH")
    if max_length is not None:
        app.wsgi_app = BoundedChunkedBodies(app.wsgi_app, max_length)
    app.wsgi_app = KnownMethodsOnly(app.wsgi_app, app.url_map, served_methods(app))
