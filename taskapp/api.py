"""flask-smorest, fitted to taskapp: the ``Api`` and ``Blueprint`` subclasses, the JSON-only
body parser, and the OpenAPI additions every route shares."""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

import flask_smorest
import marshmallow
from apispec import BasePlugin
from flask import request
from flask.views import MethodView
from marshmallow import RAISE, missing
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, UnsupportedMediaType
from werkzeug.routing import BaseConverter, ValidationError

from taskapp.schemas import MAX_ID, QueryId

# The path converter of ids (IdConverter), as rules name it: "/tasks/<id:task_id>".
ID = "id"

# Flask-Limiter sends these on every response of a limited route, about the limit the request
# was counted against: the one it exceeded, else the one with the shortest window.
RATE_LIMIT_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed in the window"),
        ("X-RateLimit-Remaining", "Requests left in the window, after this one"),
        ("X-RateLimit-Reset", "When the window next frees a request (Unix time)"),
        ("Retry-After", "Seconds until the window next frees a request"),
    )
}
# The description of the few writes that call taskapp.database.allow_long_statements.
BULK_WRITE = (
    "Its cost follows the number of tasks it touches, in one transaction: it runs under "
    "DB_BULK_STATEMENT_TIMEOUT_MS, past which it is a 503 that changes nothing (retrying "
    "will not help; see docs/performance.md)."
)
# A 422 lists what was wrong, never the whole request again: the errors object of a body with
# a thousand unknown fields, or one with a megabyte-long name, would be as large as the body.
MAX_ERROR_ENTRIES = 20
MAX_ERROR_TEXT = 100
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer"},
    }
}
# Where the Blueprint's documentation helpers (header_parameter, success_headers, note,
# unless_documented) leave what SharedResponsesPlugin adds to an operation: an extension key of
# the operation, merged by ``Blueprint.doc`` whatever the order of the decorators, and removed
# by the plugin, so it never reaches the document.
EXTRA_DOC = "x-taskapp-doc"
# The attribute under which Blueprint.guard declares the checks around a view (ours, not
# flask-smorest's: functools.wraps carries it up through every decorator, as it does theirs).
GUARDS = "taskapp_guards"
# Set on a view that reads a query schema (Blueprint.arguments), or that _query_checked
# wrapped: either way its query parameters are checked (functools.wraps carries it up).
QUERY_CHECKED = "taskapp_query_checked"


@dataclass(frozen=True)
class Guard:
    """A check around a view (``wrap``), run in ``rank`` order, lowest first, whatever the
    order of the decorators that declared it: see ``Blueprint.guard``."""

    rank: int
    wrap: Callable[[Callable], Callable]


# The one order of the checks around a view: the caller is known before a limit counts it
# (limits keyed by user), and a request is counted before its idempotency key is claimed.
AUTHENTICATE = 10
AUTHORISE = 20
LIMIT = 30
IDEMPOTENCY = 40


class FieldConverter(BaseConverter):
    """A path parameter checked as a body field is: ``field`` (a marshmallow field, set by
    the subclass) deserialises it, trimming included; a value it refuses matches no route (a
    404, before any view or query). The spec gets the field's pattern."""

    field: marshmallow.fields.Field

    def to_python(self, value: str):
        try:
            return self.field.deserialize(value)
        except marshmallow.ValidationError:
            raise ValidationError() from None


def _field_schema(converter: FieldConverter) -> dict:
    pattern = converter.field.metadata.get("pattern")
    return {"type": "string", **({"pattern": pattern} if pattern else {})}


class IdConverter(FieldConverter):
    """A row id in a path, in its one spelling, as in a query string (QueryId: ASCII digits
    without a leading zero, 1 to MAX_ID). Anything else (a sign, "01", another script's
    digits, a number past int4) matches no route: a 404 before any view or query (werkzeug's
    int takes "01" and "\u0663")."""

    regex = r"[1-9][0-9]{0,9}"  # what routing tries; QueryId decides
    weight = 50  # as werkzeug's numbers: tried before a string at the same place
    field = QueryId()

    def to_url(self, value) -> str:
        return str(int(value))


