"""The contract is written once: the OpenAPI document is the per-route contract (every operation
with its summary, its description, a description on every response, and examples of its body and
of its success response, valid against their schemas); docs/api.md holds only what spans routes
and names no route the app does not serve; the README links only to sections that exist; every
setting the code reads is in docs/configuration.md."""

import copy
import re
from pathlib import Path

from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator

from conftest import PROJECT

API_DOC = PROJECT / "docs" / "api.md"
CONFIG_DOC = PROJECT / "docs" / "configuration.md"
README = PROJECT / "README.md"

METHODS = ("get", "put", "post", "patch", "delete")
# Flask's rule syntax to the spec's: /tasks/<id:task_id> -> /tasks/{task_id}
CONVERTER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([A-Za-z_]+)>")
# A route named in prose: "GET /tasks/{task_id}", or a path in backticks ("`/tasks/42`"). Only
# paths of non-empty segments: "`/tasks/`" and "`/tasks//1`" are the examples of paths that
# match no route.
PATH = r"(?:/[A-Za-z{][\w{}.-]*)+"
NAMED_ROUTE = re.compile(rf"\b(?:GET|POST|PUT|PATCH|DELETE) ({PATH})|`({PATH})[`?]")
# Flask's own /static route: the package has no static folder, so it only ever answers 404.
UNSERVED_ENDPOINTS = {"static"}
# How the code reads a setting: _env_int("NAME", ...), os.environ.get("NAME"), env.get("NAME"),
# or names the variable a config class reads (DATABASE_URL_VAR = "TEST_DATABASE_URL"). Only
# os.environ: a WSGI middleware's environ.get("CONTENT_LENGTH") reads the request, not a setting.
SETTING_READ = re.compile(
    r'(?:_env_\w+|os\.environ\.get|os\.environ\[|env\.get|getenv)\(?\s*"([A-Z][A-Z0-9_]+)"'
    r'|_VAR = "([A-Z][A-Z0-9_]+)"'
)
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]*)#([^)\s]+)\)")


def served_app(build_app):
    # METRICS_ENABLED adds /metrics, the one route that exists only when configured.
    return build_app(METRICS_ENABLED=True)


def spec_operations(spec: dict) -> dict[tuple[str, str], dict]:
    """{(METHOD, path): operation} of an OpenAPI document."""
    return {
        (method.upper(), path): operation
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    }


