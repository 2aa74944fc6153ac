"""GET /admin/users and PATCH /admin/users/{id}: roles, paging and search, deactivation, and
the last-admin guard (under concurrency on PostgreSQL)."""

import threading
import time

import pytest
from sqlalchemy import func, select, text

from conftest import assert_error, bearer, own_connection
from taskapp.admin import service as admin_service
from taskapp.auth.models import Session, User
from taskapp.extensions import db


@pytest.fixture(autouse=True)
def generous_limits(app, monkeypatch):
    """These tests sign up and log in more users than the per-address limits allow."""
    for name in ("RATELIMIT_SIGNUP", "RATELIMIT_LOGIN"):
        monkeypatch.setitem(app.config, name, "1000 per minute")


@pytest.fixture
def make_admin(make_user, login):
    """Sign a user up through the API, promote them, log in; returns (id, email, tokens)."""

    def make(email: str | None = None):
        email, password = make_user(email)
        user, created = admin_service.make_admin(email=email)
        assert not created
        return user.id, email, login(email, password)

    return make


@pytest.fixture
def admin(make_admin) -> dict:
    """Authorization headers of a fresh admin."""
    return bearer(make_admin()[2]["access_token"])


def user_id_of(client, headers: dict) -> int:
    return client.get("/me", headers=headers).json["id"]


def patch_user(client, headers: dict, user_id: int, body: dict):
    return client.patch(f"/admin/users/{user_id}", json=body, headers=headers)


# --- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [("get", "/admin/users", None), ("patch", "/admin/users/1", {"role": "admin"})],
)
def test_ordinary_users_get_403_and_change_nothing(client, auth, method, path, body):
    headers = auth()
    assert_error(getattr(client, method)(path, json=body, headers=headers), 403)
    # Not even themselves: they are still an ordinary user.
    assert client.get("/me", headers=headers).json["role"] == "user"
    assert db.session.scalar(select(func.count()).where(User.role == "admin")) == 0


@pytest.mark.parametrize("method, path", [("get", "/admin/users"), ("patch", "/admin/users/1")])
def test_admin_routes_need_an_access_token(client, make_admin, method, path):
    _, _, tokens = make_admin()
    assert_error(getattr(client, method)(path, json={}), 401)
    assert_error(getattr(client, method)(path, json={}, headers=bearer("not-a-jwt")), 401)
    refresh = bearer(tokens["refresh_token"])
    assert_error(getattr(client, method)(path, json={}, headers=refresh), 401)


def test_403_comes_before_validation_and_404(client, auth):
    headers = auth()
    assert_error(patch_user(client, headers, 999_999, {"role": "emperor"}), 403)
    assert_error(client.get("/admin/users?page=0", headers=headers), 403)


def test_spec_documents_bearer_auth_401_and_403(client):
    paths = client.get("/openapi.json").json["paths"]
    for path, method in (("/admin/users", "get"), ("/admin/users/{user_id}", "patch")):
        operation = paths[path][method]
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"401", "403", "422"} <= set(operation["responses"]), operation["responses"]
    assert {"404", "409"} <= set(paths["/admin/users/{user_id}"]["patch"]["responses"])


def test_a_demoted_admin_loses_access_at_once(client, make_admin, admin):
    target_id, _, tokens = make_admin()
    target = bearer(tokens["access_token"])
    assert client.get("/admin/users", headers=target).status_code == 200
    response = patch_user(client, admin, target_id, {"role": "user"})
    assert response.status_code == 200 and response.json["role"] == "user"
    # Same access token, next request: the role is read with the session.
    assert_error(client.get("/admin/users", headers=target), 403)
    assert client.get("/me", headers=target).json["role"] == "user"


# --- listing ------------------------------------------------------------------------------


def test_list_is_a_page_of_every_user_by_id(client, make_user, admin):
    for name in ("carol", "alice", "bob"):
        make_user(f"{name}@example.com")
    response = client.get("/admin/users", headers=admin)
    assert response.status_code == 200
    body = response.json
    assert body["meta"] == {
        "page": 1,
        "page_size": 10,
        "total": 4,
        "pages": 1,
        "next_cursor": None,
    }
    ids = [user["id"] for user in body["data"]]
    assert ids == sorted(ids)
    emails = [user["email"] for user in body["data"]]
    assert emails[1:] == ["carol@example.com", "alice@example.com", "bob@example.com"]
    first = body["data"][0]
    assert set(first) == {"id", "email", "email_verified", "role", "is_active", "created_at"}
    assert first["email_verified"] is False
    assert first["role"] == "admin" and first["is_active"] is True
    assert first["created_at"].endswith("+00:00")
    assert all("password" not in key for user in body["data"] for key in user)


