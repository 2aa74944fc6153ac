"""Administration: listing users, activating, deactivating, promoting and demoting them."""

from taskapp.admin.routes import blp

__all__ = ["blp"]
