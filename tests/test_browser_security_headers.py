"""Security headers on every response: nosniff, a CSP (one that lets /docs run), no framing,
and no-store on anything answered to a request that carried credentials."""

import base64
import hashlib
import re

import pytest

from conftest import assert_error

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def assert_always_there(response) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("get", "/healthz", 200),
        ("get", "/openapi.json", 200),
        ("get", "/no/such/page", 404),
        ("put", "/healthz", 405),
        ("get", "/tasks", 401),
        ("post", "/signup", 422),
    ],
)
def test_every_response_has_the_headers_and_the_strict_csp(client, method, path, status):
    response = getattr(client, method)(path, json={} if method == "post" else None)
    assert response.status_code == status
    assert_always_there(response)
    assert response.headers["Content-Security-Policy"] == API_CSP


def test_authenticated_responses_are_not_stored(client, auth, make_task):
    headers = auth()
    task = make_task(headers)
    for response in (
        client.get("/tasks", headers=headers),
        client.get(f"/tasks/{task['id']}", headers=headers),
        client.get("/me", headers=headers),
        client.get("/tasks/999999", headers=headers),
        client.get("/tasks", headers={"Authorization": "Bearer not-a-jwt"}),
    ):
        assert response.headers["Cache-Control"] == "no-store", response.status_code
        assert_always_there(response)


def test_anonymous_public_responses_keep_their_caching(client):
    assert "no-store" not in client.get("/healthz").headers.get("Cache-Control", "")
    assert "no-store" not in client.get("/openapi.json").headers.get("Cache-Control", "")


def test_the_token_pair_is_never_stored(client, make_user):
    email, password = make_user()
    response = client.post("/login", json={"email": email, "password": password})
    assert response.headers["Cache-Control"] == "no-store"
    assert_always_there(response)


def test_the_docs_csp_allows_exactly_the_page_s_own_inline_script(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert_always_there(response)
    csp = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split(";")
    )
    inline = re.findall(rb"<script>(.*?)</script>", response.get_data(), re.DOTALL)
    assert len(inline) == 1, "flask-smorest's Swagger UI page has one inline start-up script"
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"  # the spec and "Try it out" go to this origin only
    assert csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' data:"
    # The assets the page loads are served by the app itself.
    for asset in re.findall(rb'(?:src|href)="([^"]+)"', response.get_data()):
        assert asset.startswith(b"/docs/static/"), asset
        with client.get(asset.decode()) as served:
            assert served.status_code == 200


def test_docs_assets_are_not_sniffed(client):
    with client.get("/docs/static/swagger-ui-bundle.js") as response:
        assert response.status_code == 200
        assert_always_there(response)


def test_a_missing_docs_page_gets_the_strict_csp(client):
    assert_error(client.get("/docs/nothing-here"), 404)
    assert client.get("/docs/nothing-here").headers["Content-Security-Policy"] == API_CSP
