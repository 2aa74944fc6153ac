"""CI: fuzz the live API with schemathesis against its own /openapi.json.

A fresh PostgreSQL database (FUZZ_DATABASE, default taskapp_fuzz, on 127.0.0.1:5432 as
postgres), migrated; gunicorn as deployed (production config, two workers) with rate limiting
off (else the fuzzer's traffic would be 429s) and cheap bcrypt. Two users (one with a few
tasks) and an admin are made first; .ci/fuzz_hooks.py logs them in, and again whenever the
fuzzer ends their sessions. Every check runs (`--checks all`; .ci/schemathesis.toml has the
rest), on every operation, with a fixed seed and budget (FUZZ_SEED, FUZZ_MAX_EXAMPLES).

Exits non-zero on any failure, or if the server logged an error (a 500's traceback, say).
Reports and the server's log: test-artifacts/fuzz/.

    PYTHONPATH=. .venv/bin/python .ci/fuzz.py [more schemathesis run options]

From the project root: it imports the test harness (tests.support), and ``.ci`` cannot be a
package name for ``python -m``, so the root comes from PYTHONPATH.
"""

import json
import os
import secrets
import subprocess
import sys
import time

import psycopg2
import requests

from tests.support import PROJECT, flask
from tests.support.servers import start_gunicorn, stop

BIN = PROJECT / ".venv" / "bin"
DATABASE = os.environ.get("FUZZ_DATABASE", "taskapp_fuzz")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
# About two minutes on two cores; the seed makes the run repeatable.
MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "400")
SEED = os.environ.get("FUZZ_SEED", "20261124")
REPORT_DIR = PROJECT / "test-artifacts" / "fuzz"


def run_flask(*args: str, env: dict) -> None:
    """Run a `flask --app wsgi` command; its output is shown only if it fails."""
    done = flask(*args, env=env)
    if done.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def recreate_database() -> str:
    connection = psycopg2.connect(dbname="postgres", **PG)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    connection.close()
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DATABASE}"


def server_env(database_url: str) -> dict:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RATELIMIT_", "GUNICORN_", "DB_", "TEST_", "PROMETHEUS_"))
        and name not in ("REDIS_URL", "TRUSTED_PROXIES", "CORS_ORIGINS", "METRICS_ENABLED")
    }
    env.update(
        TASKAPP_ENV="production",
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
        RATELIMIT_ENABLED="false",  # the auth limits and RATELIMIT_TASK_WRITES
        # The fuzzer makes far more tasks, labels and keys than a user would (taskapp/quotas.py).
        MAX_TASKS_PER_USER="0",
        LABELS_PER_USER="0",
        IDEMPOTENCY_KEYS_PER_USER="0",
        BCRYPT_ROUNDS="4",
    )
    return env


def prepare_accounts(url: str, env: dict) -> dict:
    """The accounts .ci/fuzz_hooks.py logs in as: two users (one with a few tasks), an admin."""
    accounts = {
        name: {
            "email": f"{name}-{secrets.token_hex(4)}@example.com",
            "password": secrets.token_hex(12),
        }
        for name in ("owner", "sessions", "admin")
    }
    for name in ("owner", "sessions"):
        credentials = {key: accounts[name][key] for key in ("email", "password")}
        response = requests.post(f"{url}/signup", json=credentials, timeout=10)
        response.raise_for_status()
        accounts[name]["id"] = response.json()["id"]
    admin = accounts["admin"]
    run_flask(
        "users",
        "create-admin",
        admin["email"],
        env={**env, "TASKAPP_ADMIN_PASSWORD": admin["password"]},
    )
    owner = {key: accounts["owner"][key] for key in ("email", "password")}
    response = requests.post(f"{url}/login", json=owner, timeout=10)
    response.raise_for_status()
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    for title in ("Write the report", "Plan the week"):
        response = requests.post(f"{url}/tasks", json={"title": title}, headers=headers, timeout=10)
        response.raise_for_status()
    return accounts


def schemathesis(url: str, env: dict, extra: list[str]) -> int:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        BIN / "schemathesis",
        "--config-file",
        PROJECT / ".ci" / "schemathesis.toml",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        # One request at a time: the operations that end sessions cannot race the others of
        # the same account (a request that finds its session ended is replayed once, after a
        # fresh login), and the run stays repeatable.
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        REPORT_DIR / "junit.xml",
        "--no-color",
        *extra,
    ]
    # Run from the report directory, where Hypothesis keeps its own files.
    env = {**env, "SCHEMATHESIS_HOOKS": str(PROJECT / ".ci" / "fuzz_hooks.py")}
    return subprocess.run(command, cwd=REPORT_DIR, env=env).returncode


def logged_errors(log: str) -> list[str]:
    """The server's ERROR and CRITICAL records, and whatever is not one of its JSON lines."""
    errors = []
    # "\n" alone ends a line: a JSON string may hold U+2028 and the like, unescaped.
    for line in filter(None, log.split("\n")):
        try:
            level = json.loads(line)["level"]
        except (ValueError, KeyError, TypeError):
            errors.append(line)
            continue
        if level in ("ERROR", "CRITICAL"):
            errors.append(line)
    return errors


def main(extra: list[str]) -> int:
    started = time.monotonic()
    database_url = recreate_database()
    env = server_env(database_url)
    run_flask("db", "upgrade", env=env)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    log_path = REPORT_DIR / "server.log"
    server = start_gunicorn(log_path, env=env, workers=2)
    try:
        url = server.url
        accounts = prepare_accounts(url, env)
        hooks = {
            "FUZZ_BASE_URL": url,
            "FUZZ_ACCOUNTS": json.dumps(accounts),
            "FUZZ_FLASK": str(BIN / "flask"),
            # For the hooks' `flask users create-admin`: this database, this key.
            "FUZZ_CLI_ENV": json.dumps(
                {name: env[name] for name in ("TASKAPP_ENV", "DATABASE_URL", "JWT_SECRET_KEY")}
            ),
        }
        status = schemathesis(url, {**os.environ, **hooks}, extra)
    finally:
        stop(server)
    errors = logged_errors(log_path.read_text(errors="replace"))
    if errors:
        print(f"the server logged {len(errors)} error(s) ({log_path}):", file=sys.stderr)
        print("\n".join(errors[:20]), file=sys.stderr)
        status = status or 1
    print(f"fuzz: exit {status} in {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
