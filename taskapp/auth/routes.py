"""HTTP routes of the auth blueprint: parse, call the service, respond."""

from flask import request
from flask.views import MethodView
from flask_jwt_extended.exceptions import NoAuthorizationError

from taskapp.api import Blueprint
from taskapp.auth import service
from taskapp.auth.schemas import (
    CREDENTIALS_EXAMPLE,
    REFRESH_TOKEN_EXAMPLE,
    TOKEN_PAIR_EXAMPLE,
    USER_EXAMPLE,
    LoginSchema,
    RefreshTokenSchema,
    SignupSchema,
    TokenPairSchema,
    UserSchema,
)
from taskapp.security import rate_limited

blp = Blueprint("auth", __name__, description="Sign up, log in, refresh and log out")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
NO_STORE_HEADERS = {
    "Cache-Control": {
        "description": "no-store: tokens are never cached",
        "schema": {"type": "string"},
    },
    "Pragma": {"description": "no-cache (for HTTP/1.0 caches)", "schema": {"type": "string"}},
}


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
    @blp.arguments(SignupSchema, example=CREDENTIALS_EXAMPLE)
    @blp.response(201, UserSchema, example=USER_EXAMPLE)
    @blp.error(
        409,
        "Conflict: `Email already registered`. The address's holder takes that account with "
        "`POST /password-reset`",
    )
    @blp.doc(operationId="signup")
    def post(self, body):
        """Create an account

        The email is normalised (trimmed, Unicode NFKC, lower-cased, the domain IDNA-encoded:
        see Conventions in docs/api.md) and must then be a valid address of at most 254
        characters, without quotes, backslashes, comments, encoded words (`=?...?=`) or an
        address literal (`[...]`): one mailbox has one spelling. The password is 8 to 72
        bytes in UTF-8 (bcrypt's limit), without NUL.
        A verification link is emailed to the address (see `POST /email/verify/confirm`).
        An address another account already uses is a 409, verified or not: if it is yours,
        reset the password (`POST /password-reset`), which gives you the account and retires
        every session and emailed link of whoever signed up with it.
        Rate-limited per client address (`RATELIMIT_SIGNUP`).
        """
        return service.create_user(email=body["email"], password=body["password"])


@blp.route("/login")
class Login(MethodView):
    @rate_limited(blp, "RATELIMIT_LOGIN", per_email="RATELIMIT_LOGIN_EMAIL", account_password=True)
    @blp.arguments(LoginSchema, example=CREDENTIALS_EXAMPLE)
    @blp.response(200, TokenPairSchema, example=TOKEN_PAIR_EXAMPLE, headers=NO_STORE_HEADERS)
    @blp.error(
        401,
        "`Invalid email or password`: the one answer for an unknown email, a wrong "
        "password and a deactivated account",
    )
    @blp.error(
        403,
        "REQUIRE_VERIFIED_EMAIL is on and the address is not verified yet"
        " (a new verification link is sent)",
    )
    @blp.doc(operationId="login")
    def post(self, body):
        """Log in: open a session and get a token pair

        The email is normalised as at signup. The access token goes in `Authorization: Bearer`
        on every authenticated route and lasts `expires_in` seconds (`ACCESS_TOKEN_MINUTES`);
        the refresh token renews the pair at `POST /refresh` for `REFRESH_TOKEN_DAYS`, while
        used at least every `REFRESH_IDLE_DAYS`. With `REQUIRE_VERIFIED_EMAIL=true`, a right
        password for an unverified address is a 403 and sends a new link (sessions opened
        before stay valid). A user keeps at most `SESSIONS_PER_USER` (50) sessions: a login
        beyond revokes the oldest ones (their tokens stop working at once). Rate-limited per
        client address (`RATELIMIT_LOGIN`) and per submitted email (`RATELIMIT_LOGIN_EMAIL`,
        one count with every check of the account's password).
        """
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
    @blp.arguments(RefreshTokenSchema, required=False, example=REFRESH_TOKEN_EXAMPLE)
    @blp.response(200, TokenPairSchema, example=TOKEN_PAIR_EXAMPLE, headers=NO_STORE_HEADERS)
    @blp.error(
        401,
        "The token is invalid, expired, revoked or already spent (then its whole "
        "session is revoked), or none was sent",
    )
    @blp.doc(security=[{}, {"bearerAuth": []}])
    @blp.doc(operationId="refresh")
    def post(self, body):
        """Rotate a refresh token: the presented one is spent, a new pair is returned

        The refresh token goes in the body as `refresh_token` or, with no body or an empty
        one, as `Authorization: Bearer <refresh token>`. The new pair belongs to the same
        session, with the same absolute expiry. Each refresh token works once: presenting a
        spent one again revokes its whole session. Rate-limited per client address
        (`RATELIMIT_REFRESH`).
        """
        pair = service.rotate_refresh_token(token=_presented_refresh_token(body))
        return pair, 200, NO_STORE


@blp.route("/logout")
class Logout(MethodView):
    @blp.arguments(RefreshTokenSchema, required=False, example=REFRESH_TOKEN_EXAMPLE)
    @blp.response(204, description="The session is revoked (or already was)")
    @blp.error(
        401,
        "Not a valid refresh token this API issued, or none was sent",
    )
    @blp.doc(security=[{}, {"bearerAuth": []}])
    @blp.doc(operationId="logout")
    def post(self, body):
        """Log out: revoke the session of a refresh token

        The token as for `POST /refresh` (body or Bearer). The session's refresh and access
        tokens stop working at once. Repeating it with the same token is harmless (204).
        """
        service.logout(token=_presented_refresh_token(body))
