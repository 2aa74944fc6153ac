"""Ids and other integers in query strings and bodies, on every route of the spec: one
spelling, as in paths (ASCII digits without a leading zero, 1 to int4, in a query; a JSON
integer in a body). Any other is a 422 that changes nothing, never another spelling of a row."""

import pytest

from conftest import assert_error
from tests.support.inputs import snapshot, spellings_of

MAX_ID = 2_147_483_647
# Other spellings of a number that int() reads: signs, white space, underscores, leading
# zeros, other scripts' digits (ARABIC-INDIC THREE, FULLWIDTH ONE), and past int4.
BAD_QUERY_INTEGERS = ["+1", " 1", "1 ", "1_0", "01", "0", "-1", "\u0663", "\uff11", "1.0", ""]
# What a JSON body may hold in place of an integer id.
BAD_BODY_IDS = ["1", "\u0663", 1.0, 1.5, True, 0, -1, MAX_ID + 1, [1], {"id": 1}]


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json


@pytest.fixture
def rows(client, admin_headers):
    """Real keys of the admin's own rows, for the path, query and body ids that name them."""
    task = client.post("/tasks", json={"title": "t"}, headers=admin_headers).json
    listed = client.post("/lists", json={"name": "L"}, headers=admin_headers).json
    return {
        "task_id": str(task["id"]),
        "parent_id": str(task["id"]),
        "list_id": str(listed["id"]),
        "name": "work",
        "session_id": str(client.get("/sessions", headers=admin_headers).json[0]["id"]),
        "user_id": str(client.get("/me", headers=admin_headers).json["id"]),
    }


def fill(template: str, rows: dict) -> str:
    for name, key in rows.items():
        template = template.replace(f"{{{name}}}", key)
    return template


def resolve(spec: dict, schema: dict) -> dict:
    if "$ref" in schema:
        return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def is_id(schema: dict) -> bool:
    """The spec's word for an id: an integer from 1 to int4 (or a list of them)."""
    if schema.get("type") == "array":
        return is_id(schema["items"])
    return schema.get("minimum") == 1 and schema.get("maximum") == MAX_ID


def integer_query_parameters(spec: dict):
    """(method, path template, parameter name, its schema) of every integer query parameter."""
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "query" and schema.get("type") == "integer":
                    yield method, template, parameter["name"], schema


def body_ids(spec: dict):
    """(method, path template, example body, member name) of every id in a JSON body."""
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            body = content["application/json"]
            schema = resolve(spec, body["schema"])
            for name, member in schema.get("properties", {}).items():
                if name.endswith(("_id", "ids")):
                    assert is_id(member), (template, name, member)  # every id is one field
                if is_id(member):
                    yield method, template, body.get("example", {}), name


def test_every_integer_query_parameter_takes_one_spelling(client, spec, rows, admin_headers):
    checked = set()
    before = snapshot()
    for method, template, name, schema in integer_query_parameters(spec):
        if name.endswith("_id"):
            assert is_id(schema), (template, name, schema)
        path = fill(template, rows)
        good = rows.get(name, "1")
        response = client.open(
            path, method=method.upper(), query_string={name: good}, headers=admin_headers
        )
        assert response.status_code == 200, (template, name, response.json)
        others = spellings_of(good) if name in rows else []
        for value in [*BAD_QUERY_INTEGERS, *others, str(MAX_ID + 1), "9" * 10_000]:
            response = client.open(
                path, method=method.upper(), query_string={name: value}, headers=admin_headers
            )
            body = assert_error(response, 422)
            assert name in body["errors"]["query"], (template, name, repr(value[:20]), body)
        checked.add(name)
    assert {"list_id", "parent_id", "page", "page_size", "limit"} <= checked
    assert snapshot() == before


def test_every_id_in_a_body_is_a_json_integer(client, spec, rows, admin_headers):
    checked = set()
    before = snapshot()
    for method, template, example, name in body_ids(spec):
        for value in BAD_BODY_IDS:
            body = {**example, name: [value] if name == "ids" else value}
            response = client.open(
                fill(template, rows), method=method.upper(), json=body, headers=admin_headers
            )
            errors = assert_error(response, 422)["errors"]["json"]
            assert name in errors, (template, name, value, errors)
        checked.add((method, template, name))
    assert {name for _m, _t, name in checked} >= {"list_id", "parent_id", "after", "before", "ids"}
    assert snapshot() == before


def test_the_one_spelling_still_names_its_rows(client, rows, admin_headers):
    listed = client.get(
        "/tasks", query_string={"list_id": rows["list_id"]}, headers=admin_headers
    ).json
    assert listed["meta"]["total"] == 0
    parent = {"parent_id": rows["parent_id"]}
    assert client.get("/tasks", query_string=parent, headers=admin_headers).status_code == 200
    inbox = client.get("/tasks", query_string={"list_id": "null"}, headers=admin_headers).json
    assert [task["id"] for task in inbox["data"]] == [int(rows["task_id"])]
    page = client.get("/tasks?page=1&page_size=100", headers=admin_headers)
    assert page.json["meta"]["page_size"] == 100
