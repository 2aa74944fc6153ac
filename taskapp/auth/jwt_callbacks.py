"""flask-jwt-extended's wiring: who a verified token belongs to, and every failure as a 401 in
the error envelope (its default is 422 {"msg"})."""

from flask_jwt_extended import JWTManager

from taskapp.auth.session_check import Caller, defer_check
from taskapp.auth.tokens import has_expiry, token_ids
from taskapp.errors import Unauthorized, error_response


def _unauthorized(message: str):
    return error_response(Unauthorized.code, message, headers=Unauthorized.headers)


def _load_user(_header: dict, claims: dict) -> Caller | None:
    """``current_user``: the token's user, whose session the request's first statement checks
    (``taskapp.auth.session_check``); None (a 401) for a token without the ids."""
    ids = token_ids(claims)
    return defer_check(*ids) if ids else None


def register_jwt_callbacks(jwt: JWTManager) -> None:
    """Set the user loader and the failure callbacks on ``jwt``."""
    jwt.user_lookup_loader(_load_user)
    # An access token without exp would never expire: refused as any other invalid token.
    jwt.token_verification_loader(lambda _header, claims: has_expiry(claims))
    jwt.unauthorized_loader(lambda _reason: _unauthorized("Missing or malformed bearer token"))
    jwt.invalid_token_loader(lambda _reason: _unauthorized("Invalid token or wrong token type"))
    jwt.expired_token_loader(lambda _header, _data: _unauthorized("Token has expired"))
    jwt.revoked_token_loader(lambda _header, _data: _unauthorized("Token has been revoked"))
    jwt.user_lookup_error_loader(lambda _header, _data: _unauthorized("Session is no longer valid"))
    jwt.needs_fresh_token_loader(lambda _header, _data: _unauthorized("Fresh token required"))
    jwt.token_verification_failed_loader(
        lambda _header, _data: _unauthorized("Invalid token or wrong token type")
    )