def test_paging_walks_every_user_exactly_once(client, make_user, admin):
    for number in range(6):
        make_user(f"pager{number}@example.com")
    seen = []
    for page in (1, 2, 3):
        body = client.get(f"/admin/users?page={page}&page_size=3", headers=admin).json
        assert body["meta"].pop("next_cursor") or page == 3
        assert body["meta"] == {"page": page, "page_size": 3, "total": 7, "pages": 3}
        seen += [user["id"] for user in body["data"]]
    assert len(seen) == len(set(seen)) == 7
    past = client.get("/admin/users?page=4&page_size=3", headers=admin).json
    assert past["data"] == [] and past["meta"]["total"] == 7


@pytest.mark.parametrize(
    "search, expected",
    [
        ("EXAMPLE.ORG", ["ann@example.org", "a_b@example.org", "a%b@example.org"]),
        ("ann", ["ann@example.org"]),
        ("_", ["a_b@example.org"]),
        ("%", ["a%b@example.org"]),
        ("a_b", ["a_b@example.org"]),
        ("nobody", []),
    ],
)
def test_search_by_email_is_case_insensitive_and_literal(
    client, make_user, admin, search, expected
):
    for email in ("ann@example.org", "a_b@example.org", "a%b@example.org", "axb@example.com"):
        make_user(email)
    response = client.get("/admin/users", query_string={"search": search}, headers=admin)
    assert response.status_code == 200
    assert [user["email"] for user in response.json["data"]] == expected
    assert response.json["meta"]["total"] == len(expected)


@pytest.mark.parametrize(
    "query, field",
    [
        ("page=0", "page"),
        ("page_size=101", "page_size"),
        ("page_size=abc", "page_size"),
        ("search=", "search"),
        ("search=" + "x" * 255, "search"),
        ("sort=email", "sort"),
    ],
)
def test_bad_list_queries_are_422(client, admin, query, field):
    assert_error(client.get(f"/admin/users?{query}", headers=admin), 422, field=field)


# --- changing users -----------------------------------------------------------------------


def test_promote_and_demote(client, auth, admin):
    headers = auth()
    user_id = user_id_of(client, headers)
    promoted = patch_user(client, admin, user_id, {"role": "admin"})
    assert promoted.status_code == 200
    assert promoted.json["role"] == "admin" and promoted.json["is_active"] is True
    assert client.get("/admin/users", headers=headers).status_code == 200
    demoted = patch_user(client, admin, user_id, {"role": "user"})
    assert demoted.status_code == 200 and demoted.json["role"] == "user"
    db.session.expire_all()
    assert db.session.get(User, user_id).role == "user"


def test_deactivation_revokes_every_session_at_once(client, make_user, login, admin):
    email, password = make_user()
    first, second = login(email, password), login(email, password)
    user_id = user_id_of(client, bearer(first["access_token"]))

    response = patch_user(client, admin, user_id, {"is_active": False})
    assert response.status_code == 200 and response.json["is_active"] is False

    for tokens in (first, second):
        # The access tokens have not expired, yet they are refused on the next request.
        assert_error(client.get("/tasks", headers=bearer(tokens["access_token"])), 401)
        assert_error(client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    assert_error(client.post("/login", json={"email": email, "password": password}), 401)
    live = db.session.scalar(
        select(func.count())
        .select_from(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
    )
    assert live == 0


def test_reactivated_user_logs_in_again_but_old_sessions_stay_revoked(
    client, make_user, login, admin
):
    email, password = make_user()
    old = login(email, password)
    user_id = user_id_of(client, bearer(old["access_token"]))
    assert patch_user(client, admin, user_id, {"is_active": False}).status_code == 200
    reactivated = patch_user(client, admin, user_id, {"is_active": True})
    assert reactivated.status_code == 200 and reactivated.json["is_active"] is True
    assert_error(client.get("/me", headers=bearer(old["access_token"])), 401)
    fresh = login(email, password)
    assert client.get("/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_other_users_sessions_are_untouched(client, auth, admin):
    bystander = auth()
    victim = auth()
    patch_user(client, admin, user_id_of(client, victim), {"is_active": False})
    assert client.get("/tasks", headers=bystander).status_code == 200
    assert client.get("/admin/users", headers=admin).status_code == 200


def test_unknown_user_is_404(client, admin):
    assert_error(patch_user(client, admin, 999_999, {"is_active": False}), 404)
    assert_error(patch_user(client, admin, 999_999, {"role": "user"}), 404)
    # Beyond int4 cannot exist: the converter answers 404, not a database overflow.
    assert_error(patch_user(client, admin, 2**31, {"role": "user"}), 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"role": "superuser"}, "role"),
        ({"role": None}, "role"),
        ({"is_active": "false"}, "is_active"),
        ({"is_active": 0}, "is_active"),
        ({"is_active": None}, "is_active"),
        ({"email": "new@example.com"}, "email"),
        ({"password_hash": "x"}, "password_hash"),
        ({"id": 5}, "id"),
    ],
)
def test_bad_changes_are_422_and_change_nothing(client, auth, admin, body, field):
    headers = auth()
    user_id = user_id_of(client, headers)
    assert_error(patch_user(client, admin, user_id, body), 422, field=field)
    db.session.expire_all()
    user = db.session.get(User, user_id)
    assert (user.role, user.is_active) == ("user", True)
    assert client.get("/me", headers=headers).status_code == 200


