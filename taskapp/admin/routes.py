"""HTTP routes of the admin blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE

from taskapp.admin import service
from taskapp.admin.schemas import (
    ADMIN_USER_EXAMPLE,
    ADMIN_USER_PAGE_EXAMPLE,
    ADMIN_USER_PATCH_EXAMPLE,
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
    @blp.response(200, AdminUserPageSchema, example=ADMIN_USER_PAGE_EXAMPLE)
    @blp.doc(operationId="list_users")
    def get(self, query):
        """List users, optionally searching by email

        For admins only (403 for others; the role is read with the session on every request).
        `search` is a case-insensitive substring of the email (`%` and `_` match literally);
        pages by `page` and `page_size`, or by `cursor`, always in id order (see Pagination
        in docs/api.md). 422 also for a cursor this API did not issue for this list.
        """
        return service.list_users(**query)


@blp.route(USER_URL)
class AdminUser(MethodView):
    @admin_required(blp)
    @blp.arguments(AdminUserPatchSchema, example=ADMIN_USER_PATCH_EXAMPLE)
    @blp.response(200, AdminUserSchema, example=ADMIN_USER_EXAMPLE)
    @blp.error(404, "`User not found`")
    @blp.error(409, "`The last active admin cannot be deactivated or demoted`")
    @blp.doc(operationId="update_user")
    def patch(self, body, user_id):
        """Activate, deactivate (revoking every session), promote or demote a user

        Any subset of `is_active` and `role`. Deactivating revokes every session of the user
        at once: their access tokens are refused on the next request, their refresh tokens
        are spent, every emailed link sent to them stops working, and they cannot log in
        (401). Reactivating lets them log in again; old sessions and links stay revoked. Two
        admins demoting each other at the same moment leave one admin, never none. A
        promotion or demotion applies to the user's next request.
        """
        return service.update_user(current_user.id, user_id, changes=body)
