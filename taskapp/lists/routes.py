"""HTTP routes of the lists blueprint: parse, call the service, respond."""

from flask import url_for
from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE

from taskapp.api import BULK_WRITE, ID, Blueprint
from taskapp.idempotency import idempotent
from taskapp.lists import service
from taskapp.lists.schemas import (
    LIST_EXAMPLE,
    LIST_PAGE_EXAMPLE,
    LIST_WRITE_EXAMPLE,
    ListPageSchema,
    ListQuerySchema,
    ListSchema,
    ListWriteSchema,
)
from taskapp.security import authenticated, task_write_limited

blp = Blueprint("lists", __name__, description="The caller's task lists")

LIST_URL = f"/lists/<{ID}:list_id>"
LOCATION = {"Location": {"description": "URL of the new list", "schema": {"type": "string"}}}


@blp.route("/lists")
class Lists(MethodView):
    @authenticated(blp)
    @blp.arguments(ListQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, ListPageSchema, example=LIST_PAGE_EXAMPLE)
    @blp.doc(operationId="list_lists")
    def get(self, query):
        """List the caller's lists, in their order, a page at a time

        Pages as every list does (`page` and `page_size`, or `cursor`: Pagination in
        docs/api.md), 100 lists to a page unless `page_size` says otherwise, so all of them
        with the default `LISTS_PER_USER` (100); `meta` tells whether there are more. A list's
        `position` is opaque: lexicographic order is the lists' order. Tasks without a list are
        in the inbox (`list_id` null). 422 also for a cursor this API did not issue for this
        list.
        """
        return service.list_lists(current_user.id, **query)

    @authenticated(blp)
    @task_write_limited(blp)
    @idempotent(blp)
    @blp.arguments(ListWriteSchema, example=LIST_WRITE_EXAMPLE)
    @blp.response(201, ListSchema, headers=LOCATION, example=LIST_EXAMPLE)
    @blp.error(
        409,
        "The name is taken, the user has LISTS_PER_USER lists (the message names the limit), "
        "the user has IDEMPOTENCY_KEYS_PER_USER keys in use, or a request with this "
        "Idempotency-Key is still in flight",
    )
    @blp.doc(operationId="create_list")
    def post(self, body):
        """Create a list (after the others)

        `name` is trimmed, then 1 to 100 characters, unique among the caller's lists. Creating
        a list counts as a task write (`RATELIMIT_TASK_WRITES`). `Idempotency-Key` as for
        `POST /tasks`.
        """
        created = service.create_list(current_user.id, name=body["name"])
        return created, 201, {"Location": url_for("lists.ListItem", list_id=created["id"])}


@blp.route(LIST_URL)
class ListItem(MethodView):
    @authenticated(blp)
    @blp.response(200, ListSchema, example=LIST_EXAMPLE)
    @blp.error(404, "No such list of the caller's")
    @blp.doc(operationId="get_list")
    def get(self, list_id):
        """Get a list

        Its tasks are `GET /tasks?list_id=...`.
        """
        return service.get_list(current_user.id, list_id)

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.arguments(ListWriteSchema, example=LIST_WRITE_EXAMPLE)
    @blp.response(200, ListSchema, example=LIST_EXAMPLE)
    @blp.error(404, "No such list of the caller's")
    @blp.error(409, "The name is taken")
    @blp.doc(operationId="rename_list")
    def patch(self, body, list_id):
        """Rename a list

        `name` as for `POST /lists`. Limited as a task write (`RATELIMIT_TASK_WRITES`).
        """
        return service.rename_list(current_user.id, list_id, name=body["name"])

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.response(204, description="The list and its tasks are gone")
    @blp.error(404, "No such list of the caller's")
    @blp.note(BULK_WRITE)
    @blp.doc(operationId="delete_list")
    def delete(self, list_id):
        """Delete a list and all its tasks, in one transaction

        With their subtasks and label links. Limited as a task write (`RATELIMIT_TASK_WRITES`).
        """
        service.delete_list(current_user.id, list_id)
