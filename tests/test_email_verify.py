"""Address verification: the link sent at signup and on request, and REQUIRE_VERIFIED_EMAIL."""

from sqlalchemy import func, select

from conftest import PASSWORD, assert_error, unique_email
from taskapp.extensions import db
from taskapp.mail.models import OutboxMessage

SUBJECT = "Confirm your taskapp address"


def signup(client, email: str):
    response = client.post("/signup", json={"email": email, "password": PASSWORD}, buffered=True)
    assert response.status_code == 201, response.json
    return response.json


def verification(smtp, email: str, count: int = 1):
    mails = [m for m in smtp.wait_for(email, count) if m.message["Subject"] == SUBJECT]
    assert len(mails) >= count
    return mails[-1]


def test_signup_sends_a_link_that_verifies_the_address(app, client, smtp, login):
    email = unique_email()
    assert signup(client, email)["email_verified"] is False
    mail = verification(smtp, email)
    assert mail.link[0] == app.config["PUBLIC_BASE_URL"] + "/verify-email"

    confirm = client.post("/email/verify/confirm", json={"token": mail.token})
    assert confirm.status_code == 204, confirm.json
    headers = {"Authorization": f"Bearer {login(email)['access_token']}"}
    assert client.get("/me", headers=headers).json["email_verified"] is True
    assert_error(client.post("/email/verify/confirm", json={"token": mail.token}), 400)
    # Verified already: asking for another link is a conflict, and sends nothing.
    before = db.session.scalar(select(func.count(OutboxMessage.id)))
    assert_error(client.post("/me/email/verify", headers=headers), 409)
    assert db.session.scalar(select(func.count(OutboxMessage.id))) == before


def test_a_new_link_on_request_replaces_the_first(client, smtp, login):
    email = unique_email()
    signup(client, email)
    first = verification(smtp, email).token
    headers = {"Authorization": f"Bearer {login(email)['access_token']}"}

    response = client.post("/me/email/verify", headers=headers, buffered=True)
    assert response.status_code == 202
    assert response.json == {"message": "A link is on its way"}
    second = verification(smtp, email, 2).token

    assert_error(client.post("/email/verify/confirm", json={"token": first}), 400)
    assert client.post("/email/verify/confirm", json={"token": second}).status_code == 204


def test_a_token_of_another_purpose_is_refused(client, smtp, make_user):
    email, _ = make_user()
    client.post("/password-reset", json={"email": email}, buffered=True)
    reset_token = smtp.wait_for(email)[-1].token
    assert_error(client.post("/email/verify/confirm", json={"token": reset_token}), 400)
    assert_error(client.post("/email/change/confirm", json={"token": reset_token}), 400)


def test_required_verification_refuses_login_until_verified(app, client, smtp):
    email = unique_email()
    signup(client, email)
    verification(smtp, email)
    app.config["REQUIRE_VERIFIED_EMAIL"] = True
    try:
        # A wrong password is the usual 401: the 403 is for the password's owner only.
        wrong = client.post("/login", json={"email": email, "password": "wrong password"})
        assert_error(wrong, 401)

        refused = client.post("/login", json={"email": email, "password": PASSWORD}, buffered=True)
        body = assert_error(refused, 403)
        assert "not verified" in body["message"]
        assert "access_token" not in body
        # ... and a fresh link went out, which replaced the signup one.
        fresh = verification(smtp, email, 2)
        assert client.post("/email/verify/confirm", json={"token": fresh.token}).status_code == 204

        ok = client.post("/login", json={"email": email, "password": PASSWORD})
        assert ok.status_code == 200
    finally:
        app.config["REQUIRE_VERIFIED_EMAIL"] = False


def test_by_default_unverified_accounts_log_in(client, smtp):
    email = unique_email()
    signup(client, email)
    assert client.post("/login", json={"email": email, "password": PASSWORD}).status_code == 200


def test_a_refused_signup_leaves_no_mail_behind(client, smtp, make_user):
    email, _ = make_user()
    before = db.session.scalar(select(func.count(OutboxMessage.id)))
    response = client.post("/signup", json={"email": email, "password": PASSWORD}, buffered=True)
    assert_error(response, 409)
    assert db.session.scalar(select(func.count(OutboxMessage.id))) == before
