"""Request and response schemas of the task routes."""

from marshmallow import Schema, fields, validate

from taskapp.pagination import PageMetaSchema, PageQuerySchema
from taskapp.schemas import QueryBoolean, StoredString, StrictBoolean, TrimmedString

TITLE = {"validate": validate.Length(min=1, max=200)}
DESCRIPTION = {"allow_none": True, "validate": validate.Length(max=10_000)}


class TaskSchema(Schema):
    """A task as returned by the API."""

    id = fields.Integer(dump_only=True)
    title = fields.String(dump_only=True)
    description = fields.String(dump_only=True, allow_none=True)
    completed = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class TaskCreateSchema(Schema):
    """POST /tasks and PUT /tasks/{id} body: a whole task (title required)."""

    title = TrimmedString(required=True, **TITLE)
    description = StoredString(load_default=None, **DESCRIPTION)
    completed = StrictBoolean(load_default=False)


class TaskPatchSchema(Schema):
    """PATCH /tasks/{id} body: any subset of the writable fields."""

    title = TrimmedString(**TITLE)
    description = StoredString(**DESCRIPTION)
    completed = StrictBoolean()


class TaskQuerySchema(PageQuerySchema):
    """GET /tasks query string."""

    cursor_list = "tasks"

    completed = QueryBoolean(metadata={"description": "true or false; both when absent"})
    search = StoredString(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive substring of title or description"},
    )
    sort = fields.String(
        load_default="created_at",
        validate=validate.OneOf(["created_at", "updated_at", "title"]),
    )
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))


class TaskPageSchema(Schema):
    """A page of tasks."""

    data = fields.List(fields.Nested(TaskSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


class TaskChangesQuerySchema(Schema):
    """GET /tasks/changes query string."""

    since = fields.String(
        validate=validate.Length(min=1, max=1000),
        metadata={
            "description": "sync_token of the previous answer; without it, no changes and a "
            "token for now (list GET /tasks first, then sync from that token)",
            "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
        },
    )
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=500),
        metadata={"description": "Changes per answer, 1 to 500"},
    )


class TaskChangesSchema(Schema):
    """What changed since a sync token."""

    changed = fields.List(
        fields.Nested(TaskSchema),
        required=True,
        metadata={"description": "Tasks created or changed, each as GET /tasks/{id} shows it now"},
    )
    deleted = fields.List(
        fields.Integer(), required=True, metadata={"description": "Ids of tasks deleted"}
    )
    sync_token = fields.String(required=True, metadata={"description": "Pass as `since` next time"})
    has_more = fields.Boolean(
        required=True, metadata={"description": "More changes wait: call again at once"}
    )
