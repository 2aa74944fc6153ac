"""The floor of a list request on this stack: the real app plus one route that does only what
the contract requires of ``GET /tasks?page_size=20``, with nothing of the libraries between.

``GET /floor/tasks`` verifies the bearer token with PyJWT itself, then sends the app's own
statements (compiled once at start-up) in one message on a raw psycopg2 connection from the
app's pool, as the real list does: the session check (migration 0010) and the first page with
its kept total and the change stamp. It writes the same JSON as the list (labels from the
row, priority names, ISO times) with ``json.dumps`` and the same ETag as ``GET
/tasks?page_size=20``: no flask-jwt-extended, SQLAlchemy execution, marshmallow, webargs or
flask-smorest. Everything else (the request hooks, the access line, the rate limiter's
middleware, gunicorn) is the real app's. ``bench/run.py --floor`` serves this module in place
of ``wsgi.py``, checks that the route answers what ``/tasks?page_size=20`` answers (body and
ETag), and measures it beside the real rows. Never part of the product.
"""

import hashlib
import json
from datetime import UTC, datetime

import jwt
import psycopg2
from flask import request
from werkzeug.http import quote_etag

from taskapp import create_app
from taskapp.auth.session_check import SESSION_GONE, SESSION_GONE_SQLSTATE
from taskapp.errors import Unauthorized
from taskapp.extensions import db
from taskapp.pagination import keyset_page
from taskapp.tasks.queries import TASK_LIST, page_statement
from taskapp.tasks.schemas import PRIORITIES, TaskSchema
from taskapp.tasks.totals import split_labels

PAGE_SIZE = 20
# The URL whose answer the floor gives: the ETag digests it.
LIST_URL = f"/tasks?page_size={PAGE_SIZE}"
UNAUTHORIZED = "Token is missing or invalid"

app = create_app()
with app.app_context():
    # The app's own statement, compiled once to the driver's SQL: the same conditions and plan
    # as the real list, sent without SQLAlchemy's execution path.
    FIRST_PAGE = page_statement(
        "created_at", "desc", completed=None, searching=False, paging="offset"
    )[0].compile(dialect=db.engine.dialect)
FIELDS = tuple(TaskSchema().fields)


def _field(name: str, row: dict):
    value = row[name] if name != "labels" else split_labels(row["label_names"])
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if name == "priority":
        return PRIORITIES[value]
    return value


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
            page = {**FIRST_PAGE.params, "user_id": user_id, "limit": PAGE_SIZE, "offset": 0}
            check = f"SELECT taskapp_check_session({user_id}, {session_id}); "
            try:
                cursor.execute(check + FIRST_PAGE.string, page)
            except psycopg2.Error as error:
                if error.pgcode == SESSION_GONE_SQLSTATE:
                    raise Unauthorized(SESSION_GONE) from None
                raise
            names = [column.name for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
    if not rows:
        raise NotImplementedError("the floor serves users with tasks")
    data = [{name: _field(name, row) for name in FIELDS} for row in rows]
    page = keyset_page(
        TASK_LIST,
        rows,
        sort="created_at",
        order="desc",
        page=1,
        page_size=PAGE_SIZE,
        total=rows[0]["total"],
    )
    page["data"] = data
    response = app.response_class(json.dumps(page), mimetype="application/json")
    seen = f"{user_id}:{rows[0]['stamp']}:{LIST_URL}"
    response.headers["ETag"] = quote_etag(hashlib.sha256(seen.encode()).hexdigest()[:32])
    return response


app.add_url_rule("/floor/tasks", view_func=floor_tasks)
