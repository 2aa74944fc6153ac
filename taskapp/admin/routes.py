"""HTTP routes of the admin blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE

from taskapp.admin import service
from taskapp.admin.schemas import (
    AdminUserPageSchema,
    AdminUserPatchSchema,
    AdminUserQuerySchema,
    AdminUserSchema,
)
from taskapp.api import ID, Blueprint
from taskapp.security import admin_required

blp = Blueprint("admin", __name__, description="User administration (admins only)")

USER_URL = f"/admin/users/<{ID}:user_id>"


@blp.route("/admin/users")
class AdminUsers(MethodView):
    @admin_required(blp)
    @blp.arguments(AdminUserQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, AdminUserPageSchema)
    @blp.doc(operationId="list_users")
    def get(self, query):
        """List users, optionally searching by email"""
        return service.list_users(**query)


@blp.route(USER_URL)
class AdminUser(MethodView):
    @admin_required(blp)
    @blp.arguments(AdminUserPatchSchema)
    @blp.response(200, AdminUserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="update_user")
    def patch(self, body, user_id):
        """Activate, deactivate (revoking every session), promote or demote a user"""
        return service.update_user(current_user.id, user_id, changes=body)
