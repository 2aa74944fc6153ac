"""HTTP routes of the account blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user, get_jwt

from taskapp.account import service
from taskapp.account.schemas import (
    ME_EXAMPLE,
    PASSWORD_CHANGE_EXAMPLE,
    PASSWORD_CONFIRM_EXAMPLE,
    SESSIONS_EXAMPLE,
    MeSchema,
    PasswordChangeSchema,
    PasswordConfirmSchema,
    SessionSchema,
)
from taskapp.api import BULK_WRITE, ID, Blueprint
from taskapp.auth.tokens import SESSION_CLAIM
from taskapp.security import authenticated, password_check_limited

blp = Blueprint("account", __name__, description="The signed-in user's account and sessions")

SESSION_URL = f"/sessions/<{ID}:session_id>"


@blp.route("/me")
class Me(MethodView):
    @authenticated(blp)
    @blp.response(200, MeSchema, example=ME_EXAMPLE)
    @blp.doc(operationId="get_me")
    def get(self):
        """Get the caller's account

        `role` is `user` or `admin`; `email_verified` is true once a link sent to the address
        was followed (verification, password reset or address change).
        """
        return current_user

    @authenticated(blp)
    @password_check_limited(blp)
    @blp.arguments(PasswordConfirmSchema, example=PASSWORD_CONFIRM_EXAMPLE)
    @blp.response(204, description="The user, every task and every session are gone")
    @blp.error(403, "`Password is incorrect`: nothing changes")
    @blp.error(409, "Conflict: the caller is the last active admin (nothing changes)")
    @blp.note(BULK_WRITE)
    @blp.doc(operationId="delete_me")
    def delete(self, body):
        """Delete the account with its tasks and sessions (password required)

        The body's `password` confirms it. The tokens stop working at once. Password checks are
        limited per client address (`RATELIMIT_PASSWORD_CHECK`) and per account, one count
        with `POST /login`'s per-email limit (`RATELIMIT_LOGIN_EMAIL`).
        """
        service.delete_account(current_user.id, password=body["password"])


@blp.route("/me/password")
class Password(MethodView):
    @authenticated(blp)
    @password_check_limited(blp)
    @blp.arguments(PasswordChangeSchema, example=PASSWORD_CHANGE_EXAMPLE)
    @blp.response(204, description="Changed: log in again with the new password")
    @blp.error(403, "`Password is incorrect`: nothing changes")
    @blp.doc(operationId="change_password")
    def post(self, body):
        """Change the password; every session, this one included, is revoked

        `new_password` follows the signup rules (8 to 72 bytes in UTF-8, no NUL). Every
        emailed link sent earlier (reset, verification, address change) stops working.
        Limited as `DELETE /me`.
        """
        service.change_password(current_user.id, **body)


# For clients and the fuzzer: the ids listed are the ones DELETE /sessions/{session_id} takes.
REVOKE_LINK = {
    "RevokeSession": {
        "operationRef": "#/paths/~1sessions~1{session_id}/delete",
        "parameters": {"session_id": "$response.body#/0/id"},
        "description": "Revoke a listed session (here the first)",
    }
}


@blp.route("/sessions")
class Sessions(MethodView):
    @authenticated(blp)
    @blp.response(200, SessionSchema(many=True), example=SESSIONS_EXAMPLE)
    @blp.doc(responses={200: {"links": REVOKE_LINK}})
    @blp.doc(operationId="list_sessions")
    def get(self):
        """List the caller's active sessions

        Unrevoked, unexpired sessions refreshed within `REFRESH_IDLE_DAYS`, newest first, as a
        JSON array: not paginated, as there are at most `SESSIONS_PER_USER` (50 by default; a login
        beyond revokes the oldest). `last_used_at` is the login or the last refresh;
        `user_agent` is the login's (up to 255 characters, or null); `current` is true for the
        session of the calling token.
        """
        return service.list_sessions(current_user.id, current_session_id=get_jwt()[SESSION_CLAIM])


@blp.route(SESSION_URL)
class SessionItem(MethodView):
    @authenticated(blp)
    @blp.response(204, description="Revoked, or already was")
    @blp.error(404, "`Session not found`: no such id, or another user's")
    @blp.doc(operationId="revoke_session")
    def delete(self, session_id):
        """Revoke one of the caller's sessions

        Its tokens stop working at once (the calling one too, if it is the current session).
        """
        service.revoke_session(current_user.id, session_id)


@blp.route("/logout-all")
class LogoutAll(MethodView):
    @authenticated(blp)
    @blp.response(204, description="Every session is revoked: log in again")
    @blp.doc(operationId="logout_all")
    def post(self):
        """Revoke every session of the caller

        This one included: every access and refresh token of the caller stops working, and
        so does every emailed link sent earlier (reset, verification, address change).
        """
        service.revoke_all_sessions(current_user.id)
