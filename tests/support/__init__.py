"""The test harness: real servers (gunicorn, Redis), PostgreSQL clusters of our own and an SMTP
sink, shared by tests/, bench/, .ci/ and deploy/drill.py.

Imported as ``tests.support`` with the project root on the path: pytest puts it there
(``pythonpath`` in setup.cfg), and the scripts run as modules from the project root
(``python -m bench.run``, ``python -m deploy.drill``; .ci/run sets it for .ci/fuzz.py). It
never imports conftest: conftest imports it.
"""

import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# The password of the accounts the tests sign up.
PASSWORD = "correct horse battery"
# The signing key of the test apps, and of a gunicorn that must accept their tokens.
TEST_JWT_SECRET = "test-secret-key-that-is-long-enough-0123456789"
# The commands of a deployment (the Dockerfile, docs/deploying.md), run from the project root
# by flask() and servers.start_gunicorn() with the interpreter of the tests.
MIGRATE = ("flask", "--app", "wsgi", "db", "upgrade")
SERVE = ("gunicorn", "-c", "gunicorn.conf.py", "wsgi:app")


def wait_for(condition, *, timeout: float = 10, message: str = "condition", every: float = 0.05):
    """Poll ``condition()`` until it returns something true, and return that; TimeoutError
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(every)


def flask(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """``flask --app wsgi ARGS`` in the project with ``env``, as an operator runs it; its
    output captured, its exit status for the caller to check."""
    return subprocess.run(
        [sys.executable, "-m", *MIGRATE[:3], *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
