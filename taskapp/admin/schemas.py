"""Request and response schemas of the admin routes."""

from marshmallow import Schema, fields, validate

from taskapp.auth.models import ROLES
from taskapp.pagination import PageMetaSchema, PageQuerySchema
from taskapp.schemas import StoredString, StrictBoolean


class AdminUserSchema(Schema):
    """A user as an administrator sees it."""

    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    email_verified = fields.Boolean(
        dump_only=True, metadata={"description": "true once a link sent to email was followed"}
    )
    role = fields.String(dump_only=True, metadata={"description": "user or admin"})
    is_active = fields.Boolean(
        dump_only=True, metadata={"description": "false: cannot log in, every session revoked"}
    )
    created_at = fields.DateTime(dump_only=True)


class AdminUserQuerySchema(PageQuerySchema):
    """GET /admin/users query string."""

    cursor_list = "admin-users"

    search = StoredString(
        validate=validate.Length(min=1, max=254),
        metadata={"description": "Case-insensitive substring of the email (% and _ literal)"},
    )


class AdminUserPatchSchema(Schema):
    """PATCH /admin/users/{id} body: any subset of these fields."""

    is_active = StrictBoolean(
        metadata={"description": "false revokes every session of the user at once"}
    )
    role = fields.String(validate=validate.OneOf(ROLES), metadata={"description": "user or admin"})


class AdminUserPageSchema(Schema):
    """A page of users."""

    data = fields.List(fields.Nested(AdminUserSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


# Examples for the OpenAPI document (see taskapp/auth/schemas.py).
ADMIN_USER_EXAMPLE = {
    "id": 7,
    "email": "bob@example.org",
    "email_verified": False,
    "role": "user",
    "is_active": True,
    "created_at": "2026-12-02T13:41:04+00:00",
}
ADMIN_USER_PATCH_EXAMPLE = {"is_active": False}
ADMIN_USER_PAGE_EXAMPLE = {
    "data": [ADMIN_USER_EXAMPLE],
    "meta": {"page": 1, "page_size": 10, "total": 1, "pages": 1, "next_cursor": None},
}
