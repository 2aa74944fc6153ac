"""/metrics: off by default; when enabled, request counts and latencies by route and status."""

import re

import config
from conftest import assert_error
from taskapp.observability import route
from tests.support.metrics import samples

DURATION = "flask_http_request_duration_seconds"


def count(parsed: dict, method: str, route: str, status: str) -> float:
    key = (f"{DURATION}_count", ("method", method), ("route", route), ("status", status))
    return parsed.get(key, 0)


def test_metrics_are_off_by_default(client, monkeypatch):
    assert_error(client.get("/metrics"), 404)
    monkeypatch.delenv("METRICS_ENABLED", raising=False)
    assert config.Config().METRICS_ENABLED is False
    monkeypatch.setenv("METRICS_ENABLED", "true")
    assert config.Config().METRICS_ENABLED is True


def test_requests_are_counted_and_timed_by_route_and_status(build_app):
    client = build_app(METRICS_ENABLED=True).test_client()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/tasks/5").status_code == 401
    assert client.get("/tasks/6").status_code == 401
    assert client.get("/no/such/page").status_code == 404
    assert client.post("/signup", json={}).status_code == 422

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["X-Request-ID"]
    parsed = samples(response.get_data(as_text=True))

    assert count(parsed, "GET", "/healthz", "200") == 3
    # One series per route, not per id: both task ids land in the rule's series.
    assert count(parsed, "GET", "/tasks/{task_id}", "401") == 2
    assert count(parsed, "GET", "unmatched", "404") == 1
    assert count(parsed, "POST", "/signup", "422") == 1
    inf = (f"{DURATION}_bucket", ("le", "+Inf"), ("method", "GET"))
    assert parsed[(*inf, ("route", "/healthz"), ("status", "200"))] == 3
    assert (
        parsed[(f"{DURATION}_sum", ("method", "GET"), ("route", "/healthz"), ("status", "200"))] > 0
    )
    # The scrape itself is not counted.
    assert not any(("route", "/metrics") in key for key in parsed)


def test_apps_built_in_one_process_keep_their_own_counts(build_app):
    first = build_app(METRICS_ENABLED=True).test_client()
    second = build_app(METRICS_ENABLED=True).test_client()
    first.get("/healthz")
    first.get("/healthz")
    second.get("/healthz")
    assert (
        count(samples(first.get("/metrics").get_data(as_text=True)), "GET", "/healthz", "200") == 2
    )
    assert (
        count(samples(second.get("/metrics").get_data(as_text=True)), "GET", "/healthz", "200") == 1
    )


def test_every_route_is_labelled_by_its_documented_path_never_by_converter_internals(build_app):
    app = build_app(METRICS_ENABLED=True)
    documented = set(app.test_client().get("/openapi.json").json["paths"])
    with app.test_request_context():
        labels = {}
        for rule in app.url_map.iter_rules():
            request = type("Matched", (), {"url_rule": rule})
            labels[rule.rule] = route(request)
    assert labels["/tasks/<id:task_id>"] == "/tasks/{task_id}"
    assert not [label for label in labels.values() if re.search(r"[<>()=]|max", label)]
    # Each label of a route with a parameter is its path in the OpenAPI document (Swagger UI's
    # files are not API routes).
    with_parameters = {label for label in labels.values() if "{" in label}
    assert with_parameters - documented == {"/docs/static/{filename}"}
