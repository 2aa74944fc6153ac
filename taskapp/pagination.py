"""The one paginator: page query and meta schemas, offset pages, and signed keyset cursors."""

import base64
import hashlib
import hmac
import json
import math
import re
from datetime import datetime

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, select, tuple_

from taskapp.extensions import db
from taskapp.schemas import QueryInteger

_CURSOR_KEY_CONTEXT = b"taskapp keyset cursor v1"
# 128 bits of HMAC-SHA256: forging one cursor costs 2^128 guesses, each a request.
_SIGNATURE_BYTES = 16


class CursorField(fields.String):
    """An opaque keyset cursor this API issued (see encode_cursor); anything else is a 422.

    Only a cursor whose signature checks out is decoded at all, so no value a client made up
    (a key out of its column's range, a character the database cannot store) reaches a query.
    The list it belongs to is the ``cursor_list`` of the schema that holds the field.
    """

    default_error_messages = {"invalid_cursor": "Not a cursor this API issued."}
    PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,4000}\.[A-Za-z0-9_-]{22}$")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata = {"pattern": self.PATTERN.pattern, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        text = super()._deserialize(value, attr, data, **kwargs)
        cursor = decode_cursor(self.root.cursor_list, text) if self.PATTERN.match(text) else None
        if cursor is None:
            raise self.make_error("invalid_cursor")
        return cursor


class PageQuerySchema(Schema):
    """page and page_size, or a cursor: the query of every list.

    A subclass names its list (``cursor_list``) and, when it has no sort and order fields,
    the one order its list has (``default_sort``, ``default_order``).
    """

    cursor_list = ""
    default_sort = "id"
    default_order = "asc"

    page = QueryInteger(
        load_default=1,
        validate=validate.Range(min=1, max=1_000_000_000),
        metadata={"description": "Page number, from 1"},
    )
    page_size = QueryInteger(
        load_default=10,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "Items per page, 1 to 100"},
    )
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
        walk = (data.get("sort", self.default_sort), data.get("order", self.default_order))
        if (data["cursor"]["sort"], data["cursor"]["order"]) != walk:
            raise ValidationError(
                "This cursor belongs to another sort or order.", field_name="cursor"
            )


class WholeListQuerySchema(PageQuerySchema):
    """The page query of a list that was once returned whole: a page holds 100 items unless
    asked otherwise, so a client that never pages still gets all of a list within that."""

    page_size = QueryInteger(
        load_default=100,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "Items per page, 1 to 100 (100 by default)"},
    )


class PageMetaSchema(Schema):
    """The ``meta`` object of a page of any list."""

    page = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The page number; null when the page was asked by cursor"},
    )
    page_size = fields.Integer(required=True)
    total = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Matching items in all; null when not counted (include_total)"},
    )
    pages = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Number of pages; null when not counted (include_total)"},
    )
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "Pass as `cursor` for the next page (same sort and order); "
            "null on the last page. Cost does not grow with depth, unlike `page`."
        },
    )


def _cursor_key() -> bytes:
    """The cursors' signing key, derived from the app's secret (so shared by every worker)."""
    secret = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.new(secret, _CURSOR_KEY_CONTEXT, hashlib.sha256).digest()


def _signature(list_name: str, payload: str) -> str:
    mac = hmac.new(_cursor_key(), f"{list_name}:{payload}".encode(), hashlib.sha256)
    return _b64(mac.digest()[:_SIGNATURE_BYTES])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(list_name: str, *, sort: str, order: str, keys: list) -> str:
    """The signed cursor resuming ``list_name`` after the row whose sort keys are ``keys``
    (the sort column's value then the id, or the id alone); timestamps kept as ISO 8601."""
    values = [{"t": key.isoformat()} if isinstance(key, datetime) else key for key in keys]
    raw = json.dumps({"s": sort, "o": order, "k": values}, separators=(",", ":"))
    payload = _b64(raw.encode())
    return f"{payload}.{_signature(list_name, payload)}"


def decode_cursor(list_name: str, text: str) -> dict | None:
    """``{"sort", "order", "keys"}`` of a cursor encode_cursor made for ``list_name``, else None."""
    payload, _, signature = text.partition(".")
    if not hmac.compare_digest(signature, _signature(list_name, payload)):
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(payload + "=="))
        keys = [
            datetime.fromisoformat(key["t"]) if isinstance(key, dict) else key
            for key in cursor["k"]
        ]
        return {"sort": cursor["s"], "order": cursor["o"], "keys": keys}
    except (ValueError, KeyError, TypeError):
        return None  # signed, so never so; but a leaked key must not make it a 500


def after_keys(columns: list, keys: list, *, descending: bool):
    """The condition of the rows after ``keys`` in the order of ``columns`` (ascending, or
    descending): a row-value comparison, which the list index serves as one range."""
    after, bound = tuple_(*columns), tuple_(*keys)
    return after < bound if descending else after > bound


def page_of(
    list_name: str,
    query,
    *,
    columns: list,
    sort: str,
    page: int = 1,
    page_size: int = 10,
    cursor: dict | None = None,
    entities: bool = False,
) -> dict:
    """One page of ``query`` (a SELECT of the whole list) in the ascending order of
    ``columns`` (the ``sort`` column then the id, or the id alone), by offset (``page``) or
    after a cursor, with its total; rows as dicts, or as the ORM ``entities`` selected."""
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    if cursor is not None:
        query = query.where(after_keys(columns, cursor["keys"], descending=False))
    else:
        query = query.offset((page - 1) * page_size)
    query = query.order_by(*columns).limit(page_size)
    rows = (
        list(db.session.scalars(query))
        if entities
        else [row._asdict() for row in db.session.execute(query)]
    )
    return keyset_page(
        list_name,
        rows,
        sort=sort,
        order="asc",
        page=None if cursor is not None else page,
        page_size=page_size,
        total=total,
    )


def keyset_page(
    list_name: str,
    rows: list,
    *,
    sort: str,
    order: str,
    page: int | None,
    page_size: int,
    total: int | None,
) -> dict:
    """A page of ``rows`` (dicts or objects with ``sort`` and ``id``) with its meta; a full page
    offers the cursor of its last row. ``total`` None: not counted."""
    next_cursor = None
    if len(rows) == page_size:
        last = rows[-1] if isinstance(rows[-1], dict) else vars(rows[-1])
        keys = [last["id"]] if sort == "id" else [last[sort], last["id"]]
        next_cursor = encode_cursor(list_name, sort=sort, order=order, keys=keys)
    meta = page_meta(page=page, page_size=page_size, total=total, next_cursor=next_cursor)
    return {"data": rows, "meta": meta}


def page_meta(*, page: int | None, page_size: int, total: int | None, next_cursor=None) -> dict:
    """The ``meta`` object of a page (``total`` None: not counted, and no number of pages)."""
    return {
        "page": page,
        "page_size": page_size,
        "total": total,
        "pages": None if total is None else math.ceil(total / page_size),
        "next_cursor": next_cursor,
    }