def test_malformed_json_is_400(client, admin):
    response = client.patch(
        "/admin/users/1", data=b"{", content_type="application/json", headers=admin
    )
    assert_error(response, 400)


# --- the last active admin ----------------------------------------------------------------


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "user"}])
def test_the_last_active_admin_cannot_be_deactivated_or_demoted(client, make_admin, change):
    admin_id, _, tokens = make_admin()
    headers = bearer(tokens["access_token"])
    body = assert_error(patch_user(client, headers, admin_id, change), 409)
    assert "last active admin" in body["message"]
    db.session.expire_all()
    admin = db.session.get(User, admin_id)
    assert (admin.role, admin.is_active) == ("admin", True)
    assert client.get("/admin/users", headers=headers).status_code == 200


def test_an_inactive_admin_does_not_count(client, make_admin):
    first_id, _, first_tokens = make_admin()
    second_id, _, _ = make_admin()
    headers = bearer(first_tokens["access_token"])
    assert patch_user(client, headers, second_id, {"is_active": False}).status_code == 200
    # The second is still an admin by role, but inactive: the first is the last active one.
    assert_error(patch_user(client, headers, first_id, {"role": "user"}), 409)
    assert_error(patch_user(client, headers, first_id, {"is_active": False}), 409)


def test_with_two_admins_one_may_step_down(client, make_admin):
    first_id, _, first_tokens = make_admin()
    _, _, second_tokens = make_admin()
    first = bearer(first_tokens["access_token"])
    second = bearer(second_tokens["access_token"])
    stepped_down = patch_user(client, first, first_id, {"role": "user"})
    assert stepped_down.status_code == 200 and stepped_down.json["role"] == "user"
    assert_error(client.get("/admin/users", headers=first), 403)
    # Now the second is the last one.
    second_id = user_id_of(client, second)
    assert_error(patch_user(client, second, second_id, {"role": "user"}), 409)


def test_changes_that_keep_the_admin_are_allowed_for_the_last_one(client, make_admin):
    admin_id, _, tokens = make_admin()
    headers = bearer(tokens["access_token"])
    for body in ({"role": "admin"}, {"is_active": True}, {}):
        response = patch_user(client, headers, admin_id, body)
        assert response.status_code == 200, response.json
        assert (response.json["role"], response.json["is_active"]) == ("admin", True)


def wait_for_lock_waiter(holder_pid: int, timeout: float = 10) -> bool:
    """Whether, within ``timeout``, some backend waits on a lock held by ``holder_pid``."""
    watcher = own_connection()
    deadline = time.monotonic() + timeout
    try:
        with watcher.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    (holder_pid,),
                )
                if cursor.fetchone()[0]:
                    return True
                time.sleep(0.01)  # poll interval, bounded by the deadline
        return False
    finally:
        watcher.close()


@pytest.mark.committing
def test_two_admins_demoting_each_other_at_once_leave_one(app, client, make_admin):
    """The guard counts admins under row locks: a concurrent demotion is waited for.

    Another transaction locks the admin rows as the service does and demotes B, uncommitted;
    meanwhile A's demotion is requested. Without the lock, that request would count two
    admins (B's change is not visible yet) and demote A too: no admin left.
    """
    a_id, _, a_tokens = make_admin()
    b_id, _, _ = make_admin()
    results = {}

    def demote_a() -> None:
        with app.app_context():
            results["a"] = patch_user(
                app.test_client(), bearer(a_tokens["access_token"]), a_id, {"role": "user"}
            )

    with db.engine.connect() as other:
        locked = other.execute(
            text("SELECT id FROM users WHERE role = 'admin' AND is_active ORDER BY id FOR UPDATE")
        ).scalars()
        assert sorted(locked) == sorted([a_id, b_id])
        other.execute(text("UPDATE users SET role = 'user' WHERE id = :id"), {"id": b_id})
        worker = threading.Thread(target=demote_a)
        worker.start()
        # Observed, not assumed: the demotion's transaction queues behind the row locks.
        assert wait_for_lock_waiter(other.connection.driver_connection.get_backend_pid())
        assert worker.is_alive()
        other.commit()
    worker.join(timeout=10)
    assert not worker.is_alive()

    assert_error(results["a"], 409)
    db.session.expire_all()
    admins = db.session.scalars(select(User.id).where(User.role == "admin", User.is_active))
    assert list(admins) == [a_id]


def test_an_admin_can_use_the_api_like_anyone(client, admin, make_task):
    task = make_task(admin, title="admin's own task")
    assert client.get(f"/tasks/{task['id']}", headers=admin).status_code == 200
