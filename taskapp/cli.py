"""Flask CLI commands (``flask --app wsgi ...``)."""

from flask import Flask


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
