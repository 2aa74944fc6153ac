"""Pages: the query and meta schemas, offset pagination, and keyset cursors."""

import base64
import binascii
import json
import math
import re

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import Select

from taskapp.extensions import db


class PageQuerySchema(Schema):
    """page and page_size, shared by every paginated list."""

    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=1_000_000_000),
        metadata={"description": "Page number, from 1"},
    )
    page_size = fields.Integer(
        load_default=10,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "Items per page, 1 to 100"},
    )


class PageMetaSchema(Schema):
    """The ``meta`` object of a page."""

    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True, metadata={"description": "Matching items in all"})
    pages = fields.Integer(required=True, metadata={"description": "Number of pages"})


class CursorPageMetaSchema(PageMetaSchema):
    """``meta`` of a list that can also be walked by keyset cursor."""

    page = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The page number; null when the page was asked by cursor"},
    )
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "Pass as `cursor` for the next page (same sort and order); "
            "null on the last page. Cost does not grow with depth, unlike `page`."
        },
    )


class CursorField(fields.String):
    """An opaque keyset cursor: base64url of JSON ``{"s": sort, "o": order, "k": [value, id]}``."""

    default_error_messages = {"invalid_cursor": "Not a cursor this API issued."}
    PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")  # unpadded base64url

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata = {"pattern": self.PATTERN.pattern, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.PATTERN.match(text):
            raise self.make_error("invalid_cursor")
        try:
            cursor = json.loads(base64.urlsafe_b64decode(text.encode("ascii") + b"=="))
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise self.make_error("invalid_cursor") from None
        valid = (
            isinstance(cursor, dict)
            and set(cursor) == {"s", "o", "k"}
            and isinstance(cursor["s"], str)
            and isinstance(cursor["o"], str)
            and isinstance(cursor["k"], list)
            and len(cursor["k"]) == 2
            and isinstance(cursor["k"][0], str)
            and type(cursor["k"][1]) is int
        )
        if not valid:
            raise self.make_error("invalid_cursor")
        return cursor


def encode_cursor(sort: str, order: str, value: str, row_id: int) -> str:
    """The cursor that resumes after the row whose sort value is ``value`` and id ``row_id``."""
    raw = json.dumps({"s": sort, "o": order, "k": [value, row_id]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def check_cursor(cursor: dict, *, sort: str, order: str) -> None:
    """A cursor continues the walk it came from: same sort and order, else 422."""
    if (cursor["s"], cursor["o"]) != (sort, order):
        raise ValidationError("This cursor belongs to another sort or order.", field_name="cursor")


def page_meta(*, page: int | None, page_size: int, total: int, next_cursor=None) -> dict:
    """The ``meta`` object of a page."""
    return {
        "page": page,
        "page_size": page_size,
        "total": total,
        "pages": math.ceil(total / page_size),
        "next_cursor": next_cursor,
    }


def paginate(query: Select, *, page: int, page_size: int) -> dict:
    """Run ``query`` for one page; a page past the end is empty with the true total."""
    result = db.paginate(query, page=page, per_page=page_size, max_per_page=100, error_out=False)
    return {
        "data": result.items,
        "meta": page_meta(page=page, page_size=page_size, total=result.total),
    }
