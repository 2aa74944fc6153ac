"""The floor of a list request on this stack: the real app plus one route that does only what
the contract requires of ``GET /tasks?page_size=20``, with nothing of the libraries between.

``GET /floor/tasks`` verifies the bearer token with PyJWT itself, looks up the session and reads
the first page with its kept total as two hand-written statements on a raw psycopg2 connection
from the app's pool, and writes the JSON with ``json.dumps``: no flask-jwt-extended, SQLAlchemy
execution, marshmallow, webargs or flask-smorest. Everything else (the request hooks, the access
line, gunicorn) is the real app's. ``bench/run.py --floor`` serves this module in place of
``wsgi.py``, checks that the route answers what ``/tasks?page_size=20`` answers, and measures it
beside the real rows. Never part of the product.
"""

import json
import math
from datetime import UTC

import jwt
from flask import request

from taskapp import create_app
from taskapp.extensions import db
from taskapp.pagination import encode_cursor

PAGE_SIZE = 20
# The same conditions as taskapp.auth.service._SESSION_USER.
SESSION_USER = (
    "SELECT users.id, users.role FROM users JOIN sessions ON sessions.user_id = users.id "
    "WHERE users.id = %s AND users.is_active IS true AND sessions.id = %s "
    "AND sessions.revoked_at IS NULL AND sessions.expires_at > now()"
)
# The same plan as the default list of taskapp.tasks.service (newest first, id breaks ties).
FIRST_PAGE = (
    "SELECT id, title, description, completed, created_at, updated_at, "
    "coalesce((SELECT total FROM task_counts WHERE user_id = %s), 0) "
    "FROM tasks WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT %s"
)


def unauthorized():
    return {"code": 401, "status": "Unauthorized", "message": "Token is missing or invalid"}, 401


def floor_tasks():
    """The first page of the caller's tasks, as ``GET /tasks?page_size=20`` returns it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer":
        return unauthorized()
    try:
        claims = jwt.decode(token, app.config["JWT_SECRET_KEY"], algorithms=["HS256"])
        user_id, session_id = int(claims["sub"]), int(claims["sid"])
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        return unauthorized()
    if claims.get("type") != "access":
        return unauthorized()
    connection = db.engine.raw_connection()
    try:
        connection.driver_connection.autocommit = True  # reset at check-in by taskapp.database
        with connection.cursor() as cursor:
            cursor.execute(SESSION_USER, (user_id, session_id))
            if cursor.fetchone() is None:
                return unauthorized()
            cursor.execute(FIRST_PAGE, (user_id, user_id, PAGE_SIZE))
            rows = cursor.fetchall()
    finally:
        connection.close()
    data = [
        {
            "id": row[0],
            "title": row[1],
            "description": row[2],
            "completed": row[3],
            "created_at": row[4].astimezone(UTC).isoformat(),
            "updated_at": row[5].astimezone(UTC).isoformat(),
        }
        for row in rows
    ]
    total = rows[0][6] if rows else 0
    last = data[-1] if len(data) == PAGE_SIZE else None
    meta = {
        "page": 1,
        "page_size": PAGE_SIZE,
        "total": total,
        "pages": math.ceil(total / PAGE_SIZE),
        "next_cursor": last and encode_cursor("created_at", "desc", last["created_at"], last["id"]),
    }
    body = json.dumps({"data": data, "meta": meta})
    return app.response_class(body, mimetype="application/json")


app = create_app()
app.add_url_rule("/floor/tasks", view_func=floor_tasks)
