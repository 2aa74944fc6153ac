"""Request schemas of the recovery routes (their answers have no body)."""

from marshmallow import Schema, fields, validate

from taskapp.auth.schemas import EmailField, NewPasswordField
from taskapp.schemas import StoredString

EMAIL_RULES = {"validate": [validate.Length(max=254), validate.Email()]}


class TokenField(StoredString):
    """A token from an emailed link (43 URL-safe characters as issued)."""

    def __init__(self, **kwargs):
        super().__init__(
            required=True,
            validate=validate.Length(min=1, max=128),
            metadata={"description": "The token parameter of the emailed link"},
            **kwargs,
        )


class PasswordResetRequestSchema(Schema):
    """POST /password-reset body."""

    email = EmailField(required=True, metadata={"format": "email"}, **EMAIL_RULES)


class PasswordResetConfirmSchema(Schema):
    """POST /password-reset/confirm body."""

    token = TokenField()
    new_password = NewPasswordField()


class EmailTokenSchema(Schema):
    """POST /email/verify/confirm and /email/change/confirm body."""

    token = TokenField()


class EmailChangeSchema(Schema):
    """POST /me/email body: the new address, and the current password."""

    new_email = EmailField(required=True, metadata={"format": "email"}, **EMAIL_RULES)
    password = fields.String(required=True, load_only=True)


class AcceptedSchema(Schema):
    """The answer of a request that sends mail: the same whatever the address."""

    message = fields.String(
        required=True,
        metadata={"example": "If the address has an account, a link is on its way"},
    )


# Examples for the OpenAPI document (see taskapp/auth/schemas.py).
TOKEN_EXAMPLE = "Xq3v2o1mJt8cQ4pZ7rKd5sWb9yLh0gFe6uNa2iVc3kM"
EMAIL_EXAMPLE = {"email": "ada@example.com"}
EMAIL_TOKEN_EXAMPLE = {"token": TOKEN_EXAMPLE}
PASSWORD_RESET_CONFIRM_EXAMPLE = {"token": TOKEN_EXAMPLE, "new_password": "staple battery horse"}
EMAIL_CHANGE_EXAMPLE = {"new_email": "ada@example.org", "password": "correct horse battery"}
