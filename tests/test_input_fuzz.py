"""No input produces a 5xx: arbitrary methods, path values, query strings, headers and bodies
(bytes, JSON values, objects of the schemas' own field names) thrown at every route."""

import json
import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The only 5xx the contract documents: a backing service is down (never so here).
DOCUMENTED_5XX = {503}
# A method no route serves: 405 or 404, answered before the app.
MADE_UP = "BREW"
# Rules whose methods end the caller's sessions: after one succeeds, log in again.
ENDS_SESSIONS = {"/logout", "/logout-all", "/me", "/me/password"}
PARAMETER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
FIELD_NAMES = [
    "email",
    "password",
    "new_password",
    "current_password",
    "refresh_token",
    "title",
    "description",
    "completed",
    "role",
    "is_active",
    "page",
    "page_size",
    "cursor",
    "sort",
    "order",
    "search",
]
BIG_NUMBER = st.integers(min_value=4000, max_value=6000).map(lambda digits: "9" * digits)
NUMBER_TEXT = st.one_of(st.integers().map(str), BIG_NUMBER, st.sampled_from(["NaN", "-0", "1e999"]))
TEXT = st.one_of(st.text(max_size=50), NUMBER_TEXT, st.text(max_size=5).map(lambda t: t * 300))
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text()), children, max_size=4),
    ),
    max_leaves=12,
)
SCHEMA_OBJECTS = st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=6)
BODIES = st.one_of(
    SCHEMA_OBJECTS.map(lambda value: json.dumps(value).encode()),
    st.none(),
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    SCHEMA_OBJECTS.map(lambda value: json.dumps(value).encode()),
    BIG_NUMBER.map(lambda number: b'{"title": ' + number.encode() + b"}"),
    st.sampled_from([b"[" * 3000, b'{"a": NaN}', b'"\\ud800"', '{"a": 1}'.encode("utf-16")]),
)
CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from([None, "text/plain", "application/json; charset=utf-16", "*/*"]),
)
QUERIES = st.one_of(
    st.dictionaries(
        st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), TEXT, max_size=5
    ),
    st.binary(max_size=100).map(lambda raw: urllib.parse.quote_from_bytes(raw, safe="=&")),
)
HEADERS = st.dictionaries(
    st.sampled_from(["If-Match", "If-None-Match", "X-Request-ID", "Accept", "Origin"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    max_size=3,
)
CREDENTIALS = st.sampled_from(["admin", "none", "garbage"])


def route_paths(app) -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """(rule, its methods, its parameters as (converter, name)) for every route of the app."""
    return [
        (
            rule.rule,
            sorted(rule.methods),
            [(conv or "default", name) for conv, name in PARAMETER.findall(rule.rule)],
        )
        for rule in app.url_map.iter_rules()
    ]


def path_values(converter: str):
    if converter == "int":
        # Mostly ids that exist (the fixture made them), so the views run past their 404.
        return st.one_of(
            st.integers(min_value=1, max_value=6).map(str),
            st.integers(min_value=-(10**30), max_value=10**30).map(str),
            BIG_NUMBER,
        )
    return TEXT.filter(bool)


@st.composite
def requests_to(draw, routes):
    rule, methods, parameters = draw(st.sampled_from(routes))
    path = rule
    for converter, name in parameters:
        value = urllib.parse.quote(draw(path_values(converter)), safe="")
        path = PARAMETER.sub(
            lambda match, v=value, n=name: v if match.group(2) == n else match.group(0),
            path,
            count=1,
        )
    method = draw(
        st.one_of(st.sampled_from(methods), st.sampled_from(["PUT", "PATCH", "DELETE", MADE_UP]))
    )
    query = draw(QUERIES)
    if isinstance(query, dict):
        query = urllib.parse.urlencode(query)
    return {
        "rule": rule,
        "method": method,
        "path": path,
        "query": query,
        "body": draw(BODIES),
        "content_type": draw(CONTENT_TYPES),
        "headers": draw(HEADERS),
        "credentials": draw(CREDENTIALS),
    }


@pytest.fixture
def no_limits(app, monkeypatch):
    """Every rate limit out of reach: the limiter and its key functions still run on every
    request (they see the same input), but the fuzzing is not turned into 429s."""
    for name, value in list(app.config.items()):
        if name.startswith("RATELIMIT_") and isinstance(value, str) and " per " in value:
            monkeypatch.setitem(app.config, name, "1000000 per minute")


@pytest.fixture
def session_headers(no_limits, client, make_user, login):
    """A function giving an admin's live Authorization headers, logging in again after a
    request may have ended the session."""
    from taskapp.admin.service import make_admin

    email, password = make_user()
    make_admin(email=email)
    for _ in range(3):
        make_user()
    current = {}

    def headers(*, renew: bool = False) -> dict:
        if renew or not current:
            current["Authorization"] = f"Bearer {login(email, password)['access_token']}"
        return dict(current)

    return headers


@pytest.mark.slow
def test_no_input_gives_a_5xx(app, client, session_headers):
    routes = route_paths(app)
    for number in range(6):
        client.post("/tasks", json={"title": f"task {number}"}, headers=session_headers())

    @settings(
        max_examples=1000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests_to(routes))
    def check(request):
        headers = dict(request["headers"])
        if request["credentials"] == "admin":
            headers.update(session_headers())
        elif request["credentials"] == "garbage":
            headers["Authorization"] = "Bearer " + request["path"][:40]
        if request["content_type"]:
            headers["Content-Type"] = request["content_type"]
        response = client.open(
            request["path"],
            method=request["method"],
            query_string=request["query"],
            data=request["body"],
            headers=headers,
        )
        status = response.status_code
        assert status < 500 or status in DOCUMENTED_5XX, (request, response.get_data()[:500])
        if status >= 400 and request["method"] != "HEAD":
            body = response.get_json(silent=True)
            assert body and body["code"] == status and body["status"], response.get_data()[:500]
        if request["rule"] in ENDS_SESSIONS and status < 300 and request["method"] != "GET":
            session_headers(renew=True)

    check()
