"""Request and response schemas of the auth routes."""

from marshmallow import Schema, ValidationError, fields, validate

from taskapp.auth.passwords import MAX_PASSWORD_BYTES
from taskapp.emails import InvalidEmail, normalise_email
from taskapp.schemas import StoredString, TrimmedString

MIN_PASSWORD_BYTES = 8


def validate_password_length(password: str) -> None:
    """8 to 72 UTF-8 bytes: bcrypt's limit, never silently truncated."""
    size = len(password.encode())
    if not MIN_PASSWORD_BYTES <= size <= MAX_PASSWORD_BYTES:
        raise ValidationError(
            f"Password must be {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes in UTF-8."
        )


# JSON Schema counts characters, not bytes, so the rule is the format's (what the description
# says); maxLength is the bound in characters it implies.
NEW_PASSWORD_METADATA = {
    "description": "8 to 72 bytes in UTF-8 (bcrypt's limit: a character takes 1 to 4), no NUL",
    "format": "password",
    "maxLength": MAX_PASSWORD_BYTES,
}


class NewPasswordField(StoredString):
    """A password to hash: 8 to 72 UTF-8 bytes, storable (bcrypt cannot take a lone surrogate,
    and NULs would weaken the key)."""

    def __init__(self, **kwargs):
        super().__init__(
            required=True,
            load_only=True,
            validate=validate_password_length,
            metadata=NEW_PASSWORD_METADATA,
            **kwargs,
        )


class EmailField(TrimmedString):
    """An email address in its stored spelling (``normalise_email``); invisible or control
    characters are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            email = normalise_email(super()._deserialize(value, attr, data, **kwargs))
        except InvalidEmail as error:
            raise ValidationError(str(error)) from None
        # Again once normalised: NFKC and IDNA can lengthen it past what the column holds.
        for check in self.lengths:
            check(email)
        return email


class SignupSchema(Schema):
    """POST /signup body."""

    email = EmailField(
        required=True,
        validate=[validate.Length(max=254), validate.Email()],
        metadata={"format": "email"},
    )
    password = NewPasswordField()


class LoginSchema(Schema):
    """POST /login body; any failure to match is one uniform 401."""

    # format: as signup stores it. Invisible or control characters, which no stored email
    # has, are a 422 here too (what a JSON Schema pattern cannot state by Unicode category).
    email = EmailField(
        required=True, validate=validate.Length(max=254), metadata={"format": "email"}
    )
    password = fields.String(required=True, load_only=True)


class RefreshTokenSchema(Schema):
    """POST /refresh and /logout body: the token here or as the Bearer credential."""

    refresh_token = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=4096),
        metadata={"description": "The refresh token; may instead be sent as Bearer"},
    )


class UserSchema(Schema):
    """A user as the user sees it."""

    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    email_verified = fields.Boolean(
        dump_only=True, metadata={"description": "true once a link sent to email was followed"}
    )
    created_at = fields.DateTime(dump_only=True)


class TokenPairSchema(Schema):
    """An access token and the refresh token that renews it."""

    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(
        required=True, metadata={"description": "Access token lifetime in seconds"}
    )


# Examples for the OpenAPI document: valid against their schemas (tests/test_docs_contract.py);
# schemathesis sends the request ones.
CREDENTIALS_EXAMPLE = {"email": "ada@example.com", "password": "correct horse battery"}
USER_EXAMPLE = {
    "id": 1,
    "email": "ada@example.com",
    "email_verified": False,
    "created_at": "2026-12-02T13:41:04+00:00",
}
TOKEN_PAIR_EXAMPLE = {
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "refresh_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwidHlwZSI6InJlZnJlc2gifQ.c2ln",
    "token_type": "bearer",
    "expires_in": 900,
}
REFRESH_TOKEN_EXAMPLE = {"refresh_token": TOKEN_PAIR_EXAMPLE["refresh_token"]}
