"""One way to paginate a query into ``{"data", "meta"}``."""

from marshmallow import Schema, fields, validate
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


def paginate(query: Select, *, page: int, page_size: int) -> dict:
    """Run ``query`` for one page; a page past the end is empty with the true total."""
    result = db.paginate(query, page=page, per_page=page_size, max_per_page=100, error_out=False)
    return {
        "data": result.items,
        "meta": {
            "page": page,
            "page_size": page_size,
            "total": result.total,
            "pages": result.pages,
        },
    }
