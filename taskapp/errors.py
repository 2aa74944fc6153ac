"""The one JSON error envelope, the domain errors, and every handler that produces it."""

import functools
import json
import logging
from copy import deepcopy
from http import HTTPStatus

import flask_smorest
from flask import Flask, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, MethodNotAllowed, UnsupportedMediaType

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class AppError(Exception):
    """A domain error: services raise it, the handler renders the envelope."""

    code = HTTPStatus.BAD_REQUEST
    message = "Bad request"
    headers: dict[str, str] = {}

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        if headers:
            self.headers = {**self.headers, **headers}


class NotFound(AppError):
    code = HTTPStatus.NOT_FOUND
    message = "Resource not found"


class Conflict(AppError):
    code = HTTPStatus.CONFLICT
    message = "Conflict"


class InvalidToken(AppError):
    """An emailed token that is unknown, expired, replaced or already used: one answer."""

    code = HTTPStatus.BAD_REQUEST
    message = "The link is invalid, expired or already used"


class Unauthorized(AppError):
    code = HTTPStatus.UNAUTHORIZED
    message = "Authentication required"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    code = HTTPStatus.FORBIDDEN
    message = "Forbidden"


class PreconditionFailed(AppError):
    code = HTTPStatus.PRECONDITION_FAILED
    message = "The resource has changed since the given ETag; fetch it again"


class NotModified(AppError):
    """Not an error: the 304 of a conditional GET. The body is dropped (Werkzeug does that)."""

    code = HTTPStatus.NOT_MODIFIED
    message = "Not modified"


class Unavailable(AppError):
    code = HTTPStatus.SERVICE_UNAVAILABLE
    message = "A backing service is unavailable; retry later"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def error_response(code: int, message: str, *, errors=None, headers=None):
    """Build a response in the envelope: {"code", "status", "message", "errors"?}."""
    payload = {"code": int(code), "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        payload["errors"] = errors
    response = jsonify(payload)
    response.status_code = int(code)
    response.headers.update(headers or {})
    return response


class Api(flask_smorest.Api):
    """flask-smorest's Api with a message on every error and 405's Allow header kept."""

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(sorted(error.valid_methods))}
        if code == 429:
            # Flask-Limiter adds Retry-After and X-RateLimit-* in after_request.
            payload["message"] = "Rate limit exceeded: " + error.description
        return payload, code, headers


class JSONBodyParser(FlaskParser):
    """webargs' parser, answering a body nested too deep for the JSON decoder as malformed."""

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            # Else a RecursionError: a 500 any client could provoke with a few KB of "[".
            raise json.JSONDecodeError("JSON nested too deeply", "<request body>", 0) from None


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
            view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
            arguments = view._apidoc.setdefault("arguments", {})
            arguments.setdefault("parameters", []).append(parameter)
            return view

        return decorator


def register_error_handlers(app: Flask) -> None:
    """Domain errors and database outages into the envelope (HTTP errors: see Api); a session
    whose connection died after the response is dropped quietly."""
    from taskapp.extensions import db

    @app.errorhandler(AppError)
    def handle_app_error(error: AppError):
        return error_response(error.code, error.message, headers=error.headers)

    # OperationalError: refused or lost connections, statement_timeout, lock_timeout (psycopg2
    # files QueryCanceled and LockNotAvailable under it). InterfaceError: a connection closed
    # under us. TimeoutError: no pooled connection within DB_POOL_TIMEOUT.
    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def handle_database_unavailable(error: Exception):
        # The exception text can carry the DSN: log the class only.
        log.error("database unavailable: %s", type(error).__name__)
        try:
            db.session.rollback()
        except SQLAlchemyError:
            # The connection is gone already; the session is discarded at teardown anyway.
            pass
        return error_response(
            Unavailable.code,
            "The database is unavailable; retry later",
            headers=Unavailable.headers,
        )

    # Registered after Flask-SQLAlchemy's own teardown, so it runs before it (Flask runs them
    # in reverse), leaving that one an empty session.
    @app.teardown_appcontext
    def discard_session(_error: BaseException | None) -> None:
        try:
            db.session.remove()
        except SQLAlchemyError as error:
            # The connection died after the response was made (PostgreSQL stopped, or killed
            # the backend): the final rollback fails. The response stands; SQLAlchemy has
            # invalidated the connection; the session is dropped all the same. Raised from a
            # teardown, this would replace the response with gunicorn's HTML 500 page.
            log.warning("database connection lost after the response: %s", type(error).__name__)
            db.session.registry.clear()


def register_jwt_callbacks(jwt) -> None:
    """Every flask-jwt-extended failure is a 401 in the envelope (its default is 422 {"msg"})."""

    def unauthorized(message: str):
        return error_response(401, message, headers=Unauthorized.headers)

    jwt.unauthorized_loader(lambda _reason: unauthorized("Missing or malformed bearer token"))
    jwt.invalid_token_loader(lambda _reason: unauthorized("Invalid token or wrong token type"))
    jwt.expired_token_loader(lambda _header, _data: unauthorized("Token has expired"))
    jwt.revoked_token_loader(lambda _header, _data: unauthorized("Token has been revoked"))
    jwt.user_lookup_error_loader(lambda _header, _data: unauthorized("Session is no longer valid"))
    jwt.needs_fresh_token_loader(lambda _header, _data: unauthorized("Fresh token required"))
    jwt.token_verification_failed_loader(
        lambda _header, _data: unauthorized("Token verification failed")
    )


def document_error_responses(spec, *, without_database=("/healthz",)) -> None:
    """Add the errors every route shares to the spec: 400/413/415 for JSON bodies, 503 for
    outages.

    The per-route errors (401, 404, 409, 422, 429) are declared on the views themselves.
    """

    def ref(name: str) -> dict:
        return spec.components.get_ref("response", name)

    for path, operations in spec._paths.items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", ref("BAD_REQUEST"))
                responses.setdefault("413", ref("REQUEST_ENTITY_TOO_LARGE"))
                responses.setdefault("415", ref("UNSUPPORTED_MEDIA_TYPE"))
            if path not in without_database:
                responses.setdefault("503", ref("SERVICE_UNAVAILABLE"))
    # Referenced above, so registered: every 503 says when to come back.
    unavailable = spec.components.responses.get("SERVICE_UNAVAILABLE")
    if unavailable is not None:
        unavailable.setdefault("headers", {})["Retry-After"] = {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer"},
        }
