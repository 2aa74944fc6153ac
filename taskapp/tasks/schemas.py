"""Request and response schemas of the task routes."""

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from taskapp.pagination import PageMetaSchema, PageQuerySchema
from taskapp.schemas import (
    LABELS_PER_TASK,
    Id,
    QueryBoolean,
    QueryId,
    QueryInteger,
    StoredString,
    StrictBoolean,
    TrimmedString,
    trimmed_pattern,
)
from taskapp.tasks import recurrence

TITLE = {"validate": validate.Length(min=1, max=200)}
DESCRIPTION = {"allow_none": True, "validate": validate.Length(max=10_000)}
# Stored as 0 to 3, so that the priority sort is an index walk; named on the wire.
PRIORITIES = ("none", "low", "medium", "high")


class Priority(fields.String):
    """A priority name on the wire, its rank (0 to 3) in the database."""

    default_error_messages = {"not_a_priority": f"Must be one of: {', '.join(PRIORITIES)}."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata = {"enum": list(PRIORITIES), **self.metadata}

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else PRIORITIES[value]

    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        if name not in PRIORITIES:
            raise self.make_error("not_a_priority")
        return PRIORITIES.index(name)


class LabelName(TrimmedString):
    """A label name: 1 to 50 characters once trimmed, no control characters."""

    LENGTH = validate.Length(min=1, max=50)
    # The trimmed-string pattern with control characters refused inside as well as NUL.
    PATTERN = trimmed_pattern([LENGTH]).replace(r"\x00]", r"\x00-\x1f\x7f]")

    def __init__(self, **kwargs):
        super().__init__(validate=self.LENGTH, **kwargs)
        self.metadata = {**self.metadata, "pattern": self.PATTERN}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
            raise ValidationError("Must not contain control characters.")
        return text


def list_id_field(description: str = "The task's list; null: the inbox", **kwargs):
    """A list id in a body: an integer, or null for the inbox."""
    return Id(allow_none=True, metadata={"description": description}, **kwargs)


class Recurrence(StoredString):
    """An RRULE value (the subset in taskapp.tasks.recurrence), stored in capitals."""

    def __init__(self, **kwargs):
        super().__init__(
            allow_none=True,
            validate=validate.Length(min=1, max=255),
            metadata={
                "description": "An RFC 5545 RRULE value: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY), "
                "INTERVAL and COUNT (1 to 10000), BYDAY (ordinals 1 to 5 or -5 to -1 in MONTHLY, "
                "1 to 53 or -53 to -1 in YEARLY, none in DAILY and WEEKLY), BYMONTHDAY (1 to 31 "
                "or -31 to -1), UNTIL; ASCII digits only; or null. Needs due_at. Evaluated in "
                "UTC from due_at: completing the task moves due_at to the next occurrence and "
                "leaves it open (COUNT counts the occurrences left); the last one completes it. "
                "A rule is refused (422) when its next occurrence after due_at is not found "
                "within a fixed evaluation limit (taskapp.tasks.recurrence.BUDGET steps: a rule "
                "that never matches, or only years apart) or would pass the year 9999; a series "
                "whose next occurrence cannot be found so ends when completed.",
                "example": "FREQ=WEEKLY;BYDAY=MO,WE",
            },
            **kwargs,
        )

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return recurrence.format_rule(recurrence.parse(text))
        except ValueError as error:
            raise ValidationError(str(error)) from None


def parent_id_field(**kwargs) -> Id:
    """A parent task id in a body: an integer, or null for a top-level task."""
    return Id(
        allow_none=True,
        metadata={
            "description": "The parent of a subtask (one level only: a top-level task of the "
            "same user), or null. A subtask is in its parent's list."
        },
        **kwargs,
    )


class UTCInstant(fields.AwareDateTime):
    """A date-time with an offset, as the same instant in UTC (so within Python's years:
    "9999-12-31T23:00:00-05:00" is past them, a 422 rather than a 500)."""

    default_error_messages = {"out_of_range": "Must be an instant between the years 1 and 9999."}

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("out_of_range") from None


def due_at_field(**kwargs) -> fields.AwareDateTime:
    """A due date in a body: an RFC 3339 date-time with an offset, or null."""
    return UTCInstant(
        allow_none=True,
        metadata={"description": "RFC 3339 date-time with an offset; stored and returned in UTC"},
        **kwargs,
    )


def labels_field(**kwargs) -> fields.List:
    """The labels of a task in a body: names, compared case-insensitively."""
    kwargs.setdefault("validate", validate.Length(max=LABELS_PER_TASK))
    kwargs.setdefault(
        "metadata",
        {
            "description": "Label names (trimmed, 1 to 50 characters, at most 20, compared "
            "case-insensitively); unknown names are created. Replaces the task's labels."
        },
    )
    return fields.List(LabelName(), **kwargs)


class TaskSchema(Schema):
    """A task as returned by the API."""

    def get_attribute(self, obj, attr, default):
        # Tasks are dumped from plain dicts (the services' rows): a key is read directly, not
        # through marshmallow's general accessor (dotted paths, attributes), 14 times a task.
        if type(obj) is dict:
            return obj.get(attr, default)
        return super().get_attribute(obj, attr, default)

    id = fields.Integer(dump_only=True)
    title = fields.String(dump_only=True)
    description = fields.String(dump_only=True, allow_none=True)
    completed = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    list_id = fields.Integer(dump_only=True, allow_none=True)
    parent_id = fields.Integer(dump_only=True, allow_none=True)
    recurrence = fields.String(dump_only=True, allow_none=True)
    position = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "Opaque; lexicographic order is the manual order within the list "
            "(see POST /tasks/{task_id}/move)"
        },
    )
    due_at = fields.DateTime(dump_only=True, allow_none=True)
    priority = Priority(dump_only=True)
    labels = fields.List(fields.String(), dump_only=True, metadata={"description": "By name"})
    completed_at = fields.DateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "When it was completed; null while open"},
    )


