"""schemathesis hooks for .ci/fuzz.py: bearer tokens that survive the fuzzer's own logouts.

The fuzzer calls the operations that end sessions (/logout-all, DELETE /sessions/{id},
/me/password, DELETE /me, an admin deactivating a user), so one fixed token would turn the
rest of the run into 401s. Instead three accounts (made by .ci/fuzz.py) play their parts,
each logging in when first needed and again whenever a request is answered 401 (schemathesis
then replays the request once with the new token):

- "owner", who owns a few tasks, for /tasks and GET /me;
- "sessions" for the routes that end sessions or need a password (/sessions, /logout-all,
  /me/password, DELETE /me), so that they do not keep logging the owner out;
- "admin" for /admin/*, so that the admin routes are exercised beyond their 403.

/refresh and /logout get a refresh token of a fresh "sessions" login per call, as the Bearer
credential (the contract allows it), so that rotation and logout can succeed, not only refuse.
The password-confirmed routes get the real password half of the time (see before_call). An
account the fuzzer deactivated, demoted or deleted is put back before logging in again.
"""

import json
import os
import subprocess
import threading
import uuid
from pathlib import Path

import requests
import schemathesis
from hypothesis import strategies as st

PROJECT = Path(__file__).resolve().parents[1]
BASE = os.environ["FUZZ_BASE_URL"]
ACCOUNTS = json.loads(os.environ["FUZZ_ACCOUNTS"])  # name: {"id", "email", "password"}
SESSION_ROUTES = {"/sessions", "/sessions/{session_id}", "/logout-all", "/me/password"}
REFRESH_ROUTES = ["/refresh", "/logout"]
_lock = threading.Lock()


def identity(case, _context) -> str:
    """The account that calls the operation."""
    path, method = case.operation.path, case.operation.method.upper()
    if path.startswith("/admin/"):
        return "admin"
    if path in SESSION_ROUTES or (path, method) == ("/me", "DELETE"):
        return "sessions"
    return "owner"


def _login(name: str) -> requests.Response:
    account = ACCOUNTS[name]
    credentials = {"email": account["email"], "password": account["password"]}
    return requests.post(f"{BASE}/login", json=credentials, timeout=10)


def _restore(name: str) -> None:
    """Reactivate an account the fuzzer deactivated (and give it back its role)."""
    if name == "admin":
        # No admin token is left to do it with: the CLI, on the same database and key.
        subprocess.run(
            [os.environ["FUZZ_FLASK"], "--app", "wsgi", "users", "create-admin"]
            + [ACCOUNTS["admin"]["email"]],
            cwd=PROJECT,
            env={**os.environ, **json.loads(os.environ["FUZZ_CLI_ENV"])},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return
    account = ACCOUNTS[name]
    response = requests.patch(
        f"{BASE}/admin/users/{account['id']}",
        json={"is_active": True, "role": "user"},
        headers={"Authorization": f"Bearer {_tokens('admin')['access_token']}"},
        timeout=10,
    )
    if response.status_code == 404:  # deleted (DELETE /me): sign up again
        credentials = {"email": account["email"], "password": account["password"]}
        response = requests.post(f"{BASE}/signup", json=credentials, timeout=10)
        account["id"] = response.json().get("id")
    response.raise_for_status()


def _tokens(name: str) -> dict:
    """A fresh token pair of the account, restoring it first if it was deactivated."""
    response = _login(name)
    if response.status_code == 401:
        _restore(name)
        response = _login(name)
    response.raise_for_status()
    tokens = response.json()
    if name == "admin":
        me = requests.get(
            f"{BASE}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
        )
        if me.json()["role"] != "admin":  # demoted (the role is read on every request)
            _restore("admin")
    return tokens


class BearerAuth:
    """Sets the token as the Bearer credential."""

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# 401: the session was ended. (Only 401: once a status outlives a fresh token, schemathesis
# stops renewing the token for that operation.)
@schemathesis.auth(cache_by_key=identity, retry_on=[401]).skip_for(path=REFRESH_ROUTES)
class AccessTokenAuth(BearerAuth):
    """An access token per account, renewed on 401."""

    def get(self, case, context):
        with _lock:
            return _tokens(identity(case, context))["access_token"]


# Never cached: a refresh token works once.
@schemathesis.auth(refresh_interval=None).apply_to(path=REFRESH_ROUTES)
class RefreshTokenAuth(BearerAuth):
    """A refresh token of a new session of the "sessions" account, per call."""

    def get(self, case, context):
        with _lock:
            return _tokens("sessions")["refresh_token"]


# The password-confirmed routes, called as "sessions". Half of their calls (by the drawn
# value's length) carry the real password, so that changing the password and deleting the
# account succeed too, not only their 403; the accounts follow.
CONFIRMED = {("POST", "/me/password"): "current_password", ("DELETE", "/me"): "password"}


def _route(case) -> tuple[str, str]:
    return case.operation.method.upper(), case.operation.path


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.meta is not None and case.meta.phase.name.value == "stateful" and case.headers:
        # A reused Idempotency-Key replays the first create's answer (the contract), naming a
        # resource an earlier step may have deleted since; the stateful checks assume that a
        # create creates. The other phases keep the fuzzer's reused keys (409 and 422).
        if "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
    field = CONFIRMED.get(_route(case))
    body = case.body
    if field and isinstance(body, dict) and isinstance(body.get(field), str):
        if len(body[field]) % 2 == 0:
            body[field] = ACCOUNTS["sessions"]["password"]


@schemathesis.hook
def after_call(context, case, response):
    if _route(case) == ("POST", "/me/password") and response.status_code == 204:
        ACCOUNTS["sessions"]["password"] = case.body["new_password"]
    elif case.operation.path.startswith("/admin/") and response.status_code == 403:
        with _lock:
            _tokens("admin")  # re-promotes the admin if the fuzzer demoted it


# The spec's `format: password` (new passwords): 8 to 72 bytes in UTF-8, a rule JSON Schema
# cannot state (its lengths count characters), and no NUL, as for every string the API stores.
schemathesis.openapi.format(
    "password",
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=2, max_size=72
    ).filter(lambda text: 8 <= len(text.encode()) <= 72),
)
