"""HTTP routes of the labels blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user
from marshmallow import RAISE
from werkzeug.routing import PathConverter

from taskapp.api import BULK_WRITE, Blueprint, FieldConverter
from taskapp.labels import service
from taskapp.labels.schemas import (
    LABEL_EXAMPLE,
    LABEL_PAGE_EXAMPLE,
    LABEL_RENAME_EXAMPLE,
    LabelPageSchema,
    LabelQuerySchema,
    LabelRenameSchema,
    LabelSchema,
)
from taskapp.security import authenticated, task_write_limited
from taskapp.tasks.schemas import LabelName


class LabelNameConverter(FieldConverter):
    """A label name in a path, checked (and trimmed) as a task's labels are; the rest of the
    path, as a name may hold a slash."""

    regex = PathConverter.regex
    field = LabelName()


blp = Blueprint("labels", __name__, description="The caller's labels")
blp.path_converter("label_name", LabelNameConverter)

LABEL_URL = "/labels/<label_name:name>"


@blp.route("/labels")
class Labels(MethodView):
    @authenticated(blp)
    @blp.arguments(LabelQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, LabelPageSchema, example=LABEL_PAGE_EXAMPLE)
    @blp.doc(operationId="list_labels")
    def get(self, query):
        """List the caller's labels with their task counts, a page at a time

        Sorted case-insensitively, each with the number of the caller's tasks that carry it.
        Labels are made by naming them in a task's `labels`, at most `LABELS_PER_USER` (1000
        by default) per user; a label with no task left stays until deleted. Pages as every
        list does (`page` and `page_size`, or `cursor`: Pagination in docs/api.md), 100 labels
        to a page unless `page_size` says otherwise; `meta` tells whether there are more. 422
        also for a cursor this API did not issue for this list.
        """
        return service.list_labels(current_user.id, **query)


@blp.route(LABEL_URL)
class LabelItem(MethodView):
    @authenticated(blp)
    @task_write_limited(blp)
    @blp.arguments(LabelRenameSchema, example=LABEL_RENAME_EXAMPLE)
    @blp.response(200, LabelSchema, example=LABEL_EXAMPLE)
    @blp.error(404, "The caller has no such label")
    @blp.error(409, "Another label has the new name")
    @blp.note(BULK_WRITE)
    @blp.doc(operationId="rename_label")
    def patch(self, body, name):
        """Rename a label on every task (the name is matched case-insensitively)

        `{name}` may contain `/` (the rest of the path is the name); it is trimmed and checked
        as a task's `labels` are, and a name no label could have (a NUL or other control
        character, over 50 characters) is a 404. The new `name` follows the rules of a task's
        `labels`. The tasks that carry it get a new `ETag` and `updated_at`,
        and show in the changes feed. Limited as a task write (`RATELIMIT_TASK_WRITES`).
        """
        return service.rename_label(current_user.id, name, new_name=body["name"])

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.response(204, description="The label is gone from every task")
    @blp.error(404, "The caller has no such label")
    @blp.note(BULK_WRITE)
    @blp.doc(operationId="delete_label")
    def delete(self, name):
        """Delete a label: remove it from every task

        `{name}` as for `PATCH`. Its tasks change as for a rename. Limited as a task write
        (`RATELIMIT_TASK_WRITES`).
        """
        service.delete_label(current_user.id, name)
