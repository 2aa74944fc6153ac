"""A typed client generated from /openapi.json by openapi-python-client drives a real gunicorn.

The client is generated afresh into a temporary directory on every run (never committed, never
edited): a spec the generator refuses, or one whose operations the client cannot call, fails
here. The generator is in the dev extra; without it the test skips.
"""

import contextlib
import importlib
import importlib.util
import json
import subprocess
import sys
from http import HTTPStatus

import pytest

from conftest import PASSWORD, requires_redis
from tests.support.servers import gunicorn

pytest.importorskip("openapi_python_client", reason="openapi-python-client is not installed")

pytestmark = [requires_redis, pytest.mark.gunicorn, pytest.mark.committing]

PACKAGE = "taskapp_client"


@pytest.fixture(scope="module")
def sdk(_app, tmp_path_factory):
    """The generated package, imported; its modules are forgotten afterwards."""
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    spec.write_text(json.dumps(_app.test_client().get("/openapi.json").json))
    config = root / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter needed
    generate = [
        *(sys.executable, "-m", "openapi_python_client", "generate"),
        *("--path", str(spec), "--meta", "none", "--config", str(config)),
        *("--output-path", str(root / PACKAGE)),
    ]
    result = subprocess.run(generate, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator reports what it could not turn into code, yet still exits 0.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    # Imported from where it was generated, without putting that directory on sys.path: the
    # package is loaded from its file, and its modules are found through its __path__.
    package = root / PACKAGE
    spec = importlib.util.spec_from_file_location(PACKAGE, package / "__init__.py")
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(sys.modules[PACKAGE])
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture
def server(app, tmp_path):
    with gunicorn(tmp_path, workers=2) as served:
        yield served


@pytest.fixture
def closing():
    """Enter a context for the rest of the test: the clients, whose connections gunicorn keeps
    alive, are closed after it."""
    with contextlib.ExitStack() as stack:
        yield stack.enter_context


def test_the_generated_client_signs_up_works_and_logs_out(sdk, server, closing):
    client_module, models = sdk("client"), sdk("models")
    auth = {name: sdk(f"api.auth.{name}") for name in ("signup", "login", "refresh", "logout")}
    tasks = {
        name: sdk(f"api.tasks.{name}")
        for name in ("create_task", "list_tasks", "update_task", "list_task_changes")
    }
    anonymous = closing(client_module.Client(base_url=server.url, raise_on_unexpected_status=True))
    email = "generated-client@example.com"

    signed_up = auth["signup"].sync_detailed(
        client=anonymous, body=models.Signup(email=email, password=PASSWORD)
    )
    assert signed_up.status_code == HTTPStatus.CREATED
    assert signed_up.parsed.email == email
    pair = auth["login"].sync(client=anonymous, body=models.Login(email=email, password=PASSWORD))
    assert isinstance(pair, models.TokenPair)
    client = closing(
        client_module.AuthenticatedClient(
            base_url=server.url, token=pair.access_token, raise_on_unexpected_status=True
        )
    )
    since = tasks["list_task_changes"].sync(client=client).sync_token

    # Create, safely retried with an Idempotency-Key.
    body = models.TaskCreate(title="buy milk")
    created = tasks["create_task"].sync_detailed(client=client, body=body, idempotency_key="k1")
    assert created.status_code == HTTPStatus.CREATED
    task, etag = created.parsed, created.headers["ETag"]
    assert isinstance(task, models.Task) and task.title == "buy milk"
    retried = tasks["create_task"].sync_detailed(client=client, body=body, idempotency_key="k1")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.parsed.id == task.id
    tasks["create_task"].sync(client=client, body=models.TaskCreate(title="done", completed=True))

    # List with filters, then conditionally.
    listed = tasks["list_tasks"].sync_detailed(client=client, completed=False, search="milk")
    assert [item.id for item in listed.parsed.data] == [task.id]
    assert listed.parsed.meta.total == 1
    unchanged = tasks["list_tasks"].sync_detailed(
        client=client, completed=False, search="milk", if_none_match=listed.headers["ETag"]
    )
    assert unchanged.status_code == HTTPStatus.NOT_MODIFIED

    # Update with If-Match; the same ETag again is stale.
    updated = tasks["update_task"].sync_detailed(
        task.id, client=client, body=models.TaskPatch(completed=True), if_match=etag
    )
    assert updated.status_code == HTTPStatus.OK and updated.parsed.completed is True
    stale = tasks["update_task"].sync_detailed(
        task.id, client=client, body=models.TaskPatch(title="x"), if_match=etag
    )
    assert stale.status_code == HTTPStatus.PRECONDITION_FAILED
    assert isinstance(stale.parsed, models.Error)

    # Incremental sync sees both tasks as they are now.
    changes = tasks["list_task_changes"].sync(client=client, since=since)
    now = {item.id: item for item in changes.changed}
    assert now[task.id].completed is True and len(now) == 2 and not changes.has_more

    # Refresh, log out; the logged-out session's token no longer refreshes.
    token = models.RefreshToken(refresh_token=pair.refresh_token)
    fresh = auth["refresh"].sync(client=client, body=token)
    assert isinstance(fresh, models.TokenPair) and fresh.refresh_token != pair.refresh_token
    spent = models.RefreshToken(refresh_token=fresh.refresh_token)
    assert auth["logout"].sync_detailed(client=client, body=spent).status_code == 204
    refused = auth["refresh"].sync_detailed(client=client, body=spent)
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert isinstance(refused.parsed, models.Error)
