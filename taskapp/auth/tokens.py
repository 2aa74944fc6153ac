"""JWT issuing and reading: access and refresh tokens carry the user and session ids."""

import hashlib
from datetime import datetime

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTDecodeError, WrongTokenError

SESSION_CLAIM = "sid"


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a refresh token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token_pair(user_id: int, session_id: int, *, family_expires_at: datetime) -> dict:
    """A new access and refresh token; the refresh token never outlives its family."""
    claims = {SESSION_CLAIM: session_id}
    access_ttl = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    access = create_access_token(str(user_id), additional_claims=claims)
    # exp is the family's absolute expiry itself, so rotation can never extend it.
    refresh = create_refresh_token(
        str(user_id),
        additional_claims={**claims, "exp": family_expires_at},
        expires_delta=False,
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": int(access_ttl.total_seconds()),
    }


def has_expiry(claims: dict) -> bool:
    """Whether verified claims carry ``exp``: PyJWT checks an ``exp`` that is there, but
    accepts a token without one, and every token this API issues has one."""
    return "exp" in claims


def read_refresh_token(token: str) -> tuple[int, int]:
    """Verify a refresh JWT (signature, expiry, type) and return (user id, session id).

    Failures raise flask-jwt-extended / PyJWT errors, which its callbacks turn into 401s.
    """
    if not token.isascii():
        # A compact JWT is ASCII; anything else (even a lone surrogate) is just malformed.
        raise JWTDecodeError("Malformed token")
    claims = decode_token(token)
    if not has_expiry(claims):
        raise JWTDecodeError("Token has no expiry")
    if claims.get("type") != "refresh":
        raise WrongTokenError("Only refresh tokens are allowed")
    ids = token_ids(claims)
    if ids is None:
        raise WrongTokenError("Refresh token lacks its session")
    return ids


def token_ids(claims: dict) -> tuple[int, int] | None:
    """(user id, session id) from verified access-token claims, or None if absent."""
    try:
        return int(claims["sub"]), int(claims[SESSION_CLAIM])
    except (KeyError, TypeError, ValueError):
        return None
