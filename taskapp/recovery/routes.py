"""HTTP routes of the recovery blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user

from taskapp.api import Blueprint
from taskapp.extensions import api
from taskapp.recovery import service
from taskapp.recovery.schemas import (
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


def spends_token(schema):
    """The contract of a route that spends an emailed token: its limit, body, 204 and 400."""
    decorators = (
        rate_limited(blp, "RATELIMIT_EMAIL_CONFIRM"),
        blp.arguments(schema),
        blp.response(204),
        blp.alt_response(400, **BAD_TOKEN),
    )

    def decorate(view):
        for decorator in reversed(decorators):
            view = decorator(view)
        return view

    return decorate


@blp.route("/password-reset")
class PasswordReset(MethodView):
    @rate_limited(blp, "RATELIMIT_EMAIL_SEND", **SEND_LIMITS)
    @blp.arguments(PasswordResetRequestSchema)
    @blp.response(202, AcceptedSchema)
    @blp.doc(operationId="request_password_reset")
    def post(self, body):
        """Email a password-reset link (the same answer whether or not the address has an
        account)"""
        service.request_password_reset(email=body["email"])
        return SENT


@blp.route("/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    @spends_token(PasswordResetConfirmSchema)
    @blp.doc(operationId="reset_password")
    def post(self, body):
        """Set a new password with the emailed token; every session is revoked"""
        service.reset_password(**body)


@blp.route("/email/verify/confirm")
class EmailVerifyConfirm(MethodView):
    @spends_token(EmailTokenSchema)
    @blp.doc(operationId="confirm_email_verification")
    def post(self, body):
        """Verify the account's address with the emailed token"""
        service.verify_email(token=body["token"])


@blp.route("/email/change/confirm")
class EmailChangeConfirm(MethodView):
    @spends_token(EmailTokenSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="confirm_email_change")
    def post(self, body):
        """Move the account to its new address with the token emailed there"""
        service.change_email(token=body["token"])


@blp.route("/me/email/verify")
class MyEmailVerify(MethodView):
    # Authenticated first, so the per-address limit can read the caller's address.
    @authenticated(blp)
    @rate_limited(blp, "RATELIMIT_EMAIL_SEND", target=lambda: current_user.email, **SEND_LIMITS)
    @blp.response(202, AcceptedSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="send_email_verification")
    def post(self):
        """Email a new verification link to the caller's address"""
        service.request_verification(current_user.id)
        return QUEUED


@blp.route("/me/email")
class MyEmail(MethodView):
    @authenticated(blp)
    @password_check_limited(blp)
    @rate_limited(
        blp, "RATELIMIT_EMAIL_SEND", target=lambda: submitted_email("new_email"), **SEND_LIMITS
    )
    @blp.arguments(EmailChangeSchema)
    @blp.response(202, AcceptedSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="change_email")
    def post(self, body):
        """Change the address: a confirmation link goes to the new one, a notice to the
        current one; nothing changes until the link is followed (password required)"""
        service.request_email_change(current_user.id, **body)
        return QUEUED
