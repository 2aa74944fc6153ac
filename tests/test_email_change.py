"""Changing the address: password required, confirmation at the new address, notice at the
old one, and no change until the link is followed."""

from conftest import PASSWORD, assert_error, row_count, unique_email
from taskapp.mail.models import OutboxMessage


def change(client, headers, new_email: str, password: str = PASSWORD):
    return client.post(
        "/me/email",
        json={"new_email": new_email, "password": password},
        headers=headers,
        buffered=True,
    )


def test_the_address_changes_only_when_the_new_one_confirms(app, client, smtp, auth, login):
    headers = auth()
    old = client.get("/me", headers=headers).json["email"]
    new = unique_email()

    response = change(client, headers, "  " + new.upper() + " ")
    assert response.status_code == 202, response.json
    confirm = smtp.wait_for(new)[-1]
    assert confirm.link[0] == app.config["PUBLIC_BASE_URL"] + "/confirm-email"
    notice = [m for m in smtp.wait_for(old) if "about to change" in m.message["Subject"]][-1]
    assert notice.link is None and new in notice.text
    assert client.get("/me", headers=headers).json["email"] == old

    assert client.post("/email/change/confirm", json={"token": confirm.token}).status_code == 204
    me = client.get("/me", headers=headers).json
    assert (me["email"], me["email_verified"]) == (new, True)
    login(new)
    assert_error(client.post("/login", json={"email": old, "password": PASSWORD}), 401)
    assert_error(client.post("/email/change/confirm", json={"token": confirm.token}), 400)


def test_a_wrong_password_sends_nothing(client, smtp, auth):
    headers = auth()
    before = row_count(OutboxMessage)
    assert_error(change(client, headers, unique_email(), password="not the password"), 403)
    assert row_count(OutboxMessage) == before


def test_the_same_address_is_a_conflict(client, smtp, auth):
    headers = auth()
    email = client.get("/me", headers=headers).json["email"]
    assert_error(change(client, headers, email), 409)


def test_an_address_taken_meanwhile_is_a_conflict_at_confirmation(client, smtp, auth, make_user):
    headers = auth()
    old = client.get("/me", headers=headers).json["email"]
    target = unique_email()
    assert change(client, headers, target).status_code == 202
    token = smtp.wait_for(target)[-1].token
    make_user(target)

    assert_error(client.post("/email/change/confirm", json={"token": token}), 409)
    assert client.get("/me", headers=headers).json["email"] == old


def test_confirming_retires_links_sent_to_the_old_address(client, smtp, auth):
    headers = auth()
    old = client.get("/me", headers=headers).json["email"]
    client.post("/password-reset", json={"email": old}, buffered=True)
    reset_token = [m for m in smtp.wait_for(old) if "Reset" in m.message["Subject"]][-1].token
    new = unique_email()
    change(client, headers, new)
    assert (
        client.post(
            "/email/change/confirm", json={"token": smtp.wait_for(new)[-1].token}
        ).status_code
        == 204
    )

    stale = client.post(
        "/password-reset/confirm", json={"token": reset_token, "new_password": "whatever123"}
    )
    assert_error(stale, 400)


def test_changing_requires_a_session(client):
    assert_error(client.post("/me/email", json={"new_email": "a@b.example", "password": "x"}), 401)
