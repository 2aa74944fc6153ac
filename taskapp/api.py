"""flask-smorest, fitted to taskapp: the ``Api`` and ``Blueprint`` subclasses, the JSON-only
body parser, and the OpenAPI additions every route shares."""

import functools
import json
from copy import deepcopy

import flask_smorest
from apispec import BasePlugin
from flask import request
from marshmallow import missing
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, UnsupportedMediaType

# Path ids are PostgreSQL integers: beyond int4 the converter answers 404, not an overflow.
ID = "int(max=2147483647)"

# Flask-Limiter sends these on every response of a limited route, about the limit the request
# was counted against: the one it exceeded, else the one with the shortest window.
RATE_LIMIT_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed in the window"),
        ("X-RateLimit-Remaining", "Requests left in the window, after this one"),
        ("X-RateLimit-Reset", "When the window next frees a request (Unix time)"),
        ("Retry-After", "Seconds until the window next frees a request"),
    )
}
# The description of the few writes that call taskapp.database.allow_long_statements.
BULK_WRITE = (
    "Its cost follows the number of tasks it touches, in one transaction: it runs under "
    "DB_BULK_STATEMENT_TIMEOUT_MS, past which it is a 503 that changes nothing (retrying "
    "will not help; see docs/performance.md)."
)
# A 422 lists what was wrong, never the whole request again: the errors object of a body with
# a thousand unknown fields, or one with a megabyte-long name, would be as large as the body.
MAX_ERROR_ENTRIES = 20
MAX_ERROR_TEXT = 100
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer"},
    }
}


class SharedResponsesPlugin(BasePlugin):
    """Documents what every route shares: 400/413/415 where a JSON body is read, 503 (with
    Retry-After) where the database is used, and the rate-limit headers on the success
    responses of every route that documents a 429."""

    def __init__(self, *, without_database=("/healthz",)):
        self.without_database = without_database
        self.spec = None

    def init_spec(self, spec) -> None:
        self.spec = spec

    def _ref(self, name: str) -> dict:
        # Referencing one of flask-smorest's lazy responses registers it.
        return self.spec.components.get_ref("response", name)

    def operation_helper(self, path=None, operations=None, **_kwargs) -> None:
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", self._ref("BAD_REQUEST"))
                responses.setdefault("413", self._ref("REQUEST_ENTITY_TOO_LARGE"))
                responses.setdefault("415", self._ref("UNSUPPORTED_MEDIA_TYPE"))
            if path not in self.without_database:
                responses.setdefault("503", self._ref("SERVICE_UNAVAILABLE"))
                unavailable = self.spec.components.responses["SERVICE_UNAVAILABLE"]
                unavailable.setdefault("headers", {}).update(RETRY_AFTER)
            if "429" in map(str, responses):
                for code, response in responses.items():
                    if str(code).startswith("2"):
                        response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)


def bound_errors(errors) -> tuple[object, bool]:
    """``errors`` with at most MAX_ERROR_ENTRIES entries per object or list and every name and
    message cut to MAX_ERROR_TEXT characters; and whether entries were left out."""
    if isinstance(errors, str):
        return errors[:MAX_ERROR_TEXT], False
    if isinstance(errors, dict):
        entries = list(errors.items())
    elif isinstance(errors, list | tuple):
        entries = list(enumerate(errors))
    else:
        return errors, False
    cut = len(entries) > MAX_ERROR_ENTRIES
    bounded = {}
    for key, value in entries[:MAX_ERROR_ENTRIES]:
        bounded[key[:MAX_ERROR_TEXT] if isinstance(key, str) else key], inner = bound_errors(value)
        cut = cut or inner
    return (bounded if isinstance(errors, dict) else list(bounded.values())), cut


class Api(flask_smorest.Api):
    """flask-smorest's Api with a message on every error, errors bounded, 405's Allow header
    kept, and the shared responses documented."""

    def init_app(self, app, *, spec_kwargs=None):
        # A plugin per spec: the unbound ``api`` is initialised once per app built.
        spec_kwargs = {**(spec_kwargs or {}), "extra_plugins": [SharedResponsesPlugin()]}
        super().init_app(app, spec_kwargs=spec_kwargs)

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description)
        if "errors" in payload:
            payload["errors"], cut = bound_errors(payload["errors"])
            if cut:
                payload["message"] += f" (at most {MAX_ERROR_ENTRIES} errors listed per object)"
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(sorted(error.valid_methods))}
        if code == 429:
            # Flask-Limiter adds Retry-After and X-RateLimit-* in after_request.
            payload["message"] = "Rate limit exceeded: " + error.description
        return payload, code, headers


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class JSONBodyParser(FlaskParser):
    """webargs' parser, answering as malformed (400) any body the JSON decoder refuses."""

    def load_json(self, req, schema):
        if not is_json_request(req):
            return missing
        body = req.get_data(cache=True)
        if not body:
            return missing  # as webargs: no body, not a malformed one
        try:
            # UTF-8 only (RFC 8259); NaN and Infinity are not JSON either.
            return json.loads(body.decode(), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            # Malformed JSON, bad UTF-8, an integer of over 4,300 digits (a plain ValueError
            # from int()), NaN, nesting deeper than the decoder's stack: each of the last four
            # was a 500 any client could provoke.
            abort(400, messages={"json": ["Invalid JSON body."]})


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose bodies are read by JSONBodyParser (so 400, not 500), and
    must be JSON: 415 for a body of another type, or none where one is required."""

    ARGUMENTS_PARSER = JSONBodyParser()

    def arguments(self, schema, *, location="json", required=True, **kwargs):
        if isinstance(schema, type):
            # One instance for all requests: webargs would build one per request from a class.
            schema = schema()
        parse = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json":
            return parse

        def decorator(view):
            parsed = parse(view)

            # webargs reads a body that is not JSON as no body at all, so a form or a body
            # without a Content-Type would be taken for an empty object.
            @functools.wraps(parsed)
            def require_json(*args, **kwargs):
                carries_body = request.content_length or "Transfer-Encoding" in request.headers
                if not request.is_json and (required or carries_body):
                    raise UnsupportedMediaType("The request body must be JSON (application/json)")
                return parsed(*args, **kwargs)

            return require_json

        return decorator

    @staticmethod
    def header_parameter(parameter: dict):
        """Document a header the view reads itself (an OpenAPI parameter object), next to the
        parameters of ``arguments``: ``doc(parameters=...)`` would replace those."""

        def decorator(view):
            # flask-smorest has no public way to add one parameter beside those of
            # `arguments`; `_apidoc` is its private store, pinned by setup.cfg (<0.48).
            view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
            arguments = view._apidoc.setdefault("arguments", {})
            arguments.setdefault("parameters", []).append(parameter)
            return view

        return decorator
