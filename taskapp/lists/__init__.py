"""Task lists: each user's named lists, in the user's order."""

from taskapp.lists.routes import blp

__all__ = ["blp"]