class TaskCreateSchema(Schema):
    """POST /tasks and PUT /tasks/{id} body: a whole task (title required)."""

    title = TrimmedString(required=True, **TITLE)
    description = StoredString(load_default=None, **DESCRIPTION)
    completed = StrictBoolean(load_default=False)
    list_id = list_id_field(load_default=None)
    due_at = due_at_field(load_default=None)
    priority = Priority(load_default=0, metadata={"default": "none"})
    labels = labels_field(load_default=list)
    parent_id = parent_id_field(load_default=None)
    recurrence = Recurrence(load_default=None)

    @validates_schema
    def _recurrence_needs_a_due_date(self, data, **kwargs):
        if data.get("recurrence") and data.get("due_at") is None:
            raise ValidationError("A recurring task needs due_at.", field_name="recurrence")


class TaskPatchSchema(Schema):
    """PATCH /tasks/{id} body: any subset of the writable fields."""

    title = TrimmedString(**TITLE)
    description = StoredString(**DESCRIPTION)
    completed = StrictBoolean()
    list_id = list_id_field()
    due_at = due_at_field()
    priority = Priority()
    labels = labels_field()
    parent_id = parent_id_field()
    recurrence = Recurrence()


class NullableId(QueryId):
    """An id in a query string, or the word null."""

    def __init__(self, **kwargs):
        super().__init__(allow_none=True, **kwargs)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        return super().deserialize(None if value == "null" else value, attr, data, **kwargs)


class TaskQuerySchema(PageQuerySchema):
    """GET /tasks query string."""

    cursor_list = "tasks"

    completed = QueryBoolean(metadata={"description": "true or false; both when absent"})
    search = StoredString(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive substring of title or description"},
    )
    list_id = NullableId(metadata={"description": "Only the tasks of this list; `null`: the inbox"})
    parent_id = NullableId(
        metadata={"description": "Only the subtasks of this task; `null`: top-level tasks only"}
    )
    priority = fields.List(
        Priority(), metadata={"description": "Repeatable: tasks with any of these priorities"}
    )
    label = fields.List(
        LabelName(),
        validate=validate.Length(max=LABELS_PER_TASK),
        metadata={"description": "Repeatable: tasks with all of these labels"},
    )
    due_after = UTCInstant(
        metadata={"description": "Only tasks due at or after this instant (with an offset)"}
    )
    due_before = UTCInstant(
        metadata={"description": "Only tasks due strictly before this instant (with an offset)"}
    )
    overdue = QueryBoolean(
        metadata={"description": "true: open tasks due before now; false: all the others"}
    )
    sort = fields.String(
        load_default="created_at",
        validate=validate.OneOf(
            ["created_at", "updated_at", "title", "due_at", "priority", "position"]
        ),
        metadata={
            "description": "Ties are broken by id. due_at: tasks without a due date come "
            "last in both orders; priority: high is the greatest; position: the manual order "
            "(meant with list_id)"
        },
    )
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))
    include_total = QueryBoolean(
        load_default=True,
        metadata={
            "description": "false: the matches are not counted (meta.total and meta.pages are "
            "null), so a filtered or searched page costs its own rows only, however many "
            "tasks match: for a client that pages by cursor and shows no total"
        },
    )


