"""Route decorators shared by the blueprints: bearer authentication and rate limits."""

from collections.abc import Callable

from flask import current_app
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from taskapp.extensions import limiter

BEARER = [{"bearerAuth": []}]
RATE_LIMIT_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed in the window"),
        ("X-RateLimit-Remaining", "Requests left in the window"),
        ("X-RateLimit-Reset", "When the window resets (Unix time)"),
        ("Retry-After", "Seconds to wait before retrying"),
    )
}


def authenticated(blp: Blueprint) -> Callable:
    """Require a valid access token of a live session; documents bearer auth and 401."""

    def decorator(view: Callable) -> Callable:
        view = jwt_required()(view)
        view = blp.alt_response(401, response="UNAUTHORIZED")(view)
        return blp.doc(security=BEARER)(view)

    return decorator


def rate_limited(blp: Blueprint, config_key: str) -> Callable:
    """Apply the limit string configured under ``config_key``; documents 429."""

    def decorator(view: Callable) -> Callable:
        view = blp.alt_response(
            429,
            response="TOO_MANY_REQUESTS",
        )(view)
        return limiter.limit(lambda: current_app.config[config_key])(view)

    return decorator
