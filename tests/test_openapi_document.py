"""The OpenAPI document is valid OpenAPI 3 and gives every operation an SDK-friendly id."""

import re

import pytest
from openapi_spec_validator import validate

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# A method name in any generated SDK: snake_case, starting with a letter.
OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_valid_openapi_3(spec):
    validate(spec)


def test_every_response_has_its_description(spec):
    # The sessions route's link once made a response object of its own, without one.
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            assert "$ref" in response or response.get("description"), (path, method, status)


def test_every_operation_has_a_unique_sdk_friendly_id(spec):
    ids = [operation.get("operationId") for _path, _method, operation in operations(spec)]
    assert all(isinstance(name, str) and OPERATION_ID.match(name) for name in ids), ids
    assert len(ids) == len(set(ids)), ids
