"""Emails have one stored spelling (NFKC, lower-cased, the domain IDNA-encoded) and invisible or
control characters are refused, at signup, login, its rate-limit key and the admin CLI alike."""

import pytest

from conftest import PASSWORD, assert_error
from taskapp.emails import InvalidEmail, normalise_email


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  Casey@Example.COM\t", "casey@example.com"),
        ("\uff4a\uff4f\uff45@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "joe@example.com"),
        ("jo\u0065\u0301@example.com", "jo\u00e9@example.com"),  # composed by NFKC
        ("joe@B\u00dcCHER.example", "joe@xn--bcher-kva.example"),
        ("joe@bu\u0308cher.EXAMPLE", "joe@xn--bcher-kva.example"),
        ("joe@xn--bcher-kva.example", "joe@xn--bcher-kva.example"),
        ("\u00c9mile@example.com", "\u00e9mile@example.com"),
        ("no-at-sign", "no-at-sign"),  # not an address: for the schema's validator to refuse
    ],
)
def test_emails_are_normalised(sent, stored):
    assert normalise_email(sent) == stored


INVISIBLE = {
    "zero-width space": "jo\u200be@example.com",
    "zero-width joiner": "jo\u200de@example.com",
    "soft hyphen": "jo\u00ade@example.com",
    "right-to-left override": "\u202emoc.elpmaxe@eoj",
    "byte order mark": "\ufeffjoe@example.com",
    "bell": "jo\x07e@example.com",
    "delete": "jo\x7fe@example.com",
    "no-break space inside": "jo\u00a0e@example.com",
    "space inside": "jo e@example.com",
    "Hangul filler": "jo\u3164e@example.com",
    "combining grapheme joiner": "jo\u034fe@example.com",
    "variation selector": "joe\ufe0f@example.com",
    "tag character": "joe@example.com\U000e0041",
    "private use": "jo\ue000e@example.com",
    "unassigned": "jo\U000effffe@example.com",
}


@pytest.mark.parametrize("sent", INVISIBLE.values(), ids=list(INVISIBLE))
def test_invisible_and_control_characters_are_refused(sent):
    with pytest.raises(InvalidEmail):
        normalise_email(sent)


def test_a_domain_idna_refuses_is_refused():
    with pytest.raises(InvalidEmail):
        normalise_email("joe@b\u00fccher..example")


@pytest.mark.parametrize("sent", INVISIBLE.values(), ids=list(INVISIBLE))
def test_signup_and_login_refuse_them_with_422(client, sent):
    credentials = {"email": sent, "password": PASSWORD}
    assert_error(client.post("/signup", json=credentials), 422, field="email")
    assert_error(client.post("/login", json=credentials), 422, field="email")


def test_spellings_of_one_address_are_one_account(client, make_user, login):
    make_user("joe@b\u00fccher.example")

    for spelling in ["JOE@B\u00dcCHER.EXAMPLE", "\uff4a\uff4f\uff45@bu\u0308cher.example"]:
        duplicate = client.post("/signup", json={"email": spelling, "password": PASSWORD})
        assert_error(duplicate, 409)
    tokens = login("\uff2a\uff4f\uff45@XN--BCHER-KVA.example")
    me = client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json["email"] == "joe@xn--bcher-kva.example"


def test_an_email_too_long_once_normalised_is_422(client):
    # 250 characters as sent; NFKC turns each of these into three ("\u2474" is "(1)").
    email = "\u2474" * 100 + "@example.com"
    assert_error(client.post("/signup", json={"email": email, "password": PASSWORD}), 422)


def test_the_login_limit_counts_spellings_of_one_account_as_one(client, make_user):
    email, _ = make_user("dana@b\u00fccher.example")
    spellings = [
        "DANA@B\u00dcCHER.example",
        "dana@xn--bcher-kva.example",
        "\uff44ana@bu\u0308cher.example",
    ]
    for number in range(10):  # RATELIMIT_LOGIN_EMAIL: 10 per hour
        response = client.post(
            "/login",
            json={"email": spellings[number % 3], "password": "wrong password"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{number + 1}"},
        )
        assert response.status_code == 401
    response = client.post(
        "/login",
        json={"email": email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert_error(response, 429)


def test_the_admin_cli_refuses_them_too(runner):
    result = runner.invoke(args=["users", "create-admin", "ad\u200bmin@example.com"], input="x\n")
    assert result.exit_code == 2
    assert "invisible" in result.output