def app_paths(app) -> set[str]:
    """Every path the app serves, in the spec's syntax (/tasks/{task_id})."""
    return {
        CONVERTER.sub(r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNSERVED_ENDPOINTS
    }


def path_pattern(path: str) -> re.Pattern:
    """A spec path as a pattern matching it and its concrete forms (/tasks/42)."""
    return re.compile(re.sub(r"\\{[^}]+\\}", r"[^/]+", re.escape(path)) + "$")


def named_routes(text: str) -> set[str]:
    """The paths a page names as routes."""
    return {a or b for a, b in NAMED_ROUTE.findall(text)}


def resolved(spec: dict, schema: dict) -> dict:
    """``schema`` with the document's components beside it, so its $refs resolve."""
    return {**schema, "components": spec["components"]}


def example_of(spec: dict, media: dict) -> list:
    """The examples of a media type object: its example, or the values of its examples."""
    if "example" in media:
        return [media["example"]]
    return [entry["value"] for entry in media.get("examples", {}).values()]


def example_gaps(spec: dict, content: dict, what: str, validator_class) -> list[str]:
    """The gaps of a body's media types: no example, or one its schema refuses."""
    gaps = []
    for media_type, media in content.items():
        examples = example_of(spec, media)
        if not examples:
            gaps.append(f"no example {what} ({media_type})")
        validator = validator_class(resolved(spec, media["schema"]))
        gaps += [f"{what} example: {e.message}" for x in examples for e in validator.iter_errors(x)]
    return gaps


def contract_gaps(spec: dict) -> list[str]:
    """What the document leaves out of the per-route contract, one line per gap."""
    gaps = []
    for (method, path), operation in spec_operations(spec).items():
        found = [f"no {part}" for part in ("summary", "description") if not operation.get(part)]
        if "\n" in operation.get("summary", ""):
            found.append("a summary of more than one line (the docstring's first line wraps)")
        body = operation.get("requestBody", {}).get("content", {})
        found += example_gaps(spec, body, "request", OAS30WriteValidator)
        for status, response in operation["responses"].items():
            if "$ref" not in response and not response.get("description"):
                found.append(f"response {status} has no description")
            if str(status).startswith("2"):
                content = response.get("content", {})
                found += example_gaps(spec, content, f"of its {status}", OAS30ReadValidator)
        gaps += [f"{method} {path}: {gap}" for gap in found]
    return gaps


def test_every_operation_states_its_contract(build_app):
    spec = served_app(build_app).test_client().get("/openapi.json").get_json()
    assert contract_gaps(spec) == []


def test_an_operation_without_its_contract_fails_the_check(build_app):
    spec = served_app(build_app).test_client().get("/openapi.json").get_json()
    broken = copy.deepcopy(spec)
    create = broken["paths"]["/tasks"]["post"]
    del create["description"]
    del create["requestBody"]["content"]["application/json"]["example"]
    create["responses"]["201"]["content"]["application/json"]["example"] = {"id": "one"}
    broken["paths"]["/tasks"]["get"]["responses"]["304"]["description"] = ""
    assert contract_gaps(broken) == [
        "GET /tasks: response 304 has no description",
        "POST /tasks: no description",
        "POST /tasks: no example request (application/json)",
        "POST /tasks: of its 201 example: 'one' is not of type 'integer'",
    ]


def test_api_md_names_only_routes_the_app_serves(build_app):
    app = served_app(build_app)
    spec = app.test_client().get("/openapi.json").get_json()
    # The spec's paths, and the few the app serves outside it (/openapi.json, /docs, /metrics).
    served = [path_pattern(path) for path in set(spec["paths"]) | app_paths(app)]
    named = named_routes(API_DOC.read_text())
    # The scan sees what it must: routes in prose and in backticks.
    assert {"/tasks", "/openapi.json", "/login"} <= named
    assert sorted(p for p in named if not any(pattern.match(p) for pattern in served)) == []
    # ... and would see a route that does not exist.
    assert "/tasks/{id}/share" in named_routes("`POST /tasks/{id}/share`")
    assert not any(pattern.match("/tasks/{id}/share") for pattern in served)


def test_api_md_has_no_per_route_sections():
    # Routes are documented in the spec (/docs); a "### GET /tasks" heading would be a second copy.
    headings = re.findall(r"^#+ .*$", API_DOC.read_text(), re.MULTILINE)
    assert [h for h in headings if re.search(r"\b(GET|POST|PUT|PATCH|DELETE) /", h)] == []


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    slugs = set()
    for heading in re.findall(r"^#+ (.*)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


def test_links_into_the_docs_name_sections_that_exist():
    pages = [README, *sorted((PROJECT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, anchor in MARKDOWN_LINK.findall(page.read_text()):
            linked = (page.parent / target).resolve() if target else page
            if linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                broken.append(f"{page.name} -> {target}#{anchor}")
    assert broken == []


def test_the_readme_lists_every_route_group(build_app):
    spec = served_app(build_app).test_client().get("/openapi.json").get_json()
    glance = README.read_text().split("API at a glance", 1)[1].split("\n## ", 1)[0]
    missing = sorted(
        f"{method} {path}"
        for method, path in spec_operations(spec)
        if f"`{path}`" not in glance and f" {path}`" not in glance
    )
    assert missing == []


def settings_read(sources: list[Path]) -> set[str]:
    """Names of the environment variables the given files read."""
    names = set()
    for source in sources:
        for match in SETTING_READ.finditer(source.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


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


# A file of the project named in prose: `taskapp/tasks/totals.py`, `tests/support/`, `.ci/run`;
# or a module: `taskapp.tasks.locks`.
NAMED_FILE = re.compile(
    r"`((?:taskapp|tests|bench|deploy|migrations|docs|\.ci)/[\w./-]*|"
    r"(?:config|wsgi|gunicorn\.conf)\.py|Makefile|setup\.cfg)`"
)
NAMED_MODULE = re.compile(r"`(taskapp(?:\.\w+)+)`")
# Names of loggers, which look like modules: logging.getLogger("taskapp.access").
LOGGER = re.compile(r'getLogger\("(taskapp[\w.]*)"\)')


def missing_names(text: str) -> list[str]:
    """The files and modules ``text`` names that the project does not have."""
    missing = [path for path in NAMED_FILE.findall(text) if not (PROJECT / path).exists()]
    loggers = {
        name
        for source in (PROJECT / "taskapp").rglob("*.py")
        for name in LOGGER.findall(source.read_text())
    }
    for module in set(NAMED_MODULE.findall(text)) - loggers:
        parts = module.split(".")
        # taskapp.tasks.locks, or a name in one: taskapp.transactions.held_commits
        if not any(
            (PROJECT / Path(*parts[:cut])).with_suffix(".py").exists()
            or (PROJECT / Path(*parts[:cut]) / "__init__.py").exists()
            for cut in {len(parts), max(len(parts) - 1, 2)}
        ):
            missing.append(module)
    return missing


def test_the_docs_name_only_files_and_modules_that_exist():
    pages = [README, *sorted((PROJECT / "docs").glob("*.md"))]
    named = {page.name: NAMED_FILE.findall(page.read_text()) for page in pages}
    # The scan finds what it must (else it would pass by finding nothing).
    assert "taskapp/tasks/locks.py" in named["architecture.md"]
    missing = {page.name: missing_names(page.read_text()) for page in pages}
    assert {page: names for page, names in missing.items() if names} == {}


def test_a_module_that_does_not_exist_is_found():
    assert missing_names("`taskapp/sqltypes.py`, `taskapp.sessions`, `taskapp/api.py`") == [
        "taskapp/sqltypes.py",
        "taskapp.sessions",
    ]
