"""HTTP routes of the auth blueprint: parse, call the service, respond."""

from flask import request
from flask.views import MethodView
from flask_jwt_extended.exceptions import NoAuthorizationError

from taskapp.api import Blueprint
from taskapp.auth import service
from taskapp.auth.schemas import (
    LoginSchema,
    RefreshTokenSchema,
    SignupSchema,
    TokenPairSchema,
    UserSchema,
)
from taskapp.extensions import api
from taskapp.security import rate_limited

blp = Blueprint("auth", __name__, description="Sign up, log in, refresh and log out")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _presented_refresh_token(body: dict) -> str:
    """The refresh token from the JSON body, else from ``Authorization: Bearer``."""
    if body.get("refresh_token"):
        return body["refresh_token"]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NoAuthorizationError("No refresh token")
    return token.strip()


@blp.route("/signup")
class Signup(MethodView):
    @rate_limited(blp, "RATELIMIT_SIGNUP")
    @blp.arguments(SignupSchema)
    @blp.response(201, UserSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="signup")
    def post(self, body):
        """Create an account"""
        return service.create_user(email=body["email"], password=body["password"])


@blp.route("/login")
class Login(MethodView):
    @rate_limited(blp, "RATELIMIT_LOGIN", per_email="RATELIMIT_LOGIN_EMAIL", account_password=True)
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(
        403,
        schema=api.ERROR_SCHEMA,
        description="REQUIRE_VERIFIED_EMAIL is on and the address is not verified yet"
        " (a new verification link is sent)",
    )
    @blp.doc(operationId="login")
    def post(self, body):
        """Log in: open a session and get a token pair"""
        pair = service.login(
            email=body["email"],
            password=body["password"],
            user_agent=request.user_agent.string,
            ip_address=request.remote_addr,
        )
        return pair, 200, NO_STORE


@blp.route("/refresh")
class Refresh(MethodView):
    @rate_limited(blp, "RATELIMIT_REFRESH")
    @blp.arguments(RefreshTokenSchema, required=False)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.doc(security=[{}, {"bearerAuth": []}])
    @blp.doc(operationId="refresh")
    def post(self, body):
        """Rotate a refresh token: the presented one is spent, a new pair is returned"""
        pair = service.rotate_refresh_token(token=_presented_refresh_token(body))
        return pair, 200, NO_STORE


@blp.route("/logout")
class Logout(MethodView):
    @blp.arguments(RefreshTokenSchema, required=False)
    @blp.response(204)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.doc(security=[{}, {"bearerAuth": []}])
    @blp.doc(operationId="logout")
    def post(self, body):
        """Log out: revoke the session of a refresh token"""
        service.logout(token=_presented_refresh_token(body))
