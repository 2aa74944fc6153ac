"""The signed-in user's account: profile, password, sessions, deletion."""

from taskapp.account.routes import blp

__all__ = ["blp"]
