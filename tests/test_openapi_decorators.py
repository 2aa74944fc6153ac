"""The route decorators say the same whatever their order: the checks around a view run in one
order, the document is the same, and no module of taskapp reaches into flask-smorest's private
``_apidoc``."""

import functools
import json
import re
from itertools import permutations

import pytest
from flask import Flask, Response
from flask.views import MethodView

from conftest import PROJECT
from taskapp.api import (
    AUTHENTICATE,
    IDEMPOTENCY,
    LIMIT,
    Api,
    Blueprint,
    compose,
)
from taskapp.idempotency import idempotent
from taskapp.lists.schemas import ListSchema, ListWriteSchema
from taskapp.security import admin_required, authenticated, task_write_limited

HEADER = {"in": "header", "name": "X-Probe", "required": False, "schema": {"type": "string"}}
PRIVATE_OF_SMOREST = re.compile(r"\b_apidoc\b|\._docs\b|_prepare_\w+_doc|_decorate_view_func")


def orders(decorators: list) -> list[list]:
    """The given order, its reverse, and every rotation: each decorator first and last once."""
    rotations = [decorators[i:] + decorators[:i] for i in range(len(decorators))]
    return [*rotations, list(reversed(decorators))]


def documented(make_decorators) -> list[dict]:
    """The operation documented for POST /probe under each order of ``make_decorators(blp)``."""
    operations = []
    count = len(make_decorators(Blueprint("count", __name__)))
    for order in orders(list(range(count))):
        blp = Blueprint("probe", __name__)
        decorators = make_decorators(blp)

        def post(self, *args):
            """Probe"""

        view = compose(*(decorators[i] for i in order))(post)
        blp.add_url_rule("/probe", view_func=type("Probe", (MethodView,), {"post": view}))
        app = Flask(__name__)
        app.config.update(API_TITLE="probe", API_VERSION="1", OPENAPI_VERSION="3.0.3")
        api = Api(app)
        api.register_blueprint(blp)
        operations.append(json.loads(json.dumps(api.spec.to_dict()["paths"]["/probe"])))
    return operations


def sorted_parameters(paths: dict) -> dict:
    for operation in paths.values():
        operation["parameters"] = sorted(operation.get("parameters", []), key=str)
    return paths


def test_the_document_is_the_same_whatever_the_order_of_the_decorators():
    def decorators(blp):
        return [
            authenticated(blp),
            task_write_limited(blp),
            idempotent(blp),
            blp.arguments(ListWriteSchema),
            blp.response(201, ListSchema),
            blp.alt_response(409, description="The route's own 409"),
            blp.header_parameter(HEADER),
            blp.doc(operationId="probe"),
        ]

    first, *others = documented(decorators)
    for other in others:
        assert sorted_parameters(other) == sorted_parameters(first)
    operation = first["post"]
    assert {p["name"] for p in operation["parameters"]} == {"Idempotency-Key", "X-Probe"}
    assert operation["security"] == [{"bearerAuth": []}]
    assert set(operation["responses"]) >= {"201", "400", "401", "409", "422", "429", "503"}
    # The route's own 409 is kept; idempotency adds none beside it.
    assert operation["responses"]["409"]["description"] == "The route's own 409"
    success_headers = operation["responses"]["201"]["headers"]
    assert {"Idempotent-Replayed", "X-RateLimit-Limit"} <= set(success_headers)
    assert "x-taskapp-doc" not in operation


def test_an_admin_route_documents_the_same_whatever_the_order():
    def decorators(blp):
        return [admin_required(blp), blp.response(204), blp.header_parameter(HEADER)]

    first, *others = documented(decorators)
    assert all(other == first for other in others)
    assert {"401", "403"} <= set(first["post"]["responses"])
    assert first["post"]["security"] == [{"bearerAuth": []}]


def recording(calls: list, name: str):
    """A guard's wrap that records ``name`` and what the view inside it answered."""

    def wrap(view):
        @functools.wraps(view)
        def recorded(*args, **kwargs):
            calls.append(name)
            answer = view(*args, **kwargs)
            calls.append((name, type(answer).__name__))
            return answer

        return recorded

    return wrap


@pytest.mark.parametrize("order", list(permutations(range(4))))
def test_the_checks_run_in_one_order_whatever_the_order_of_the_decorators(order):
    calls = []
    blp = Blueprint("probe", __name__)
    decorators = [
        blp.guard(IDEMPOTENCY, recording(calls, "idempotency")),
        blp.guard(AUTHENTICATE, recording(calls, "authenticate")),
        blp.response(200),
        blp.guard(LIMIT, recording(calls, "limit")),
    ]

    @blp.route("/probe")
    class Probe(MethodView):
        @compose(*(decorators[i] for i in order))
        def get(self):
            calls.append("view")
            return {"ok": True}

    app = Flask(__name__)
    app.register_blueprint(blp)
    assert app.test_client().get("/probe").json == {"ok": True}
    # Outermost first; the checks see the response as sent (blp.response inside them).
    assert calls == [
        "authenticate",
        "limit",
        "idempotency",
        "view",
        ("idempotency", Response.__name__),
        ("limit", Response.__name__),
        ("authenticate", Response.__name__),
    ]


def test_the_app_routes_declare_their_checks_through_the_blueprint(app):
    # authenticated, the limits and idempotency are applied when routed: none is left declared.
    for name, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)
        methods = [getattr(view_class, m.lower()) for m in view_class.methods] if view_class else []
        for method in methods or [view]:
            assert not getattr(method, "taskapp_guards", ()), name


def test_no_module_of_taskapp_touches_flask_smorest_private_names():
    sources = sorted((PROJECT / "taskapp").rglob("*.py"))
    assert sources
    touching = [
        str(source.relative_to(PROJECT))
        for source in sources
        if PRIVATE_OF_SMOREST.search(source.read_text())
    ]
    assert touching == []


def test_the_app_document_lists_every_idempotent_routes_key(client):
    spec = client.get("/openapi.json").json
    keyed = {
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        and any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    assert {("post", "/tasks"), ("post", "/tasks/{task_id}/move"), ("post", "/lists")} <= keyed
