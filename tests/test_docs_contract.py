"""docs/api.md stays the whole contract: a heading per route of the app and of its spec, and
under it the statuses, parameters and body fields the spec documents; every setting the code
reads is in docs/configuration.md."""

import re
from pathlib import Path

from conftest import PROJECT

API_DOC = PROJECT / "docs" / "api.md"
CONFIG_DOC = PROJECT / "docs" / "configuration.md"

ROUTE_HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/\S*)$", re.MULTILINE)
# Flask's rule syntax to the spec's: /tasks/<int(max=2147483647):task_id> -> /tasks/{task_id}
CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([A-Za-z_]+)>")
# Statuses every route may answer, explained once under "Errors" rather than per route.
SHARED_STATUSES = {"default", "400", "401", "413", "415", "503"}
# Flask's own /static route: the package has no static folder, so it only ever answers 404.
UNSERVED_ENDPOINTS = {"static"}
# How the code reads a setting: _env_int("NAME", ...), os.environ.get("NAME"), env.get("NAME"),
# or names the variable a config class reads (DATABASE_URL_VAR = "TEST_DATABASE_URL"). Only
# os.environ: a WSGI middleware's environ.get("CONTENT_LENGTH") reads the request, not a setting.
SETTING_READ = re.compile(
    r'(?:_env_\w+|os\.environ\.get|os\.environ\[|env\.get|getenv)\(?\s*"([A-Z][A-Z0-9_]+)"'
    r'|_VAR = "([A-Z][A-Z0-9_]+)"'
)


def documented_routes(text: str) -> list[tuple[str, str]]:
    """(method, path) of every route heading, in order."""
    return ROUTE_HEADING.findall(text)


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every URL rule the app serves, in the spec's path syntax."""
    return {
        (method, CONVERTER.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNSERVED_ENDPOINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def spec_operations(spec: dict) -> dict[tuple[str, str], dict]:
    """{(method, path): operation} of an OpenAPI document."""
    return {
        (method.upper(), path): operation
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method != "parameters"
    }


def route_sections(text: str) -> dict[tuple[str, str], str]:
    """The text under each route heading, up to the next heading of any level."""
    sections = {}
    for match in ROUTE_HEADING.finditer(text):
        following = re.compile(r"^#{1,3} ", re.MULTILINE).search(text, match.end())
        sections[match.groups()] = text[match.end() : following.start() if following else None]
    return sections


def settings_read(sources: list[Path]) -> set[str]:
    """Names of the environment variables the given files read."""
    names = set()
    for source in sources:
        for match in SETTING_READ.finditer(source.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


def served_app(build_app):
    # METRICS_ENABLED adds /metrics, the one route that exists only when configured.
    return build_app(METRICS_ENABLED=True)


def test_every_route_has_a_heading_and_every_heading_a_route(build_app):
    app = served_app(build_app)
    spec = app.test_client().get("/openapi.json").get_json()
    operations = set(spec_operations(spec))
    routes = app_routes(app)
    headings = documented_routes(API_DOC.read_text())

    assert len(headings) == len(set(headings)), "a route has two headings"
    assert operations <= routes, "the spec names a route the app does not serve"
    assert {"GET /openapi.json", "GET /metrics", "GET /docs"} <= {" ".join(r) for r in routes}
    assert sorted(routes - set(headings)) == [], "routes without a heading in docs/api.md"
    assert sorted(set(headings) - routes) == [], "headings in docs/api.md of no route"


def test_each_route_section_names_its_documented_statuses(build_app):
    spec = served_app(build_app).test_client().get("/openapi.json").get_json()
    sections = route_sections(API_DOC.read_text())
    missing = {
        f"{method} {path}": sorted(
            status
            for status in operation["responses"]
            if status not in SHARED_STATUSES
            and f"`{status}`" not in sections.get((method, path), "")
        )
        for (method, path), operation in spec_operations(spec).items()
    }
    assert {route: codes for route, codes in missing.items() if codes} == {}


def request_fields(spec: dict, operation: dict) -> set[str]:
    """Names of an operation's query and header parameters and of its JSON body's fields."""
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] in ("query", "header")}
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = body.get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return names | set(schema.get("properties", {}))


def test_each_route_section_names_its_parameters_and_body_fields(build_app):
    spec = served_app(build_app).test_client().get("/openapi.json").get_json()
    sections = route_sections(API_DOC.read_text())
    operations = spec_operations(spec)
    missing = {
        f"{method} {path}": sorted(
            name
            for name in request_fields(spec, operation)
            if f"`{name}`" not in sections.get((method, path), "")
        )
        for (method, path), operation in operations.items()
    }
    assert {route: names for route, names in missing.items() if names} == {}
    # The check sees what it must: the task list's query and a body's fields.
    assert {"cursor", "page_size"} <= request_fields(spec, operations[("GET", "/tasks")])
    assert request_fields(spec, operations[("POST", "/signup")]) == {"email", "password"}


def test_a_route_added_without_docs_fails_the_check(build_app):
    app = served_app(build_app)
    app.add_url_rule("/undocumented/<int:item_id>", "undocumented", lambda item_id: "")
    headings = set(documented_routes(API_DOC.read_text()))
    assert ("GET", "/undocumented/{item_id}") in app_routes(app) - headings
    # And a heading removed from the page is missed.
    without = API_DOC.read_text().replace("### GET /healthz\n", "")
    assert ("GET", "/healthz") in app_routes(app) - set(documented_routes(without))


def test_every_setting_the_code_reads_is_documented():
    sources = [PROJECT / "config.py", PROJECT / "gunicorn.conf.py"]
    sources += sorted((PROJECT / "taskapp").rglob("*.py"))
    names = settings_read(sources)
    # The scan finds the settings it must (else it would pass by finding none).
    assert {"DATABASE_URL", "JWT_SECRET_KEY", "GUNICORN_WORKERS", "TEST_DATABASE_URL"} <= names
    # ... and not the request's WSGI environ keys the middlewares read (taskapp/edges.py).
    assert not {"CONTENT_LENGTH", "REQUEST_METHOD", "PATH_INFO", "REMOTE_ADDR"} & names
    text = CONFIG_DOC.read_text()
    assert sorted(name for name in names if f"`{name}`" not in text) == []
