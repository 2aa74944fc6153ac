"""The one JSON error envelope, the domain errors, and every handler that produces it."""

import logging
from http import HTTPStatus

from flask import Flask, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from taskapp.extensions import db

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


class Unprocessable(AppError):
    """Valid input that the stored data refuses (a rule across rows, such as subtask depth)."""

    code = HTTPStatus.UNPROCESSABLE_ENTITY
    message = "The request cannot be applied to the data as it is"


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


def register_error_handlers(app: Flask) -> None:
    """Domain errors and database outages into the envelope (HTTP errors: ``taskapp.api.Api``)."""

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
