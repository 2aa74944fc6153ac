"""Route decorators shared by the blueprints: bearer authentication and rate limits."""

import functools
import hashlib
import hmac
from collections.abc import Callable

from flask import current_app, request
from flask_jwt_extended import current_user, get_current_user, jwt_required
from flask_limiter import RequestLimit
from werkzeug.exceptions import HTTPException

from taskapp import audit
from taskapp.api import (
    AUTHENTICATE,
    AUTHORISE,
    LIMIT,
    RATE_LIMIT_HEADERS,
    Blueprint,
    compose,
)
from taskapp.clientaddr import client_network
from taskapp.emails import InvalidEmail, normalise_email
from taskapp.errors import Forbidden
from taskapp.extensions import api, limiter

BEARER = [{"bearerAuth": []}]
# Domain separation: the signing key also keys the email digests, and they mean nothing else.
_EMAIL_KEY_CONTEXT = b"taskapp rate-limit key: login email\x00"
# One count per account for every route that checks its password: /login names the account by
# its email, the others by the caller's token.
ACCOUNT_PASSWORD_SCOPE = "password:account"


def authenticated(blp: Blueprint) -> Callable:
    """Require a valid access token of a live session, checked before anything else the route
    declares (``api.AUTHENTICATE``); documents bearer auth and 401. The token is verified
    first; its session with the request's first statement, and before any commit or answer
    (``taskapp.auth.session_check``)."""
    # Here, not at the top: taskapp.auth's package imports its routes, which import this module.
    from taskapp.auth.session_check import checked

    return compose(
        blp.guard(AUTHENTICATE, lambda view: jwt_required()(checked(view))),
        blp.alt_response(401, response="UNAUTHORIZED"),
        blp.doc(security=BEARER),
    )


def _check_role(view: Callable) -> Callable:
    @functools.wraps(view)
    def check_role(*args, **kwargs):
        # The role is read with the session on every request: a demotion applies at once.
        if not current_user.is_admin:
            raise Forbidden("This route is for administrators")
        return view(*args, **kwargs)

    return check_role


def admin_required(blp: Blueprint) -> Callable:
    """Require an access token of a live session of an admin; documents 401 and 403."""
    return compose(
        authenticated(blp),
        blp.guard(AUTHORISE, _check_role),
        blp.alt_response(403, response="FORBIDDEN"),
    )


def submitted_email(field: str = "email") -> str | None:
    """The JSON body's ``field`` (an email), normalised as the schemas do
    (``normalise_email``), or None."""
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
    try:
        return normalise_email(email) or None
    except InvalidEmail:
        return None  # the schema answers 422; no password is checked


def _email_digest_key(email: str) -> str:
    """An email's rate-limit key: a keyed digest of it, so no email reaches Redis.

    Keyed with the signing key, which every worker and instance shares: a bare hash of an
    address is reversed by hashing candidate addresses.
    """
    digest = hmac.new(
        current_app.config["JWT_SECRET_KEY"].encode(),
        # surrogatepass: a lone surrogate is for the schema to refuse (422), not to raise here.
        _EMAIL_KEY_CONTEXT + email.encode("utf-8", "surrogatepass"),
        hashlib.sha256,
    )
    return "email:" + digest.hexdigest()


def _caller():
    """The user of the verified access token, or None where no token was verified.

    Key functions must never raise (Flask-Limiter would take it for a storage outage). The
    limits run after ``authenticated`` (``api.LIMIT``), so on its routes there is one.
    """
    try:
        return get_current_user()
    except RuntimeError:
        return None


def caller_email_key() -> str:
    """The rate-limit key of the caller's account: the same as a login naming its email."""
    user = _caller()
    return _email_digest_key(user.email) if user is not None else client_network()


def caller_key() -> str:
    """The rate-limit key of the caller: its user id."""
    user = _caller()
    return f"user:{user.id}" if user is not None else client_network()


def _configured(config_key: str) -> Callable[[], str]:
    # Read per request, so a limit changed in the app's config applies at once (tests do).
    return lambda: current_app.config[config_key]


def _log_password_limit_breach(limit: RequestLimit) -> None:
    user = _caller()
    audit.record(
        "password_attempts_limited",
        "too many password attempts: limited",
        user_id=user.id if user is not None else None,
        endpoint=request.endpoint,
        limit=str(limit.limit),
    )


def _limited(blp: Blueprint, limits: list[Callable], description: str) -> Callable:
    """Apply ``limits`` after authentication, before anything else the route declares
    (``api.LIMIT``), and document 429 (``taskapp.api`` adds the rate-limit headers to the
    success response of every route with a 429)."""

    def limit_all(view: Callable) -> Callable:
        for limit in limits:
            view = limit(view)
        return view

    return compose(
        blp.guard(LIMIT, limit_all),
        blp.alt_response(
            429,
            schema=api.ERROR_SCHEMA,
            description=f"Rate limit exceeded: {description}",
            headers=RATE_LIMIT_HEADERS,
        ),
    )


def rate_limited(
    blp: Blueprint,
    config_key: str,
    *,
    per_email: str | None = None,
    target: Callable[[], str | None] = submitted_email,
    account_password: bool = False,
) -> Callable:
    """Limit per client address (the limit under ``config_key``) and, with ``per_email``, per
    target email too (``target``: by default the body's ``email``); documents 429
    (``taskapp.api`` adds the rate-limit headers to the success response of every route with a
    429).

    With ``account_password`` (/login), the per-email count is the account's password-check
    count, which routes checking the caller's password (``password_check_limited``) spend
    too.
    """
    limits = []
    if per_email:
        # A body without a usable email logs no one in: the address limit suffices.
        per_target = {
            "key_func": lambda: _email_digest_key(target() or ""),
            "exempt_when": lambda: target() is None,
        }
        limits.append(
            limiter.shared_limit(
                _configured(per_email),
                scope=ACCOUNT_PASSWORD_SCOPE,
                on_breach=_log_password_limit_breach,
                **per_target,
            )
            if account_password
            else limiter.limit(_configured(per_email), **per_target)
        )
    limits.append(limiter.limit(_configured(config_key)))
    description = "per client address, or per email" if per_email else "per client address"
    return _limited(blp, limits, description)


def password_check_limited(blp: Blueprint) -> Callable:
    """Limit a route that checks the caller's password, as strictly as /login.

    Per account (RATELIMIT_LOGIN_EMAIL, one count with /login's per-email limit: a stolen
    access token adds no guesses) and per client address (RATELIMIT_PASSWORD_CHECK, one count
    across these routes). Checked after ``authenticated`` (the account is the token's),
    wherever the decorator stands: only authenticated requests count.
    """
    limits = [
        limiter.shared_limit(
            _configured("RATELIMIT_LOGIN_EMAIL"),
            scope=ACCOUNT_PASSWORD_SCOPE,
            key_func=caller_email_key,
            on_breach=_log_password_limit_breach,
        ),
        limiter.shared_limit(
            _configured("RATELIMIT_PASSWORD_CHECK"),
            scope="password-check",
            on_breach=_log_password_limit_breach,
        ),
    ]
    return _limited(blp, limits, "per account (with /login), or per client address")


def task_write_limited(blp: Blueprint) -> Callable:
    """Limit a task write per user (RATELIMIT_TASK_WRITES), one count across every route that
    creates, changes or deletes tasks. Checked after ``authenticated``."""
    limit = limiter.shared_limit(
        _configured("RATELIMIT_TASK_WRITES"), scope="task-writes", key_func=caller_key
    )
    return _limited(blp, [limit], "task writes per user")
