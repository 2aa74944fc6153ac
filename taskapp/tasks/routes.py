"""HTTP routes of the tasks blueprint: parse, call the service, respond."""

import hashlib
from datetime import UTC, datetime, timedelta

from flask import current_app, make_response, request, url_for
from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE
from werkzeug.http import quote_etag

from taskapp.api import ID, Blueprint, compose
from taskapp.idempotency import idempotent
from taskapp.security import authenticated, task_write_limited
from taskapp.tasks import bulk, queries, service, totals
from taskapp.tasks.schemas import (
    TASK_BULK_EXAMPLE,
    TASK_BULK_RESULT_EXAMPLE,
    TASK_CHANGES_EXAMPLE,
    TASK_EXAMPLE,
    TASK_MOVE_EXAMPLE,
    TASK_PAGE_EXAMPLE,
    TASK_PATCH_EXAMPLE,
    TASK_WRITE_EXAMPLE,
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
    view = blp.error(404, "`Task not found`: no such task of the caller's")(view)
    return blp.alt_response(412, response="PRECONDITION_FAILED")(view)


def conditional_write(schema, example: dict):
    """A write to one task answering it with its ETag: its body, If-Match, 200, 404, 412."""
    return compose(
        blp.arguments(schema, example=example),
        blp.header_parameter(IF_MATCH),
        blp.response(200, TaskSchema, headers=ETAG, example=TASK_EXAMPLE),
        item_write_errors,
    )


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


def list_etag(stamp: int | None = None) -> str:
    """The ETag of a list answer: the caller, their change stamp (read now unless given), and
    the URL asked."""
    if stamp is None:
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
    @blp.response(200, TaskPageSchema, headers=LIST_ETAG, example=TASK_PAGE_EXAMPLE)
    @conditional_list
    @blp.doc(operationId="list_tasks")
    def get(self, query):
        """List tasks: filter, search, sort and paginate

        All filters combine with each other, with `completed` and `search`, and with `page` or
        `cursor` (cursors work for every `sort`; see Pagination in docs/api.md). A page brings
        its tasks' labels with it. The answer's `ETag` with `If-None-Match` gives 304 while
        none of the caller's tasks changed.

        `meta.total` is exact either way, and its cost depends on the filters. Kept counts give
        it, whatever the number of matches, for no filter, a list or the inbox, `priority`
        alone (with or without `completed`), one `label` alone (without `completed`), and a due
        range (`due_after`, `due_before` or both) or `overdue=true` alone (with or without
        `completed`). Any other combination, or a `search`, counts the matching tasks, and its
        cost grows with their number. A client that pages by `cursor` and shows no total sends
        `include_total=false`: the page then costs its own rows only, however many tasks match
        (see docs/performance.md). 422 for an unknown parameter, a value out of range, or a
        cursor this API did not issue for this list.
        """
        # Only a conditional request reads the stamp first (a 304 then reads nothing else);
        # otherwise the page's statement brings it.
        if request.if_none_match and (answer := not_modified(list_etag())):
            return answer
        page, stamp = queries.list_tasks(current_user.id, **query)
        return page, {"ETag": quote_etag(list_etag(stamp))}

    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @blp.arguments(TaskCreateSchema, example=TASK_WRITE_EXAMPLE)
    @blp.response(201, TaskSchema, headers={**LOCATION, **ETAG}, example=TASK_EXAMPLE)
    @blp.error(404, "`list_id` or `parent_id` is not the caller's")
    @blp.error(
        409,
        "Conflict, nothing created: the user has MAX_TASKS_PER_USER tasks, new `labels` would "
        "pass LABELS_PER_USER, the user has IDEMPOTENCY_KEYS_PER_USER keys in use (the "
        "message names the limit); or a request with this Idempotency-Key is still in flight",
    )
    @blp.doc(operationId="create_task")
    def post(self, body):
        """Create a task

        Only `title` is required (trimmed, then 1 to 200 characters); every other field takes
        its default, and the task goes to the end of its list. `labels` names the caller's
        labels, new names making new labels. A subtask (`parent_id`) has a top-level task of
        the caller's as its parent (one level only) and is in its parent's list. Rules across
        rows that the data refuses (subtask depth, a subtask's list, a recurrence without a
        due date) answer 422 in the envelope with a `message` (no `errors` object).

        `recurrence` is evaluated in UTC from `due_at`: completing an open recurring task
        moves `due_at` to the next occurrence and leaves it open (`COUNT` counts the
        occurrences left, the current one included); completing the last one completes it.

        Task writes (create, replace, update, delete, move, bulk, and list and label writes)
        are limited per user, together (`RATELIMIT_TASK_WRITES`). With `Idempotency-Key` a
        retry replays the first answer (see Safe retries in docs/api.md).
        """
        task = service.create_task(current_user.id, fields=body)
        location = url_for("tasks.TaskItem", task_id=task["id"])
        return task, 201, {"Location": location, **etag_header(task)}


@blp.route("/tasks/changes")
class TaskChanges(MethodView):
    @authenticated(blp)
    @blp.doc(operationId="list_task_changes")
    @blp.arguments(TaskChangesQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, TaskChangesSchema, headers=LIST_ETAG, example=TASK_CHANGES_EXAMPLE)
    @conditional_list
    @blp.error(410, "The token is older than SYNC_RETENTION_DAYS: list everything again")
    def get(self, query):
        """Tasks changed and deleted since a sync token (incremental sync)

        `since` is the `sync_token` of the previous answer (without it: no changes, and a
        token for now); `limit` (1 to 500) bounds one answer, and `has_more` says to call
        again at once. A change may come twice: apply them by id. `If-None-Match` gives 304 as
        for `GET /tasks`; a token not issued here is a 422. How a client uses it: Incremental
        sync in docs/api.md.
        """
        etag = list_etag()
        return not_modified(etag) or (
            queries.list_task_changes(current_user.id, **query),
            {"ETag": quote_etag(etag)},
        )


NEW_LABELS_OVER_LIMIT = "New `labels` would pass LABELS_PER_USER (named in the message): no change"


@blp.route("/tasks/bulk")
class TaskBulk(MethodView):
    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @blp.arguments(TaskBulkSchema, example=TASK_BULK_EXAMPLE)
    @blp.response(200, TaskBulkResultSchema, example=TASK_BULK_RESULT_EXAMPLE)
    @blp.error(
        404, "An id is not the caller's task, or `list_id` not the caller's list: nothing changed"
    )
    @blp.error(
        409,
        "Conflict, nothing changed: `label` would pass LABELS_PER_USER, or put more than 20 "
        "labels on a task; the user has IDEMPOTENCY_KEYS_PER_USER keys in use (the message "
        "names the limit); or a request with this Idempotency-Key is still in flight",
    )
    @blp.doc(operationId="bulk_update_tasks")
    def post(self, body):
        """Complete, reopen, delete, move, label or unlabel up to 100 tasks, all or nothing

        `action` is one of `complete`, `reopen`, `delete`, `move` (needs `list_id`, null for
        the inbox: the tasks go to its end, in id order), `label`, `unlabel` (need `labels`, 1
        to 20 names; a task carries at most 20 labels); `ids` 1 to 100 task ids. The answer
        lists the ids of the tasks the action changed, ascending (so `complete` leaves out
        tasks already completed).
        `complete` moves recurring tasks to their next occurrence. A `move` of a subtask whose
        parent is not moved with it is a 422. The per-user counts, the ETags and the sync feed
        follow every action. Limited as a task write; `Idempotency-Key` as for `POST /tasks`.
        """
        return bulk.bulk_update(current_user.id, **body)


@blp.route(TASK_URL)
class TaskItem(MethodView):
    @authenticated(blp)
    @blp.header_parameter(IF_NONE_MATCH)
    @blp.response(200, TaskSchema, headers=ETAG, example=TASK_EXAMPLE)
    @blp.alt_response(304, description="Not Modified: If-None-Match matched", headers=ETAG)
    @blp.error(404, "`Task not found`: no such task of the caller's")
    @blp.doc(operationId="get_task")
    def get(self, task_id):
        """Get a task

        With its `ETag`; `If-None-Match` holding it gives 304 with the `ETag` and no body.
        """
        task = service.get_task(current_user.id, task_id)
        if request.if_none_match.contains_weak(task_etag(task)):
            # A response, not an error: no envelope, no body (Werkzeug drops it for a 304).
            response = make_response("", 304)
            response.set_etag(task_etag(task))
            return response
        return task, etag_header(task)

    @authenticated(blp)
    @task_write_limited(blp)
    @conditional_write(TaskPatchSchema, TASK_PATCH_EXAMPLE)
    @blp.error(409, NEW_LABELS_OVER_LIMIT)
    @blp.doc(operationId="update_task")
    def patch(self, body, task_id):
        """Update some fields of a task

        Any subset of the fields of `POST /tasks`, with the same rules. An empty object changes
        nothing and answers the task; so does one that changes nothing, keeping the `ETag`.
        Completing an open recurring task moves it to its next occurrence. With `If-Match`, the
        write happens only while the task still has that ETag (else 412). Each write is one
        conditional statement: there is no 409 for contention. Limited as a task write.
        """
        task = service.update_task(
            current_user.id, task_id, changes=body, expected=expected_versions(task_id)
        )
        return task, etag_header(task)

    @authenticated(blp)
    @task_write_limited(blp)
    @conditional_write(TaskCreateSchema, TASK_WRITE_EXAMPLE)
    @blp.error(409, NEW_LABELS_OVER_LIMIT)
    @blp.doc(operationId="replace_task")
    def put(self, body, task_id):
        """Replace a task (title required; omitted fields take their defaults)

        The body is a whole task as for `POST /tasks`; an omitted field takes its default
        (`description` and `due_at` null, `completed` false, `labels` [], `list_id` and
        `parent_id` null, `priority` "none", `recurrence` null). 404 also when `list_id` or
        `parent_id` is not the caller's. `If-Match` and limits as for `PATCH`.
        """
        task = service.update_task(
            current_user.id, task_id, changes=body, expected=expected_versions(task_id)
        )
        return task, etag_header(task)

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.header_parameter(IF_MATCH)
    @blp.response(204, description="Deleted, with its subtasks")
    @item_write_errors
    @blp.doc(operationId="delete_task")
    def delete(self, task_id):
        """Delete a task

        Its subtasks go with it. Repeated, it is a 404. `If-Match` and limits as for `PATCH`.
        """
        service.delete_task(current_user.id, task_id, expected=expected_versions(task_id))


@blp.route(TASK_URL + "/move")
class TaskMove(MethodView):
    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @conditional_write(TaskMoveSchema, TASK_MOVE_EXAMPLE)
    @blp.doc(operationId="move_task")
    def post(self, body, task_id):
        """Place a task after or before another (or at the end of a list)

        The manual order is `sort=position`. The task goes right after `after` or before
        `before` (not both); the target list is `list_id` if given (null: the inbox), else the
        list of `after`/`before`, else the task's own; with neither `after` nor `before` it
        goes to the end of the target list. A parent's subtasks follow it to another list. 404
        when the task, the list, or the `after`/`before` task is not the caller's; 422 for
        placing a task next to itself, next to a task of another list than `list_id`, or
        moving a subtask out of its parent's list. Concurrent moves and creates in one list
        never give two tasks one position. Other tasks keep their positions, except after many
        moves into one gap: then the tasks nearest it get new ones first, in the same order,
        each with a new `ETag` (see Manual order in docs/api.md). `If-Match` as for `PATCH`;
        `Idempotency-Key` as for `POST /tasks`.
        """
        task = service.move_task(
            current_user.id, task_id, **body, expected=expected_versions(task_id)
        )
        return task, etag_header(task)
