"""Authentication: signup, login, token refresh and logout."""

from taskapp.auth.routes import blp

__all__ = ["blp"]
