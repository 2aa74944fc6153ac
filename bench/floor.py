"""The floor of a list request on this stack: the real app plus one route that does only what
the contract requires of ``GET /tasks?page_size=20``, with nothing of the libraries between.

``GET /floor/tasks`` verifies the bearer token with PyJWT itself, looks up the session and reads
the first page with its kept total (the app's own two statements, compiled once at start-up) on
a raw psycopg2 connection from the app's pool, and writes the JSON with ``json.dumps``: no
flask-jwt-extended, SQLAlchemy execution, marshmallow, webargs or flask-smorest. Everything
else (the request hooks, the access line, gunicorn) is the real app's. ``bench/run.py --floor``
serves this module in place of ``wsgi.py``, checks that the route answers what
``/tasks?page_size=20`` answers, and measures it beside the real rows. Never part of the
product.
"""

import json
from datetime import UTC, datetime

import jwt
from flask import request

from taskapp import create_app
from taskapp.auth.service import _SESSION_USER
from taskapp.errors import Unauthorized
from taskapp.extensions import db
from taskapp.pagination import keyset_page
from taskapp.tasks.queries import TASK_LIST, page_statement
from taskapp.tasks.schemas import TaskSchema

PAGE_SIZE = 20
UNAUTHORIZED = "Token is missing or invalid"

app = create_app()
with app.app_context():
    # The app's own statements, compiled once to the driver's SQL: the same conditions and
    # plan as the real list, sent without SQLAlchemy's execution path.
    _dialect = db.engine.dialect
    SESSION_USER = _SESSION_USER.compile(dialect=_dialect)
    FIRST_PAGE = page_statement(
        "created_at", "desc", completed=None, searching=False, paging="offset"
    )[0].compile(dialect=_dialect)
FIELDS = tuple(TaskSchema().fields)


def floor_tasks():
    """The first page of the caller's tasks, as ``GET /tasks?page_size=20`` returns it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer":
        raise Unauthorized(UNAUTHORIZED)
    try:
        claims = jwt.decode(token, app.config["JWT_SECRET_KEY"], algorithms=["HS256"])
        user_id, session_id = int(claims["sub"]), int(claims["sid"])
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        raise Unauthorized(UNAUTHORIZED) from None
    if claims.get("type") != "access":
        raise Unauthorized(UNAUTHORIZED)
    connection = db.engine.raw_connection()
    try:
        connection.driver_connection.autocommit = True  # reset at check-in by taskapp.database
        with connection.cursor() as cursor:
            ids = {"user_id": user_id, "session_id": session_id, "now": datetime.now(UTC)}
            cursor.execute(SESSION_USER.string, {**SESSION_USER.params, **ids})
            if cursor.fetchone() is None:
                raise Unauthorized(UNAUTHORIZED)
            page = {**FIRST_PAGE.params, "user_id": user_id, "limit": PAGE_SIZE, "offset": 0}
            cursor.execute(FIRST_PAGE.string, page)
            names = [column.name for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
    data = [
        {
            name: value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
            for name, value in row.items()
            if name in FIELDS
        }
        for row in rows
    ]
    total = rows[0]["total"] if rows else 0
    page = keyset_page(
        TASK_LIST, rows, sort="created_at", order="desc", page=1, page_size=PAGE_SIZE, total=total
    )
    page["data"] = data
    return app.response_class(json.dumps(page), mimetype="application/json")


app.add_url_rule("/floor/tasks", view_func=floor_tasks)
