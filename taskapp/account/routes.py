"""HTTP routes of the account blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user, get_jwt

from taskapp.account import service
from taskapp.account.schemas import (
    MeSchema,
    PasswordChangeSchema,
    PasswordConfirmSchema,
    SessionSchema,
)
from taskapp.api import BULK_WRITE, ID, Blueprint
from taskapp.auth.tokens import SESSION_CLAIM
from taskapp.extensions import api
from taskapp.security import authenticated, password_check_limited

blp = Blueprint("account", __name__, description="The signed-in user's account and sessions")

SESSION_URL = f"/sessions/<{ID}:session_id>"


@blp.route("/me")
class Me(MethodView):
    @authenticated(blp)
    @blp.response(200, MeSchema)
    @blp.doc(operationId="get_me")
    def get(self):
        """Get the caller's account"""
        return current_user

    @authenticated(blp)
    @password_check_limited(blp)
    @blp.arguments(PasswordConfirmSchema)
    @blp.response(204)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(
        409, schema=api.ERROR_SCHEMA, description="Conflict: the caller is the last active admin"
    )
    @blp.doc(operationId="delete_me", description=BULK_WRITE)
    def delete(self, body):
        """Delete the account with its tasks and sessions (password required)"""
        service.delete_account(current_user.id, password=body["password"])


@blp.route("/me/password")
class Password(MethodView):
    @authenticated(blp)
    @password_check_limited(blp)
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.doc(operationId="change_password")
    def post(self, body):
        """Change the password; every session, this one included, is revoked"""
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
    @blp.response(200, SessionSchema(many=True))
    @blp.doc(responses={200: {"links": REVOKE_LINK}})
    @blp.doc(operationId="list_sessions")
    def get(self):
        """List the caller's active sessions"""
        return service.list_sessions(current_user.id, current_session_id=get_jwt()[SESSION_CLAIM])


@blp.route(SESSION_URL)
class SessionItem(MethodView):
    @authenticated(blp)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="revoke_session")
    def delete(self, session_id):
        """Revoke one of the caller's sessions"""
        service.revoke_session(current_user.id, session_id)


@blp.route("/logout-all")
class LogoutAll(MethodView):
    @authenticated(blp)
    @blp.response(204)
    @blp.doc(operationId="logout_all")
    def post(self):
        """Revoke every session of the caller"""
        service.revoke_all_sessions(current_user.id)
