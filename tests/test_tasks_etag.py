"""Optimistic concurrency on tasks: ETag on every task response, If-Match on writes (412 when
stale), If-None-Match on reads (304); without those headers, nothing changes."""

import re

import pytest

from conftest import assert_error, stored_row
from taskapp.tasks.models import Task

STRONG_TAG = re.compile(r'^"[\x21\x23-\x7e]+"$')


@pytest.fixture
def headers(auth):
    return auth()


@pytest.fixture
def task(client, headers):
    """A task and the ETag its creation answered with."""
    response = client.post("/tasks", json={"title": "original"}, headers=headers)
    assert response.status_code == 201
    return {"id": response.json["id"], "etag": response.headers["ETag"], "json": response.json}


def test_every_task_response_carries_a_strong_etag(client, headers, task):
    url = f"/tasks/{task['id']}"
    assert STRONG_TAG.match(task["etag"]), task["etag"]

    got = client.get(url, headers=headers)
    assert got.headers["ETag"] == task["etag"]

    patched = client.patch(url, json={"completed": True}, headers=headers)
    assert STRONG_TAG.match(patched.headers["ETag"])
    assert patched.headers["ETag"] != task["etag"]

    put = client.put(url, json={"title": "replaced"}, headers=headers)
    assert STRONG_TAG.match(put.headers["ETag"])
    assert put.headers["ETag"] not in (task["etag"], patched.headers["ETag"])
    assert client.get(url, headers=headers).headers["ETag"] == put.headers["ETag"]


def test_etags_differ_between_tasks(client, headers, task):
    other = client.post("/tasks", json={"title": "original"}, headers=headers)

    assert other.headers["ETag"] != task["etag"]


def test_a_patch_that_changes_nothing_keeps_the_etag(client, headers, task):
    url = f"/tasks/{task['id']}"

    for changes in ({}, {"title": "original"}):
        response = client.patch(url, json=changes, headers={**headers, "If-Match": task["etag"]})
        assert response.status_code == 200
        assert response.headers["ETag"] == task["etag"]
        assert response.json == task["json"]


def test_requests_without_conditions_behave_as_before(client, headers, task):
    url = f"/tasks/{task['id']}"
    client.patch(url, json={"title": "someone else's edit"}, headers=headers)

    # No If-Match: the last write wins, as it always did.
    response = client.patch(url, json={"title": "mine"}, headers=headers)
    assert response.status_code == 200
    assert stored_row(Task, task["id"])["title"] == "mine"
    assert client.get(url, headers=headers).status_code == 200
    assert client.delete(url, headers=headers).status_code == 204


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        "W/{etag}",  # If-None-Match compares weakly
        '"other", {etag}',
        ' "a,b" ,, {etag} ',  # a comma inside a tag does not split it
        "*",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_with_a_matching_if_none_match_is_304(client, headers, task, if_none_match, method):
    response = client.open(
        f"/tasks/{task['id']}",
        method=method,
        headers={**headers, "If-None-Match": if_none_match.format(etag=task["etag"])},
    )

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == task["etag"]
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("if_none_match", ['"other"', 'W/"other", "more"', "garbage", ""])
def test_get_with_a_stale_if_none_match_is_200(client, headers, task, if_none_match):
    response = client.get(
        f"/tasks/{task['id']}", headers={**headers, "If-None-Match": if_none_match}
    )

    assert response.status_code == 200
    assert response.json == task["json"]
    assert response.headers["ETag"] == task["etag"]


def test_get_after_a_change_is_200_with_the_new_etag(client, headers, task):
    url = f"/tasks/{task['id']}"
    changed = client.patch(url, json={"completed": True}, headers=headers)

    response = client.get(url, headers={**headers, "If-None-Match": task["etag"]})

    assert response.status_code == 200
    assert response.json["completed"] is True
    assert response.headers["ETag"] == changed.headers["ETag"]


WRITES = [
    ("PATCH", {"title": "changed"}, 200),
    ("PUT", {"title": "changed", "completed": True}, 200),
    ("DELETE", None, 204),
]


@pytest.mark.parametrize(("method", "body", "status"), WRITES)
@pytest.mark.parametrize(
    "if_match",
    [
        "{etag}",
        '"other", {etag}',
        "*",
        "  {etag}  ",
        "{unquoted}",  # Werkzeug reads a bare token as the quoted tag it names
    ],
)
def test_write_with_a_matching_if_match_succeeds(
    client, headers, task, method, body, status, if_match
):
    value = if_match.format(etag=task["etag"], unquoted=task["etag"].strip('"'))
    response = client.open(
        f"/tasks/{task['id']}", method=method, json=body, headers={**headers, "If-Match": value}
    )

    assert response.status_code == status, response.json
    if method == "DELETE":
        assert stored_row(Task, task["id"]) is None
    else:
        assert stored_row(Task, task["id"])["title"] == "changed"
        assert response.headers["ETag"] != task["etag"]


