"""HTTP routes of the lists blueprint: parse, call the service, respond."""

from flask import current_app, url_for
from flask.views import MethodView
from flask_jwt_extended import current_user

from taskapp.api import BULK_WRITE, ID, Blueprint
from taskapp.idempotency import idempotent
from taskapp.lists import service
from taskapp.lists.schemas import ListPageSchema, ListSchema, ListWriteSchema
from taskapp.security import authenticated, task_write_limited

blp = Blueprint("lists", __name__, description="The caller's task lists")

LIST_URL = f"/lists/<{ID}:list_id>"
LOCATION = {"Location": {"description": "URL of the new list", "schema": {"type": "string"}}}


@blp.route("/lists")
class Lists(MethodView):
    @authenticated(blp)
    @blp.response(200, ListPageSchema)
    @blp.doc(operationId="list_lists")
    def get(self):
        """List the caller's lists, in their order"""
        return service.list_lists(current_user.id)

    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @blp.arguments(ListWriteSchema)
    @blp.response(201, ListSchema, headers=LOCATION)
    @blp.alt_response(
        409,
        response="CONFLICT",
        description="The name is taken, the user has LISTS_PER_USER lists, or a request with "
        "this Idempotency-Key is still in flight",
    )
    @blp.doc(operationId="create_list")
    def post(self, body):
        """Create a list (after the others)"""
        quota = current_app.config["LISTS_PER_USER"]
        created = service.create_list(current_user.id, name=body["name"], quota=quota)
        return created, 201, {"Location": url_for("lists.ListItem", list_id=created["id"])}


@blp.route(LIST_URL)
class ListItem(MethodView):
    @authenticated(blp)
    @blp.response(200, ListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_list")
    def get(self, list_id):
        """Get a list"""
        return service.get_list(current_user.id, list_id)

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.arguments(ListWriteSchema)
    @blp.response(200, ListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="The name is taken")
    @blp.doc(operationId="rename_list")
    def patch(self, body, list_id):
        """Rename a list"""
        return service.rename_list(current_user.id, list_id, name=body["name"])

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="delete_list", description=BULK_WRITE)
    def delete(self, list_id):
        """Delete a list and all its tasks, in one transaction"""
        service.delete_list(current_user.id, list_id)
