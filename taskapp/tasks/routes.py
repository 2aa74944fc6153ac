"""HTTP routes of the tasks blueprint: parse, call the service, respond."""

import hashlib
from datetime import UTC, datetime, timedelta

from flask import current_app, make_response, request, url_for
from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE
from werkzeug.http import quote_etag

from taskapp.api import ID, Blueprint
from taskapp.extensions import api
from taskapp.idempotency import idempotent
from taskapp.security import authenticated, task_write_limited
from taskapp.tasks import bulk, queries, service, totals
from taskapp.tasks.schemas import (
    TaskBulkResultSchema,
    TaskBulkSchema,
    TaskChangesQuerySchema,
    TaskChangesSchema,
    TaskCreateSchema,
    TaskMoveSchema,
    TaskPageSchema,
    TaskPatchSchema,
    TaskQuerySchema,
    TaskSchema,
)

blp = Blueprint("tasks", __name__, description="The caller's own tasks")

TASK_URL = f"/tasks/<{ID}:task_id>"

# Conditional requests are optional here (the contract: requests without If-Match behave as
# before), so flask-smorest's @blp.etag, which answers 428 to a write without If-Match, does
# not fit. Werkzeug parses the headers (request.if_match, request.if_none_match); the service
# sees only the versions a write expects. The headers are read as they come (a header schema
# would document a 422 that cannot happen).
IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "description": "ETags the client holds, or *: 304 Not Modified when one still matches "
    "(weak comparison)",
    "schema": {"type": "string"},
}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": "The task's ETag as last read (or a list of them, or *): the write happens "
    "only while the task still has it, else 412. Without it, the last write wins.",
    "schema": {"type": "string"},
}
ETAG = {
    "ETag": {
        "description": "The task's version, for If-Match and If-None-Match",
        "schema": {"type": "string"},
    }
}
LIST_IF_NONE_MATCH = {
    **IF_NONE_MATCH,
    "description": "The ETag of an earlier answer to the same URL, or *: 304 Not Modified "
    "while none of the caller's tasks has changed since (weak comparison)",
}
LIST_ETAG = {
    "ETag": {
        "description": "Changes whenever one of the caller's tasks does, for If-None-Match",
        "schema": {"type": "string"},
    }
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
LOCATION = {"Location": {"description": "URL of the new task", "schema": {"type": "string"}}}


def item_write_errors(view):
    """The errors of a write to one task: 404, and 412 (a stale If-Match)."""
    view = blp.alt_response(404, response="NOT_FOUND")(view)
    return blp.alt_response(412, response="PRECONDITION_FAILED")(view)


def conditional_write(schema):
    """A write to one task answering it with its ETag: its body, If-Match, 200, 404, 412."""

    def decorator(view):
        view = item_write_errors(view)
        view = blp.response(200, TaskSchema, headers=ETAG)(view)
        view = blp.doc(parameters=[IF_MATCH])(view)
        return blp.arguments(schema)(view)

    return decorator


def task_etag(task: dict) -> str:
    """The opaque part of a task's strong ETag: its id, its version, and its creation time
    (exact microseconds), which tells it from an earlier task that had its id."""
    micros = (task["created_at"] - EPOCH) // MICROSECOND
    return f"{task['id']}.{task['version']}.{micros}"


def expected_versions(task_id: int) -> list[service.Version] | None:
    """The versions of the task that the request's If-Match accepts: None without one (or with
    *), else those its strong tags of this task name (maybe none: then nothing matches)."""
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    versions = []
    for tag in request.if_match.as_set():  # strong tags only: If-Match compares strongly
        # Werkzeug reads an empty tag ("") as None: it names no version.
        parts = (tag or "").split(".")
        if len(parts) == 3 and all(part.isdecimal() for part in parts):
            tagged_id, number, micros = map(int, parts)
            if tagged_id == task_id:
                versions.append(service.Version(number, EPOCH + micros * MICROSECOND))
    return versions


def etag_header(task: dict) -> dict:
    """The ETag response header of a task."""
    return {"ETag": quote_etag(task_etag(task))}


def list_etag() -> str:
    """The ETag of a list answer: the caller, their change stamp, and the URL asked."""
    stamp = totals.change_stamp(current_user.id)
    seen = f"{current_user.id}:{stamp}:{request.full_path}"
    return hashlib.sha256(seen.encode()).hexdigest()[:32]


def not_modified(etag: str):
    """The 304 of a list whose If-None-Match still holds, else None (read the list)."""
    if not request.if_none_match.contains_weak(etag):
        return None
    response = current_app.response_class(status=304)
    response.set_etag(etag)
    return response


def conditional_list(view):
    """Documents If-None-Match, the list ETag and the 304 of a list view."""
    view = blp.header_parameter(LIST_IF_NONE_MATCH)(view)
    not_modified_doc = "Not Modified: If-None-Match matched"
    return blp.alt_response(304, description=not_modified_doc, headers=LIST_ETAG)(view)


@blp.route("/tasks")
class TaskCollection(MethodView):
    @authenticated(blp)
    @blp.arguments(TaskQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, TaskPageSchema, headers=LIST_ETAG)
    @conditional_list
    @blp.doc(operationId="list_tasks")
    def get(self, query):
        """List tasks: filter, search, sort and paginate"""
        etag = list_etag()
        return not_modified(etag) or (
            queries.list_tasks(current_user.id, **query),
            {"ETag": quote_etag(etag)},
        )

    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @blp.arguments(TaskCreateSchema)
    @blp.response(201, TaskSchema, headers={**LOCATION, **ETAG})
    @blp.alt_response(404, response="NOT_FOUND", description="The list or parent is not found")
    @blp.alt_response(
        409,
        schema=api.ERROR_SCHEMA,
        description="Conflict: the user has MAX_TASKS_PER_USER tasks, or a request with this "
        "Idempotency-Key is still in flight",
    )
    @blp.doc(operationId="create_task")
    def post(self, body):
        """Create a task"""
        task = service.create_task(current_user.id, fields=body)
        location = url_for("tasks.TaskItem", task_id=task["id"])
        return task, 201, {"Location": location, **etag_header(task)}


@blp.route("/tasks/changes")
class TaskChanges(MethodView):
    @authenticated(blp)
    @blp.doc(operationId="list_task_changes")
    @blp.arguments(TaskChangesQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, TaskChangesSchema, headers=LIST_ETAG)
    @conditional_list
    @blp.alt_response(
        410,
        schema=api.ERROR_SCHEMA,
        description="The token is older than SYNC_RETENTION_DAYS: list everything again",
    )
    def get(self, query):
        """Tasks changed and deleted since a sync token (incremental sync)"""
        etag = list_etag()
        return not_modified(etag) or (
            queries.list_task_changes(current_user.id, **query),
            {"ETag": quote_etag(etag)},
        )


@blp.route("/tasks/bulk")
class TaskBulk(MethodView):
    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @blp.arguments(TaskBulkSchema)
    @blp.response(200, TaskBulkResultSchema)
    @blp.alt_response(
        404, response="NOT_FOUND", description="An id is not the caller's: nothing changed"
    )
    @blp.doc(operationId="bulk_update_tasks")
    def post(self, body):
        """Complete, reopen, delete, move, label or unlabel up to 100 tasks, all or nothing"""
        return bulk.bulk_update(current_user.id, **body)


@blp.route(TASK_URL)
class TaskItem(MethodView):
    @authenticated(blp)
    @blp.doc(parameters=[IF_NONE_MATCH])
    @blp.response(200, TaskSchema, headers=ETAG)
    @blp.alt_response(304, description="Not Modified: If-None-Match matched", headers=ETAG)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_task")
    def get(self, task_id):
        """Get a task"""
        task = service.get_task(current_user.id, task_id)
        if request.if_none_match.contains_weak(task_etag(task)):
            # A response, not an error: no envelope, no body (Werkzeug drops it for a 304).
            response = make_response("", 304)
            response.set_etag(task_etag(task))
            return response
        return task, etag_header(task)

    @authenticated(blp)
    @task_write_limited(blp)
    @conditional_write(TaskPatchSchema)
    @blp.doc(operationId="update_task")
    def patch(self, body, task_id):
        """Update some fields of a task"""
        task = service.update_task(
            current_user.id, task_id, changes=body, expected=expected_versions(task_id)
        )
        return task, etag_header(task)

    @authenticated(blp)
    @task_write_limited(blp)
    @conditional_write(TaskCreateSchema)
    @blp.doc(operationId="replace_task")
    def put(self, body, task_id):
        """Replace a task (title required; omitted fields take their defaults)"""
        task = service.update_task(
            current_user.id, task_id, changes=body, expected=expected_versions(task_id)
        )
        return task, etag_header(task)

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(204)
    @item_write_errors
    @blp.doc(operationId="delete_task")
    def delete(self, task_id):
        """Delete a task"""
        service.delete_task(current_user.id, task_id, expected=expected_versions(task_id))


@blp.route(TASK_URL + "/move")
class TaskMove(MethodView):
    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @conditional_write(TaskMoveSchema)
    @blp.doc(operationId="move_task")
    def post(self, body, task_id):
        """Place a task after or before another (or at the end of a list), renumbering none"""
        task = service.move_task(
            current_user.id, task_id, **body, expected=expected_versions(task_id)
        )
        return task, etag_header(task)
