"""The migrations build a fresh PostgreSQL database that matches the models, and tear it down;
the revisions are frozen history, which no change to the application can rewrite."""

import ast
import contextlib
import os
import secrets
import subprocess

import pytest

from taskapp.database import TRANSACTION_SETTINGS_OPTION
from tests.support import PROJECT, flask
from tests.support.databases import connect

REVISIONS = sorted((PROJECT / "migrations" / "versions").glob("*.py"))
TABLES = {"users", "sessions", "refresh_tokens", "tasks"}


def flask_db(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``flask --app wsgi db ARGS`` against ``database_url``, as an operator would."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TASKAPP_ENV": "development",
        "JWT_SECRET_KEY": secrets.token_urlsafe(40),
    }
    return flask("db", *args, env=env)


def run_sql(database_url: str, statement: str) -> list[tuple]:
    with contextlib.closing(connect(database_url)) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall() if cursor.description else []


def public_tables(database_url: str) -> set[str]:
    tables = run_sql(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in tables}


def alembic_revision(database_url: str) -> list[str]:
    return [row[0] for row in run_sql(database_url, "SELECT version_num FROM alembic_version")]


def test_upgrade_builds_a_schema_that_matches_the_models(scratch_database_url):
    assert public_tables(scratch_database_url) == set()

    upgrade = flask_db(scratch_database_url, "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert TABLES | {"alembic_version"} <= public_tables(scratch_database_url)
    assert len(alembic_revision(scratch_database_url)) == 1

    check = flask_db(scratch_database_url, "check")
    output = check.stdout + check.stderr
    assert check.returncode == 0, output
    assert "No new upgrade operations detected" in output


def test_check_fails_on_a_database_that_is_not_upgraded(scratch_database_url):
    # So the check above is not vacuous: it does look at the database.
    check = flask_db(scratch_database_url, "check")
    assert check.returncode != 0
    assert "not up to date" in check.stdout + check.stderr


def test_downgrade_to_base_removes_every_table_and_can_upgrade_again(scratch_database_url):
    assert flask_db(scratch_database_url, "upgrade").returncode == 0

    downgrade = flask_db(scratch_database_url, "downgrade", "base")
    assert downgrade.returncode == 0, downgrade.stderr
    assert public_tables(scratch_database_url) == {"alembic_version"}
    assert alembic_revision(scratch_database_url) == []

    again = flask_db(scratch_database_url, "upgrade")
    assert again.returncode == 0, again.stderr
    check = flask_db(scratch_database_url, "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_0006_backfills_positions_and_downgrades_keeping_the_counts(scratch_database_url):
    assert flask_db(scratch_database_url, "upgrade", "0003").returncode == 0
    run_sql(
        scratch_database_url,
        "INSERT INTO users (email, password_hash) VALUES ('m@example.com', 'x');"
        "INSERT INTO tasks (user_id, title) SELECT 1, 't' || n FROM generate_series(1, 120) n",
    )

    upgrade = flask_db(scratch_database_url, "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    positions = run_sql(scratch_database_url, "SELECT position FROM tasks ORDER BY id")
    assert [row[0] for row in positions] == sorted(f"j{n:010d}" for n in range(1, 121))
    # The previous release, still serving in a rolling deploy, inserts without a position.
    run_sql(scratch_database_url, "INSERT INTO tasks (user_id, title) VALUES (1, 'old code')")
    assert run_sql(scratch_database_url, "SELECT position FROM tasks WHERE id = 121") == [
        ("j0000000121",)
    ]
    assert flask_db(scratch_database_url, "downgrade", "0003").returncode == 0
    run_sql(scratch_database_url, "DELETE FROM tasks WHERE id <= 21")
    assert run_sql(scratch_database_url, "SELECT total FROM task_counts") == [(100,)]


# Each kept count as it reads in its base table, and as the tasks count it.
KEPT_READS = {
    "SELECT total, completed FROM task_counts": (
        "SELECT count(*), count(*) FILTER (WHERE completed) FROM tasks"
    ),
    "SELECT priority, total, completed FROM task_priority_counts ORDER BY 1": (
        "SELECT priority, count(*), count(*) FILTER (WHERE completed) FROM tasks "
        "GROUP BY 1 ORDER BY 1"
    ),
    "SELECT due_on, total, completed FROM task_due_counts ORDER BY 1": (
        "SELECT (due_at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE completed) "
        "FROM tasks WHERE due_at IS NOT NULL GROUP BY 1 ORDER BY 1"
    ),
    "SELECT label_id, tasks FROM label_counts": (
        "SELECT label_id, count(*) FROM task_labels GROUP BY 1"
    ),
}

# A user's tasks and labels, before the 0007 and 0009 upgrades.
TASKS_BEFORE = (
    "INSERT INTO users (email, password_hash) VALUES ('m@example.com', 'x');"
    "INSERT INTO labels (user_id, name, key) VALUES (1, 'Home', 'home');"
    "INSERT INTO tasks (user_id, title, priority, completed, due_at) "
    "SELECT 1, 't' || n, n % 4, n % 3 = 0, "
    "CASE WHEN n % 5 > 0 THEN '2030-01-01T23:00:00Z'::timestamptz + n * interval '1 hour' END "
    "FROM generate_series(1, 120) n;"
    "INSERT INTO task_labels (task_id, label_id) SELECT id, 1 FROM tasks WHERE id % 2 = 0"
)
WRITES = (
    "UPDATE tasks SET due_at = due_at + interval '1 day', priority = 3 WHERE id % 7 = 0;"
    "DELETE FROM tasks WHERE id % 11 = 0"
)


def test_0007_counts_the_existing_tasks_then_its_triggers_keep_them(scratch_database_url):
    assert flask_db(scratch_database_url, "upgrade", "0006").returncode == 0
    run_sql(scratch_database_url, TASKS_BEFORE)
    upgrade = flask_db(scratch_database_url, "upgrade", "0007")
    assert upgrade.returncode == 0, upgrade.stderr
    run_sql(scratch_database_url, WRITES)
    assert_kept_reads(scratch_database_url)
    assert flask_db(scratch_database_url, "downgrade", "0006").returncode == 0
    assert run_sql(scratch_database_url, "SELECT to_regclass('task_due_counts')") == [(None,)]


def assert_kept_reads(database_url: str) -> None:
    for read, counted in KEPT_READS.items():
        expected = run_sql(database_url, counted)
        assert expected
        assert run_sql(database_url, read) == expected, read


def test_0009_appends_deltas_that_fold_exactly_and_downgrades_to_the_old_triggers(
    scratch_database_url,
):
    assert flask_db(scratch_database_url, "upgrade", "0008").returncode == 0
    run_sql(scratch_database_url, TASKS_BEFORE)
    upgrade = flask_db(scratch_database_url, "upgrade", "0009")
    assert upgrade.returncode == 0, upgrade.stderr
    run_sql(scratch_database_url, WRITES + "; DELETE FROM task_labels WHERE task_id % 4 = 0")
    # Written as deltas, the base rows untouched; one statement trigger after an INSERT.
    assert run_sql(scratch_database_url, "SELECT count(*) > 0 FROM task_count_deltas") == [(True,)]
    after_insert = (
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tasks'::regclass "
        "AND NOT tgisinternal AND tgtype & 4 = 4 AND tgtype & 1 = 0 AND tgtype & 2 = 0"
    )
    assert run_sql(scratch_database_url, after_insert) == [(1,)]
    assert run_sql(scratch_database_url, "SELECT task_counts_fold(1)")[0][0] > 0
    assert run_sql(scratch_database_url, "SELECT count(*) FROM task_count_deltas") == [(0,)]
    assert_kept_reads(scratch_database_url)
    run_sql(scratch_database_url, WRITES)  # deltas again, which the downgrade folds
    assert flask_db(scratch_database_url, "downgrade", "0008").returncode == 0
    assert_kept_reads(scratch_database_url)
    run_sql(scratch_database_url, WRITES + "; DELETE FROM task_labels WHERE task_id % 6 = 0")
    assert_kept_reads(scratch_database_url)  # the old triggers keep them again
    assert run_sql(scratch_database_url, "SELECT to_regclass('task_count_deltas')") == [(None,)]


# The project's own top-level modules and packages (taskapp, config, wsgi, ...): what a revision
# must not import, since what they are later would change what an old revision does.
PROJECT_MODULES = {path.stem for path in PROJECT.glob("*.py")} | {
    path.parent.name for path in PROJECT.glob("*/__init__.py")
}
# Ways to run the code of another file: a revision that loads one depends on its today's text.
LOADERS = {"importlib", "runpy", "imp", "pkgutil", "zipimport"}
LOADING_CALLS = {"__import__", "exec", "eval", "compile", "open", "exec_module", "run_path"}


def frozen_history_offences(source: str) -> list[str]:
    """What in a revision's ``source`` imports the project's code or loads another file."""
    offences = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [("." * node.level) + (node.module or "")]
        elif isinstance(node, ast.Call):
            function = node.func
            name = getattr(function, "id", None) or getattr(function, "attr", None)
            if name in LOADING_CALLS:
                offences.append(f"line {node.lineno}: calls {name}()")
            continue
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if module.startswith(".") or top in PROJECT_MODULES or top in LOADERS:
                offences.append(f"line {node.lineno}: imports {module}")
    return offences


def test_the_offences_found_are_those_of_the_revisions_before_they_were_frozen():
    # So the test below is not vacuous: the project's modules are known, and what 0006 did
    # before issue 23 (import the app, load earlier revisions by path) is found.
    assert {"taskapp", "config", "wsgi"} <= PROJECT_MODULES
    source = (
        "import importlib.util\n"
        "from taskapp.database import TRANSACTION_SETTINGS_OPTION\n"
        "import config\n"
        "spec.loader.exec_module(module)\n"
    )
    assert frozen_history_offences(source) == [
        "line 1: imports importlib.util",
        "line 2: imports taskapp.database",
        "line 3: imports config",
        "line 4: calls exec_module()",
    ]
    assert frozen_history_offences("import sqlalchemy as sa\nfrom alembic import op\n") == []


@pytest.mark.parametrize("revision", REVISIONS, ids=lambda path: path.stem)
def test_no_revision_imports_the_application_or_loads_another_file(revision):
    assert frozen_history_offences(revision.read_text()) == []


def test_0006_sends_its_statements_bare_with_the_option_the_app_reads():
    """0006 copies the name of the app's execution option (it may not import it): the app
    that runs the revision must still read that name, or CREATE INDEX CONCURRENTLY would go in
    one message with the app's SET LOCAL timeouts, which PostgreSQL refuses."""
    (revision,) = (path for path in REVISIONS if path.name.startswith("0006_"))
    copies = [
        node.value.value
        for node in ast.parse(revision.read_text()).body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets]
        == ["TRANSACTION_SETTINGS_OPTION"]
    ]
    assert copies == [TRANSACTION_SETTINGS_OPTION]
