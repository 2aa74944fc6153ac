"""Request and response schemas of the list routes."""

from marshmallow import Schema, fields, validate

from taskapp.pagination import PageMetaSchema, WholeListQuerySchema
from taskapp.schemas import TrimmedString


class ListSchema(Schema):
    """A task list as returned by the API."""

    id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    position = fields.String(
        dump_only=True, metadata={"description": "Opaque; lexicographic order is the order"}
    )
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class ListWriteSchema(Schema):
    """POST /lists and PATCH /lists/{id} body."""

    name = TrimmedString(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Unique among the user's lists (409)"},
    )


class ListQuerySchema(WholeListQuerySchema):
    """GET /lists query string: a page, in the lists' order."""

    cursor_list = "lists"
    default_sort = "position"


class ListPageSchema(Schema):
    """A page of the user's lists, in their order."""

    data = fields.List(fields.Nested(ListSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


# Examples for the OpenAPI document (see taskapp/auth/schemas.py).
LIST_WRITE_EXAMPLE = {"name": "Work"}
LIST_EXAMPLE = {
    "id": 7,
    "name": "Work",
    "position": "a1",
    "created_at": "2026-12-02T13:41:04+00:00",
    "updated_at": "2026-12-02T13:41:04+00:00",
}
LIST_PAGE_EXAMPLE = {
    "data": [LIST_EXAMPLE],
    "meta": {"page": 1, "page_size": 100, "total": 1, "pages": 1, "next_cursor": None},
}
