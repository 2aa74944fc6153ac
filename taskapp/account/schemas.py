"""Request and response schemas of the account routes."""

from marshmallow import Schema, fields

from taskapp.auth.schemas import NewPasswordField, UserSchema


class MeSchema(UserSchema):
    """The caller's own account."""

    role = fields.String(dump_only=True, metadata={"description": "user or admin"})


class PasswordChangeSchema(Schema):
    """POST /me/password body."""

    current_password = fields.String(required=True, load_only=True)
    new_password = NewPasswordField()


class PasswordConfirmSchema(Schema):
    """DELETE /me body: the password confirms the deletion."""

    password = fields.String(required=True, load_only=True)


class SessionSchema(Schema):
    """An active session (one login and its refresh-token family)."""

    id = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    last_used_at = fields.DateTime(dump_only=True)
    user_agent = fields.String(dump_only=True, allow_none=True)
    current = fields.Boolean(
        dump_only=True, metadata={"description": "true for the session of the calling token"}
    )


# Examples for the OpenAPI document (see taskapp/auth/schemas.py).
ME_EXAMPLE = {
    "id": 1,
    "email": "ada@example.com",
    "email_verified": True,
    "role": "user",
    "created_at": "2026-12-02T13:41:04+00:00",
}
PASSWORD_CHANGE_EXAMPLE = {
    "current_password": "correct horse battery",
    "new_password": "staple battery horse",
}
PASSWORD_CONFIRM_EXAMPLE = {"password": "correct horse battery"}
SESSIONS_EXAMPLE = [
    {
        "id": 3,
        "created_at": "2026-12-02T13:41:04+00:00",
        "last_used_at": "2026-12-05T08:12:40+00:00",
        "user_agent": "curl/8.5.0",
        "current": True,
    }
]