def _id_schema(_converter: IdConverter) -> dict:
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


class SharedResponsesPlugin(BasePlugin):
    """Documents what every route shares: 400/413/415 where a JSON body is read, 503 (with
    Retry-After) where the database is used, and the rate-limit headers on the success
    responses of every route that documents a 429; and adds what the Blueprint's helpers left
    under EXTRA_DOC: header parameters, notes, success headers, responses unless documented."""

    def __init__(self, *, without_database=("/healthz",)):
        self.without_database = without_database
        self.spec = None

    def init_spec(self, spec) -> None:
        self.spec = spec

    def _ref(self, name: str) -> dict:
        # Referencing one of flask-smorest's lazy responses registers it.
        return self.spec.components.get_ref("response", name)

    def operation_helper(self, path=None, operations=None, **_kwargs) -> None:
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            self._add_extra(operation, operation.pop(EXTRA_DOC, {}))
            if "requestBody" in operation:
                responses.setdefault("400", self._ref("BAD_REQUEST"))
                responses.setdefault("413", self._ref("REQUEST_ENTITY_TOO_LARGE"))
                responses.setdefault("415", self._ref("UNSUPPORTED_MEDIA_TYPE"))
            if path not in self.without_database:
                responses.setdefault("503", self._ref("SERVICE_UNAVAILABLE"))
                unavailable = self.spec.components.responses["SERVICE_UNAVAILABLE"]
                unavailable.setdefault("headers", {}).update(RETRY_AFTER)
            if "429" in map(str, responses):
                for code, response in responses.items():
                    if str(code).startswith("2"):
                        response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)

    def _add_extra(self, operation: dict, extra: dict) -> None:
        # Parameters in the order of their names, so the order of the decorators is not seen.
        for _name, parameter in sorted(extra.get("parameters", {}).items()):
            operation.setdefault("parameters", []).append(parameter)
        responses = operation["responses"]
        for code, name in extra.get("responses", {}).items():
            if not any(str(documented) == str(code) for documented in responses):
                responses[code] = self._ref(name)
        notes = sorted(extra.get("notes", {}))
        if notes:
            paragraphs = [operation.get("description", ""), *notes]
            operation["description"] = "\n\n".join(filter(None, paragraphs))
        headers = extra.get("success_headers", {})
        for code, response in responses.items():
            if headers and str(code).startswith("2"):
                response.setdefault("headers", {}).update(headers)


def bound_errors(errors) -> tuple[object, bool]:
    """``errors`` with at most MAX_ERROR_ENTRIES entries per object or list and every name and
    message cut to MAX_ERROR_TEXT characters; and whether entries were left out."""
    if isinstance(errors, str):
        return errors[:MAX_ERROR_TEXT], False
    if isinstance(errors, dict):
        entries = list(errors.items())
    elif isinstance(errors, list | tuple):
        entries = list(enumerate(errors))
    else:
        return errors, False
    cut = len(entries) > MAX_ERROR_ENTRIES
    bounded = {}
    for key, value in entries[:MAX_ERROR_ENTRIES]:
        bounded[key[:MAX_ERROR_TEXT] if isinstance(key, str) else key], inner = bound_errors(value)
        cut = cut or inner
    return (bounded if isinstance(errors, dict) else list(bounded.values())), cut


