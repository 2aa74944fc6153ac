"""HTTP routes of the labels blueprint: parse, call the service, respond."""

from flask.views import MethodView
from flask_jwt_extended import current_user

from taskapp.api import BULK_WRITE, Blueprint
from taskapp.labels import service
from taskapp.labels.schemas import LabelPageSchema, LabelRenameSchema, LabelSchema
from taskapp.security import authenticated, task_write_limited

blp = Blueprint("labels", __name__, description="The caller's labels")

# A label name may hold a slash: the path converter takes the rest of the path.
LABEL_URL = "/labels/<path:name>"


@blp.route("/labels")
class Labels(MethodView):
    @authenticated(blp)
    @blp.response(200, LabelPageSchema)
    @blp.doc(operationId="list_labels")
    def get(self):
        """List the caller's labels with their task counts"""
        return service.list_labels(current_user.id)


@blp.route(LABEL_URL)
class LabelItem(MethodView):
    @authenticated(blp)
    @task_write_limited(blp)
    @blp.arguments(LabelRenameSchema)
    @blp.response(200, LabelSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="Another label has the new name")
    @blp.doc(operationId="rename_label", description=BULK_WRITE)
    def patch(self, body, name):
        """Rename a label on every task (the name is matched case-insensitively)"""
        return service.rename_label(current_user.id, name, new_name=body["name"])

    @authenticated(blp)
    @task_write_limited(blp)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="delete_label", description=BULK_WRITE)
    def delete(self, name):
        """Delete a label: remove it from every task"""
        service.delete_label(current_user.id, name)
