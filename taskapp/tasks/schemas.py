"""Request and response schemas of the task routes."""

from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from taskapp.pagination import CursorField, CursorPageMetaSchema, PageQuerySchema, check_cursor
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
    cursor = CursorField(
        metadata={
            "description": "meta.next_cursor of the previous page: continues the walk by "
            "keyset, at the same cost at any depth. Not with `page`."
        }
    )

    @validates_schema(pass_original=True)
    def _cursor_continues_its_walk(self, data, original, **kwargs):
        if "cursor" not in data:
            return
        if "page" in original:
            raise ValidationError("Give either page or cursor, not both.", field_name="cursor")
        check_cursor(data["cursor"], sort=data["sort"], order=data["order"])

    @post_load
    def _cursor_value_as_column_type(self, data, **kwargs):
        """A timestamp cursor's value as an aware datetime, as the column holds it."""
        if "cursor" in data and data["sort"] != "title":
            text = data["cursor"]["k"][0]
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValidationError("Not a cursor this API issued.", "cursor") from None
            data["cursor"]["k"][0] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return data


class TaskPageSchema(Schema):
    """A page of tasks."""

    data = fields.List(fields.Nested(TaskSchema), required=True)
    meta = fields.Nested(CursorPageMetaSchema, required=True)


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