class Api(flask_smorest.Api):
    """flask-smorest's Api with a message on every error, errors bounded, 405's Allow header
    kept, the shared responses documented, and the path converters (IdConverter as ``id``,
    FieldConverter subclasses: Blueprint.path_converter) routed and documented."""

    def __init__(self, app=None, **kwargs):
        super().__init__(**kwargs)
        # Documented by class (its subclasses too): before any spec is made, so once.
        self.register_converter(IdConverter, _id_schema)
        self.register_converter(FieldConverter, _field_schema)
        if app is not None:
            self.init_app(app)

    def init_app(self, app, *, spec_kwargs=None):
        # Before any blueprint: a rule looks its converters up when it is added.
        app.url_map.converters[ID] = IdConverter
        # A plugin per spec: the unbound ``api`` is initialised once per app built.
        spec_kwargs = {**(spec_kwargs or {}), "extra_plugins": [SharedResponsesPlugin()]}
        super().init_app(app, spec_kwargs=spec_kwargs)

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description)
        if "errors" in payload:
            payload["errors"], cut = bound_errors(payload["errors"])
            if cut:
                payload["message"] += f" (at most {MAX_ERROR_ENTRIES} errors listed per object)"
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(sorted(error.valid_methods))}
        if code == 429:
            # Flask-Limiter adds Retry-After and X-RateLimit-* in after_request.
            payload["message"] = "Rate limit exceeded: " + error.description
        return payload, code, headers


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class DuplicateKey(ValueError):
    """A JSON object names a member twice (RFC 8259: its meaning is then undefined)."""


def _unique_members(pairs: list[tuple[str, object]]) -> dict:
    names = {name for name, _value in pairs}
    if len(names) != len(pairs):
        raise DuplicateKey("duplicate member name")
    return dict(pairs)


def decode_json(body: bytes):
    """A request body as JSON, as every reader of one decodes it: UTF-8 only (RFC 8259), no
    NaN or Infinity, no object naming a member twice (DuplicateKey, a ValueError: decoders
    disagree on which one counts, so a proxy or the limiter could read another value)."""
    return json.loads(
        body.decode(), parse_constant=_refuse_constant, object_pairs_hook=_unique_members
    )


