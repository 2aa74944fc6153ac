"""WSGI entry point: ``gunicorn wsgi:app``, ``flask --app wsgi db upgrade``."""

from taskapp import create_app

app = create_app()
