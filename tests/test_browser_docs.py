"""/docs in a real browser: headless Chromium (Debian's) driven by Playwright, on a live gunicorn.

The page must work under the app's Content-Security-Policy and with no internet access: it
lists the operations, takes a bearer token obtained from /login, and "Try it out" on GET /tasks
answers 200 with the user's task. Screenshots are kept under test-artifacts/.
"""

import json
import os
import secrets
from pathlib import Path

import pytest
import requests

from conftest import PROJECT
from tests.support import MIGRATE, flask
from tests.support.servers import start_gunicorn, stop

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "browser test passphrase"
TASK_TITLE = "Written through the API, read in the browser"
# Records every CSP violation the page reports (init scripts are not subject to the CSP).
CSP_RECORDER = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', e =>"
    " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)

pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium "
        "(apt-get install chromium; .ci/run installs it)",
    ),
]


@pytest.fixture
def server(tmp_path, scratch_database_url):
    """gunicorn serving wsgi:app in production mode on a database of its own, migrated first,
    as the image does; limits in process memory."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEST_", "RATELIMIT_", "GUNICORN_", "DB_", "PROMETHEUS_"))
        and name not in ("DATABASE_URL", "REDIS_URL", "CORS_ORIGINS", "METRICS_ENABLED")
    }
    env.update(
        DATABASE_URL=scratch_database_url,
        TASKAPP_ENV="production",
        JWT_SECRET_KEY=secrets.token_urlsafe(40),
        BCRYPT_ROUNDS="4",
    )
    upgrade = flask(*MIGRATE[3:], env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    served = start_gunicorn(tmp_path / "gunicorn.log", env=env)
    try:
        yield served
    finally:
        stop(served)


@pytest.fixture
def access_token(server) -> str:
    """A user with one task, signed up and logged in over HTTP; their access token."""
    email = "browser@example.com"
    signup = requests.post(
        f"{server.url}/signup", json={"email": email, "password": PASSWORD}, timeout=15
    )
    assert signup.status_code == 201, signup.text
    login = requests.post(
        f"{server.url}/login", json={"email": email, "password": PASSWORD}, timeout=15
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    created = requests.post(
        f"{server.url}/tasks",
        json={"title": TASK_TITLE},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert created.status_code == 201, created.text
    return token


@pytest.fixture
def page():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15_000)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def test_swagger_ui_lists_authorizes_and_runs_get_tasks(server, access_token, page):
    ARTIFACTS.mkdir(exist_ok=True)
    outside, answered = [], []

    def only_this_server(route):
        # No internet here, and the page must not need it: anything elsewhere is refused.
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.on("response", lambda response: answered.append((response.status, response.url)))
    page.add_init_script(CSP_RECORDER)

    try:
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path")
        listed = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {
            "/signup",
            "/login",
            "/tasks",
            "/tasks/{task_id}",
            "/admin/users",
            "/healthz",
        } <= listed

        # Authorize with the token from /login.
        page.locator("button.btn.authorize").first.click()
        dialog = page.locator(".dialog-ux")
        dialog.locator("input").first.fill(access_token)
        dialog.locator("button.authorize").click()
        dialog.locator("button.btn-done").click()

        # GET /tasks: Try it out, Execute.
        operation = page.locator(".opblock-get").filter(
            has=page.locator('.opblock-summary-path[data-path="/tasks"]')
        )
        operation.locator(".opblock-summary").click()
        operation.locator("button.try-out__btn").click()
        operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip() == "200"
        body = json.loads(
            operation.locator(
                ".live-responses-table .response .highlight-code pre"
            ).first.inner_text()
        )
        assert [task["title"] for task in body["data"]] == [TASK_TITLE]
        assert body["meta"]["total"] == 1
        assert "Authorization: Bearer" in operation.locator(".curl-command").inner_text()
        operation.screenshot(path=str(ARTIFACTS / "docs-get-tasks.png"))
        # The part a person looks at: the request sent and the 200 it got.
        operation.locator(".live-responses-table").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "docs-try-it-out.png"))
    finally:
        page.screenshot(path=str(ARTIFACTS / "docs-page.png"), full_page=True)

    assert outside == [], "the docs page tried to reach beyond the server"
    assert page.evaluate("window.__cspViolations") == [], "the page broke its own CSP"
    failed = [(code, url) for code, url in answered if code >= 400 and "/favicon.ico" not in url]
    assert failed == []
    # The CSP is in force, not merely sent: a script injected now is refused.
    page.evaluate(
        "const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
        "document.body.appendChild(s)"
    )
    assert page.evaluate("window.__injected") is None
    assert page.evaluate("window.__cspViolations") == ["script-src-elem inline"]

    # The server saw the browser's call as the user's, in its JSON access log.
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    calls = [line for line in lines if line.get("path") == "/tasks" and line.get("method") == "GET"]
    assert calls and calls[-1]["status"] == 200 and calls[-1]["user_id"] is not None