@pytest.mark.parametrize(("method", "body", "status"), WRITES)
@pytest.mark.parametrize(
    "if_match",
    [
        '"stale"',
        "W/{etag}",  # If-Match compares strongly: a weak tag never matches
        '"a" "b"',
        "",
        '""',  # an empty tag, which Werkzeug reads as None
        '"", W/""',
    ],
)
def test_write_with_a_stale_if_match_is_412_and_changes_nothing(
    client, headers, task, method, body, status, if_match
):
    before = stored_row(Task, task["id"])
    value = if_match.format(etag=task["etag"])

    response = client.open(
        f"/tasks/{task['id']}", method=method, json=body, headers={**headers, "If-Match": value}
    )

    assert_error(response, 412)
    assert stored_row(Task, task["id"]) == before


@pytest.mark.parametrize(("method", "body", "status"), WRITES)
def test_the_etag_of_an_earlier_version_no_longer_matches(
    client, headers, task, method, body, status
):
    url = f"/tasks/{task['id']}"
    conditional = {**headers, "If-Match": task["etag"]}
    first = client.patch(url, json={"title": "first"}, headers=conditional)
    assert first.status_code == 200

    # A second writer still holding the original ETag loses: no silent overwrite.
    late = client.open(url, method=method, json=body, headers=conditional)
    assert_error(late, 412)
    assert stored_row(Task, task["id"])["title"] == "first"

    # Re-read, then write with the fresh ETag.
    fresh = client.get(url, headers=headers).headers["ETag"]
    assert fresh == first.headers["ETag"]
    retried = client.open(url, method=method, json=body, headers={**headers, "If-Match": fresh})
    assert retried.status_code == status


@pytest.mark.parametrize(("method", "body", "status"), WRITES)
def test_if_match_on_a_missing_or_foreign_task_is_404(
    client, auth, headers, task, method, body, status
):
    stranger = auth()
    for url, who in ((f"/tasks/{task['id'] + 1000}", headers), (f"/tasks/{task['id']}", stranger)):
        for if_match in (task["etag"], "*"):
            response = client.open(
                url, method=method, json=body, headers={**who, "If-Match": if_match}
            )
            assert_error(response, 404)
    assert stored_row(Task, task["id"])["title"] == "original"


def test_if_none_match_on_a_foreign_task_is_404(client, auth, task):
    response = client.get(f"/tasks/{task['id']}", headers={**auth(), "If-None-Match": task["etag"]})

    assert_error(response, 404)


def test_a_deleted_tasks_etag_matches_nothing(client, headers, task):
    assert client.delete(f"/tasks/{task['id']}", headers=headers).status_code == 204

    response = client.patch(
        f"/tasks/{task['id']}", json={"title": "x"}, headers={**headers, "If-Match": task["etag"]}
    )

    assert_error(response, 404)


def test_invalid_body_with_a_stale_if_match_changes_nothing(client, headers, task):
    before = stored_row(Task, task["id"])

    response = client.patch(
        f"/tasks/{task['id']}", json={"title": ""}, headers={**headers, "If-Match": '"stale"'}
    )

    assert response.status_code in (412, 422)
    assert stored_row(Task, task["id"]) == before


def test_spec_documents_the_conditional_headers(client):
    spec = client.get("/openapi.json").json
    item = spec["paths"]["/tasks/{task_id}"]

    def parameters(operation):
        return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}

    get_parameter = parameters(item["get"])[("header", "If-None-Match")]
    assert get_parameter["required"] is False
    assert "304" in item["get"]["responses"]
    assert "ETag" in item["get"]["responses"]["304"]["headers"]
    for method in ("patch", "put", "delete"):
        parameter = parameters(item[method])[("header", "If-Match")]
        assert parameter["required"] is False  # requests without it behave as before
        assert item[method]["responses"]["412"] == {
            "$ref": "#/components/responses/PRECONDITION_FAILED"
        }
        assert "428" not in item[method]["responses"]
    for method, status in (("get", "200"), ("patch", "200"), ("put", "200")):
        assert "ETag" in item[method]["responses"][status]["headers"]
    created = spec["paths"]["/tasks"]["post"]["responses"]["201"]["headers"]
    assert {"ETag", "Location"} <= set(created)
    unavailable = spec["components"]["responses"]["SERVICE_UNAVAILABLE"]
    assert "Retry-After" in unavailable["headers"]


def test_another_tasks_etag_does_not_match(client, headers, task):
    other = client.post("/tasks", json={"title": "original"}, headers=headers)

    response = client.patch(
        f"/tasks/{task['id']}",
        json={"title": "x"},
        headers={**headers, "If-Match": other.headers["ETag"]},
    )

    assert_error(response, 412)
    assert stored_row(Task, task["id"])["title"] == "original"
