"""Account recovery and addresses by email: password reset, verification, address change."""

from taskapp.recovery.routes import blp

__all__ = ["blp"]
