"""Tasks: each user's private to-do items."""

from taskapp.tasks.routes import blp

__all__ = ["blp"]