class TaskMoveSchema(Schema):
    """POST /tasks/{id}/move body: where to place the task."""

    after = Id(metadata={"description": "Place it right after this task (of the target list)"})
    before = Id(metadata={"description": "Place it right before this task (of the target list)"})
    list_id = list_id_field(
        "The target list (null: the inbox); by default the list of `after` or `before`, else "
        "the task's own. Without `after` and `before`, the task goes to the end of it."
    )

    @validates_schema
    def _one_anchor(self, data, **kwargs):
        if "after" in data and "before" in data:
            raise ValidationError("Give after or before, not both.", field_name="before")


BULK_ACTIONS = ("complete", "reopen", "delete", "move", "label", "unlabel")
BULK_MAX = 100


class TaskBulkSchema(Schema):
    """POST /tasks/bulk body: one action on up to 100 of the caller's tasks."""

    action = fields.String(required=True, validate=validate.OneOf(BULK_ACTIONS))
    ids = fields.List(
        Id(),
        required=True,
        validate=validate.Length(min=1, max=BULK_MAX),
        metadata={"description": "The caller's task ids, 1 to 100"},
    )
    list_id = list_id_field("move: the target list (null: the inbox); the tasks go to its end")
    labels = labels_field(
        validate=validate.Length(min=1, max=LABELS_PER_TASK),
        metadata={"description": "label, unlabel: the label names to add or remove"},
    )

    @validates_schema
    def _arguments_of_the_action(self, data, **kwargs):
        action = data.get("action")
        if action == "move" and "list_id" not in data:
            raise ValidationError("move needs list_id.", field_name="list_id")
        if action in ("label", "unlabel") and "labels" not in data:
            raise ValidationError(f"{action} needs labels.", field_name="labels")


class TaskBulkResultSchema(Schema):
    """What a bulk action did."""

    action = fields.String(required=True)
    ids = fields.List(
        fields.Integer(),
        required=True,
        metadata={"description": "The tasks it changed, in ascending order"},
    )


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
    limit = QueryInteger(
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


# Examples for the OpenAPI document (see taskapp/auth/schemas.py).
TASK_WRITE_EXAMPLE = {
    "title": "Write the report",
    "description": "due Friday",
    "due_at": "2026-12-04T17:00:00+00:00",
    "priority": "high",
    "labels": ["work"],
}
TASK_EXAMPLE = {
    "id": 1,
    **TASK_WRITE_EXAMPLE,
    "completed": False,
    "created_at": "2026-12-02T13:41:04+00:00",
    "updated_at": "2026-12-02T13:41:04+00:00",
    "list_id": None,
    "parent_id": None,
    "recurrence": None,
    "completed_at": None,
    "position": "a0",
}
TASK_PATCH_EXAMPLE = {"completed": True}
TASK_MOVE_EXAMPLE = {"after": 2}
TASK_BULK_EXAMPLE = {"action": "label", "ids": [1, 2, 3], "labels": ["work"]}
TASK_BULK_RESULT_EXAMPLE = {"action": "label", "ids": [1, 3]}
PAGE_META_EXAMPLE = {"page": 1, "page_size": 10, "total": 1, "pages": 1, "next_cursor": None}
TASK_PAGE_EXAMPLE = {"data": [TASK_EXAMPLE], "meta": PAGE_META_EXAMPLE}
TASK_CHANGES_EXAMPLE = {
    "changed": [TASK_EXAMPLE],
    "deleted": [4],
    "sync_token": "MTcwMTUyMDQ2NDEyMzQ1Ng.c2lnbmF0dXJl",
    "has_more": False,
}
