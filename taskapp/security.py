"""Route decorators shared by the blueprints: bearer authentication and rate limits."""

import functools
import hashlib
import hmac
from collections.abc import Callable

from flask import current_app, request
from flask_jwt_extended import current_user, jwt_required
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

from taskapp.api import RATE_LIMIT_HEADERS
from taskapp.errors import Forbidden
from taskapp.extensions import api, limiter

BEARER = [{"bearerAuth": []}]
# Domain separation: the signing key also keys the email digests, and they mean nothing else.
_EMAIL_KEY_CONTEXT = b"taskapp rate-limit key: login email\x00"


def authenticated(blp: Blueprint) -> Callable:
    """Require a valid access token of a live session; documents bearer auth and 401."""

    def decorator(view: Callable) -> Callable:
        view = jwt_required()(view)
        view = blp.alt_response(401, response="UNAUTHORIZED")(view)
        return blp.doc(security=BEARER)(view)

    return decorator


def admin_required(blp: Blueprint) -> Callable:
    """Require an access token of a live session of an admin; documents 401 and 403."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def check_role(*args, **kwargs):
            # The role is read with the session on every request: a demotion applies at once.
            if not current_user.is_admin:
                raise Forbidden("This route is for administrators")
            return view(*args, **kwargs)

        checked = authenticated(blp)(check_role)
        return blp.alt_response(403, response="FORBIDDEN")(checked)

    return decorator


def submitted_email(field: str = "email") -> str | None:
    """The JSON body's ``field`` (an email), normalised as the schemas do (trimmed,
    lower-cased), or None."""
    try:
        body = request.get_json(silent=True)
    except (RecursionError, HTTPException):
        # Nested too deep, or too large: the view answers 400 or 413; the address still counts.
        # Never raise here: Flask-Limiter takes any error for a storage outage and would drop
        # this worker to per-process counting.
        return None
    email = body.get(field) if isinstance(body, dict) else None
    if not isinstance(email, str):
        return None
    return email.strip().lower() or None


def email_key(email: str | None = None) -> str:
    """An email's rate-limit key (default: the submitted one): a keyed digest, so no email
    reaches Redis.

    Keyed with the signing key, which every worker and instance shares: a bare hash of an
    address is reversed by hashing candidate addresses.
    """
    email = email or submitted_email() or ""
    digest = hmac.new(
        current_app.config["JWT_SECRET_KEY"].encode(),
        # surrogatepass: a lone surrogate is for the schema to refuse (422), not to raise here.
        _EMAIL_KEY_CONTEXT + email.encode("utf-8", "surrogatepass"),
        hashlib.sha256,
    )
    return "email:" + digest.hexdigest()


def _configured(config_key: str) -> Callable[[], str]:
    # Read per request, so a limit changed in the app's config applies at once (tests do).
    return lambda: current_app.config[config_key]


def rate_limited(
    blp: Blueprint,
    config_key: str,
    *,
    per_email: str | None = None,
    target: Callable[[], str | None] = submitted_email,
) -> Callable:
    """Limit per client address (the limit under ``config_key``) and, with ``per_email``, per
    target email too (``target``: by default the body's ``email``); documents 429 (``taskapp.api``
    adds the rate-limit headers to the success response of every route with a 429)."""

    def decorator(view: Callable) -> Callable:
        view = blp.alt_response(
            429,
            schema=api.ERROR_SCHEMA,
            description="Rate limit exceeded: "
            + ("per client address, or per email" if per_email else "per client address"),
            headers=RATE_LIMIT_HEADERS,
        )(view)
        if per_email:
            # A body without a usable email logs no one in: the address limit suffices.
            view = limiter.limit(
                _configured(per_email),
                key_func=lambda: email_key(target()),
                exempt_when=lambda: target() is None,
            )(view)
        return limiter.limit(_configured(config_key))(view)

    return decorator
