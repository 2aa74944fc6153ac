"""The Dockerfile and compose.yaml (no Docker engine here): they parse, and they run exactly
the steps the suite runs for real (pip install ., flask db upgrade, gunicorn with its conf)."""

import json
import re

import yaml

from tests.support import MIGRATE as MIGRATE_ARGS
from tests.support import PROJECT
from tests.support import SERVE as SERVE_ARGS

MIGRATE = " ".join(MIGRATE_ARGS)
SERVE = " ".join(SERVE_ARGS)


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined."""
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_image_installs_like_the_readme_and_runs_as_a_user():
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for instruction, args in steps if instruction == "RUN")
    assert "pip install /src" in runs  # docs/deploying.md's `pip install .`, from /src
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    # The one writable place: Flask's instance folder of the installed package.
    assert f"-o {users[-1]}" in runs and "/usr/local/var/taskapp-instance" in runs


def test_the_image_migrates_then_serves_with_the_tested_commands():
    [command] = [json.loads(args) for instruction, args in dockerfile() if instruction == "CMD"]
    assert command[:2] == ["sh", "-c"]
    assert command[2] == f"{MIGRATE} && exec {SERVE}"
    # The same commands the suite runs against live servers (tests.support's flask() and
    # start_gunicorn() build theirs from MIGRATE and SERVE), and docs/deploying.md documents.
    deploying = (PROJECT / "docs" / "deploying.md").read_text()
    assert MIGRATE in deploying and SERVE in deploying


def test_no_local_state_goes_into_the_image():
    ignored = set((PROJECT / ".dockerignore").read_text().split())
    # instance/ holds the development signing key and the embedded PostgreSQL's data.
    assert {"instance", ".venv", ".git", "test-artifacts"} <= ignored


def test_compose_parses_and_wires_postgresql_and_redis():
    compose = yaml.safe_load((PROJECT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "redis", "api", "mailer"}
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis:")
    api = services["api"]
    assert api["build"] == "."
    env = api["environment"]
    assert re.fullmatch(
        r"postgresql://taskapp:\$\{POSTGRES_PASSWORD\}@db:5432/taskapp", env["DATABASE_URL"]
    )
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["JWT_SECRET_KEY"].startswith("${JWT_SECRET_KEY:?")  # required, no default
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "db": "service_healthy",
        "redis": "service_healthy",
    }
    for name in ("db", "redis"):
        assert services[name]["healthcheck"]["test"]
        assert "ports" not in services[name]  # reachable by the API only


def test_compose_runs_the_mail_worker_beside_the_api():
    services = yaml.safe_load((PROJECT / "compose.yaml").read_text())["services"]
    api, mailer = services["api"], services["mailer"]
    assert mailer["build"] == "."
    assert mailer["command"] == ["flask", "--app", "wsgi", "mail", "deliver"]
    assert mailer["environment"]["DATABASE_URL"] == api["environment"]["DATABASE_URL"]
    assert mailer["environment"]["JWT_SECRET_KEY"].startswith("${JWT_SECRET_KEY:?")
    assert mailer["depends_on"] == {"api": {"condition": "service_healthy"}}  # migrated
    assert "ports" not in mailer
    for name in ("MAIL_SERVER", "MAIL_PORT", "MAIL_FROM", "PUBLIC_BASE_URL"):
        assert api["environment"][name] == mailer["environment"][name], name
