"""Path parameters are checked as bodies are: an id in its one spelling (ASCII digits, no
leading zero, within int4), a label name by the body's LabelName rules. Anything else
matches no route: a 404 in the error envelope that changes nothing, never a 500, never
another spelling of an existing row."""

import re

import pytest

from conftest import assert_error
from tests.support.inputs import snapshot, spellings_of

PARAMETER = re.compile(r"{(\w+)}")
# For every parameter of every route: NUL (raw and as sent escaped), over-long, beyond int4,
# signed, another script's digits, leading zeros, white space, control characters.
HOSTILE = [
    "\x00",
    "a\x00b",
    "1\x00",
    "x" * 10_000,
    "9" * 10_000,
    "2147483648",
    "99999999999999999999",
    "-1",
    "+1",
    "\u0663",  # ARABIC-INDIC DIGIT THREE
    "\uff11",  # FULLWIDTH DIGIT ONE
    "01",
    "00",
    "0",
    " 1",
    "1 ",
    "\x7f",
    "a\x1fb",
    " ",
]


@pytest.fixture
def walk(client, admin_headers):
    """Every (method, path template, body) of the spec with a path parameter, and for each
    parameter a real key of the admin's own rows (so a second spelling would find one)."""
    headers = admin_headers
    task = client.post("/tasks", json={"title": "t", "labels": ["work"]}, headers=headers).json
    listed = client.post("/lists", json={"name": "L"}, headers=headers).json
    real = {
        "task_id": str(task["id"]),
        "list_id": str(listed["id"]),
        "name": "work",
        "session_id": str(client.get("/sessions", headers=headers).json[0]["id"]),
        "user_id": str(client.get("/me", headers=headers).json["id"]),
    }
    spec = client.get("/openapi.json").json
    operations = []
    for template, item in spec["paths"].items():
        if "{" not in template:
            continue
        for method, operation in item.items():
            if method == "parameters":
                continue
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("example")
            operations.append((method, template, body))
    assert {name for _m, t, _b in operations for name in PARAMETER.findall(t)} == set(real)
    return headers, real, operations


def test_every_path_parameter_refuses_hostile_values_with_a_404(client, walk):
    headers, real, operations = walk
    before = snapshot()
    for method, template, body in operations:
        for name in PARAMETER.findall(template):
            for value in [*HOSTILE, *spellings_of(real[name])]:
                path = template.replace(f"{{{name}}}", value)
                for other, key in real.items():
                    path = path.replace(f"{{{other}}}", key)
                response = client.open(path, method=method.upper(), json=body, headers=headers)
                assert response.status_code == 404, (method, template, repr(value[:20]))
                assert_error(response, 404)
    assert snapshot() == before


def test_the_real_keys_still_name_their_rows(client, walk):
    headers, real, _operations = walk
    assert client.get(f"/tasks/{real['task_id']}", headers=headers).status_code == 200
    assert client.get(f"/lists/{real['list_id']}", headers=headers).status_code == 200
    # A label name is trimmed and matched case-insensitively, as in a task's labels.
    renamed = client.patch("/labels/%20WORK%09", json={"name": "job/x"}, headers=headers)
    assert renamed.status_code == 200, renamed.json
    assert client.delete("/labels/job/x", headers=headers).status_code == 204
    assert client.delete(f"/sessions/{real['session_id']}", headers=headers).status_code == 204


def test_the_spec_documents_what_paths_take(client):
    spec = client.get("/openapi.json").json
    parameters = {
        (template, parameter["name"]): parameter["schema"]
        for template, item in spec["paths"].items()
        for parameter in item.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert parameters
    for (template, name), schema in parameters.items():
        if name == "name":
            assert schema["type"] == "string"
            pattern = re.compile(schema["pattern"])
            assert pattern.search("work") and pattern.search(" a/b ")
            assert not any(pattern.search(bad) for bad in ("", " ", "a\x00", "a\x1fb", "x" * 51))
        else:
            assert schema == {"type": "integer", "minimum": 1, "maximum": 2147483647}, template


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("name", ["\x00", "work\x00", "%00", "wo%00rk"])
def test_a_nul_in_a_label_path_is_a_404(client, auth, method, name):
    headers = auth()
    client.post("/tasks", json={"title": "t", "labels": ["work"]}, headers=headers)
    response = client.open(f"/labels/{name}", method=method, json={"name": "x"}, headers=headers)
    assert_error(response, 404)
    assert client.get("/labels", headers=headers).json["data"][0]["name"] == "work"
