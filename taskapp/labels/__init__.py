"""Labels: the names a user tags tasks with, renamed or removed on every task at once."""

from taskapp.labels.routes import blp

__all__ = ["blp"]
