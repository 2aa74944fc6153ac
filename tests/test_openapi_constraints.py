"""The OpenAPI document states what the schemas enforce: what its patterns and bounds allow is
taken, what they refuse is refused (the fuzzing in .ci/fuzz.py holds the API to it)."""

import re

import pytest

# White space the API trims, of each kind str.strip() knows; some of it is no \s elsewhere.
SPACES = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json


def field(spec, schema: str, name: str) -> dict:
    return spec["components"]["schemas"][schema]["properties"][name]


def email_of_length(length: int) -> str:
    return "a" * (length - len("@example.com")) + "@example.com"


TITLES = {
    "one character": "a",
    "padded": f"{SPACES}a b{SPACES}",
    "200 characters": "é" * 200,
    "200 once trimmed": SPACES + "b" * 200 + SPACES,
    "empty": "",
    "only white space": SPACES,
    "only information separators": "\x1c\x1f",
    "201 characters": "a" * 201,
    "201 once trimmed": f" {'a' * 201} ",
    "NUL": "a\x00b",
}


@pytest.mark.parametrize("title", TITLES.values(), ids=TITLES.keys())
def test_the_title_pattern_is_the_rule(client, auth, spec, title):
    rule = field(spec, "TaskCreate", "title")
    # Lengths count the trimmed title, so no minLength/maxLength (they count the raw one).
    assert "minLength" not in rule and "maxLength" not in rule
    response = client.post("/tasks", json={"title": title}, headers=auth())
    assert response.status_code == (201 if re.search(rule["pattern"], title) else 422)


EMAILS = {
    "plain": "ada@example.com",
    "padded": f"{SPACES}Ada@Example.com{SPACES}",
    "254 characters": email_of_length(254),
    "254 once trimmed": f"  {email_of_length(254)}\t",
    "255 characters": email_of_length(255),
    "NUL": "ada\x00@example.com",
}


@pytest.mark.parametrize("email", EMAILS.values(), ids=EMAILS.keys())
def test_the_signup_email_pattern_is_the_rule(client, spec, email):
    rule = field(spec, "Signup", "email")
    assert rule["format"] == "email" and "maxLength" not in rule
    response = client.post("/signup", json={"email": email, "password": "long enough"})
    assert response.status_code == (201 if re.search(rule["pattern"], email) else 422)


@pytest.mark.parametrize(
    ("schema", "name"),
    [("TaskCreate", "description"), ("TaskPatch", "description"), ("Login", "email")],
)
def test_stored_strings_say_they_take_no_nul(spec, schema, name):
    pattern = field(spec, schema, name)["pattern"]
    assert re.search(pattern, "text\u3000with é and \U0001f600")
    assert not re.search(pattern, "a\x00b")


def test_the_search_parameter_takes_no_nul(client, auth, spec):
    (search,) = (p for p in spec["paths"]["/tasks"]["get"]["parameters"] if p["name"] == "search")
    assert not re.search(search["schema"]["pattern"], "a\x00")
    response = client.get("/tasks", query_string={"search": "a\x00"}, headers=auth())
    assert response.status_code == 422


PASSWORDS = {
    "2 characters, 8 bytes": ("\U0001f600\U0001f600", 201),
    "8 ASCII characters": ("abcdefgh", 201),
    "72 ASCII characters": ("a" * 72, 201),
    "7 bytes": ("abcdefg", 422),
    "72 characters, 73 bytes": ("é" + "a" * 71, 422),
    "73 characters": ("a" * 73, 422),
}


@pytest.mark.parametrize(("password", "status"), PASSWORDS.values(), ids=PASSWORDS.keys())
def test_new_passwords_are_a_format_within_maxlength(client, spec, password, status):
    # Bytes are beyond JSON Schema: the format names the rule, maxLength is what it implies.
    for schema, name in (("Signup", "password"), ("PasswordChange", "new_password")):
        rule = field(spec, schema, name)
        assert rule["format"] == "password" and rule["maxLength"] == 72
        assert "8 to 72 bytes" in rule["description"] and "minLength" not in rule
    response = client.post("/signup", json={"email": "p@example.com", "password": password})
    assert response.status_code == status
    if status == 201:
        assert len(password) <= 72