class JSONBodyParser(FlaskParser):
    """webargs' parser, answering as malformed (400) any body the JSON decoder refuses, and
    refusing unknown query parameters (422) as unknown body fields are."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE}

    def load_json(self, req, schema):
        if not is_json_request(req):
            return missing
        body = req.get_data(cache=True)
        if not body:
            return missing  # as webargs: no body, not a malformed one
        try:
            return decode_json(body)
        except DuplicateKey:
            abort(400, messages={"json": ["Invalid JSON body: an object names a member twice."]})
        except (ValueError, RecursionError):
            # Malformed JSON, bad UTF-8, an integer of over 4,300 digits (a plain ValueError
            # from int()), NaN, nesting deeper than the decoder's stack: each of the last four
            # was a 500 any client could provoke.
            abort(400, messages={"json": ["Invalid JSON body."]})


def compose(*decorators: Callable) -> Callable:
    """One decorator applying ``decorators`` as if stacked in that order (the last first)."""
    return functools.reduce(lambda outer, inner: lambda view: outer(inner(view)), decorators)


def _mark_query_checked(view: Callable) -> Callable:
    setattr(view, QUERY_CHECKED, True)
    return view


def _query_checked(view: Callable) -> Callable:
    """``view``, refusing any query parameter (422, naming them) unless it reads a query
    schema (which refuses unknown ones itself: JSONBodyParser)."""
    if getattr(view, QUERY_CHECKED, False):
        return view

    @functools.wraps(view)
    def no_query(*args, **kwargs):
        if request.args:
            unknown = {name: ["Unknown field."] for name in request.args}
            abort(422, messages={"query": unknown})
        return view(*args, **kwargs)

    setattr(no_query, QUERY_CHECKED, True)
    return Blueprint.unless_documented(422, "UNPROCESSABLE_ENTITY")(no_query)


def _guarded(view: Callable) -> Callable:
    """``view`` inside the checks declared on it, in their rank order."""
    guards = getattr(view, GUARDS, ())
    for guard in sorted(guards, key=lambda guard: guard.rank, reverse=True):
        view = guard.wrap(view)
    if guards:
        setattr(view, GUARDS, ())  # applied: a second registration adds none again
    return view


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose bodies are read by JSONBodyParser (so 400, not 500), and
    must be JSON: 415 for a body of another type, or none where one is required; whose views
    run inside the checks declared with ``guard``; and which documents header parameters and
    response headers beside what flask-smorest infers, whatever the decorators' order."""

    ARGUMENTS_PARSER = JSONBodyParser()

    def add_url_rule(self, rule, endpoint=None, view_func=None, *args, **kwargs):
        if isinstance(view_func, type(MethodView)):
            for method in view_func.methods or ():
                name = method.lower()
                view = _guarded(_query_checked(getattr(view_func, name)))
                setattr(view_func, name, view)
        elif view_func is not None:
            view_func = _guarded(_query_checked(view_func))
        return super().add_url_rule(rule, endpoint, view_func, *args, **kwargs)

    def path_converter(self, name: str, converter: type[FieldConverter]) -> None:
        """Route ``converter`` as ``<name:...>`` on every app this blueprint is registered on:
        call it before the routes that use it (a rule looks its converters up when added)."""
        self.record_once(lambda state: state.app.url_map.converters.setdefault(name, converter))

    @staticmethod
    def guard(rank: int, wrap: Callable[[Callable], Callable]) -> Callable:
        """Declare a check around the view (``wrap``, a decorator), applied when the view is
        routed, outside every other decorator and in ``rank`` order among the checks (see
        AUTHENTICATE ... IDEMPOTENCY): so the order of the decorators does not matter."""

        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def declared(*args, **kwargs):
                return view(*args, **kwargs)

            setattr(declared, GUARDS, (*getattr(view, GUARDS, ()), Guard(rank, wrap)))
            return declared

        return decorator

    def arguments(self, schema, *, location="json", required=True, **kwargs):
        if isinstance(schema, type):
            # One instance for all requests: webargs would build one per request from a class.
            schema = schema()
        parse = super().arguments(schema, location=location, required=required, **kwargs)
        if location == "query":
            return compose(_mark_query_checked, parse)
        if location != "json":
            return parse

        def decorator(view):
            parsed = parse(view)

            # webargs reads a body that is not JSON as no body at all, so a form or a body
            # without a Content-Type would be taken for an empty object.
            @functools.wraps(parsed)
            def require_json(*args, **kwargs):
                carries_body = request.content_length or "Transfer-Encoding" in request.headers
                if not request.is_json and (required or carries_body):
                    raise UnsupportedMediaType("The request body must be JSON (application/json)")
                return parsed(*args, **kwargs)

            return require_json

        return decorator

    def error(self, status: int, description: str) -> Callable:
        """Document an error response of the view: the error envelope, with what it means
        here (``alt_response`` with the API's error schema)."""
        return self.alt_response(status, schema=Api.ERROR_SCHEMA, description=description)

    @classmethod
    def header_parameter(cls, parameter: dict) -> Callable:
        """Document a header the view reads itself (an OpenAPI parameter object), next to the
        parameters of ``arguments``: ``doc(parameters=...)`` would replace those."""
        return cls.doc(**{EXTRA_DOC: {"parameters": {parameter["name"]: parameter}}})

    @classmethod
    def success_headers(cls, headers: dict) -> Callable:
        """Document response headers on every success response of the view, whichever they
        are (``response`` or ``alt_response(..., success=True)``)."""
        return cls.doc(**{EXTRA_DOC: {"success_headers": headers}})

    @classmethod
    def note(cls, text: str) -> Callable:
        """Add a paragraph shared by several routes (such as BULK_WRITE) to the operation's
        description, after the one its docstring gives."""
        return cls.doc(**{EXTRA_DOC: {"notes": {text: text}}})

    @classmethod
    def unless_documented(cls, status: int, response: str) -> Callable:
        """Document ``status`` as the component ``response`` unless the view documents a
        response of its own for it (then that one names this case too)."""
        return cls.doc(**{EXTRA_DOC: {"responses": {status: response}}})
