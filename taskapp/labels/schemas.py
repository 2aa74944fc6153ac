"""Request and response schemas of the label routes."""

from marshmallow import Schema, fields

from taskapp.pagination import PageMetaSchema, WholeListQuerySchema
from taskapp.tasks.schemas import LabelName


class LabelSchema(Schema):
    """A label with the number of the user's tasks that carry it."""

    name = fields.String(dump_only=True)
    tasks = fields.Integer(dump_only=True, metadata={"description": "Tasks with this label"})


class LabelQuerySchema(WholeListQuerySchema):
    """GET /labels query string: a page, by name (case-insensitively)."""

    cursor_list = "labels"
    default_sort = "key"


class LabelPageSchema(Schema):
    """A page of the user's labels, by name (case-insensitively)."""

    data = fields.List(fields.Nested(LabelSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


class LabelRenameSchema(Schema):
    """PATCH /labels/{name} body."""

    name = LabelName(required=True, metadata={"description": "The new name"})


# Examples for the OpenAPI document (see taskapp/auth/schemas.py).
LABEL_RENAME_EXAMPLE = {"name": "office"}
LABEL_EXAMPLE = {"name": "work", "tasks": 12}
LABEL_PAGE_EXAMPLE = {
    "data": [{"name": "home", "tasks": 3}, LABEL_EXAMPLE],
    "meta": {"page": 1, "page_size": 100, "total": 2, "pages": 1, "next_cursor": None},
}
