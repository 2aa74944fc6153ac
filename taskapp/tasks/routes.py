"""HTTP routes of the tasks blueprint: parse, call the service, respond."""

from flask import url_for
from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE

from taskapp.errors import Blueprint
from taskapp.security import authenticated
from taskapp.tasks import service
from taskapp.tasks.schemas import (
    TaskCreateSchema,
    TaskPageSchema,
    TaskPatchSchema,
    TaskQuerySchema,
    TaskSchema,
)

blp = Blueprint("tasks", __name__, description="The caller's own tasks")

# Ids beyond int4 cannot exist: the converter answers 404 instead of an overflow.
TASK_URL = "/tasks/<int(max=2147483647):task_id>"


@blp.route("/tasks")
class TaskList(MethodView):
    @authenticated(blp)
    @blp.arguments(TaskQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, TaskPageSchema)
    def get(self, query):
        """List tasks: filter, search, sort and paginate"""
        return service.list_tasks(current_user.id, **query)

    @authenticated(blp)
    @blp.arguments(TaskCreateSchema)
    @blp.response(
        201,
        TaskSchema,
        headers={"Location": {"description": "URL of the new task", "schema": {"type": "string"}}},
    )
    def post(self, body):
        """Create a task"""
        task = service.create_task(current_user.id, fields=body)
        return task, 201, {"Location": url_for("tasks.TaskItem", task_id=task.id)}


@blp.route(TASK_URL)
class TaskItem(MethodView):
    @authenticated(blp)
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, task_id):
        """Get a task"""
        return service.get_task(current_user.id, task_id)

    @authenticated(blp)
    @blp.arguments(TaskPatchSchema)
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, body, task_id):
        """Update some fields of a task"""
        return service.update_task(current_user.id, task_id, changes=body)

    @authenticated(blp)
    @blp.arguments(TaskCreateSchema)
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, body, task_id):
        """Replace a task (title required; omitted fields take their defaults)"""
        return service.update_task(current_user.id, task_id, changes=body)

    @authenticated(blp)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, task_id):
        """Delete a task"""
        service.delete_task(current_user.id, task_id)
