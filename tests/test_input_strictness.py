"""Input the API refuses whole rather than reads half: a JSON object naming a member twice,
a query parameter the route does not take (on every route of the spec)."""

import re

import pytest

from conftest import assert_error


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json


def _operations(spec: dict, methods: set[str]):
    for path, item in spec["paths"].items():
        for method in methods & item.keys():
            yield method, path


def test_every_get_route_refuses_an_unknown_query_parameter(client, spec, admin_headers):
    checked = 0
    for method, path in _operations(spec, {"get"}):
        url = re.sub(r"\{[^}]+\}", "1", path)
        response = client.open(f"{url}?bogus=1", method=method.upper(), headers=admin_headers)
        body = assert_error(response, 422)
        assert "bogus" in body["errors"]["query"], (path, body)
        assert "422" in spec["paths"][path][method]["responses"], path
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/tasks"), ("post", "/lists"), ("delete", "/tasks/1")]
)
def test_other_methods_refuse_one_too(client, admin_headers, method, path):
    response = client.open(
        f"{path}?bogus=1", method=method.upper(), json={"title": "t"}, headers=admin_headers
    )
    assert_error(response, 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tasks", b'{"title": "a", "title": "b"}'),
        ("/tasks", b'{"title": "a", "labels": ["x"], "labels": []}'),
        ("/lists", b'{"name": "a", "name": "b"}'),
        ("/tasks", b'{"title": "a", "due_at": null, "x": {"k": 1, "k": 2}}'),
        ("/signup", b'{"email": "a@example.com", "email": "b@example.com", "password": "p"}'),
    ],
)
def test_a_member_named_twice_is_a_400_that_changes_nothing(client, auth, path, body):
    headers = {**auth(), "Content-Type": "application/json"}
    before = client.get("/tasks", headers=headers).json["meta"]
    response = client.post(path, data=body, headers=headers)
    envelope = assert_error(response, 400)
    assert "twice" in envelope["errors"]["json"][0]
    assert client.get("/tasks", headers=headers).json["meta"] == before


def test_a_huge_integer_is_still_a_400(client, auth):
    headers = {**auth(), "Content-Type": "application/json"}
    body = b'{"title": "a", "list_id": ' + b"9" * 5000 + b"}"
    assert_error(client.post("/tasks", data=body, headers=headers), 400)
