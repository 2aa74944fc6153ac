"""HTTP routes of the recovery blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user

from taskapp.api import Blueprint, compose
from taskapp.extensions import api
from taskapp.recovery import service
from taskapp.recovery.schemas import (
    EMAIL_CHANGE_EXAMPLE,
    EMAIL_EXAMPLE,
    EMAIL_TOKEN_EXAMPLE,
    PASSWORD_RESET_CONFIRM_EXAMPLE,
    AcceptedSchema,
    EmailChangeSchema,
    EmailTokenSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
)
from taskapp.security import (
    authenticated,
    password_check_limited,
    rate_limited,
    submitted_email,
)

blp = Blueprint(
    "recovery",
    __name__,
    description="Password reset, address verification and address change, by emailed link",
)

SENT = {"message": "If the address has an account, a link is on its way"}
QUEUED = {"message": "A link is on its way"}
BAD_TOKEN = {
    "schema": api.ERROR_SCHEMA,
    "description": "Malformed body, or the token is invalid, expired, replaced or already used",
}
SEND_LIMITS = {"per_email": "RATELIMIT_EMAIL_SEND_TARGET"}


def spends_token(schema, example: dict, done: str):
    """The contract of a route that spends an emailed token: its limit, body, 204 and 400."""
    return compose(
        rate_limited(blp, "RATELIMIT_EMAIL_CONFIRM"),
        blp.arguments(schema, example=example),
        blp.response(204, description=done),
        blp.alt_response(400, **BAD_TOKEN),
    )


@blp.route("/password-reset")
class PasswordReset(MethodView):
    @rate_limited(blp, "RATELIMIT_EMAIL_SEND", **SEND_LIMITS)
    @blp.arguments(PasswordResetRequestSchema, example=EMAIL_EXAMPLE)
    @blp.response(202, AcceptedSchema, example=SENT)
    @blp.doc(operationId="request_password_reset")
    def post(self, body):
        """Email a password-reset link

        No token needed. The email is normalised as at signup. The same body and headers
        whether or not an active account uses the address (without one, the address gets a
        note saying so). The link (`PUBLIC_BASE_URL/reset-password?token=...`) lasts
        `PASSWORD_RESET_MINUTES`; a newer one replaces it. Limited per client address
        (`RATELIMIT_EMAIL_SEND`) and per address emailed (`RATELIMIT_EMAIL_SEND_TARGET`).
        """
        service.request_password_reset(email=body["email"])
        return SENT


@blp.route("/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    @spends_token(PasswordResetConfirmSchema, PASSWORD_RESET_CONFIRM_EXAMPLE, "The password is set")
    @blp.doc(operationId="reset_password")
    def post(self, body):
        """Set a new password with the emailed token; every session is revoked

        No access token needed. `new_password` follows the signup rules. Every session of the
        user is revoked (all their tokens stop working), so is every other emailed link (a
        pending address change included), the token is spent and the address counts as
        verified. A bad password, or a missing, empty or over-long token, is a 422
        and leaves the token usable. Limited per client address (`RATELIMIT_EMAIL_CONFIRM`).
        """
        service.reset_password(**body)


@blp.route("/email/verify/confirm")
class EmailVerifyConfirm(MethodView):
    @spends_token(EmailTokenSchema, EMAIL_TOKEN_EXAMPLE, "`email_verified` is now true")
    @blp.doc(operationId="confirm_email_verification")
    def post(self, body):
        """Verify the account's address with the emailed token

        No access token needed: the token comes from the link
        (`PUBLIC_BASE_URL/verify-email?token=...`), which lasts `EMAIL_TOKEN_HOURS`. The
        address is then proven: every other outstanding link of the account (a pending
        address change, a reset) stops working. Sessions and the password stay; the holder of
        an address someone else signed up with takes the account by a reset instead. Limited
        per client address (`RATELIMIT_EMAIL_CONFIRM`).
        """
        service.verify_email(token=body["token"])


@blp.route("/email/change/confirm")
class EmailChangeConfirm(MethodView):
    @spends_token(EmailTokenSchema, EMAIL_TOKEN_EXAMPLE, "The account has its new address")
    @blp.error(409, "`Email already registered`: another account took it meanwhile")
    @blp.doc(operationId="confirm_email_change")
    def post(self, body):
        """Move the account to its new address with the token emailed there

        No access token needed: the token comes from the link sent to the new address
        (`PUBLIC_BASE_URL/confirm-email?token=...`), which lasts `EMAIL_TOKEN_HOURS`. The new
        address counts as verified; every other outstanding link of the account stops
        working. Limited per client address (`RATELIMIT_EMAIL_CONFIRM`).
        """
        service.change_email(token=body["token"])


@blp.route("/me/email/verify")
class MyEmailVerify(MethodView):
    # The limits run after authentication (taskapp.api.LIMIT): target reads the caller.
    @authenticated(blp)
    @rate_limited(blp, "RATELIMIT_EMAIL_SEND", target=lambda: current_user.email, **SEND_LIMITS)
    @blp.response(202, AcceptedSchema, example=QUEUED)
    @blp.error(409, "`Email address is already verified`")
    @blp.doc(operationId="send_email_verification")
    def post(self):
        """Email a new verification link to the caller's address

        No body. Older verification links stop working. Limited per client address
        (`RATELIMIT_EMAIL_SEND`) and per address emailed (`RATELIMIT_EMAIL_SEND_TARGET`).
        """
        service.request_verification(current_user.id)
        return QUEUED


@blp.route("/me/email")
class MyEmail(MethodView):
    @authenticated(blp)
    @password_check_limited(blp)
    @rate_limited(
        blp, "RATELIMIT_EMAIL_SEND", target=lambda: submitted_email("new_email"), **SEND_LIMITS
    )
    @blp.arguments(EmailChangeSchema, example=EMAIL_CHANGE_EXAMPLE)
    @blp.response(202, AcceptedSchema, example=QUEUED)
    @blp.error(403, "`Password is incorrect`: nothing is sent")
    @blp.error(409, "`This is already the account's address`")
    @blp.doc(operationId="change_email")
    def post(self, body):
        """Change the address (password required)

        A confirmation link goes to the new address, a notice to the current one; nothing
        changes until the link is followed. `new_email` is normalised as at signup. The link
        lasts `EMAIL_TOKEN_HOURS` (see `POST /email/change/confirm`) and dies with the
        account's security state: a password change or reset, `POST /logout-all`, a
        deactivation or a verification before it is followed retires it. Password checks are
        limited as for `DELETE /me`, and sending as for `POST /me/email/verify` (per address
        emailed: the new one).
        """
        service.request_email_change(current_user.id, **body)
        return QUEUED
